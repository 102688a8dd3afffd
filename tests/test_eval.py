"""`srl-agent eval`: real sandboxes, the real swebench harness, swe-mini's real images."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srl_agent.bench.eval import EvalConfig, InstanceLog, run_eval
from srl_agent.jsonio import write_jsonl
from srl_agent.types import Step, ToolCall, Trajectory

from .conftest import interactive_sigint

ROOT = Path(__file__).resolve().parents[1]
EXPERT = ROOT / "trajectories" / "swe-mini.jsonl"


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srl_agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def eval_cli(tmp_path: Path, *args: str, run_id: str = "run") -> tuple[subprocess.CompletedProcess, Path]:
    proc = cli("eval", "--output-dir", str(tmp_path), "--run-id", run_id, *args)
    return proc, tmp_path / run_id


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gold_patches_resolve_every_task(swe_mini_images, tmp_path):
    proc, run = eval_cli(tmp_path, "--bench", "swe-mini", "--model", "gold", "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["instances"] == len(swe_mini_images) and summary["resolved_pct"] == 100.0
    assert "100.0%" in proc.stdout
    # graded in hardened sandboxes (the default), reported in the harness's own layout; the harness never ran
    reports = list((run / "logs" / "run_evaluation" / "run" / "gold").glob("*/report.json"))
    assert len(reports) == len(swe_mini_images) and not (run / "harness.log").exists()


def test_empty_and_do_nothing_patches_resolve_nothing(swe_mini_images, tmp_path):
    """Predictions that exist already are graded, not solved again; none of these fixes anything."""
    first, second, third = swe_mini_images[:3]
    run_dir = tmp_path / "nothing"
    run_dir.mkdir()
    # a patch that applies and changes behaviour not at all: a comment above the README's first line
    noop = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n+<!-- -->\n"
    readme_first = (ROOT / "envs" / "swe-mini" / "repos" / second["repo"].split("/")[1] / "README.md"
                    ).read_text().splitlines()[0]
    noop += f" {readme_first}\n"
    log = InstanceLog(run_dir / "predictions.jsonl")
    for instance, patch in ((first, ""), (second, noop), (third, "")):
        log.append({"instance_id": instance["instance_id"], "model_name_or_path": "none", "model_patch": patch})
    cfg = EvalConfig(bench="swe-mini", model="none", instances=[i["instance_id"] for i in (first, second, third)])
    summary = run_eval(cfg, None, [first, second, third], run_dir)
    assert summary["resolved"] == 0 and summary["empty_patches"] == 2
    results = {r["instance_id"]: r for r in read_rows(run_dir / "results.jsonl")}
    assert results[first["instance_id"]]["category"] == "empty_patch"
    assert results[second["instance_id"]]["category"] == "tests_failed"
    assert results[second["instance_id"]]["patch_applied"]
    failed = results[second["instance_id"]]["tests_status"]["FAIL_TO_PASS"]["failure"]
    assert failed == json.loads(second["FAIL_TO_PASS"])


def test_scripted_expert_resolves_its_tasks_through_the_eval_path(swe_mini_images, tmp_path):
    ids = [i["instance_id"] for i in swe_mini_images[:3]]
    proc, run = eval_cli(tmp_path, "--bench", "swe-mini", "--model", f"replay:{EXPERT}", "--instances", *ids,
                         "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resolved"] == 3 and summary["agent_exit"] == {"submitted": 3}
    assert summary["mean_steps"] >= 8
    for instance_id in ids:  # each run saved in the canonical format and as a SWE-agent .traj
        traj = Trajectory.from_dict(json.loads((run / "trajectories" / f"{instance_id}.json").read_text()))
        assert traj.steps[-1].action.name == "submit"
        swe_agent = json.loads((run / "trajectories" / f"{instance_id}.traj").read_text())
        assert swe_agent["info"]["exit_status"] == "submitted" and swe_agent["info"]["submission"]


def test_a_tiny_trained_model_goes_through_the_whole_pipeline(swe_mini_images, tmp_path):
    """Train a few steps, evaluate on two tasks in both modes (graded by the official harness, then by the hardened
    sandboxes): predictions and the grading's reports come out."""
    train = cli("train", "--method", "sft", "--max-steps", "3", "--output-dir", str(tmp_path / "train"),
                "--no-plot", "--set", "validation.every=3", "--set", "checkpointing.every=3")
    assert train.returncode == 0, train.stderr[-2000:]
    checkpoint = tmp_path / "train" / "checkpoints" / (tmp_path / "train" / "latest").read_text().strip()
    assert (checkpoint / "config.json").exists()
    ids = [i["instance_id"] for i in swe_mini_images[:2]]
    for mode, grading in (("agent", "harness"), ("oracle-file-edit", "sandbox")):
        proc, run = eval_cli(tmp_path, "--bench", "swe-mini", "--model", str(checkpoint), "--mode", mode,
                             "--instances", *ids, "--max-steps", "2", "--max-new-tokens", "24", "--grading", grading,
                             run_id=mode)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = read_rows(run / "predictions.jsonl")
        assert sorted(r["instance_id"] for r in rows) == sorted(ids)
        assert all(r["status"] != "error" for r in rows), rows
        summary = json.loads((run / "summary.json").read_text())
        assert summary["instances"] == 2 and "resolved_pct" in summary
        results = {r["instance_id"]: r for r in read_rows(run / "results.jsonl")}
        assert sorted(results) == sorted(ids) and "not_graded" not in summary["outcomes"]
        if grading == "harness":
            assert (run / "harness.log").exists()
            (report,) = run.glob(f"*.{mode}.json")  # the harness's run report, named <model>.<run id>.json
            report = json.loads(report.read_text())
            assert sorted(report["submitted_ids"]) == sorted(ids)
            graded = set(report["completed_ids"]) | set(report["empty_patch_ids"]) | set(report["error_ids"])
            assert graded == set(ids)


