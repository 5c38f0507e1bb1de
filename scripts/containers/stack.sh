#!/usr/bin/env bash
# Registers (once) the container stack: ZenML's local Docker orchestrator (every step in its own
# container), the local image builder, and the SAME artifact store and MLflow tracker as the local stack
# (scripts/setup_stack.sh), so `make run-containers` adds to the same artifacts, MLflow experiment and model.
#
# The orchestrator mounts the local artifact store (ZenML's local stores folder) into each container at the same
# path; that mount is the only host path a step container sees. Host networking lets the containers reach the
# local ZenML server on 127.0.0.1:8237.
set -euo pipefail
ZENML=${ZENML:-.venv/bin/zenml}
STACK=vtpose-containers
ORCHESTRATOR=vtpose_docker
BUILDER=vtpose_local_builder
TRACKER=mlflow_tracker

"$ZENML" experiment-tracker describe "$TRACKER" >/dev/null 2>&1 \
  || "$ZENML" experiment-tracker register "$TRACKER" --flavor=mlflow >/dev/null
# remove: a finished step's container is deleted once its logs are read (ZenML leaves them otherwise).
RUN_ARGS='{"network_mode": "host", "remove": true}'
if "$ZENML" orchestrator describe "$ORCHESTRATOR" >/dev/null 2>&1; then
  "$ZENML" orchestrator update "$ORCHESTRATOR" --run_args="$RUN_ARGS" >/dev/null
else
  "$ZENML" orchestrator register "$ORCHESTRATOR" --flavor=local_docker --run_args="$RUN_ARGS" >/dev/null
fi
"$ZENML" image-builder describe "$BUILDER" >/dev/null 2>&1 \
  || "$ZENML" image-builder register "$BUILDER" --flavor=local >/dev/null
"$ZENML" stack describe "$STACK" >/dev/null 2>&1 \
  || "$ZENML" stack register "$STACK" -o "$ORCHESTRATOR" -a default -i "$BUILDER" -e "$TRACKER" >/dev/null
# Not activated: the active stack belongs to the repository (.zen), shared with whoever runs `make run` here;
# `zenml pipeline run --stack` picks this one for one run.
echo "stack: $STACK (orchestrator: local_docker, artifact store: default, image builder: local, tracker: $TRACKER)"
