# vtpose's CPU steps: ingest, validate, convert, evaluate, promote, package (and training on a CPU-only stack).
# The image holds the dependencies only; ZenML brings the code (its code archive in the artifact store).
#
#   docker build -f docker/cpu.Dockerfile -t vtpose-cpu .          # from the project root (the context needs
#                                                                  # constraints.txt and docker/)
# Build arguments:
#   BASE_IMAGE       any image with a shell and apt or with Python 3.11 (default: Docker Hub's python:3.11-slim)
#   TORCH_INDEX_URL  where the CPU build of torch comes from (PyPI's torch is the CUDA build, gigabytes bigger)
#   WHEELS_URL       install only from this wheel folder or URL (offline builds; see docs/containers.md)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELS_URL=
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1 \
    ZENML_ANALYTICS_OPT_IN=false \
    BENTOML_DO_NOT_TRACK=true \
    MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false
COPY constraints.txt docker/requirements.txt docker/install.sh /tmp/vtpose/
RUN TORCH_INDEX_URL="$TORCH_INDEX_URL" WHEELS_URL="$WHEELS_URL" sh /tmp/vtpose/install.sh
WORKDIR /app
