"""Synthesized tasks as swebench-5 instances (the shape of envs/swe-mini/instances.jsonl), and their images.

An instance's repository is its clean source plus its bug: `source` (a git repository, folder or
sdist, relative to the instances file) committed with a fixed identity, then `bug_patch` applied and
committed; that second commit is `base_commit`, so the base holds the bug and `patch` (the gold
patch) is the bug's reverse. The test patch is empty: the failing tests stay in the repository (the
scripted expert runs them), and the eval script resets the test files before grading.

`build_images` makes one image per instance on the swe sandbox image (`srl-agent env build
--instances FILE`), kept while its hash (base image, commit, Dockerfile) is current.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..images import TASK_IMAGE_REPO
from ..testbed.suite import eval_script, sandbox_python_path
from .mutate import Mutation
from .source import Layout, commit_patch, commit_tree, git, snapshot
from .validate import Verdict

_DOCKERFILE = """\
ARG BASE
FROM ${{BASE}}
COPY --chown=agent:agent testbed/ /testbed/
ENV PYTHONPATH={python_path}
WORKDIR /testbed
# The harness keeps its containers alive with `tail -f /dev/null`, which ignores SIGTERM as PID 1.
STOPSIGNAL SIGKILL
"""


def instance_id(repo_slug: str, mutation: Mutation) -> str:
    return f"{repo_slug}__{mutation.id}"


def make_instance(*, repo: str, source: str, layout: Layout, mutation: Mutation, bug_patch: str, gold_patch: str,
                  base_commit: str, verdict: Verdict, statement: str) -> dict:
    """One accepted mutation -> one swebench-5 instance (plus `source`, `bug_patch` and `mutation`)."""
    task_id = instance_id(repo.replace("/", "-"), mutation)
    return {
        "instance_id": task_id, "repo": repo, "version": "1.0", "base_commit": base_commit,
        "environment_setup_commit": base_commit, "created_at": "2026-01-01T00:00:00Z",
        "problem_statement": statement, "hints_text": "", "patch": gold_patch, "test_patch": "",
        "FAIL_TO_PASS": json.dumps(verdict.fail_to_pass), "PASS_TO_PASS": json.dumps(verdict.pass_to_pass),
        "image": f"{TASK_IMAGE_REPO}:{task_id}",
        "eval_script": eval_script(base_commit, "", layout.test_files, [], layout.test_command()),
        "log_parser": "parse_log_pytest", "eval_type": "pass_and_fail",
        "source": source, "bug_patch": bug_patch, "mutation": mutation.to_dict(), "python_path": layout.python_path,
    }


def dockerfile(instance: dict) -> str:
    return _DOCKERFILE.format(python_path=sandbox_python_path(instance.get("python_path", ".")))


class Materializer:
    """Makes instances' repositories from their sources, unpacking each source once."""

    def __init__(self, instances_dir: Path, workdir: Path):
        self.instances_dir, self.workdir = instances_dir, workdir
        self.clean: dict[str, Path] = {}

    def clean_repo(self, source: str) -> Path:
        if source not in self.clean:
            path = Path(source) if Path(source).is_absolute() else self.instances_dir / source
            dest = self.workdir / f"clean-{len(self.clean)}"
            snapshot(path, dest)
            commit_tree(dest, "clean source")
            self.clean[source] = dest
        return self.clean[source]

    def __call__(self, instance: dict, dest: Path) -> str:
        """The instance's repository at `dest` (clean source + bug); returns its head commit."""
        shutil.copytree(self.clean_repo(instance["source"]), dest, symlinks=True)
        if instance.get("bug_patch"):
            return commit_patch(dest, instance["bug_patch"], "bug")
        return git(dest, "rev-parse", "HEAD").strip()


def load_task_instances(path: str | Path, ids: list[str] | None = None) -> list[dict]:
    """Instances with a `source` from a JSONL file; a row without what an image needs names itself."""
    from ..jsonio import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such instances file")
    rows = []
    for lineno, row in read_jsonl(path):
        missing = [k for k in ("instance_id", "image", "base_commit", "source") if not (isinstance(row, dict)
                                                                                      and row.get(k))]
        if missing:
            raise UserError(f"{path}: row {lineno}: missing {', '.join(missing)} (an image needs the source, a "
                            "git repository, folder or sdist, and optionally a bug_patch applied on it)")
        rows.append(row)
    if ids:
        unknown = sorted(set(ids) - {r["instance_id"] for r in rows})
        if unknown:
            raise UserError(f"{path}: no instances {', '.join(unknown)}")
        rows = [r for r in rows if r["instance_id"] in ids]
    return rows


def build_images(client, instances_file: str | Path, instances: list[dict], base: str, rebuild: bool = False,
                 progress: Callable[[str], None] = print) -> list[str]:
    """One image per instance, on `base` (the swe sandbox image), with the buggy repository at /testbed."""
    from ..testbed.instance import build_images as build_testbed_images

    with tempfile.TemporaryDirectory(prefix="srl-tasks-src-") as tmp:
        materialize = Materializer(Path(instances_file).resolve().parent, Path(tmp))
        return build_testbed_images(client, instances, base, rebuild, progress, materialize=materialize,
                                    dockerfile=dockerfile, kind="tasks")
