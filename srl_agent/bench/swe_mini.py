"""swe-mini: an offline SWE-bench-style benchmark shipped in `envs/swe-mini/`.

    envs/swe-mini/repos/<repo>/        a small Python project at its buggy commit (source + tests)
    envs/swe-mini/tasks/<id>/          issue.md, gold.patch, test.patch, repro.py (a reproduction script)
    envs/swe-mini/instances.jsonl      the tasks as swebench-5 instances (made by `make_instances`)

Each repository becomes a git repository with a fixed author and date, so its base commit hash is the
same on every machine. FAIL_TO_PASS and PASS_TO_PASS are not written by hand: they are measured, the
way SWE-bench validates its tasks (tests with the test patch, before and after the gold patch), inside
sandboxes from the swe image. Every task gets an image `srl-agent/swe-mini:<id>`: the sandbox image plus the
repository at /testbed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..jsonio import write_jsonl
from ..paths import project_dir

IMAGE_REPO = "srl-agent/swe-mini"
TEST_COMMAND = "python3 -m pytest -rA -p no:cacheprovider tests"
_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "swe-mini", "GIT_AUTHOR_EMAIL": "swe-mini@srl-agent.invalid",
                 "GIT_COMMITTER_NAME": "swe-mini", "GIT_COMMITTER_EMAIL": "swe-mini@srl-agent.invalid",
                 "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}
_HEREDOC = "EOF_114329324912"  # the delimiter SWE-bench's own eval scripts use


def swe_mini_dir() -> Path:
    return project_dir("envs") / "swe-mini"


def instances_path() -> Path:
    return swe_mini_dir() / "instances.jsonl"


def image_name(instance_id: str) -> str:
    return f"{IMAGE_REPO}:{instance_id}"


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    from ..tasks.source import git

    return git(repo, *args, stdin=stdin, identity=_GIT_IDENTITY)


def materialize_repo(repo_name: str, dest: str | Path) -> str:
    """Copy `repos/<repo_name>` to `dest` as a one-commit git repository; returns the (reproducible) commit."""
    source = swe_mini_dir() / "repos" / repo_name
    if not source.is_dir():
        raise UserError(f"swe-mini has no repository {repo_name!r} ({source})")
    dest = Path(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"{repo_name}: base")
    return _git(dest, "rev-parse", "HEAD").strip()


def eval_script(base_commit: str, test_patch: str, test_files_at_base: list[str], new_test_files: list[str],
                test_command: str = TEST_COMMAND) -> str:
    """The swebench-5 `eval_script`: reset the test files, apply the test patch (if any), run the suite, reset."""
    reset = [f"git checkout {base_commit} -- {' '.join(test_files_at_base)}"] if test_files_at_base else []
    remove_new = [f"rm -f {' '.join(new_test_files)}"] if new_test_files else []
    apply = [f"git apply -v - <<'{_HEREDOC}'", test_patch.rstrip("\n"), _HEREDOC] if test_patch.strip() else []
    lines = ["#!/bin/bash", "set -uxo pipefail", "cd /testbed", *reset, *remove_new, *apply,
             ": '>>>>> Start Test Output'", test_command, ": '>>>>> End Test Output'", *reset, *remove_new]
    return "\n".join(lines) + "\n"


def _test_statuses(repo: Path, patches: tuple[str, ...]) -> dict[str, str]:
    """Run the suite with `patches` applied in a sandbox from the swe image (the host needs no pytest)."""
    from ..images import SWE_IMAGE
    from ..tasks.validate import run_suite

    run = run_suite(SWE_IMAGE, repo, "tests", ".", patches, timeout=300, command=TEST_COMMAND)
    if run.patch_failed:
        raise UserError(f"a patch does not apply: {run.log.strip()[-300:]}")
    if run.timed_out:
        raise UserError("the test suite did not finish in 300 s")
    return run.statuses


def make_instance(task_dir: Path) -> dict:
    """One task folder -> one swebench-5 instance, with FAIL_TO_PASS / PASS_TO_PASS measured."""
    try:
        return _make_instance(task_dir)
    except (UserError, OSError, ValueError, subprocess.SubprocessError) as e:  # incl. a test suite that hangs
        raise UserError(f"{task_dir}: {e}") from None


def _make_instance(task_dir: Path) -> dict:
    from unidiff import PatchSet

    instance_id = task_dir.name
    repo_name = instance_id.split("__", 1)[1].rsplit("-", 1)[0]
    gold, test_patch = (task_dir / "gold.patch").read_text(), (task_dir / "test.patch").read_text()
    with tempfile.TemporaryDirectory(prefix="swe-mini-") as tmp:
        repo = Path(tmp) / "repo"
        base = materialize_repo(repo_name, repo)
        test_files = [f.path for f in PatchSet(test_patch)]
        at_base = [p for p in test_files if (repo / p).exists()]
        before = _test_statuses(repo, (test_patch,))
        after = _test_statuses(repo, (test_patch, gold))
    fail_to_pass = sorted(t for t, s in after.items() if s == "PASSED" and before.get(t) != "PASSED")
    pass_to_pass = sorted(t for t, s in after.items() if s == "PASSED" and before.get(t) == "PASSED")
    broken = sorted(t for t, s in after.items() if s != "PASSED")
    if not fail_to_pass or broken:
        raise UserError("the gold patch must make tests pass and break none "
                        f"(fail->pass: {fail_to_pass}, failing after gold: {broken})")
    return {
        "instance_id": instance_id, "repo": f"swe-mini/{repo_name}", "version": "1.0", "base_commit": base,
        "environment_setup_commit": base, "created_at": "2026-01-01T00:00:00Z",
        "problem_statement": (task_dir / "issue.md").read_text(), "hints_text": "",
        "patch": gold, "test_patch": test_patch,
        "FAIL_TO_PASS": json.dumps(fail_to_pass), "PASS_TO_PASS": json.dumps(pass_to_pass),
        "image": image_name(instance_id), "eval_script": eval_script(base, test_patch, at_base,
                                                                     [p for p in test_files if p not in at_base]),
        "log_parser": "parse_log_pytest", "eval_type": "pass_and_fail",
        "repro": (task_dir / "repro.py").read_text(),
    }


def make_instances(out: str | Path | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Validate every task folder and write `instances.jsonl` (atomically)."""
    tasks = sorted(p for p in (swe_mini_dir() / "tasks").iterdir() if p.is_dir())
    instances = []
    for task in tasks:
        instances.append(make_instance(task))
        log(f"{task.name}: {len(json.loads(instances[-1]['FAIL_TO_PASS']))} fail->pass, "
            f"{len(json.loads(instances[-1]['PASS_TO_PASS']))} pass->pass")
    write_jsonl(out or instances_path(), instances)
    return instances


