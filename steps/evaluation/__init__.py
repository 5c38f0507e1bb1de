"""Steps of the evaluation stage."""
