"""Checkpoints: HF-format model folders plus the trainer's state, written so a kill never leaves half.

    RUN_DIR/checkpoints/step-000040/   save_pretrained weights + tokenizer + trainer_state.pt
                                       + accelerate/: what accelerate's save_state wrote (Adam state, each
                                       process's RNG; a sharded engine's model and Adam shards)
    RUN_DIR/latest                     the name of the newest complete checkpoint
    RUN_DIR/best/                      the checkpoint with the best validation reward so far

trainer_state.pt adds what accelerate does not hold: the step, the best validation reward, each process's data
position and the run config. The HF weights are fp32 or, by option (`export_dtype: bf16`), bf16: half the bytes,
for serving and eval. A resume never needs them rounded: a sharded run's exact weights are in its shards, and
beside a bf16 export an unsharded run's accelerate/ keeps them in fp32 (else the trainer leaves them out of it).
`save_total_limit` step checkpoints are kept, the newest; `best/` is kept besides.

Each folder is written under a temporary name and renamed into place; `latest` is replaced
atomically after the rename, so it always names a complete checkpoint. A folder being replaced
(`best/`) is first renamed aside to `NAME.old`; `recover_run_dir` puts it back if a kill came between
the two renames. The processes first write accelerate's state into `step-000040.accelerate`, which goes
into the folder before it is renamed into place. An old checkpoint is renamed to `step-000020.stale` before
it is removed, so none is ever left half-removed under its own name.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..jsonio import atomic_writer
from ..steps import StepConfig, save_rendering
from .model import save_model

STATE_FILE = "trainer_state.pt"
ENGINE_DIR = "accelerate"


WANDB_ID_FILE = "wandb-id"
PRETRAINED_DIR = "pretrained"
PRETRAIN_METRICS = "pretrain.jsonl"
PRETRAIN_STAGES = "stages.json"
"""In pretrained/: the summary row of each pretraining stage its weights have been through."""
# What a training run writes into its folder; `--overwrite` removes exactly these.
RUN_ARTIFACTS = ("checkpoints", "latest", "best", "best.old", "best.tmp", "metrics.jsonl", "tensorboard",
                 "curves.png", "config.json", "rollout-weights", "wandb", WANDB_ID_FILE, PRETRAINED_DIR,
                 f"{PRETRAINED_DIR}.tmp", f"{PRETRAINED_DIR}.old", PRETRAIN_METRICS)
STEP_DIR = re.compile(r"step-\d+")


def replace_dir(final: Path, fill: Callable[[Path], None]) -> None:
    """Make `final` a folder that `fill` wrote, replacing any old one. A failure leaves the old one; a kill
    between the two renames leaves it as `NAME.old`, which `recover_run_dir` (run by --resume) puts back."""
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def recover_run_dir(run_dir: Path) -> None:
    """Undo what a kill during `replace_dir` left: an old folder renamed aside, a half-written new one."""
    for old in [*run_dir.glob("best.old"), *run_dir.glob(f"{PRETRAINED_DIR}.old"),
                *run_dir.glob("checkpoints/step-*.old")]:
        final = old.with_suffix("")
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(final)
    for tmp in [*run_dir.glob("best.tmp"), *run_dir.glob(f"{PRETRAINED_DIR}.tmp"),
                *run_dir.glob("checkpoints/step-*.tmp"), *run_dir.glob(f"checkpoints/step-*.{ENGINE_DIR}"),
                *run_dir.glob("checkpoints/step-*.stale")]:
        shutil.rmtree(tmp, ignore_errors=True)


def previous_run(run_dir: Path) -> list[str]:
    """The artifacts of an earlier run in `run_dir` (empty for a new or empty folder)."""
    return [name for name in RUN_ARTIFACTS if (run_dir / name).exists()]


def remove_previous_run(run_dir: Path, keep: tuple[str, ...] = ()) -> None:
    for name in set(previous_run(run_dir)) - set(keep):
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def engine_staging(run_dir: Path, step: int) -> Path:
    """Where every process writes its part of accelerate's state before `save_checkpoint` moves it in."""
    return step_dir(run_dir, step).with_suffix(f".{ENGINE_DIR}")


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict[str, Any],
                    weights: dict[str, torch.Tensor] | None = None, rendering: StepConfig | None = None,
                    engine_state: Path | None = None, total_limit: int | None = 2, bf16: bool = False) -> Path:
    """`weights`: a sharded model's gathered state dict (default: the model's own); `rendering`: how the
    prompts were rendered, for eval; `engine_state`: accelerate's state as the processes wrote it (see
    `engine_staging`). All go inside the folder before it is renamed into place. `total_limit`: step
    checkpoints kept (None: all); `bf16`: the HF weights written in bf16 (see `save_model`)."""
    final = step_dir(run_dir, step)

    def fill(tmp: Path) -> None:
        save_model(model, tokenizer, tmp, weights, bf16)
        if rendering is not None:
            save_rendering(rendering, tmp)
        if engine_state is not None:
            engine_state.rename(tmp / ENGINE_DIR)
        torch.save(state, tmp / STATE_FILE)

    replace_dir(final, fill)
    with atomic_writer(run_dir / "latest") as f:
        f.write(final.name)
    if total_limit is not None:
        remove_old_checkpoints(run_dir, total_limit, final)
    return final


def remove_old_checkpoints(run_dir: Path, total_limit: int, written: Path) -> None:
    """Keep the newest `total_limit` step checkpoints, `written` (the one `latest` names) always among them."""
    others = sorted(p for p in (run_dir / "checkpoints").iterdir() if STEP_DIR.fullmatch(p.name) and p != written)
    for old in others[:max(len(others) - (total_limit - 1), 0)]:
        stale = old.with_name(old.name + ".stale")
        shutil.rmtree(stale, ignore_errors=True)  # what a kill during an earlier removal left
        old.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)


def save_best(run_dir: Path, model, tokenizer, info: dict[str, Any],
              weights: dict[str, torch.Tensor] | None = None, rendering: StepConfig | None = None,
              bf16: bool = False) -> Path:
    import json

    def fill(tmp: Path) -> None:
        save_model(model, tokenizer, tmp, weights, bf16)
        if rendering is not None:
            save_rendering(rendering, tmp)
        (tmp / "best.json").write_text(json.dumps(info))

    replace_dir(run_dir / "best", fill)
    return run_dir / "best"


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / STATE_FILE).exists() else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer's own state; accelerate's is in `checkpoint / ENGINE_DIR` (`Accelerator.load_state`)."""
    if not (checkpoint / ENGINE_DIR).is_dir():
        raise UserError(f"{checkpoint} has no {ENGINE_DIR}/ folder (written before checkpoints kept accelerate's "
                        "state): continue it with the srl-agent version that wrote it, or start over with --overwrite")
    return torch.load(checkpoint / STATE_FILE, weights_only=False)
