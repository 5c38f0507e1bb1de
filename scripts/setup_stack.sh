#!/usr/bin/env bash
# Registers (once) and activates the local stack: local orchestrator and artifact store, MLflow tracker, and the
# BentoML model deployer the deployment pipeline serves through (`zenml model-deployer models list`).
# The tracker has no tracking_uri, so ZenML keeps MLflow's SQLite store inside the local artifact store.
set -euo pipefail
ZENML=${ZENML:-.venv/bin/zenml}
TRACKER=mlflow_tracker
DEPLOYER=bentoml_deployer   # vtpose.serving.deployment.DEPLOYER_NAME
STACK=vtpose-local

"$ZENML" experiment-tracker describe "$TRACKER" >/dev/null 2>&1 \
  || "$ZENML" experiment-tracker register "$TRACKER" --flavor=mlflow
"$ZENML" model-deployer describe "$DEPLOYER" >/dev/null 2>&1 \
  || "$ZENML" model-deployer register "$DEPLOYER" --flavor=bentoml >/dev/null
if "$ZENML" stack describe "$STACK" >/dev/null 2>&1; then
  # A stack registered before the deployment pipeline existed gains the deployer.
  "$ZENML" stack describe "$STACK" 2>/dev/null | grep -q "$DEPLOYER" \
    || "$ZENML" stack update "$STACK" -d "$DEPLOYER" >/dev/null
else
  "$ZENML" stack register "$STACK" -o default -a default -e "$TRACKER" -d "$DEPLOYER" >/dev/null
fi
"$ZENML" stack set "$STACK" >/dev/null
echo "active stack: $STACK (orchestrator: local, artifact store: local, experiment tracker: $TRACKER, model deployer: $DEPLOYER)"
