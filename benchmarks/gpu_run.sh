#!/usr/bin/env bash
# The GPU issue's one command, on the GPU machine (one H200), after benchmarks/gpu_prepare.sh here:
#   run(command="bash benchmarks/gpu_run.sh", carry=[".carry"], timeout_s=540)
# Installs the carried wheels beside the machine's packages, then measures with benchmarks/gpu_srl_step.py on
# the anchor workload (performance-anchors.md: 0.5B, 8 prompts x G 8, prompts 1,024 tokens, completions 256)
# within a 420 s budget, writing results.json and log.txt into $OUT (or gpu-results/). Extra arguments go to
# the script (later ones win): `bash benchmarks/gpu_run.sh --smoke` checks this file on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
site=/tmp/srl-gpu-site
if compgen -G ".carry/wheels/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        .carry/wheels/*.whl
fi
trajectories=.carry/trajectories
[ -d "$trajectories" ] || trajectories=../shared/fixtures/trajectories
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 benchmarks/gpu_srl_step.py --model 0.5b --batch 8 --group 8 --prompt-tokens 1024 --completion-tokens 256 \
    --budget-s 420 --trajectories "$trajectories" --out "${OUT:-gpu-results}" "$@"
