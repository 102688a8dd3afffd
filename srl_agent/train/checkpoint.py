"""Checkpoints: HF-format model folders plus the trainer's state, written so a kill never leaves half.

    RUN_DIR/checkpoints/step-000040/   save_pretrained weights + tokenizer + trainer_state.pt
    RUN_DIR/latest                     the name of the newest complete checkpoint
    RUN_DIR/best/                      the checkpoint with the best validation reward so far

Each folder is written under a temporary name and renamed into place; `latest` is replaced
atomically after the rename, so it always names a complete checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ..jsonio import atomic_writer
from .model import save_model

STATE_FILE = "trainer_state.pt"
KEEP_LAST = 2


def _write_dir(final: Path, fill) -> None:
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict[str, Any]) -> Path:
    final = run_dir / "checkpoints" / f"step-{step:06d}"

    def fill(tmp: Path) -> None:
        save_model(model, tokenizer, tmp)
        torch.save(state, tmp / STATE_FILE)

    _write_dir(final, fill)
    with atomic_writer(run_dir / "latest") as f:
        f.write(final.name)
    old = sorted(p for p in (run_dir / "checkpoints").glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for stale in old[:-KEEP_LAST]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def save_best(run_dir: Path, model, tokenizer, info: dict[str, Any]) -> Path:
    import json

    def fill(tmp: Path) -> None:
        save_model(model, tokenizer, tmp)
        (tmp / "best.json").write_text(json.dumps(info))

    _write_dir(run_dir / "best", fill)
    return run_dir / "best"


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / STATE_FILE).exists() else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, weights_only=False)
