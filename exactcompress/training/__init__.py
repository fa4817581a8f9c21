"""Training: data sets, the one trainer, the bundled digits zoo and hyperparameter studies."""