class GoldEditsPolicy:
    """Answers an Oracle File Edit prompt with the gold patch's hunks as search/replace blocks, written
    against the file contents the prompt shows (as a perfect model would)."""

    def __init__(self, instances: list[dict]):
        self.gold = {i["problem_statement"]: i["patch"] for i in instances}

    def generate(self, prompts, tools, params):
        from unidiff import PatchSet

        from srl_agent.bench.expert import hunk_edits
        from srl_agent.policy import Completion

        out = []
        for messages in prompts:
            user = messages[-1]["content"]
            issue = re.search(r"<issue>\n(.*)\n</issue>", user, re.DOTALL)[1]
            shown = dict(re.findall(r"^### (\S+)\n```\n(.*?)\n```$", user, re.DOTALL | re.MULTILINE))
            blocks = [f"### {f.path}\n<<<<<<< SEARCH\n{old.removesuffix(chr(10))}\n=======\n"
                      f"{new.removesuffix(chr(10))}\n>>>>>>> REPLACE"
                      for f in PatchSet(self.gold[issue]) for old, new in hunk_edits(shown[f.path], f)]
            out.append([Completion("<think>\nApply the fix.\n</think>\n" + "\n".join(blocks), [])])
        return out


def test_oracle_file_edit_answers_become_patches_the_harness_resolves(swe_mini_images, tmp_path):
    instances = swe_mini_images[:3]
    cfg = EvalConfig(bench="swe-mini", model="gold-edits", mode="oracle-file-edit",
                     instances=[i["instance_id"] for i in instances])
    summary = run_eval(cfg, GoldEditsPolicy(instances), instances, tmp_path / "oracle")
    assert summary["resolved"] == 3 and summary["patch_applied_pct"] == 100.0, summary
    answers = sorted(p.stem for p in (tmp_path / "oracle" / "answers").glob("*.txt"))
    assert answers == sorted(cfg.instances)


def _slow_trajectories(instances: list[dict], seconds: int) -> list[dict]:
    """Replayable runs that only wait: each call sleeps `seconds`."""
    wait = Step("Waiting.", ToolCall("bash", {"command": f"sleep {seconds}"}))
    return [Trajectory(i["instance_id"], i["problem_statement"], [wait] * 10).to_dict() for i in instances]


