"""swe-mini's testbed: where the shipped tasks live, their instances, their repositories and their images.

    envs/swe-mini/repos/<repo>/        a small Python project at its buggy commit (source + tests)
    envs/swe-mini/tasks/<id>/          issue.md, gold.patch, test.patch, repro.py (a reproduction script)
    envs/swe-mini/instances.jsonl      the tasks as swebench-5 instances (made by bench/swe_mini.py)

Each repository becomes a git repository with a fixed author and date, so its base commit hash is the
same on every machine. Every task gets an image `srl-agent/swe-mini:<id>`: the sandbox image plus the
repository at /testbed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..paths import project_dir
from .git import git
from .instance import build_images as build_testbed_images

IMAGE_REPO = "srl-agent/swe-mini"
_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "swe-mini", "GIT_AUTHOR_EMAIL": "swe-mini@srl-agent.invalid",
                 "GIT_COMMITTER_NAME": "swe-mini", "GIT_COMMITTER_EMAIL": "swe-mini@srl-agent.invalid",
                 "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}


def swe_mini_dir() -> Path:
    return project_dir("envs") / "swe-mini"


def instances_path() -> Path:
    return swe_mini_dir() / "instances.jsonl"


def image_name(instance_id: str) -> str:
    return f"{IMAGE_REPO}:{instance_id}"


def load_instances(instance_ids: list[str] | None = None) -> list[dict]:
    """swe-mini's instances through swebench's own loader (a local JSONL is one of its inputs)."""
    from swebench.harness.utils import load_swebench_dataset

    path = instances_path()
    if not path.exists():
        raise UserError(f"{path} is missing; run `python envs/swe-mini/make_instances.py`")
    return load_swebench_dataset(str(path), "test", instance_ids)


def materialize_repo(repo_name: str, dest: str | Path) -> str:
    """Copy `repos/<repo_name>` to `dest` as a one-commit git repository; returns the (reproducible) commit."""
    source = swe_mini_dir() / "repos" / repo_name
    if not source.is_dir():
        raise UserError(f"swe-mini has no repository {repo_name!r} ({source})")
    dest = Path(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    git(dest, "init", "-q", "-b", "main", identity=_GIT_IDENTITY)
    git(dest, "add", "-A", identity=_GIT_IDENTITY)
    git(dest, "commit", "-q", "-m", f"{repo_name}: base", identity=_GIT_IDENTITY)
    return git(dest, "rev-parse", "HEAD", identity=_GIT_IDENTITY).strip()


def _materialize_task(instance: dict, dest: Path) -> str:
    return materialize_repo(instance["repo"].split("/", 1)[1], dest)


def build_images(client, instances: list[dict], base: str, rebuild: bool = False,
                 progress: Callable[[str], None] = print) -> list[str]:
    """One image per swe-mini task on `base` (the sandbox image); current ones are kept."""
    return build_testbed_images(client, instances, base, rebuild, progress, materialize=_materialize_task,
                                kind="swe-mini")
