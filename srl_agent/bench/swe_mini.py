"""swe-mini: an offline SWE-bench-style benchmark shipped in `envs/swe-mini/`.

    envs/swe-mini/repos/<repo>/        a small Python project at its buggy commit (source + tests)
    envs/swe-mini/tasks/<id>/          issue.md, gold.patch, test.patch, repro.py (a reproduction script)
    envs/swe-mini/instances.jsonl      the tasks as swebench-5 instances (made by `make_instances`)

Each repository becomes a git repository with a fixed author and date, so its base commit hash is the
same on every machine. FAIL_TO_PASS and PASS_TO_PASS are not written by hand: they are measured, the
way SWE-bench validates its tasks (tests with the test patch, before and after the gold patch), inside
sandboxes from the swe image. The paths, repositories and images are swe-mini's testbed (testbed/swe_mini.py).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..images import SWE_IMAGE
from ..jsonio import write_jsonl
from ..testbed.suite import eval_script, run_suite
from ..testbed.swe_mini import image_name, instances_path, materialize_repo, swe_mini_dir

TEST_COMMAND = "python3 -m pytest -rA -p no:cacheprovider tests"


def _test_statuses(repo: Path, patches: tuple[str, ...]) -> dict[str, str]:
    """Run the suite with `patches` applied in a sandbox from the swe image (the host needs no pytest)."""
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
        new_test_files = [p for p in test_files if p not in at_base]
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
        "image": image_name(instance_id), "eval_script": eval_script(base, test_patch, at_base, new_test_files,
                                                                     TEST_COMMAND),
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
