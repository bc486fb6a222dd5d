"""Two-tower training and evaluation: train, evaluate."""
