"""The decision service and policy export: serving a trained policy outside training."""
