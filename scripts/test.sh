#!/usr/bin/env bash
# The whole test suite, from a clean clone: setup (with the browser for the Playwright test), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
