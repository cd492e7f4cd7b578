"""``python -m retentionrl``: the same as the ``retentionrl`` command."""

from retentionrl.cli.main import main

main()
