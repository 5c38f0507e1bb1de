#!/bin/sh
# Shared by cpu.Dockerfile and cuda.Dockerfile: Python 3.11 (when the base image lacks it), a venv at
# /opt/venv, torch from the index that fits the image, then vtpose's step dependencies pinned by constraints.txt.
#
# Environment (the Dockerfiles' build arguments):
#   TORCH_INDEX_URL  extra index for torch/torchvision: https://download.pytorch.org/whl/cpu for the CPU image;
#                    empty for PyPI's own build (CUDA 13 libraries as nvidia-* wheels)
#   WHEELS_URL       a wheel folder or URL (pip --find-links); when set, pip uses it alone (--no-index): an
#                    offline build from wheels the host already has (scripts/containers/podman.sh path)
set -eu

if ! command -v python3.11 >/dev/null 2>&1; then
  # CUDA base images are Ubuntu: 22.04 ships Python 3.10 and 24.04 ships 3.12; the project pins 3.11.
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends software-properties-common gpg-agent
  add-apt-repository -y ppa:deadsnakes/ppa
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3.11-venv
  rm -rf /var/lib/apt/lists/*
fi
if ! ldconfig -p | grep -q 'libGL.so.1' || ! ldconfig -p | grep -q 'libgthread-2.0.so.0'; then
  # opencv-python (an Ultralytics dependency) loads libGL and GLib; slim images lack them.
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libgomp1
  rm -rf /var/lib/apt/lists/*
fi

python3.11 -m venv /opt/venv
pip=/opt/venv/bin/pip
if [ -n "${WHEELS_URL:-}" ]; then
  set -- --no-index --find-links "$WHEELS_URL"
elif [ -n "${TORCH_INDEX_URL:-}" ]; then
  set -- --extra-index-url "$TORCH_INDEX_URL"
else
  set --
fi
# --no-cache-dir: a pip cache is dead weight in an image layer.
$pip install --no-cache-dir "$@" -c /tmp/vtpose/constraints.txt torch torchvision
$pip install --no-cache-dir "$@" -c /tmp/vtpose/constraints.txt -r /tmp/vtpose/requirements.txt
/opt/venv/bin/python -c "import torch, torchvision, ultralytics, zenml, mlflow, cv2; print('torch', torch.__version__)"
rm -rf /tmp/vtpose /root/.cache
