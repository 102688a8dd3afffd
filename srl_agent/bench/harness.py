"""Grading predictions: in hardened sandboxes (the default) or with the official swebench harness; their verdicts.

`grade_in_sandboxes` grades each patch in its own sandbox (testbed/grading.py: no network, no capabilities,
the sandboxes' limits, swebench's own report code) and writes the harness's log layout, so `instance_verdict`
reads either. `grade` runs the official harness (`python -m swebench.harness.run_evaluation`) in a child
process whose working folder is the eval run's folder, so its `logs/run_evaluation/<run_id>/...` and its run
report land there. Both skip instances already graded, so a second call resumes. The harness's containers
are not ours (they carry no srl-agent label): an interrupted grading removes them by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError

LOG_ROOT = Path("logs") / "run_evaluation"


def model_dir_name(model_name: str) -> str:
    """How the harness names a model's log folder."""
    return model_name.replace("/", "__")


def remove_harness_containers(run_id: str, engine: str | None = None) -> int:
    """Remove the harness's containers of this run (`sweb.eval.<id>.<run_id>`), e.g. after Ctrl-C."""
    from ..sandbox.docker import docker_client

    client = docker_client(engine=engine)
    removed = 0
    # the harness names them sweb.eval.<id>.<run_id>, with .<timestamp> added after a name clash
    ours = re.compile(rf"sweb\.eval\..+\.{re.escape(run_id)}(\.\d+)?")
    for container in client.containers.list(all=True, filters={"name": "sweb.eval."}):
        if ours.fullmatch(container.name):
            try:
                container.remove(force=True)
                removed += 1
            except Exception:  # it went away on its own
                pass
    return removed


def grade(run_dir: Path, dataset: str, split: str, predictions: Path, run_id: str, workers: int,
          timeout: int, instance_ids: list[str] | None = None,
          on_progress: Callable[[int], None] | None = None, engine: str | None = None) -> Path:
    """Run the harness on `predictions`; returns its log. `on_progress(n)` gets the number of graded reports.

    `engine`: the container engine URL the harness uses (its DOCKER_HOST); None: the local default."""
    command = [sys.executable, "-m", "swebench.harness.run_evaluation", "--dataset_name", dataset,
               "--split", split, "--predictions_path", str(predictions.resolve()), "--max_workers", str(workers),
               "--run_id", run_id, "--timeout", str(timeout), "--report_dir", "."]
    if instance_ids:
        command += ["--instance_ids", *instance_ids]
    log_path = run_dir / "harness.log"
    with open(log_path, "a", encoding="utf-8") as log:
        env = {**os.environ, "DOCKER_HOST": engine} if engine else None
        proc = subprocess.Popen(command, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # Ctrl-C reaches us; we stop it ourselves
        try:
            while proc.poll() is None:
                if on_progress:
                    on_progress(len(list((run_dir / LOG_ROOT / run_id).glob("*/*/report.json"))))
                time.sleep(0.5)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            remove_harness_containers(run_id, engine)
            raise
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise UserError(f"the swebench harness failed (exit {proc.returncode}); see {log_path}:\n{tail}")
    return log_path


def grade_in_sandboxes(run_dir: Path, instances: list[dict], predictions: dict[str, dict], run_id: str,
                       workers: int, timeout: int, on_progress: Callable[[int], None] | None = None, *,
                       kind: str = "docker", engine: str | None = None, network: bool = False,
                       disk_mb: int | None = None) -> None:
    """Grade every prediction with a patch and no report yet, each in its own hardened sandbox, `workers` at once.

    `predictions`: {instance_id: row with model_name_or_path and model_patch}. `on_progress(n)` gets the number
    graded so far. Ctrl-C removes the sandboxes; graded instances keep their reports, so a rerun resumes."""
    from ..executor import make_executor
    from ..sandbox.docker import close_all
    from ..testbed.grading import grade_patch

    def log_dir(instance: dict) -> Path:
        row = predictions[instance["instance_id"]]
        return run_dir / LOG_ROOT / run_id / model_dir_name(row["model_name_or_path"]) / instance["instance_id"]

    todo = [i for i in instances if (predictions[i["instance_id"]].get("model_patch") or "").strip()
            and not (log_dir(i) / "report.json").exists()]
    done = len(instances) - len(todo)
    executor = make_executor("local", workers)
    try:
        for _, outcome in executor.map(lambda i: grade_patch(i, predictions[i["instance_id"]], log_dir(i), timeout,
                                                             kind=kind, engine=engine, network=network,
                                                             disk_mb=disk_mb), todo):
            if isinstance(outcome, BaseException):  # grade_patch records engine failures itself: this is no such
                raise outcome
            done += 1
            if on_progress:
                on_progress(done)
    except BaseException:
        executor.cancel()
        close_all()
        raise


def instance_verdict(run_dir: Path, run_id: str, model_name: str, instance_id: str, patch: str) -> dict:
    """What the grading decided for one instance: resolved, patch applied, and a failure category.

    Categories: resolved, tests_failed, no_test_results (the patch applied but the log held no valid test results:
    collection broke, or the test command's exit status contradicts its log; swebench's report then says the patch
    did not apply), patch_failed, test_timeout, harness_error (the grading itself failed), not_graded, empty_patch."""
    folder = run_dir / LOG_ROOT / run_id / model_dir_name(model_name) / instance_id
    if not patch.strip():
        return {"resolved": False, "patch_applied": False, "category": "empty_patch"}
    log = folder / "run_instance.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    report = folder / "report.json"
    if report.exists():
        verdict = json.loads(report.read_text())[instance_id]
        applied = bool(verdict.get("patch_successfully_applied"))
        category = "resolved" if verdict.get("resolved") else "tests_failed" if applied else "no_test_results"
        return {"resolved": bool(verdict.get("resolved")), "patch_applied": applied or ">>>>> Applied Patch" in text,
                "category": category, "tests_status": verdict.get("tests_status")}
    if ">>>>> Patch Apply Failed" in text:
        category = "patch_failed"
    elif "Test timed out after" in text:
        category = "test_timeout"
    elif text:
        category = "harness_error"
    else:
        category = "not_graded"
    return {"resolved": False, "patch_applied": ">>>>> Applied Patch" in text, "category": category}


def require_docker_for_grading(engine: str | None = None) -> None:
    from ..sandbox import docker_available

    if engine:
        from ..sandbox.docker import docker_client

        docker_client(engine=engine).close()  # one clear line when that engine does not answer
    elif not docker_available():
        raise UserError("grading needs a Docker daemon (the swebench harness runs every instance in a container); "
                        "start dockerd")
