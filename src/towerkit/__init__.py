"""towerkit: real data to trained, evaluated and deployable PyTorch models."""

__version__ = "0.1.0"
