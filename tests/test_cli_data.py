"""`srl-agent data ...` end to end, and bad input: one clear error naming file/row/step, exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES, cli_error, fixture, load_fixture_json


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srl_agent.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def steps_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "steps.jsonl"
    proc = cli("data", "build", "--trajectories", str(FIXTURES), "--out", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "9 trajectories loaded; 105 examples written" in proc.stderr
    return out


def test_build_writes_one_example_per_step(steps_file):
    rows = [json.loads(line) for line in steps_file.read_text().splitlines()]
    assert len(rows) == 105
    assert all(r["prompt_tokens"] > 0 and r["prompt"][0]["role"] == "system" for r in rows)
    assert {r["trajectory_id"] for r in rows} >= {"pandas-dev__pandas.95280573.pr_53856", "github_issue"}


def test_parallel_build_is_identical(steps_file, tmp_path):
    out = tmp_path / "parallel.jsonl"
    proc = cli("data", "build", "--trajectories", str(FIXTURES), "--out", str(out), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == steps_file.read_bytes()


def test_stats(steps_file):
    proc = cli("data", "stats", str(steps_file), "--json")
    stats = json.loads(proc.stdout)
    assert stats["examples"] == 105 and stats["trajectories"] == 9
    assert stats["steps_per_trajectory"] == {"min": 2, "median": 11, "mean": 11.67, "max": 22}
    assert (stats["tools"]["bash"], stats["tools"]["str_replace_editor"], stats["tools"]["submit"]) == (44, 30, 11)
    assert stats["history_steps"] == {"0": 9, "1": 9, "2": 87}
    tokens = stats["prompt_tokens"]
    assert 0 < tokens["p50"] <= tokens["p90"] <= tokens["p99"] <= tokens["max"]
    table = cli("data", "stats", str(steps_file))
    assert table.returncode == 0 and "expert tools" in table.stdout and "prompt tokens" in table.stdout


def test_show(steps_file):
    proc = cli("data", "show", str(steps_file), "--trajectory", "pandas-dev__pandas.95280573.pr_53856", "--step", "3")
    assert proc.returncode == 0, proc.stderr
    assert "step 4/17" in proc.stdout and "expert action" in proc.stdout
    assert "str_replace_editor view /testbed/pandas/io/sql.py --view_range 1030 1074" in proc.stdout
    rendered = cli("data", "show", str(steps_file), "--index", "3", "--rendered")
    assert rendered.stdout.rstrip().endswith("<|im_start|>assistant")
    missing = cli("data", "show", str(steps_file), "--index", "999")
    assert missing.returncode == 2 and "no example at index 999" in missing.stderr


def test_history_and_budget_options(tmp_path):
    out = tmp_path / "s.jsonl"
    proc = cli("data", "build", "--trajectories", str(fixture("swe-smith")), "--out", str(out), "--history", "full",
               "--max-prompt-tokens", "6000", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert max(r["history_steps"] for r in rows) > 2
    assert all(r["prompt_tokens"] <= 6000 for r in rows)


def test_convert_round_trips(tmp_path):
    out = tmp_path / "canonical.jsonl"
    assert cli("data", "convert", "--trajectories", str(FIXTURES), "--out", str(out)).returncode == 0
    again = tmp_path / "again.jsonl"
    proc = cli("data", "convert", "--trajectories", str(out), "--out", str(again))
    assert proc.returncode == 0 and again.read_text() == out.read_text()


# --- bad input ---------------------------------------------------------------------------------

def write(path: Path, value) -> Path:
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def corrupt_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the message the error must contain)."""
    traj_text = fixture("swe-agent/marshmallow-code__marshmallow-1867.traj").read_text()
    fc = load_fixture_json("swe-agent/function_calling_simple.traj")
    fc["history"][6]["tool_calls"][0]["function"]["arguments"] = '{"search": "def division('
    text = load_fixture_json("swe-agent/pydicom__pydicom-1458.traj")
    text["trajectory"][3]["action"] = "str_replace_editor create /a.py --file_text 'never closed"
    openhands = load_fixture_json("openhands/swe-gym-openhands-sampled-row.json")
    no_steps = [dict(openhands[0], messages=openhands[0]["messages"][:2])]
    rows = fixture("mini-swe-agent/local.traj.json").read_text()
    cases = {
        "truncated": (write(tmp / "truncated.traj", traj_text[: len(traj_text) // 2]),
                      "truncated.traj: not valid JSON: Unterminated string"),
        "bad jsonl line": (write(tmp / "rows.jsonl", "{oops\n" + json.dumps(
            {"messages": json.loads(rows), "trajectory_format": "mini-swe-agent-1"}) + "\n"),
                           "rows.jsonl: row 1: line is not valid JSON"),
        "no steps": (write(tmp / "nosteps.json", no_steps), "nosteps.json: row 1: openhands record has no steps"),
        "unknown format": (write(tmp / "unknown.json", {"foo": 1, "bar": [2]}),
                           "unknown.json: unknown trajectory format (an object with keys bar, foo)"),
        "bad arguments": (write(tmp / "fc.traj", fc),
                          "fc.traj: step 2: arguments of tool call 'edit' are not valid JSON"),
        "bad action text": (write(tmp / "text.traj", text), "text.traj: step 3: cannot parse the action"),
        "messages not a list": (write(tmp / "msgs.jsonl", json.dumps({"messages": 5, "run_id": "r"}) + "\n"),
                                "msgs.jsonl: row 1: 'messages' must be a list"),
        "not utf-8": (write(tmp / "binary.traj", "x") and (tmp / "binary.traj"), "binary.traj: not UTF-8"),
    }
    (tmp / "binary.traj").write_bytes(b'{"history": "\xff\xfe"}')
    return cases


def test_each_corruption_gives_one_clear_error(tmp_path):
    for name, (path, message) in corrupt_cases(tmp_path).items():
        out = tmp_path / f"out-{path.stem}.jsonl"
        proc = cli("data", "build", "--trajectories", str(path), "--out", str(out), "--workers", "1")
        assert proc.returncode == 2, (name, proc.stderr)
        assert message in proc.stderr, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name
        assert not out.exists(), name  # nothing half written


def test_corrupt_file_after_good_ones_stops_a_parallel_build(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):  # sorted before the bad file, so workers are busy when it is read
        shutil.copy(fixture("swe-smith/pandas-dev__pandas.95280573.pr_53856.traj"), folder / f"a{i}.traj")
    path, message = corrupt_cases(tmp_path)["bad arguments"]
    shutil.copy(path, folder / "z-fc.traj")
    out = tmp_path / "out.jsonl"
    proc = cli("data", "build", "--trajectories", str(folder), "--out", str(out), "--workers", "2")
    assert proc.returncode == 2, proc.stderr
    assert message.replace("fc.traj", "z-fc.traj") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_file(tmp_path):
    proc = cli("data", "build", "--trajectories", str(tmp_path / "nope.traj"), "--out", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2 and "nope.traj: no such file or folder" in proc.stderr


def test_stats_and_show_name_a_file_they_cannot_read(steps_file, tmp_path, capsys):
    good = steps_file.read_text().splitlines(keepends=True)[:2]
    cases = {  # file -> the error line
        tmp_path / "missing.jsonl": "cannot read: no such file or directory",
        tmp_path: "cannot read: is a folder, not a file",
        write(tmp_path / "bad.jsonl", "".join(good) + "\n{oops\n"):  # the blank line counts
            "row 4: line is not valid JSON (Expecting property name enclosed in double quotes at column 2)",
    }
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(good[0].encode() + '{"note": "café"}\n'.encode("latin-1"))
    cases[latin1] = "row 2: line is not UTF-8 text (invalid continuation byte at byte 13)"
    for path, message in cases.items():
        assert cli_error(capsys, "data", "stats", str(path)) == f"error: {path}: {message}"
        # show stops at the example it wants: index 5 is past every bad line
        assert cli_error(capsys, "data", "show", str(path), "--index", "5") == f"error: {path}: {message}"


def test_a_line_that_is_not_utf8_is_skipped_like_any_bad_line(tmp_path):
    from srl_agent.errors import DataError
    from srl_agent.jsonio import read_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "\xff"}\n{"c": 3}\n')
    rows = list(read_jsonl(path, bad_lines="yield"))
    assert [(n, row) for n, row in rows if not isinstance(row, DataError)] == [(1, {"a": 1}), (3, {"c": 3})]
    assert str(rows[1][1]) == f"{path}: row 2: line is not UTF-8 text (invalid start byte at byte 7)"


def test_a_bom_and_every_line_ending_are_read(steps_file, tmp_path, capsys):
    from srl_agent.cli import main
    from srl_agent.jsonio import read_json, read_jsonl

    path = tmp_path / "rows.jsonl"
    for text in (b'\xef\xbb\xbf{"a": 1}\n\n{"c": 3}\n', b'{"a": 1}\r\n\r\n{"c": 3}\r\n', b'{"a": 1}\r\r{"c": 3}\r'):
        path.write_bytes(text)
        assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"c": 3})], text
    path.write_bytes(b'\xef\xbb\xbf{"a": [1]}')
    assert read_json(path) == {"a": [1]}
    # a steps file saved by an editor that adds a BOM
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"".join(steps_file.read_bytes().splitlines(keepends=True)[:2]))
    capsys.readouterr()
    assert main(["data", "stats", str(bom), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 2


def test_skip_bad_goes_on_and_reports(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    cases = corrupt_cases(bad)
    shutil.copy(fixture("swe-smith/pandas-dev__pandas.95280573.pr_53856.traj"), bad / "good.traj")
    out = tmp_path / "steps.jsonl"
    proc = cli("data", "build", "--trajectories", str(bad), "--out", str(out), "--skip-bad", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    # the JSONL file's good row 2 comes after its broken row 1: skipping goes on within a file
    assert f"skipped {len(cases)} bad record(s)" in proc.stderr
    for _, message in cases.values():
        assert message in proc.stderr
    assert "2 trajectories loaded" in proc.stderr
    assert len(out.read_text().splitlines()) == 17 + 2


def test_unknown_history_value(tmp_path):
    proc = cli("data", "build", "--trajectories", str(FIXTURES), "--out", str(tmp_path / "o.jsonl"), "--history", "x")
    assert proc.returncode == 2 and "--history must be last-N" in proc.stderr


def test_build_takes_the_call_style_from_the_tokenizer_and_training_uses_its_record(steps_file, tmp_path):
    from srl_agent.steps import StepConfig, load_rendering
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.data import training_rendering

    from .test_chat_templates import tokenizer_with, trl_template

    assert load_rendering(steps_file) == StepConfig()  # the tiny tokenizer's template: Hermes, <think> in content
    source = str(fixture("swe-smith"))
    llama = tokenizer_with(trl_template("llama3_1"))
    llama.save_pretrained(tmp_path / "llama")
    out = tmp_path / "llama.jsonl"
    proc = cli("data", "build", "--trajectories", source, "--out", str(out), "--tokenizer", str(tmp_path / "llama"),
               "--history", "full", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    record = load_rendering(out)
    assert (record.call_style, record.history) == ("llama", None)
    turns = [m for line in out.read_text().splitlines() for m in json.loads(line)["prompt"] if m["role"] == "assistant"]
    assert turns and all('"parameters": {' in m["content"] and "tool_calls" not in m for m in turns)
    # training from that file renders and rewards as it was built, whatever the config says
    lines: list[str] = []
    cfg = TrainConfig.from_dict({"data.trajectories": [str(out)],
                                 "rendering": {"history": "last-2", "call_style": "xml"}})
    assert training_rendering(cfg, llama, lines.append) == record
    assert len(lines) == 1 and "rendered as recorded in llama.rendering.json (llama calls, history full" in lines[0]
    # a tokenizer without a chat template: one warning, srl-agent's own template in every worker
    tokenizer_with(None).save_pretrained(tmp_path / "bare")
    proc = cli("data", "build", "--trajectories", source, "--out", str(tmp_path / "bare.jsonl"), "--tokenizer",
               str(tmp_path / "bare"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("has no chat template: using srl-agent's own template") == 1
    assert load_rendering(tmp_path / "bare.jsonl").call_style == "hermes"
    # one in a syntax srl-agent does not know: one line asking for --call-style, nothing written
    tokenizer_with(trl_template("qwen3_5_think")).save_pretrained(tmp_path / "qwen35")
    proc = cli("data", "build", "--trajectories", source, "--out", str(tmp_path / "q.jsonl"), "--tokenizer",
               str(tmp_path / "qwen35"))
    assert proc.returncode == 2 and "(--call-style)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "q.jsonl").exists()
