"""Held-out discipline: whole repositories go to the test side, never some of their tasks to each side.

Tasks from one repository share its code, style and tests; a model that trained on some of them has
seen the others' answers' neighbourhood. So the split is by `repo`, never by task.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from ..errors import UserError
from ..jsonio import read_jsonl, write_jsonl


def split_repos(repos: list[str], holdout: list[str] | None, fraction: float, seed: int) -> set[str]:
    """The repositories held out: `holdout` as given, else round(fraction * n) (at least one) picked by seed."""
    repos = sorted(set(repos))
    if holdout:
        unknown = sorted(set(holdout) - set(repos))
        if unknown:
            raise UserError(f"--holdout {', '.join(unknown)}: no such repository (have: {', '.join(repos)})")
        return set(holdout)
    if len(repos) < 2:
        raise UserError(f"a split needs tasks from at least two repositories, these come from {repos}")
    count = min(len(repos) - 1, max(1, round(fraction * len(repos))))
    return set(random.Random(seed).sample(repos, count))


def _relocate(source: str, old_dir: Path, new_dir: Path) -> str:
    if Path(source).is_absolute():
        return source
    return os.path.relpath((old_dir / source).resolve(), new_dir.resolve())


def split_folder(tasks: Path, out: Path, holdout: list[str] | None = None, fraction: float = 0.25,
                 seed: int = 0) -> dict[str, dict]:
    """tasks/{instances,trajectories}.jsonl -> out/train/... and out/test/..., split by repository."""
    path = tasks / "instances.jsonl"
    if not path.is_file():
        raise UserError(f"{tasks}: no instances.jsonl (make one with `srl-agent tasks synthesize`)")
    instances = [row for _, row in read_jsonl(path)]
    test_repos = split_repos([i["repo"] for i in instances], holdout, fraction, seed)
    repo_of = {i["instance_id"]: i["repo"] for i in instances}
    trajectories_path = tasks / "trajectories.jsonl"
    trajectories = [row for _, row in read_jsonl(trajectories_path)] if trajectories_path.exists() else []
    counts = {}
    for side, keep in (("train", lambda repo: repo not in test_repos), ("test", lambda repo: repo in test_repos)):
        # sources are relative to the instances file: point them back at the task folder's
        side_instances = [{**i, "source": _relocate(i["source"], tasks, out / side)} for i in instances
                          if keep(i["repo"])]
        # a trajectory of no known instance goes to neither side: its repository is unknown
        side_trajectories = [t for t in trajectories if t["id"] in repo_of and keep(repo_of[t["id"]])]
        write_jsonl(out / side / "instances.jsonl", side_instances)
        write_jsonl(out / side / "trajectories.jsonl", side_trajectories)
        counts[side] = {"instances": len(side_instances), "trajectories": len(side_trajectories),
                        "repos": sorted({i["repo"] for i in side_instances})}
    return counts
