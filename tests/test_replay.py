"""`srl-agent replay` on trajectories and repositories the tests create, in real sandboxes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from srl_agent.replay import normalise_observation, patches_match
from srl_agent.types import Step, ToolCall, Trajectory

from .conftest import SANDBOX_KINDS

VIEW = ("Here's the result of running `cat -n` on /testbed/calc.py:\n"
        "     1\tdef divide(a, b):\n     2\t    return a / b\n     3\t\n     4\t\n     5\tdef mean(values):\n"
        "     6\t    return sum(values) / len(values) + 1\n     7\t")
EDITED = ("The file /testbed/calc.py has been edited. Here's the result of running `cat -n` on a snippet of "
          "/testbed/calc.py:\n     2\t    return a / b\n     3\t\n     4\t\n     5\tdef mean(values):\n"
          "     6\t    return sum(values) / len(values)\n     7\t\n"
          "Review the changes and make sure they are as expected. Edit the file again if necessary.")
PYTEST = "python3 -m pytest -q test_calc.py 2>&1 | tail -1"


def expected_patch(repo: Path, tmp: Path) -> str:
    """The fix made by hand on a host copy, diffed by git: what the expert's run recorded."""
    copy = tmp / "expected"
    shutil.copytree(repo, copy)
    (copy / "calc.py").write_text((copy / "calc.py").read_text().replace("len(values) + 1", "len(values)"))
    (copy / "NOTES.md").write_text("mean fixed\n")
    subprocess.run(["git", "-C", str(copy), "add", "-A"], check=True)
    return subprocess.run(["git", "-C", str(copy), "diff", "--cached"], capture_output=True, text=True,
                          check=True).stdout


def calc_trajectory(repo: Path, tmp: Path) -> Trajectory:
    patch = expected_patch(repo, tmp)
    steps = [
        Step("Look around.", ToolCall("bash", {"command": "ls"}), "calc.py\ntest_calc.py\n"),
        Step("Read the code.", ToolCall("str_replace_editor", {"command": "view", "path": "/testbed/calc.py"}), VIEW),
        Step("Reproduce the bug.", ToolCall("bash", {"command": PYTEST}), "1 failed, 1 passed in 0.02s\n"),
        Step("Drop the stray + 1.", ToolCall("str_replace_editor", {
            "command": "str_replace", "path": "/testbed/calc.py", "old_str": "len(values) + 1",
            "new_str": "len(values)"}), EDITED),
        Step("Leave a note.", ToolCall("str_replace_editor", {
            "command": "create", "path": "/testbed/NOTES.md", "file_text": "mean fixed\n"}),
            "File created successfully at: /testbed/NOTES.md"),
        Step("Check the fix.", ToolCall("bash", {"command": PYTEST}), "2 passed in 0.01s\n"),
        Step("Submit.", ToolCall("submit", {}), patch),
    ]
    return Trajectory("calc-mean", "mean() is off by one.", steps, patch=patch, resolved=True)


def write_traj(traj: Trajectory, path: Path) -> Path:
    path.write_text(json.dumps(traj.to_dict()))
    return path


def replay_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srl_agent.cli", "replay", *args], capture_output=True,
                          text=True, timeout=300, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin:/usr/sbin"})


