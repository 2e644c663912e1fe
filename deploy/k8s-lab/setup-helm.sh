#!/usr/bin/env bash
# A Python >= 3.12 venv with helm-sdkpy (Helm 4 as a library: no registry these machines reach ships a helm
# binary), beside the cached Kubernetes binaries. Prints the venv's python.
set -euo pipefail
CACHE=${COVE_K8S_CACHE:-/var/tmp/cove-k8s}
VENV="$CACHE/helm-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import helm_sdkpy' 2>/dev/null; then
  # The first interpreter that runs and is >= 3.12 (a pyenv shim may exist for a version it cannot run).
  PY=""
  for candidate in $(command -v python3.13 python3.12 2>/dev/null || true) \
      $(ls -d "$HOME"/.pyenv/versions/3.1[23]*/bin/python 2>/dev/null | sort -r || true); do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then PY=$candidate; break; fi
  done
  # A fresh Debian 12 machine has neither: uv fetches a standalone CPython 3.12 (python-build-standalone).
  if [ -z "$PY" ]; then
    UV=$(command -v uv || true); [ -n "$UV" ] || UV=$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/uv
    [ -x "$UV" ] && "$UV" python install 3.12 --install-dir "$CACHE/python" >&2 \
      && PY=$(ls -d "$CACHE"/python/cpython-3.12*/bin/python3.12 2>/dev/null | head -1)
  fi
  [ -n "$PY" ] || { echo "helm-sdkpy needs Python >= 3.12 (python3.12, pyenv, or uv python install 3.12)" >&2; exit 1; }
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q helm-sdkpy
fi
echo "$VENV/bin/python"
