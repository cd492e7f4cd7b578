"""retentionrl: learn, from an e-commerce shop's logs, recommendation and coupon policies
that make shoppers come back.

One import root: ``retentionrl.core`` (shared contracts), ``retentionrl.interactions`` (event
logs), ``retentionrl.simulators`` (the ground-truth world, the learned simulator, fidelity),
``retentionrl.envs`` (Gymnasium environments), ``retentionrl.agents`` (PPO/DQN, baselines),
``retentionrl.evaluation`` (off-policy evaluation, certificates) and the application:
``retentionrl.cli`` (the ``retentionrl`` command, also ``python -m retentionrl``),
``retentionrl.pipeline`` and ``retentionrl.report``.
"""
