"""The BentoML pose service (`service.service:PoseService`), built into the `pose-service` Bento."""
