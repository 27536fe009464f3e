#!/usr/bin/env bash
# Install everything the product needs, idempotently: the demo data (Debian), a virtual
# environment at .venv with the pinned requirements, with --browser the Chromium that the
# browser tests drive, and with --gpu the CUDA extras (faiss-gpu, bitsandbytes) of
# requirements-gpu.txt. Used by the quick start, the test command, CI and the Dockerfile alike.
set -euo pipefail
cd "$(dirname "$0")/.."

with_browser=0
with_gpu=0
for arg in "$@"; do
  case "$arg" in
    --browser) with_browser=1 ;;
    --gpu) with_gpu=1 ;;
    *) echo "usage: $0 [--browser] [--gpu]" >&2; exit 2 ;;
  esac
done

apt_packages=()
[ -d /usr/share/tuxpaint/stamps ] || apt_packages+=(tuxpaint-stamps-default)
[ "$with_browser" = 1 ] && ! command -v chromium >/dev/null && apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  else
    echo "==> not root: skipping apt-get install ${apt_packages[*]}"
    echo "    (the demo extracts the stamps .deb into cache/ itself; browser tests need chromium)"
  fi
fi

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
[ -n "$python_bin" ] || { echo "error: Python 3.11 not found; install python3.11 or set PYTHON" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
stamp=.venv/.requirements.sha256
requirements=(requirements.txt)
[ "$with_gpu" = 1 ] && requirements+=(requirements-gpu.txt)
wanted=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "==> pip install -r requirements.txt (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  if [ "$with_gpu" = 1 ]; then
    echo "==> GPU extras: faiss-gpu in place of faiss-cpu, bitsandbytes"
    .venv/bin/python -m pip uninstall -q -y faiss-cpu
    .venv/bin/python -m pip install -q -r requirements-gpu.txt
  elif .venv/bin/python -m pip show -q faiss-gpu-cu12 2>/dev/null; then
    .venv/bin/python -m pip uninstall -q -y faiss-gpu-cu12  # back to the CPU build requirements.txt names
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "$(grep '^faiss-cpu' requirements.txt)"
  fi
  echo "$wanted" > "$stamp"
fi
