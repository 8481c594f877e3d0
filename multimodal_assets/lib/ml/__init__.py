"""Models: the training set, fusion strategies, evaluation, drift, scoring, the model registry and similarity search."""
