#!/usr/bin/env bash
# Install everything the product needs, idempotently: the demo data (Debian), a virtual
# environment at .venv with the pinned requirements, and with --browser the Chromium that the
# browser tests drive. Used by the quick start, the test command, CI and the Dockerfile alike.
set -euo pipefail
cd "$(dirname "$0")/.."

with_browser=0
[ "${1:-}" = "--browser" ] && with_browser=1

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
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "==> pip install -r requirements.txt (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$wanted" > "$stamp"
fi
