"""swe-mini: the shipped tasks are valid SWE-bench-style instances, and the scripted expert solves them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srl_agent.bench.expert import expert_plan, hunk_edits, run_expert, short_expert_plan
from srl_agent.bench.swe_mini import make_instance
from srl_agent.formats import load_trajectories
from srl_agent.replay import replay
from srl_agent.sandbox import SandboxConfig, open_sandbox
from srl_agent.testbed.instance import instance_sandbox
from srl_agent.testbed.swe_mini import instances_path, swe_mini_dir

SHIPPED = Path(__file__).resolve().parents[1] / "trajectories" / "swe-mini.jsonl"
POCKETLIB_SHORT = swe_mini_dir() / "pocketlib-short.jsonl"  # outside trajectories/: not default training data


def stored_instances() -> list[dict]:
    return [json.loads(line) for line in instances_path().read_text().splitlines()]


def test_at_least_twenty_tasks_on_realistic_repositories():
    instances = stored_instances()
    assert len(instances) >= 20 and len({i["instance_id"] for i in instances}) == len(instances)
    for repo in {i["repo"].split("/")[1] for i in instances}:
        root = swe_mini_dir() / "repos" / repo
        modules = [p for p in (root / repo).glob("*.py") if p.name != "__init__.py"]
        tests = list((root / "tests").glob("test_*.py"))
        code_lines = sum(len(p.read_text().splitlines()) for p in modules)
        assert len(modules) >= 3 and len(tests) >= 2 and code_lines >= 150, repo
    for instance in instances:
        assert instance["eval_type"] == "pass_and_fail" and instance["log_parser"] == "parse_log_pytest"
        assert instance["image"] == f"srl-agent/swe-mini:{instance['instance_id']}"
        assert ">>>>> Start Test Output" in instance["eval_script"]
        assert json.loads(instance["FAIL_TO_PASS"]) and json.loads(instance["PASS_TO_PASS"])
        assert "tests/" not in "".join(line for line in instance["patch"].splitlines() if line.startswith("+++"))


def test_instances_file_is_what_the_tasks_measure():
    """FAIL_TO_PASS / PASS_TO_PASS are re-measured (tests before and after gold) and must match the file."""
    for stored in stored_instances():
        assert make_instance(swe_mini_dir() / "tasks" / stored["instance_id"]) == stored, stored["instance_id"]


def test_hunk_edits_need_unique_context():
    from unidiff import PatchSet

    text = "x = 1\ny = 2\nx = 1\nz = 3\n"
    patch = ("diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -2,3 +2,3 @@\n y = 2\n-x = 1\n+x = 10\n z = 3\n")
    [(old, new)] = hunk_edits(text, PatchSet(patch)[0])
    assert text.count(old) == 1 and old == "y = 2\nx = 1\nz = 3" and new == "y = 2\nx = 10\nz = 3"


def test_expert_plan_explores_reproduces_edits_checks_and_submits(swe_mini_images):
    instance = swe_mini_images[0]
    repo = swe_mini_dir() / "repos" / instance["repo"].split("/")[1]
    plan = expert_plan(instance, lambda path: (repo / path).read_text())
    calls = [(s.action.name, s.action.arguments.get("command", "")) for s in plan]
    assert calls[0] == ("str_replace_editor", "view") and calls[-1] == ("submit", "")
    assert ("str_replace_editor", "create") in calls and ("str_replace_editor", "str_replace") in calls
    assert any(name == "bash" and "pytest" in cmd for name, cmd in calls)
    edit = calls.index(("str_replace_editor", "str_replace"))
    assert any("reproduce_issue.py" in cmd for _, cmd in calls[:edit])  # reproduced before the fix
    assert all(s.thought for s in plan)


def test_expert_run_submits_the_gold_patch_and_matches_the_shipped_trajectory(swe_mini_images):
    shipped = {t.id: t for t in load_trajectories([str(SHIPPED)])}
    instance = swe_mini_images[-1]
    with instance_sandbox(instance) as sb:
        run = run_expert(instance, sb)
    assert run.exit_status == "submitted" and run.trajectory.resolved
    assert [s.action for s in run.trajectory.steps] == [s.action for s in shipped[instance["instance_id"]].steps]


def test_every_shipped_expert_trajectory_replays_cleanly(swe_mini_images):
    images = {i["instance_id"]: i["image"] for i in swe_mini_images}
    trajectories = list(load_trajectories([str(SHIPPED)]))
    assert sorted(t.id for t in trajectories) == sorted(images)
    for traj in trajectories:
        assert traj.resolved and len(traj.steps) >= 8
        with open_sandbox(SandboxConfig(image=images[traj.id]), kind="docker") as sb:
            result = replay(traj, sb)
        assert result.ok and result.first_divergence is None, traj.id


def test_short_expert_plan_reads_edits_and_submits_in_the_same_words_for_every_task(swe_mini_images):
    thoughts = set()
    for instance in (i for i in swe_mini_images if "pocketlib" in i["instance_id"]):
        repo = swe_mini_dir() / "repos" / "pocketlib"
        plan = short_expert_plan(instance, lambda path, repo=repo: (repo / path).read_text())
        view, edit, submit = plan
        assert view.action.arguments["command"] == "view" and edit.action.arguments["command"] == "str_replace"
        assert submit.action.name == "submit" and view.action.arguments["path"] == edit.action.arguments["path"]
        first, last = view.action.arguments["view_range"]
        text = (repo / edit.action.arguments["path"].removeprefix("/testbed/")).read_text()
        assert edit.action.arguments["old_str"] in "\n".join(text.splitlines()[first - 1:last])  # it read what it edits
        thoughts.add(tuple(s.thought for s in plan))
    assert len(thoughts) == 1


def test_shipped_short_pocketlib_runs_replay_cleanly(swe_mini_images):
    images = {i["instance_id"]: i["image"] for i in swe_mini_images}
    trajectories = list(load_trajectories([str(POCKETLIB_SHORT)]))
    assert sorted(t.id for t in trajectories) == [f"swemini__pocketlib-{k}" for k in range(1, 7)]
    for traj in trajectories:
        assert traj.resolved and len(traj.steps) == 3
        with open_sandbox(SandboxConfig(image=images[traj.id]), kind="docker") as sb:
            result = replay(traj, sb)
        assert result.ok and result.first_divergence is None, traj.id


@pytest.mark.parametrize("corrupt", ["gold", "test"])
def test_a_broken_task_is_refused_with_its_folder(tmp_path, corrupt, monkeypatch):
    import shutil

    from srl_agent.errors import UserError
    from srl_agent.testbed import swe_mini

    root = tmp_path / "swe-mini"
    shutil.copytree(swe_mini_dir() / "repos" / "inventory", root / "repos" / "inventory")
    task = root / "tasks" / "swemini__inventory-1"
    shutil.copytree(swe_mini_dir() / "tasks" / task.name, task)
    if corrupt == "gold":  # a "fix" that fixes nothing: FAIL_TO_PASS would be empty
        (task / "gold.patch").write_text("")
    else:
        (task / "test.patch").write_text("not a patch\n")
    monkeypatch.setattr(swe_mini, "swe_mini_dir", lambda: root)
    with pytest.raises(UserError, match="swemini__inventory-1"):
        make_instance(task)
