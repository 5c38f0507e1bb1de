"""Steps of the training stage."""
