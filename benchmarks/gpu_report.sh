#!/usr/bin/env bash
# The GPU report (benchmarks/gpu_report.py) on the workplace's H200 in one device call:
#     run(command="bash benchmarks/gpu_report.sh", carry=[".whl"], timeout_s=540)
# That machine has PyTorch, torchvision, transformers, einops and safetensors but not MONAI, so its wheel travels,
# fetched here once, in the repository root:
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: -d .whl monai==1.6.1
# Arguments go on to gpu_report.py. Writes $OUT/gpu_report.json and $OUT/gpu_report.log (./ where OUT is unset).
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import monai" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
out=${OUT:-.}
PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 timeout 480 python3 benchmarks/gpu_report.py --budget-s 400 \
    --json "$out/gpu_report.json" "$@" 2>&1 | tee "$out/gpu_report.log"
