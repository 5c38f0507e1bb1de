"""Steps of the data stage."""
