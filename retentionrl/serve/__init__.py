"""The decision service and policy export: serving a trained policy outside training."""

DEFAULT_MIN_PROPENSITY = 1e-3
"""Default exploration floor :math:`p`: with the default 20 groups x 4 coupon levels
(:math:`A = 80`) the service explores on 8% of decisions, and the least likely action's
importance weight in a later OPE is at most :math:`1 / p = 1000`. (Here rather than in
:mod:`retentionrl.serve.policy`, so that the CLI reads it without importing torch.)"""
