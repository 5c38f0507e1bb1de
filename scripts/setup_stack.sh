#!/usr/bin/env bash
# Registers (once) and activates the local stack: local orchestrator and artifact store, MLflow tracker.
# The tracker has no tracking_uri, so ZenML keeps MLflow's SQLite store inside the local artifact store.
set -euo pipefail
ZENML=${ZENML:-.venv/bin/zenml}
TRACKER=mlflow_tracker
STACK=vtpose-local

"$ZENML" experiment-tracker describe "$TRACKER" >/dev/null 2>&1 \
  || "$ZENML" experiment-tracker register "$TRACKER" --flavor=mlflow
"$ZENML" stack describe "$STACK" >/dev/null 2>&1 \
  || "$ZENML" stack register "$STACK" -o default -a default -e "$TRACKER"
"$ZENML" stack set "$STACK" >/dev/null
echo "active stack: $STACK (orchestrator: local, artifact store: local, experiment tracker: $TRACKER)"
