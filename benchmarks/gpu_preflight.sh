#!/usr/bin/env bash
# The device run, rehearsed here at no device time: benchmarks/gpu_run.sh --smoke in a venv shaped like the GPU
# machine (/work/.library/device/KINDS.md: Python 3.12, torch 2.11, transformers 5.17, accelerate 1.15, peft,
# pandas and pyarrow, but no pydantic, trl or datasets), with the wheels gpu_prepare.sh puts in .carry/: every
# check of the device run (the untied FSDP2 steps and save over gloo, the 7B recipe's phases, TRL side by side in
# both precisions), CPU-sized. An import, a wheel or a version mix that would fail there fails here first; the
# run's rc is 1 when a check failed, and $OUT/results.json says which (`passed`).
#
#   bash benchmarks/gpu_preflight.sh PYTHON_3_12 [script args]   # e.g. ~/.pyenv/versions/3.12.1/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:?usage: gpu_preflight.sh PATH-TO-PYTHON-3.12 [args for gpu_srl_step.py]}
shift
venv=${PREFLIGHT_VENV:-/tmp/srl-gpu-preflight}
[ -d .carry/wheels ] || bash benchmarks/gpu_prepare.sh
if [ ! -x "$venv/bin/python3" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.11.0 transformers==5.17.0 accelerate==1.15.0 huggingface_hub==1.33.0 \
        safetensors==0.8.0 tokenizers==0.23.2 numpy==2.5.2 pandas pyarrow peft pyyaml rich jinja2 matplotlib \
        tensorboard regex tqdm psutil typer xxhash requests fsspec filelock packaging
    # what the machine lacks, even where the packages above pulled it in: it must come from .carry/wheels
    "$venv/bin/pip" uninstall -q -y pydantic pydantic_core annotated_types typing_inspection trl datasets dill \
        multiprocess cydifflib rapidfuzz 2>/dev/null || true
fi
rm -rf /tmp/srl-gpu-site  # gpu_run.sh installs the carried wheels there afresh, as on a bare machine
PATH="$venv/bin:$PATH" OUT=${OUT:-/tmp/srl-gpu-preflight-out} bash benchmarks/gpu_run.sh --smoke "$@"
