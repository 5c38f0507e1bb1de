# vtpose's training step on NVIDIA GPUs. PyPI's torch 2.14.1 carries its own CUDA 13 libraries (nvidia-* wheels),
# so the base needs only what the NVIDIA container runtime expects (the driver is the node's): the CUDA `base`
# flavour; a `runtime`/`cudnn` base would add a second copy of the same libraries.
#
#   docker build -f docker/cuda.Dockerfile -t vtpose-cuda .        # from the project root
# Build arguments:
#   BASE_IMAGE       an nvidia/cuda image (Ubuntu: Python 3.11 comes from the deadsnakes PPA) or any image with
#                    Python 3.11; the host driver must support CUDA 13.0 (driver >= 580)
#   TORCH_INDEX_URL  empty: PyPI's CUDA 13 build; or e.g. https://download.pytorch.org/whl/cu126 for older drivers
#   WHEELS_URL       install only from this wheel folder or URL (offline builds; see docs/containers.md)
ARG BASE_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=
ARG WHEELS_URL=
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1 \
    ZENML_ANALYTICS_OPT_IN=false \
    BENTOML_DO_NOT_TRACK=true \
    MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY constraints.txt docker/requirements.txt docker/install.sh /tmp/vtpose/
RUN TORCH_INDEX_URL="$TORCH_INDEX_URL" WHEELS_URL="$WHEELS_URL" sh /tmp/vtpose/install.sh
WORKDIR /app
