#!/usr/bin/env bash
# The GPU issue's one command, on the GPU machine (one H200), after benchmarks/gpu_prepare.sh here:
#   run(command="bash benchmarks/gpu_run.sh", carry=[".carry"], timeout_s=480)
# Installs the carried wheels beside the machine's packages, then measures with benchmarks/gpu_srl_step.py on
# the anchor workload (performance-anchors.md: 0.5B, 8 prompts x G 8, prompts 1,024 tokens, completions 256)
# within a 360 s budget, writing results.json and log.txt into $OUT (or gpu-results/). Extra arguments go to
# the script (later ones win): `bash benchmarks/gpu_run.sh --smoke --no-trl` checks this file on CPU (with the
# project's python3 first on PATH, and without .carry/wheels, which are built for the machine's Python 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
site=/tmp/srl-gpu-site
if compgen -G ".carry/wheels/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        .carry/wheels/*.whl
fi
trajectories=.carry/trajectories
[ -d "$trajectories" ] || trajectories=../shared/fixtures/trajectories  # here, beside the checkout
[ -d "$trajectories" ] || { echo "gpu_run.sh: no trajectories: run benchmarks/gpu_prepare.sh and carry .carry" >&2
                            exit 2; }
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # no network there: no waits on timeouts
python3 - <<'PY' || true  # into the log: what this mix of the machine's and the carried packages imports as
import importlib
for name in ("torch", "transformers", "accelerate", "peft", "pydantic", "trl", "datasets", "pyarrow"):
    try:
        print(f"{name} {importlib.import_module(name).__version__}")
    except Exception as e:  # the run goes on: a side that needs it fails alone
        print(f"{name}: {type(e).__name__}: {e}")
PY
python3 benchmarks/gpu_srl_step.py --model 0.5b --batch 8 --group 8 --prompt-tokens 1024 --completion-tokens 256 \
    --budget-s 360 --trajectories "$trajectories" --out "${OUT:-gpu-results}" "$@"