@pytest.mark.parametrize("kind", SANDBOX_KINDS)
def test_replay_reproduces_the_trajectory(kind, calc_repo, tmp_path, swe_image):
    traj = write_traj(calc_trajectory(calc_repo, tmp_path), tmp_path / "calc.json")
    report = tmp_path / "report.html"
    proc = replay_cli(str(traj), "--repo", str(calc_repo), "--sandbox", kind, "--html", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "first divergence: none; final diff matches the recorded patch" in proc.stdout
    for k in range(1, 8):
        assert f"step {k}/7" in proc.stdout
    assert "similarity 1.000" in proc.stdout
    page = report.read_text()
    assert page.startswith("<!doctype html>") and "Replay of calc-mean" in page
    assert page.count('<div class="step') == 7 and "matches the recorded patch" in page
    assert "<script" not in page and "http" not in page.split("<style>")[0]


def test_replay_marks_the_first_divergence_and_a_patch_mismatch(calc_repo, tmp_path, swe_image):
    traj = calc_trajectory(calc_repo, tmp_path)
    traj.steps[1].observation = VIEW.split("     5\t")[0] + "     5\tdef median(values):\n     6\t    pass\n"
    traj.steps[3].observation = "something else entirely"
    traj.patch = traj.patch.replace("+mean fixed", "+median fixed")
    path = write_traj(traj, tmp_path / "calc.json")
    report = tmp_path / "r.html"
    proc = replay_cli(str(path), "--repo", str(calc_repo), "--html", str(report))
    assert proc.returncode == 1
    assert "step 2/7: str_replace_editor  ◀ FIRST DIVERGENCE" in proc.stdout
    assert proc.stdout.count("FIRST DIVERGENCE") == 1
    assert re.search(r"\+\s+5\s+def mean\(values\):", proc.stdout)
    assert re.search(r"-\s+5\s+def median\(values\):", proc.stdout)
    assert "first divergence: step 2; final diff DIFFERS from the recorded patch" in proc.stdout
    page = report.read_text()
    assert "first divergence at step 2" in page and "differs from the recorded patch" in page


def test_replay_stops_at_step(calc_repo, tmp_path, swe_image):
    path = write_traj(calc_trajectory(calc_repo, tmp_path), tmp_path / "calc.json")
    proc = replay_cli(str(path), "--repo", str(calc_repo), "--step", "3")
    assert "step 3/7" in proc.stdout and "step 4/7" not in proc.stdout
    assert proc.returncode == 1  # nothing was edited yet: the diff is not the recorded patch


def test_replay_an_imported_mini_swe_agent_run(calc_repo, tmp_path, swe_image):
    patch = expected_patch(calc_repo, tmp_path)
    fence = "```mswea_bash_command\n{}\n```"
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Please solve this issue: mean() is off by one.\n\nYou can execute bash commands"},
        {"role": "assistant", "content": "THOUGHT: fix it.\n\n" + fence.format("sed -i 's/ + 1$//' calc.py")},
        {"role": "user", "content": "<returncode>0</returncode>\n<output>\n</output>"},
        {"role": "assistant", "content": "Note it.\n\n" + fence.format("echo 'mean fixed' > NOTES.md")},
        {"role": "user", "content": "<returncode>0</returncode>\n<output>\n</output>"},
        {"role": "assistant", "content": "Done.\n\n" + fence.format(
            "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached")},
        {"role": "user", "content": patch},
    ]
    path = tmp_path / "run.traj.json"
    path.write_text(json.dumps(messages))
    proc = replay_cli(str(path), "--repo", str(calc_repo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "first divergence: none; final diff matches the recorded patch" in proc.stdout


def test_replay_errors_are_clear(tmp_path):
    proc = replay_cli(str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "nope.json: no such file or folder" in proc.stderr
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    traj = write_traj(Trajectory("t", "x", [Step("", ToolCall("submit", {}), "")]), tmp_path / "t.json")
    proc = replay_cli(str(traj), "--repo", str(not_a_repo), "--sandbox", "bwrap")
    assert proc.returncode == 2 and "plain: not a git repository" in proc.stderr and "Traceback" not in proc.stderr


def test_observation_normalisation_and_patch_comparison():
    swe_agent = "OBSERVATION:\r\nhello\r\n(Open file: /a.py)\n(Current directory: /testbed)\nbash-$"
    assert normalise_observation(swe_agent) == "hello"
    assert normalise_observation("<returncode>0</returncode>\n<output>\nhi\n</output>") == "hi"
    a = "diff --git a/x b/x\nindex 1111111..2222222 100644\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    b = a.replace("1111111..2222222", "3333333..4444444").replace("\n", "\r\n")
    assert patches_match(a, b)
    assert not patches_match(a, a.replace("+b", "+c"))


MISSING_COLON = ('#!/usr/bin/env python3\n\n\ndef division(a: float, b: float) -> float\n    return a/b\n\n\n'
                 'if __name__ == "__main__":\n    print(division(123, 15))\n\n')


@pytest.mark.parametrize("kind", SANDBOX_KINDS)
def test_replay_a_real_swe_agent_fixture_with_windowed_tools(kind, tmp_path, swe_image):
    """The SWE-agent test-repo run (find_file, open, windowed edit, python3, submit) replays to its patch."""
    from .conftest import fixture, make_repo

    repo = tmp_path / "SWE-agent__test-repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "missing_colon.py").write_text(MISSING_COLON)
    (repo / "tests" / "missing_colon.py").chmod(0o755)  # the recorded patch says mode 100755
    make_repo(repo, {})
    proc = replay_cli(str(fixture("swe-agent/sweagenttestrepo-1c2844.traj")), "--repo", str(repo),
                      "--workdir", "/SWE-agent__test-repo", "--sandbox", kind)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "final diff matches the recorded patch" in proc.stdout
    assert "first divergence: none" in proc.stdout
    assert proc.stdout.count("similarity 1.000") == 5  # every observation is what SWE-agent recorded


def test_block_edit_and_window_tools(sandbox_factory, calc_repo):
    from srl_agent.actions import parse_command_line
    from srl_agent.run_call import execute

    with sandbox_factory(calc_repo) as sb:
        opened = execute(sb, parse_command_line("open calc.py 5")).output
        assert opened.startswith("[File: /testbed/calc.py (6 lines total)]\n1:def divide(a, b):")
        edit = parse_command_line("edit 5:6\ndef mean(values):\n    return sum(values) / len(values)\nend_of_edit")
        out = execute(sb, edit).output
        assert out.startswith("File updated.") and "6:    return sum(values) / len(values)" in out
        assert "Line 5:def mean(values):" in execute(sb, parse_command_line("search_file mean")).output
        assert "/testbed/calc.py (1 matches)" in execute(sb, parse_command_line('search_dir "def mean"')).output
        assert "No file open" not in execute(sb, parse_command_line("goto 1")).output
        assert sb.run("python3 -m pytest -q test_calc.py 2>&1 | tail -1").output.startswith("2 passed")
