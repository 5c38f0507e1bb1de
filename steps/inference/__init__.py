"""Steps of the inference pipeline."""
