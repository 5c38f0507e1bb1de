#!/usr/bin/env bash
# The two things the containers fetch from the host over 127.0.0.1 (host networking) on a machine without a
# registry: the wheels the images install (pip --find-links, no download) and the DVC remote the ingestion
# steps read (data.dvc_remote). One static HTTP server, read-only, on 127.0.0.1 only.
#
#   sources.sh wheels   fill .runtime/containers/wheels with every wheel the images need (pinned, from the
#                       host's pip indexes: the same files as .venv)
#   sources.sh start    serve .runtime/containers/http/{wheels,dvc} on http://127.0.0.1:$VTPOSE_SOURCES_PORT
#   sources.sh stop
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=$ROOT/.runtime/containers
PORT=${VTPOSE_SOURCES_PORT:-8765}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

die() { echo "sources.sh: $*" >&2; exit 1; }

# The DVC remote of the project's default remote, as `dvc remote list` resolves it (relative to .dvc/).
dvc_remote_dir() {
  local url
  url=$(cd "$ROOT" && "$ROOT/.venv/bin/dvc" remote list | awk '$1 == "sample" {print $2}')
  [ -n "$url" ] || die "no DVC remote 'sample' in .dvc/config"
  case "$url" in
    /*) echo "$url" ;;
    *) (cd "$ROOT/.dvc" && cd "$url" && pwd) ;;
  esac
}

cmd_wheels() {
  mkdir -p "$STATE/wheels"
  # torch and torchvision as the Dockerfiles install them; the rest from docker/requirements.txt, all pinned.
  # pip wheel, not pip download: source distributions (antlr4-python3-runtime) become wheels here, so an image
  # build never needs their build requirements.
  "$PYTHON" -m pip wheel -q -w "$STATE/wheels" -c "$ROOT/constraints.txt" -r "$ROOT/docker/requirements.txt" \
    torch torchvision
  find "$STATE/wheels" -maxdepth 1 -type f ! -name '*.whl' -delete
  du -sh "$STATE/wheels"
}

cmd_start() {
  [ -d "$STATE/wheels" ] || die "no wheels yet: run scripts/containers/sources.sh wheels"
  mkdir -p "$STATE/http"
  ln -sfn "$STATE/wheels" "$STATE/http/wheels"
  ln -sfn "$(dvc_remote_dir)" "$STATE/http/dvc"
  if curl -fsS "http://127.0.0.1:$PORT/wheels/" >/dev/null 2>&1; then return 0; fi
  nohup "$PYTHON" -m http.server "$PORT" --bind 127.0.0.1 --directory "$STATE/http" >"$STATE/http.log" 2>&1 &
  echo $! >"$STATE/http.pid"
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/wheels/" >/dev/null 2>&1 && { echo "http://127.0.0.1:$PORT"; return 0; }
    sleep 0.2
  done
  die "the HTTP server did not start on 127.0.0.1:$PORT (port taken?); see $STATE/http.log"
}

cmd_stop() {
  if [ -f "$STATE/http.pid" ] && kill -0 "$(cat "$STATE/http.pid")" 2>/dev/null; then kill "$(cat "$STATE/http.pid")"; fi
  rm -f "$STATE/http.pid"
}

case "${1:-}" in
  wheels) cmd_wheels ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) die "usage: sources.sh wheels|start|stop" ;;
esac
