#!/usr/bin/env bash
# Podman as the Docker-compatible engine on a machine without Docker or a registry (see the README, "Containers and Kubernetes").
#
#   podman.sh install      apt packages (podman, buildah, debootstrap, runc ...); a no-op when present
#   podman.sh conf         write $PODMAN_HOME/containers.conf (runc runtime, default ulimits)
#   podman.sh base-image   localhost/vtpose-base:bookworm: debootstrap + this machine's Python 3.11 + CA bundle
#   podman.sh start        the Docker API on unix://$PODMAN_HOME/podman.sock (podman system service)
#   podman.sh stop         stop that service
#   podman.sh env          print the exports that point Docker clients and ZenML at it (eval "$(podman.sh env)")
#
# Machine state lives under .runtime/podman (git-ignored); images live in podman's own store.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PODMAN_HOME=${PODMAN_HOME:-$ROOT/.runtime/podman}
BASE_IMAGE=${VTPOSE_BASE_IMAGE:-localhost/vtpose-base:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Not bookworm's python3: it is 3.11.2, whose tarfile lacks extraction filters (PEP 706, 3.11.4+), which the
# materializers use. The base gets the interpreter the project's .venv runs on (or $VTPOSE_BASE_PYTHON), at the
# same prefix (its libpython is found by an absolute RPATH), and the shared libraries its modules load.
# libgl1, libglib2.0-0 and libgomp1: what opencv-python (an Ultralytics dependency) and torch load.
BASE_PACKAGES=ca-certificates,libssl3,libffi8,libsqlite3-0,libreadline8,libncursesw6,libbz2-1.0,liblzma5,libuuid1
BASE_PACKAGES=$BASE_PACKAGES,libgl1,libglib2.0-0,libgomp1
PYTHON_BIN=${VTPOSE_BASE_PYTHON:-$ROOT/.venv/bin/python}
SOCK=$PODMAN_HOME/podman.sock
export CONTAINERS_CONF=$PODMAN_HOME/containers.conf

die() { echo "podman.sh: $*" >&2; exit 1; }

cmd_install() {
  local missing=()
  for tool in podman buildah debootstrap fuse-overlayfs slirp4netns newuidmap runc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root or: sudo apt-get install -y podman buildah debootstrap fuse-overlayfs slirp4netns uidmap runc"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah debootstrap fuse-overlayfs slirp4netns uidmap runc
}

cmd_conf() {
  mkdir -p "$PODMAN_HOME"
  # runc, not crun: crun fails on this machine's hybrid cgroups. The ulimits are what Python's multiprocessing
  # and PyTorch's data loader need; podman's defaults inherit a nofile limit too low for them here.
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]

[engine]
runtime = "runc"
CONF
  echo "$CONTAINERS_CONF"
}

cmd_base_image() {
  [ -f "$CONTAINERS_CONF" ] || cmd_conf >/dev/null
  if podman image exists "$BASE_IMAGE"; then echo "$BASE_IMAGE (exists)"; return 0; fi
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  local prefix version
  prefix=$("$PYTHON_BIN" -c 'import sys; print(sys.base_prefix)')
  version=$("$PYTHON_BIN" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  "$PYTHON_BIN" -c 'import sys, tarfile; sys.exit(not (sys.version_info[:2] == (3, 11) and hasattr(tarfile, "data_filter")))' \
    || die "$PYTHON_BIN is Python $version; the base needs 3.11.4 or later 3.11 (set VTPOSE_BASE_PYTHON)"
  local rootfs=$PODMAN_HOME/rootfs-$SUITE
  rm -rf "$rootfs.tmp"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs.tmp" "$MIRROR"
  # The interpreter and its standard library only: not its site-packages (venvs are made in the image).
  mkdir -p "$rootfs.tmp$prefix"
  tar -C "$prefix" --exclude='lib/python3.11/site-packages/*' --exclude='lib/python3.11/test' \
    --exclude='__pycache__' -c bin lib include | tar -C "$rootfs.tmp$prefix" -x
  ln -sf "$prefix/bin/python3.11" "$rootfs.tmp/usr/local/bin/python3.11"
  ln -sf python3.11 "$rootfs.tmp/usr/local/bin/python3"
  chroot "$rootfs.tmp" python3.11 -c 'import ssl, sqlite3, ctypes, bz2, lzma, tarfile, venv; tarfile.data_filter'
  # Inside containers only PyPI is reachable, through the same TLS interception as the host: pip, requests and
  # OpenSSL must trust the host's CA bundle.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs.tmp/usr/local/share/host-ca-bundle.crt"
  rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/*
  rm -rf "$rootfs" && mv "$rootfs.tmp" "$rootfs"
  local ca=/usr/local/share/host-ca-bundle.crt
  tar -C "$rootfs" -c . | podman import \
    --change "ENV PIP_CERT=$ca" --change "ENV SSL_CERT_FILE=$ca" --change "ENV REQUESTS_CA_BUNDLE=$ca" \
    --change "ENV LANG=C.UTF-8" --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE"
  rm -rf "$rootfs"
  echo "$BASE_IMAGE"
}

cmd_start() {
  [ -f "$CONTAINERS_CONF" ] || cmd_conf >/dev/null
  if [ -S "$SOCK" ] && curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then return 0; fi
  rm -f "$SOCK"
  nohup podman system service --time=0 "unix://$SOCK" >"$PODMAN_HOME/service.log" 2>&1 &
  echo $! >"$PODMAN_HOME/service.pid"
  for _ in $(seq 50); do
    curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && { echo "unix://$SOCK"; return 0; }
    sleep 0.2
  done
  die "podman system service did not answer on $SOCK; see $PODMAN_HOME/service.log"
}

cmd_stop() {
  local pidfile=$PODMAN_HOME/service.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then kill "$(cat "$pidfile")"; fi
  rm -f "$pidfile" "$SOCK"
}

cmd_env() {
  echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "export DOCKER_HOST=unix://$SOCK"
  echo "export ZENML_CONTAINER_ENGINE=podman"
}

case "${1:-}" in
  install) cmd_install ;;
  conf) cmd_conf ;;
  base-image) cmd_base_image ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  *) die "usage: podman.sh install|conf|base-image|start|stop|env" ;;
esac
