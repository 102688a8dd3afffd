"""A curriculum: which PyPI packages the factory makes tasks from, which are held out, and the seed.

The definition is a small YAML file (configs/curricula/*.yaml); `srl-agent tasks build FILE --out DIR` rebuilds
the same tasks from it:

    train packages   -> `tasks synthesize --pypi ... --max-tasks train_tasks --seed seed`  -> DIR/
    held-out packages -> the same with heldout_tasks                                       -> DIR/
    DIR/split/train, DIR/split/test   (`tasks split --holdout` the held-out packages' repositories)
    DIR/split/train/renamed.jsonl     (with renamed_copies: the training runs with made-up names)

The sdists are kept in DIR/sdists, so a rerun (a build killed midway resumes from DIR/validation.jsonl)
needs no network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import UserError
from ..jsonio import atomic_writer
from .mutate import KINDS
from .rename import write_renamed_copies
from .split import split_folder
from .synthesize import Progress, SourceSpec, SynthesizeConfig, synthesize

_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9._+!-]*")


class Curriculum(BaseModel):
    """configs/curricula/<name>.yaml."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    seed: int = 0
    """Picks and orders the mutations of every package (the factory's --seed)."""
    train: list[str] = Field(min_length=1)
    """Training packages, each pinned as NAME==VERSION (a public sdist that ships its tests)."""
    heldout: list[str] = Field(min_length=1)
    """Packages held out whole for the test side, pinned the same way."""
    train_tasks: int = Field(30, ge=1)
    """Accepted tasks wanted per training package."""
    heldout_tasks: int = Field(20, ge=1)
    """Accepted tasks wanted per held-out package."""
    attempts_per_task: int = Field(4, ge=1)
    """Mutations tried per task wanted."""
    test_timeout: float = Field(120.0, gt=0)
    """Seconds one run of a package's suite may take."""
    kinds: list[str] = Field(default_factory=lambda: list(KINDS), min_length=1)
    """The mutation kinds to make tasks of (a subset of: comparison, off_by_one, drop_branch, swap, constant,
    remove_call, combined)."""
    traceable_only: bool = False
    """Keep only tasks whose every expert call can be read off what the agent sees (`bench.expert.traceable`)."""
    renamed_copies: int = Field(0, ge=0)
    """Renamed copies of each training run, written to split/train/renamed.jsonl beside the runs: the same
    procedure with made-up names, so that a small model learns to copy names rather than recall them
    (tasks/rename.py)."""

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown mutation kind {unknown[0]!r}; the kinds are {', '.join(KINDS)}")
        return kinds

    @field_validator("train", "heldout")
    @classmethod
    def _pinned(cls, packages: list[str]) -> list[str]:
        loose = [p for p in packages if not _PIN.fullmatch(p)]
        if loose:
            raise ValueError(f"pin every package as NAME==VERSION, not {', '.join(map(repr, loose))}")
        return packages


def load_curriculum(path: str | Path) -> Curriculum:
    """The curriculum in `path`; a missing file, unknown key or unpinned package is one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such curriculum file")
    try:
        data = yaml.safe_load(path.read_text())
        curriculum = Curriculum.model_validate(data)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "the file"
        raise UserError(f"{path}: {where}: {error['msg']}") from None
    names = [_project(p) for p in curriculum.train + curriculum.heldout]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{path}: {', '.join(twice)} listed more than once (a package is trained on or held out)")
    return curriculum


def _project(pin: str) -> str:
    return re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower()


def build(curriculum: Curriculum, out: Path, workers: int = 2, expert: bool = True,
          progress: Progress | None = None) -> dict:
    """Synthesize the training and held-out packages into `out`, then split them to out/split/{train,test}.

    Returns (and writes to out/report.json) {"train": synthesize's summary, "heldout": the same, "split": counts}."""
    summary = {}
    for side, packages, tasks in (("train", curriculum.train, curriculum.train_tasks),
                                  ("heldout", curriculum.heldout, curriculum.heldout_tasks)):
        cfg = SynthesizeConfig(out=out, max_tasks=tasks, seed=curriculum.seed,
                               attempts_per_task=curriculum.attempts_per_task, workers=workers,
                               test_timeout=curriculum.test_timeout, expert=expert,
                               kinds=tuple(curriculum.kinds), traceable_only=curriculum.traceable_only)
        summary[side] = synthesize([SourceSpec(f"pypi:{p}") for p in packages], cfg, progress)
    held_out = [r["repo"] for r in summary["heldout"]["repos"] if not r["skipped"]]
    if not held_out:
        raise UserError("no held-out package gave tasks; see the reasons above")
    summary["split"] = split_folder(out, out / "split", held_out)
    if curriculum.renamed_copies:
        summary["split"]["train"]["renamed"] = write_renamed_copies(out / "split" / "train",
                                                                    curriculum.renamed_copies, curriculum.seed)
    with atomic_writer(out / "report.json") as f:  # both halves (each synthesize wrote its own)
        json.dump(summary, f, indent=2)
    return summary
