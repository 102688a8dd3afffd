#!/usr/bin/env bash
# Gathers what a run of benchmarks/gpu_run.sh needs on the GPU machine into .carry/ (git-ignored; pass it in
# the device call's `carry`): the fixture trajectories, which live beside the checkout in ../shared and do
# not travel by themselves, and the wheels the machine lacks (it has torch 2.11, transformers 5.17,
# accelerate, pandas and pyarrow, and no network). Run here, where pip reaches PyPI; about 25 MB.
#
#   bash benchmarks/gpu_prepare.sh [TRAJECTORIES]    # default ../shared/fixtures/trajectories
set -euo pipefail
cd "$(dirname "$0")/.."
trajectories=${1:-../shared/fixtures/trajectories}
[ -d "$trajectories" ] || { echo "gpu_prepare.sh: no trajectories folder at $trajectories" >&2; exit 2; }
rm -rf .carry && mkdir -p .carry/wheels
cp -r --no-preserve=mode "$trajectories" .carry/trajectories
# Pinned to what CI tests (transformers 5.24: the machine's 5.17 is older than pyproject allows), the
# trainer's own needs (pydantic, cydifflib, rapidfuzz) and TRL's side (trl, datasets and theirs).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .carry/wheels \
    transformers==5.24.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5 \
    typing_extensions==4.16.0 cydifflib==1.2.0 rapidfuzz==3.14.6 \
    trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
du -sh .carry | sed 's/\t/ in /'
