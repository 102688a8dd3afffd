"""Every shared fixture imports, with pinned step counts, tool names and argument values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srl_agent.formats import detect_format, load_trajectories, parse_record
from srl_agent.types import Trajectory

from .conftest import FIXTURES, fixture, load_fixture_json


def load_one(rel: str) -> Trajectory:
    (traj,) = load_trajectories([str(fixture(rel))])
    return traj


def names(traj: Trajectory) -> list[str]:
    return [s.action.name for s in traj.steps]


def test_every_fixture_file_imports():
    files = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "LICENSE")
    assert len(files) == 9
    for path in files:
        trajs = list(load_trajectories([str(path)]))
        assert len(trajs) == 1 and trajs[0].steps, path


def test_swe_agent_function_calling_history_only():
    t = load_one("swe-agent/function_calling_simple.traj")
    assert t.source_format == "swe-agent"
    assert names(t) == ["find_file", "open", "edit", "bash", "submit"]
    assert t.steps[0].action.arguments == {"file_name": "missing_colon.py"}
    assert t.steps[2].action.arguments == {"search": "def division(a: float, b: float) -> float",
                                           "replace": "def division(a: float, b: float) -> float:"}
    assert t.steps[3].action.arguments == {"command": "python tests/missing_colon.py"}
    assert t.steps[3].observation.startswith("8.2")
    assert t.problem_statement.startswith("SyntaxError: invalid syntax")
    assert "INSTRUCTIONS" not in t.problem_statement


def test_swe_agent_marshmallow_structured_calls():
    t = load_one("swe-agent/marshmallow-code__marshmallow-1867.traj")
    assert len(t.steps) == 11
    assert names(t) == ["create", "insert", "bash", "bash", "find_file", "open", "edit", "edit", "bash", "bash",
                        "submit"]
    assert t.steps[4].action.arguments == {"file_name": "fields.py", "dir": "src"}
    assert t.steps[5].action.arguments == {"path": "src/marshmallow/fields.py", "line_number": 1474}
    assert t.steps[5].action.raw == 'open "src/marshmallow/fields.py" 1474'
    assert t.patch.lstrip().startswith("diff --git a/src/marshmallow/fields.py")  # kept as recorded
    assert t.problem_statement.startswith("TimeDelta serialization precision")


def test_swe_agent_text_actions_and_block_edit():
    t = load_one("swe-agent/pydicom__pydicom-1458.traj")
    assert len(t.steps) == 12
    assert names(t) == ["create", "edit", "bash", "find_file", "open", "edit", "edit", "edit", "edit", "bash", "bash",
                        "submit"]
    edit = t.steps[1].action
    assert (edit.arguments["start_line"], edit.arguments["end_line"]) == (1, 1)
    assert edit.arguments["replacement_text"].startswith("import numpy as np\nfrom pydicom.dataset import")
    assert edit.arguments["replacement_text"].endswith('print("Script completed successfully, no errors. Result:",'
                                                       ' result)')
    assert edit.raw.startswith("edit 1:1\n") and edit.raw.rstrip().endswith("end_of_edit")
    assert t.steps[2].action.arguments == {"command": "python reproduce_bug.py"}
    assert t.steps[0].action.arguments == {"filename": "reproduce_bug.py"}
    # The demonstration in the history is not the task.
    assert t.problem_statement.startswith("Pixel Representation attribute should be optional")


def test_swe_agent_mixed_structured_and_text():
    t = load_one("swe-agent/sweagenttestrepo-1c2844.traj")
    assert names(t) == ["find_file", "open", "edit", "bash", "submit"]
    assert t.steps[2].action.arguments == {"search": "def division(a: float, b: float) -> float",
                                           "replace": "def division(a: float, b: float) -> float:",
                                           "replace-all": False}
    # The last step has no structured call in the history: it is parsed from the action text.
    assert t.steps[4].action.arguments == {} and t.steps[4].action.raw == "submit"


@pytest.mark.parametrize("rel,n,counts", [
    ("swe-smith/pandas-dev__pandas.95280573.pr_53856.traj", 17, {"bash": 9, "str_replace_editor": 6, "submit": 2}),
    ("swe-smith/pydantic__pydantic.acb0f10f.pr_8316.traj", 22, {"bash": 11, "str_replace_editor": 9, "submit": 2}),
])
def test_swe_smith_traj(rel, n, counts):
    t = load_one(rel)
    assert len(t.steps) == n
    assert {k: names(t).count(k) for k in counts} == counts
    assert t.patch.startswith("diff --git")


def test_swe_smith_traj_argument_values():
    t = load_one("swe-smith/pandas-dev__pandas.95280573.pr_53856.traj")
    assert t.steps[1].action.arguments == {"command": "view", "path": "/testbed/pandas/io/sql.py"}
    assert t.steps[3].action.arguments == {"command": "view", "path": "/testbed/pandas/io/sql.py",
                                           "view_range": [1030, 1074]}
    assert t.steps[0].action.arguments["command"].startswith('find /testbed -type f -name "*.py"')
    assert t.steps[0].observation.startswith("/testbed/asv_bench/benchmarks/io/sql.py")
    assert t.problem_statement.startswith("BUG: to_sql fails with arrow date column")
    p = load_one("swe-smith/pydantic__pydantic.acb0f10f.pr_8316.traj")
    create = p.steps[2].action
    assert create.arguments["command"] == "create" and create.arguments["path"] == "/testbed/reproduce_error.py"
    assert create.arguments["file_text"].startswith("from pydantic.alias_generators import to_snake, to_camel\n")


def test_openhands_row():
    t = load_one("openhands/swe-gym-openhands-sampled-row.json")
    assert t.source_format == "openhands"
    assert len(t.steps) == 21
    assert {k: names(t).count(k) for k in ("str_replace_editor", "bash", "submit")} == {
        "str_replace_editor": 15, "bash": 5, "submit": 1}
    first = t.steps[0].action
    assert first.arguments == {"command": "view", "path": "/workspace/python__mypy__1.6", "view_range": [0, -1]}
    assert t.steps[0].observation.startswith("ERROR:\nThe `view_range` parameter is not allowed")
    bash = next(s.action for s in t.steps if s.action.name == "bash")
    assert bash.original["name"] == "execute_bash"
    assert t.steps[-1].action.original == {"name": "finish", "arguments": {}}
    assert t.resolved is True
    assert t.patch.startswith("diff --git a/mypy/plugins/attrs.py")
    assert t.id == "python__mypy-15976_0/gpt-4o-2024-08-06_maxiter_50_N_v2.1-no-hint-train-t0-run_1"


def test_mini_swe_agent_lists():
    t = load_one("mini-swe-agent/github_issue.traj.json")
    assert t.source_format == "mini-swe-agent"
    assert len(t.steps) == 10
    assert names(t) == ["bash"] * 9 + ["submit"]
    assert t.steps[1].action.arguments == {"command": "ls -la"}
    assert t.steps[-1].action.original["arguments"]["command"].startswith("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    assert t.patch.startswith("diff --git a/tests/missing_colon.py")
    assert t.problem_statement.startswith("GitHub Issue: SyntaxError: invalid syntax")
    local = load_one("mini-swe-agent/local.traj.json")
    assert names(local) == ["bash", "submit"]
    assert local.steps[0].action.arguments == {"command": "echo 'hello world'"}
    assert local.steps[0].observation == "<returncode>0</returncode>\n<output>\nhello world\n</output>"


def test_mini_swe_agent_v1_dict_and_v2_tool_calls():
    messages = load_fixture_json("mini-swe-agent/github_issue.traj.json")
    v1 = [dict(m, content=m["content"].replace("```mswea_bash_command", "```bash")) for m in messages]
    rec = {"info": {"exit_status": "Submitted", "submission": "PATCH"}, "messages": v1,
           "trajectory_format": "mini-swe-agent-1"}
    t1 = parse_record(rec, source="v1.json")
    assert t1.source_format == "mini-swe-agent" and t1.patch == "PATCH"
    base = load_one("mini-swe-agent/github_issue.traj.json")
    assert [s.action.arguments for s in t1.steps] == [s.action.arguments for s in base.steps]
    # v2 with a tool-call model: structured calls and tool-role observations.
    v2 = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            cmd = m["content"].split("```mswea_bash_command\n")[1].split("\n```")[0]
            fn = {"name": "bash", "arguments": json.dumps({"command": cmd})}
            v2.append({"role": "assistant", "content": "thinking",
                       "tool_calls": [{"id": f"c{i}", "type": "function", "function": fn}]})
        elif m["role"] == "user" and v2 and v2[-1]["role"] == "assistant":
            v2.append({"role": "tool", "tool_call_id": f"c{i - 1}", "content": m["content"]})
        else:
            v2.append(m)
    t2 = parse_record({"info": {}, "messages": v2, "trajectory_format": "mini-swe-agent-1.1"}, source="v2.json")
    assert [s.action.name for s in t2.steps] == names(base)
    assert [s.observation for s in t2.steps] == [s.observation for s in base.steps]


def _swe_smith_row(rel: str, xml: bool = False) -> dict:
    d = load_fixture_json(rel)
    history = d["history"]
    if xml:  # the "xml" style: calls written into the assistant text
        from srl_agent.actions import render_xml_call
        from srl_agent.formats.common import call_from_openai

        history = [dict({k: v for k, v in m.items() if k not in ("tool_calls", "thought")},
                        content=m["content"] + "\n\n" + render_xml_call(call_from_openai(m["tool_calls"][0], 0)))
                   if m.get("tool_calls") else m for m in history]
    return {"messages": json.dumps(history), "instance_id": "pandas-dev__pandas.95280573.pr_53856",
            "resolved": True, "model": "claude-3-7-sonnet-20250219", "traj_id": "pandas.row",
            "patch": d["info"]["submission"]}


@pytest.mark.parametrize("xml", [False, True], ids=["tool_calls", "xml"])
def test_swe_smith_rows_match_the_traj(xml):
    rel = "swe-smith/pandas-dev__pandas.95280573.pr_53856.traj"
    row = _swe_smith_row(rel, xml)
    assert detect_format(row) == "swe-smith"
    t = parse_record(row, source="rows.jsonl", row=1)
    ref = load_one(rel)
    assert t.resolved is True and t.id == "pandas.row"
    assert [(s.action.name, s.action.arguments) for s in t.steps] == [(s.action.name, s.action.arguments)
                                                                      for s in ref.steps]
    # The .traj's own `trajectory` lost one observation (step 15) that its history kept.
    assert [s.observation for s in t.steps[:15]] == [s.observation for s in ref.steps[:15]]
    assert ref.steps[15].observation == "" and t.steps[15].observation.startswith("Your command ran successfully")
    assert t.problem_statement == ref.problem_statement


def test_jsonl_and_parquet_rows(tmp_path):
    rows = [_swe_smith_row("swe-smith/pandas-dev__pandas.95280573.pr_53856.traj"),
            _swe_smith_row("swe-smith/pydantic__pydantic.acb0f10f.pr_8316.traj", xml=True)]
    rows[1]["traj_id"] = "pydantic.row"
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    for path in (jsonl, tmp_path / "rows.parquet"):
        trajs = list(load_trajectories([str(path)]))
        assert [t.id for t in trajs] == ["pandas.row", "pydantic.row"]
        assert [len(t.steps) for t in trajs] == [17, 22]


def test_hf_dataset_source_with_a_local_dataset_folder(tmp_path):
    rows = [_swe_smith_row("swe-smith/pandas-dev__pandas.95280573.pr_53856.traj")]
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (t,) = load_trajectories([f"hf:{tmp_path / 'ds'}@train"])
    assert len(t.steps) == 17


def test_hf_dataset_unreachable_is_a_clear_error(tmp_path):
    # Its own empty HF cache: the machine's cache must not decide what this run sees.
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "srl_agent.cli", "data", "build", "--workers", "2", "--trajectories",
                           "hf:SWE-bench/SWE-smith-trajectories", "--out", str(tmp_path / "s.jsonl")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "hf:SWE-bench/SWE-smith-trajectories: cannot load the Hugging Face dataset" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s.jsonl").exists()


def test_only_resolved_filters():
    from srl_agent.formats import LoadReport

    report = LoadReport()
    trajs = list(load_trajectories([str(FIXTURES)], only_resolved=True, report=report))
    assert [t.source_format for t in trajs] == ["openhands"]
    assert report.filtered == 8
