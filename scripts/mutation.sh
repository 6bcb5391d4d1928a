#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut 3 (configuration: setup.cfg, [mutmut]).
# Builds one tiny-profile pipeline run that the stage tests copy (instead of one per mutant), then
# mutates cxrldm/{sampling/generation,models/diffusion,models/autoencoder,evaluation/networks}, stages/{sample,evaluate} and runs only the
# tests that cover each mutated function. Usage: make mutation  (or: bash scripts/mutation.sh [mutmut args])
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet mutmut==3.8.1
rm -rf mutants .mutation
mkdir -p .mutation
python - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from pipeline_project import commit, make_project, run
project = make_project(Path(".mutation/tiny_project"))
run(project, "repro")
commit(project, "tiny run")
PY
# one thread per mutant process: torch's thread pool is not fork-safe, and mutmut runs one mutant per core
export CXRLDM_TINY_PROJECT="$PWD/.mutation/tiny_project" OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
start=$(date +%s)
mutmut run "$@" || true
mutmut results --all true > .mutation/results.txt 2>&1 || mutmut results > .mutation/results.txt 2>&1
echo "mutmut took $(( $(date +%s) - start )) s; results in .mutation/results.txt:"
grep -oE '(killed|survived|timeout|suspicious|no tests|skipped|not checked)$' .mutation/results.txt | sort | uniq -c
