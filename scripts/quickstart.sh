#!/usr/bin/env bash
# Set everything up, compute the bundled demo (cached after the first run), open the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m core demo
port="${PORT:-8501}"
echo "==> dashboard at http://localhost:${port}  (Ctrl+C stops it)"
exec .venv/bin/streamlit run app.py --server.headless true --server.port "$port" \
  --server.address "${ADDRESS:-localhost}" --browser.gatherUsageStats false
