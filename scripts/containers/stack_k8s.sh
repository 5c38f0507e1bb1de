#!/usr/bin/env bash
# Registers the Kubernetes stack of configs/stacks/kubernetes.yaml: the ZenML secrets for MinIO and MLflow
# (from the environment, never from a file in the repository), then `zenml stack import` of the YAML with its
# ${...} filled in. Needs a ZenML server the pods can reach (`zenml login https://...`), not the local one.
#
# Environment: KUBE_CONTEXT K8S_NAMESPACE MINIO_ENDPOINT ARTIFACT_BUCKET REGISTRY_URI MLFLOW_TRACKING_URI
#              MINIO_ACCESS_KEY MINIO_SECRET_KEY MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ZENML=${ZENML:-$ROOT/.venv/bin/zenml}
VTPOSE=${VTPOSE:-$ROOT/.venv/bin/vtpose}
STACK_YAML=$ROOT/configs/stacks/kubernetes.yaml

missing=()
for var in KUBE_CONTEXT K8S_NAMESPACE MINIO_ENDPOINT ARTIFACT_BUCKET REGISTRY_URI MLFLOW_TRACKING_URI \
  MINIO_ACCESS_KEY MINIO_SECRET_KEY MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD; do
  [ -n "${!var:-}" ] || missing+=("$var")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "stack_k8s.sh: set ${missing[*]} (see configs/stacks/kubernetes.yaml and the README section 'Containers and Kubernetes')" >&2
  exit 2
fi
if "$ZENML" status 2>/dev/null | grep -q "local ZenML server"; then
  echo "stack_k8s.sh: connected to the local ZenML server; pods cannot reach it. Run \`zenml login https://YOUR-SERVER\`." >&2
  exit 2
fi

upsert_secret() {  # name key=value...
  local name=$1
  shift
  if "$ZENML" secret get "$name" >/dev/null 2>&1; then
    "$ZENML" secret update "$name" "$@" >/dev/null
  else
    "$ZENML" secret create "$name" "$@" >/dev/null
  fi
}
upsert_secret vtpose_minio --access_key="$MINIO_ACCESS_KEY" --secret_key="$MINIO_SECRET_KEY"
upsert_secret vtpose_mlflow --username="$MLFLOW_TRACKING_USERNAME" --password="$MLFLOW_TRACKING_PASSWORD"

rendered=$(mktemp --suffix=.yaml)
trap 'rm -f "$rendered"' EXIT
"$VTPOSE" stack render "$STACK_YAML" >"$rendered"
"$ZENML" stack import vtpose-k8s -f "$rendered"
echo "stack vtpose-k8s registered; run: zenml pipeline run pipelines.training_pipeline -c configs/training_k8s.yaml --stack vtpose-k8s"
