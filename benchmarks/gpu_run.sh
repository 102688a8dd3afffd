#!/usr/bin/env bash
# The GPU issue's one command, on the GPU machine (one H100 or H200), after benchmarks/gpu_prepare.sh here:
#   run(command="bash benchmarks/gpu_run.sh", carry=[".carry"], timeout_s=480)
# Installs the carried wheels beside the machine's packages, then makes a first run's three checks with
# benchmarks/gpu_srl_step.py, in this order (each side its own process and share of a 380 s budget; if time runs
# short, the later ones are cut first): 1. untied_fsdp2, two GRPO steps and a save under FSDP2 of the 7B's shape
# cut to 2 layers (its untied head); 2. recipe_7b, the 7B at the paper recipe's lengths on one card with LoRA,
# each phase's peak memory beside the --dry-run plan, decode ms/token; 3. ours against TRL's GRPOTrainer on the
# anchor workload (performance-anchors.md: 0.5B, 8 prompts x G 8, prompts 1,024 tokens, completions 256) in the
# same precision (trl), then TRL with bf16 weights as its anchor (trl_bf16). results.json (rewritten after every
# side) and log.txt go into $OUT (or gpu-results/). At most 380 + 30 (a side past the budget) + 15 (its stop) s
# of measuring, after about 30 s of wheels and imports: inside the call's 480 s. Extra arguments go to the script
# (later ones win): `bash benchmarks/gpu_run.sh --smoke --no-trl` checks this file on CPU (with the project's
# python3 first on PATH, and without .carry/wheels, which are built for the machine's Python 3.12).
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
python3 benchmarks/gpu_srl_step.py --sides untied_fsdp2 recipe_7b ours trl trl_bf16 --budget-s 380 \
    --model 0.5b --batch 8 --group 8 --prompt-tokens 1024 --completion-tokens 256 \
    --trajectories "$trajectories" --out "${OUT:-gpu-results}" "$@"