def load_instances(instance_ids: list[str] | None = None) -> list[dict]:
    """swe-mini's instances through swebench's own loader (a local JSONL is one of its inputs)."""
    from swebench.harness.utils import load_swebench_dataset

    path = instances_path()
    if not path.exists():
        raise UserError(f"{path} is missing; run `python envs/swe-mini/make_instances.py`")
    return load_swebench_dataset(str(path), "test", instance_ids)


# --- images ---------------------------------------------------------------------------------------

_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY --chown=agent:agent testbed/ /testbed/
WORKDIR /testbed
# The harness keeps its containers alive with `tail -f /dev/null`, which ignores SIGTERM as PID 1:
# without this every `docker stop` waits out its 15 s grace period.
STOPSIGNAL SIGKILL
"""


def _image_hash(instance: dict, base_id: str, dockerfile: str) -> str:
    return hashlib.sha256(f"{base_id}\0{instance['base_commit']}\0{dockerfile}".encode()).hexdigest()[:16]


def _materialize_task(instance: dict, dest: Path) -> str:
    return materialize_repo(instance["repo"].split("/", 1)[1], dest)


def build_images(client, instances: list[dict], base: str, rebuild: bool = False,
                 progress: Callable[[str], None] = print,
                 materialize: Callable[[dict, Path], str] = _materialize_task,
                 dockerfile: Callable[[dict], str] = lambda instance: _DOCKERFILE, kind: str = "swe-mini") -> list[str]:
    """One image per task: `base` (the sandbox image) plus the repository at /testbed. Current ones are kept.

    `materialize(instance, dest)` makes the task's repository at `dest` and returns its commit, which must
    be the instance's base commit; images record a hash of base image, commit and Dockerfile.
    """
    import docker

    from ..images import CONTEXT_LABEL, image_exists

    base_id = client.images.get(base).id
    built = []
    for instance in instances:
        recipe = dockerfile(instance)
        tag, want = instance["image"], _image_hash(instance, base_id, recipe)
        if not rebuild and image_exists(client, tag) and client.images.get(tag).labels.get(CONTEXT_LABEL) == want:
            progress(f"{tag}: up to date")
            continue
        with tempfile.TemporaryDirectory(prefix="srl-testbed-ctx-") as ctx:
            commit = materialize(instance, Path(ctx) / "testbed")
            if commit != instance["base_commit"]:
                raise UserError(f"{instance['instance_id']}: its repository is at {commit[:12]}, the instance "
                                f"expects {instance['base_commit'][:12]}; regenerate the instances")
            (Path(ctx) / "Dockerfile").write_text(recipe)
            try:
                labels = {CONTEXT_LABEL: want, "org.srl-agent.image": kind}
                client.images.build(path=ctx, tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True,
                                    network_mode="none", labels=labels)
            except docker.errors.BuildError as e:
                raise UserError(f"docker build of {tag} failed: {e.msg}") from None
        built.append(tag)
        progress(f"{tag}: built")
    return built
