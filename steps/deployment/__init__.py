"""Steps of the deployment stage."""