def test_a_crash_or_timeout_in_one_instance_does_not_stop_the_run(swe_mini_images, tmp_path):
    good, slow, broken = (dict(i) for i in swe_mini_images[:3])
    broken["image"] = "srl-agent/swe-mini:no-such-task"  # cannot start: a crash of that instance
    bench = tmp_path / "bench.jsonl"
    write_jsonl(bench, [good, slow, broken])
    expert = {json.loads(line)["id"]: line for line in EXPERT.read_text().splitlines()}
    policy = tmp_path / "policy.jsonl"
    policy.write_text(expert[good["instance_id"]] + "\n" + json.dumps(_slow_trajectories([slow], 30)[0]) + "\n")
    # a relative --bench path: the harness runs in the run folder and must still find it. The time limit leaves
    # the good run's 7 calls room on a loaded machine; the slow run's calls time out after 2 s each, past it.
    proc, run = eval_cli(tmp_path, "--bench", os.path.relpath(bench), "--model", f"replay:{policy}", "--workers",
                         "2", "--step-timeout", "2", "--time-limit", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["instance_id"]: r for r in read_rows(run / "predictions.jsonl")}
    assert rows[good["instance_id"]]["status"] == "submitted" and rows[good["instance_id"]]["model_patch"]
    assert rows[slow["instance_id"]]["status"] == "time_limit"
    assert rows[broken["instance_id"]]["status"] == "error"
    assert "no-such-task" in rows[broken["instance_id"]]["error"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["outcomes"] == {"resolved": 1, "empty_patch": 1, "agent_error": 1}
    assert summary["empty_patches"] == 1


def _labelled_containers(pid: int) -> list[str]:
    import docker

    from srl_agent.sandbox import LABEL

    client = docker.from_env()
    return [c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL}.pid={pid}"})]


def test_ctrl_c_leaves_no_containers_and_a_resumable_run(swe_mini_images, tmp_path):
    quick, slow = swe_mini_images[:2]
    expert = {json.loads(line)["id"]: line for line in EXPERT.read_text().splitlines()}
    policy = tmp_path / "policy.jsonl"
    policy.write_text(expert[quick["instance_id"]] + "\n" + json.dumps(_slow_trajectories([slow], 60)[0]) + "\n")
    run = tmp_path / "r"
    args = [sys.executable, "-m", "srl_agent.cli", "eval", "--bench", "swe-mini", "--model", f"replay:{policy}",
            "--instances", quick["instance_id"], slow["instance_id"], "--output-dir", str(tmp_path),
            "--run-id", "r", "--step-timeout", "120"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interactive_sigint)
    predictions = run / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the quick one is recorded and the slow one is sleeping in its sandbox
        if predictions.exists() and predictions.read_text().count("\n") == 1 and _labelled_containers(proc.pid):
            break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the run never reached the slow instance")
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert _labelled_containers(proc.pid) == []
    assert [r["instance_id"] for r in read_rows(predictions)] == [quick["instance_id"]]
    # resume: the same run id skips the finished instance; this time the slow one replays the expert
    policy.write_text(expert[quick["instance_id"]] + "\n" + expert[slow["instance_id"]] + "\n")
    resumed = cli(*args[3:])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "1 instances already have predictions" in resumed.stderr
    rows = read_rows(predictions)
    assert sorted(r["instance_id"] for r in rows) == sorted([quick["instance_id"], slow["instance_id"]])
    assert json.loads((run / "summary.json").read_text())["resolved"] == 2


def test_a_torn_last_prediction_line_is_dropped(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"instance_id": "a", "model_patch": ""}\n{"instance_id": "b", "model_pa')
    log = InstanceLog(path)
    assert set(log.rows) == {"a"} and path.read_text().count("\n") == 1
    log.append({"instance_id": "b", "model_patch": "x", "status": "error"})
    assert InstanceLog(path).finished() == {"a", "b"}
    assert InstanceLog(path).finished(retry_errors=True) == {"a"}


def test_unknown_bench_and_instances_are_clear_errors(tmp_path):
    proc, _ = eval_cli(tmp_path, "--bench", str(tmp_path / "missing.jsonl"), "--model", "gold")
    assert proc.returncode == 2 and "cannot load" in proc.stderr and "missing.jsonl" in proc.stderr
    proc, _ = eval_cli(tmp_path, "--bench", "swe-mini", "--model", "gold", "--instances", "nope__nope-1")
    assert proc.returncode == 2 and "nope__nope-1" in proc.stderr
