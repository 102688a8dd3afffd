"""Fuzzing (Hypothesis) of every parser of untrusted text: the policy's answers in each call style, SWE-agent's
command-line actions, the trajectory importers (each format, each file kind), the JSONL / JSON / YAML readers and
the test-status parsers.

The properties: no exception but the project's own (FormatViolation for an answer, a one-line UserError / DataError
naming the file, and the line where there is one, for a file); a parse-render round trip of generated calls is stable;
a truncated file names its file and line. Profiles: SRL_FUZZ_PROFILE=ci (default, a bounded run in the suite) or
campaign (the long run of docs/fuzzing.md).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from srl_agent.actions import CALL_STYLES, parse_command_line, parse_completion, render_command_line, render_completion
from srl_agent.errors import DataError, FormatViolation, UserError
from srl_agent.formats import FORMATS, LoadReport, iter_records, load_trajectories, parse_record
from srl_agent.jsonio import json_line, read_json, read_jsonl, write_jsonl
from srl_agent.tasks.validate import failure_sections, section_for
from srl_agent.testbed.suite import parse_statuses
from srl_agent.tools import load_tools
from srl_agent.train.config import TrainConfig
from srl_agent.types import Step, ToolCall, Trajectory

from .conftest import FIXTURES

settings.register_profile("ci", max_examples=150, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("campaign", max_examples=1_500, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Applied per test, not loaded globally: the profile must not change other modules' Hypothesis tests.
FUZZ = settings.get_profile(os.environ.get("SRL_FUZZ_PROFILE", "ci"))

SPECS = load_tools()
DEEP_ARRAY = "[" * 100_000  # nesting deeper than the stack: json raises RecursionError
LONG_INT = "1" * 5_000  # more digits than int() converts: json raises ValueError

# Pieces of the formats themselves, so random text reaches past the first check of each parser.
MARKUP = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<function=bash>", "<function=str_replace_editor>",
          "</function>", "<parameter=command>", "<parameter=view_range>", "</parameter>", '{"name": "bash", ',
          '"arguments": ', '"parameters": ', '{"command": "ls"}', "}", "{", "[", "]", '"', "'", "\\", "\n", "\r\n",
          " ", "```bash\n", "```", "--path", "--view_range", "edit 1:2\n", "end_of_edit", "str_replace_editor view",
          "\x00", "\u2028", "\ud83d", "null", "1e999", "-1", LONG_INT[:50]]


def one_line(error: BaseException) -> bool:
    return "\n" not in str(error) and "\r" not in str(error)


tricky_text = st.one_of(st.text(max_size=40),
                        st.lists(st.sampled_from(MARKUP) | st.text(max_size=4), max_size=12).map("".join))


def argument_values(prop: dict) -> st.SearchStrategy:
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    kind = prop.get("type", "string")
    if kind == "integer":
        return st.integers(-(2**63), 2**63)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(argument_values(prop.get("items", {})), max_size=4)
    return tricky_text


@st.composite
def tool_calls(draw, tools: tuple[str, ...] = tuple(SPECS), text: st.SearchStrategy = tricky_text) -> ToolCall:
    """A valid call of one of `tools`: every required argument, some optional ones, values of the schema's types."""
    spec = SPECS[draw(st.sampled_from(tools))]
    args = {}
    for key, prop in spec.properties.items():
        if key in spec.required or draw(st.booleans()):
            args[key] = draw(text if prop.get("type", "string") == "string" and "enum" not in prop
                              else argument_values(prop))
    return ToolCall(spec.name, args)


# --- the answer parser -------------------------------------------------------------------------

def answers() -> st.SearchStrategy[str]:
    """Random text, markup soup, and valid answers with a slice cut out or a piece pasted in."""
    valid = st.builds(render_completion, tricky_text, tool_calls(), st.sampled_from(CALL_STYLES))

    @st.composite
    def damaged(draw):
        text = draw(valid)
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, len(text)))
        return text[:i] + draw(st.sampled_from(MARKUP) | st.just("")) + text[j:]

    return st.one_of(st.text(), st.lists(st.sampled_from(MARKUP) | st.text(max_size=6)).map("".join), valid,
                     damaged())


@pytest.mark.parametrize("style", CALL_STYLES)
@FUZZ
@given(text=answers())
@example(text=f"<think>a</think><tool_call>{DEEP_ARRAY}</tool_call>")
@example(text=f'<think>a</think><tool_call>{{"name": "bash", "arguments": {{"command": {LONG_INT}}}}}</tool_call>')
@example(text=f'<think>a</think>{{"name": "bash", "parameters": {DEEP_ARRAY}')
@example(text=f"<think>a</think><function=str_replace_editor><parameter=command>view</parameter><parameter=path>/a"
              f"</parameter><parameter=view_range>{DEEP_ARRAY}</parameter></function>")
def test_answer_parser_raises_only_format_violations(style, text):
    try:
        parsed = parse_completion(text, style, set(SPECS))
    except FormatViolation as e:  # what the reward expects: a breach scores the format penalty
        assert one_line(e), e
    else:
        assert parsed.call.name in SPECS


def xml_safe(text: str) -> bool:
    """The XML style has no escapes: a value holding its delimiters cannot be written (a limit of the format)."""
    return not any(mark in text for mark in ("</parameter>", "<function=", "</function>"))


@pytest.mark.parametrize("style", CALL_STYLES)
@FUZZ
@given(thought=tricky_text.filter(lambda t: "</think>" not in t), data=st.data())
def test_answer_round_trip(style, thought, data):
    call = data.draw(tool_calls(text=tricky_text.filter(xml_safe) if style == "xml" else tricky_text))
    assert_round_trip(style, thought, call)


@pytest.mark.parametrize("style", CALL_STYLES)
def test_arguments_holding_the_markup_round_trip(style):
    """Found by fuzzing: a Hermes call whose argument holds </tool_call>, and any call holding <think> or </think>,
    were rejected; json.dumps escapes neither."""
    assert_round_trip(style, "x", ToolCall("bash", {"command": "grep -n '</tool_call>\\|<think>\\|</think>' a.py"}))


def assert_round_trip(style: str, thought: str, call: ToolCall) -> None:
    parsed = parse_completion(render_completion(thought, call, style), style, set(SPECS))
    assert (parsed.thought, parsed.call) == (thought.strip(), call)
    again = parse_completion(render_completion(parsed.thought, parsed.call, style), style, set(SPECS))
    assert again == parsed


@FUZZ
@given(text=st.one_of(st.text(), st.lists(st.sampled_from([*MARKUP, "str_replace_editor ", "open ", "edit "])
                                          | st.text(max_size=6)).map("".join)))
@example(text=f"edit {LONG_INT}:1\nx\nend_of_edit")
@example(text=f"str_replace_editor view /a --view_range {DEEP_ARRAY}")
def test_command_line_parser_raises_only_format_violations(text):
    try:
        call = parse_command_line(text)
    except FormatViolation as e:
        assert one_line(e), e
    else:
        assert call.raw == text


def command_line_safe(value: object) -> bool:
    """SWE-agent's command line cannot tell a value `--path` from the flag `--path`: such values are left out."""
    return not (isinstance(value, str) and value.strip().startswith("--"))


@FUZZ
@given(call=tool_calls(tools=("str_replace_editor",)).filter(
    lambda c: all(command_line_safe(v) for v in c.arguments.values())))
def test_command_line_round_trip(call):
    assert parse_command_line(render_command_line(call)).arguments == call.arguments


# --- the importers -----------------------------------------------------------------------------

KEYS = ["messages", "trajectory", "history", "steps", "problem_statement", "info", "trajectory_format", "traj_id",
        "instance_id", "run_id", "resolved", "tool_calls", "role", "content", "function", "name", "arguments",
        "action", "thought", "observation", "id", "tool_call_id", "tool_call_ids", "submission", "exit_status",
        "test_result", "git_patch", "replay_config", "message_type", "metadata", "original", "raw", "patch"]
WORDS = ["assistant", "user", "tool", "system", "bash", "str_replace_editor", "submit", "execute_bash", "finish",
         "mini-swe-agent-1", "```bash\nls\n```", "<function=bash><parameter=command>ls</parameter></function>",
         "str_replace_editor view /a --view_range 1 2", "edit 1:2\nx\nend_of_edit", '{"command": "ls"}', "[]"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(WORDS) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=25)


def _fixture_records() -> list:
    return [record for path in sorted(FIXTURES.rglob("*")) if path.is_file() and path.name != "LICENSE"
            for _, _, _, record in iter_records(str(path))]


FIXTURE_RECORDS = _fixture_records()


def _paths(value, prefix=()):
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


FIXTURE_PATHS = [list(_paths(record)) for record in FIXTURE_RECORDS]


@st.composite
def garbled_records(draw):
    """A real record of each format with one value replaced by random JSON, or removed."""
    i = draw(st.integers(0, len(FIXTURE_RECORDS) - 1))
    path = draw(st.sampled_from(FIXTURE_PATHS[i]))
    record = copy.deepcopy(FIXTURE_RECORDS[i])
    if not path:
        return draw(json_values)
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(json_values)
    else:
        del parent[path[-1]]
    return record


def survives_a_round_trip(traj: Trajectory) -> bool:
    return Trajectory.from_dict(json.loads(json_line(traj.to_dict()))) == traj


@FUZZ
@given(record=st.one_of(json_values, garbled_records()), fmt=st.sampled_from(["auto", *FORMATS]))
@example(record={"a\nb": 1}, fmt="auto")  # the key was printed as is: a two-line error
@example(record={"steps": [{"action": {"name": "bash", "arguments": {"command": "\ud83d"}}}], "id": "x",
                 "problem_statement": ""}, fmt="auto")  # a lone surrogate: written with \u escapes
def test_importers_raise_only_located_data_errors(record, fmt):
    try:
        traj = parse_record(record, source="rows.jsonl", row=7, fmt=fmt)
    except DataError as e:
        assert one_line(e) and str(e).startswith("rows.jsonl: row 7: "), e
    else:
        assert traj.steps and survives_a_round_trip(traj)


FILE_KINDS = (".jsonl", ".json", ".traj", ".parquet")


def _fixture_bytes() -> dict[str, bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"messages": json.dumps([{"role": "user", "content": "fix it"},
                                     {"role": "assistant", "content": "look\n```bash\nls\n```"},
                                     {"role": "user", "content": "a.py"}]), "traj_id": f"t{i}", "resolved": i % 2}
            for i in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(pa.Table.from_pylist(rows), f"{tmp}/rows.parquet")
        parquet = Path(f"{tmp}/rows.parquet").read_bytes()
    traj = (FIXTURES / "swe-agent" / "function_calling_simple.traj").read_bytes()
    return {".jsonl": "".join(json_line(r) + "\n" for r in rows).encode(), ".json": traj, ".traj": traj,
            ".parquet": parquet}


FILE_BYTES = _fixture_bytes()


@st.composite
def damaged_files(draw) -> tuple[str, bytes]:
    """(suffix, content): random bytes, or a valid file of that kind cut short or with bytes overwritten."""
    suffix = draw(st.sampled_from(FILE_KINDS))
    data = FILE_BYTES[suffix]
    how = draw(st.sampled_from(["random", "cut", "overwrite"]))
    if how == "random":
        return suffix, draw(st.binary(max_size=200))
    if how == "cut":
        return suffix, data[:draw(st.integers(0, len(data)))]
    garbled = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        garbled[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return suffix, bytes(garbled)


@FUZZ
@given(file=damaged_files())
# a page header overwritten: pyarrow raised OSError (on two lines) while reading the rows, not when opening the file
@example(file=(".parquet", FILE_BYTES[".parquet"][:4] + b"\x00" + FILE_BYTES[".parquet"][5:]))
def test_damaged_files_give_one_line_errors_naming_the_file(file):
    suffix, content = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(content)
        try:
            trajs = list(load_trajectories([str(path)]))
        except DataError as e:
            assert one_line(e) and str(e).startswith(f"{path}: "), e
        else:
            assert all(survives_a_round_trip(t) for t in trajs)
        report = LoadReport()
        list(load_trajectories([str(path)], skip_bad=True, report=report))  # skipping never raises
        assert all(s.startswith(f"{path}: ") for s in report.skipped)


@FUZZ
@given(cut=st.integers(0, len(FILE_BYTES[".traj"]) - 1))
def test_a_truncated_json_file_names_its_line(cut):
    content = FILE_BYTES[".traj"][:cut]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.traj"
        path.write_bytes(content)
        with pytest.raises(DataError) as error:
            read_json(path)
    # a cut inside a multi-byte character is named by its byte, as the file is not text yet
    assert str(error.value).startswith(f"{path}: not ") and (" at line " in str(error.value)
                                                             or "UTF-8" in str(error.value)), error.value


# --- the JSONL reader --------------------------------------------------------------------------

@st.composite
def jsonl_files(draw) -> tuple[bytes, list[tuple[int, int]], list[Trajectory]]:
    """A valid JSONL file of canonical trajectories, with the span (start, end of content) of each line."""
    trajs = [Trajectory(f"t{i}", draw(tricky_text), [Step(draw(tricky_text), draw(tool_calls()))])
             for i in range(draw(st.integers(1, 4)))]
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"])).encode()
    content, spans = b"\xef\xbb\xbf" if draw(st.booleans()) else b"", []
    for traj in trajs:
        line = json_line(traj.to_dict()).encode()
        spans.append((len(content), len(content) + len(line)))
        content += line + ending
    return content, spans, trajs


@FUZZ
@given(file=jsonl_files(), data=st.data())
def test_a_truncated_jsonl_file_loads_its_whole_lines_and_names_the_cut_one(file, data):
    content, spans, trajs = file
    cut = data.draw(st.integers(0, len(content)))
    whole = sum(1 for _, end in spans if end <= cut)
    # a cut inside a leading BOM leaves no line at all (Python's utf-8-sig decoder drops a partial BOM at the end)
    cut_line = next((n for n, (start, end) in enumerate(spans, 1) if start < cut < end), None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(content[:cut])
        report = LoadReport()
        loaded = list(load_trajectories([str(path)], skip_bad=True, report=report))
    assert loaded == trajs[:whole]
    if cut_line is None:
        assert report.skipped == []
    else:
        (skipped,) = report.skipped
        assert skipped.startswith(f"{path}: row {cut_line}: line is not ") and "\n" not in skipped, skipped


@FUZZ
@given(content=st.one_of(st.binary(), st.lists(st.sampled_from(MARKUP) | st.text(max_size=6)).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))))
@example(content=f'{{"a": {LONG_INT}}}\n'.encode())
@example(content=f"{DEEP_ARRAY}\n".encode())
def test_jsonl_reader_yields_located_errors_for_bad_lines(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes(content)
        for lineno, value in read_jsonl(path, bad_lines="yield"):
            if isinstance(value, DataError):
                assert (value.source, value.row) == (str(path), lineno) and one_line(value), value
        try:
            list(read_jsonl(path))
        except DataError as e:
            assert str(e).startswith(f"{path}: row ") and one_line(e)


@FUZZ
@given(rows=st.lists(st.dictionaries(st.text(), json_values | st.sampled_from(["\ud83d", "a\udc00b"]), max_size=4),
                     max_size=5))
@example(rows=[{"text": "\ud83d"}])  # a lone surrogate: UnicodeEncodeError while writing
def test_jsonl_write_read_round_trip(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        write_jsonl(path, rows)
        assert [value for _, value in read_jsonl(path)] == rows


# --- the YAML config reader --------------------------------------------------------------------

YAML_MARKUP = ["model: ", "lr: ", "reward.metric: ", "episodes: ", "- ", ": ", "{", "}", "[", "]", "&a ", "*a ",
               "!!python/object ", "!!binary ", "'", '"', "\t", "\n", "  ", "# ", "---\n", "...\n", "%YAML 1.1\n",
               "1e5", "true", "~", "\x00", "\xe9"]


@FUZZ
@given(content=st.one_of(st.binary(max_size=200),
                         st.lists(st.sampled_from(YAML_MARKUP) | st.text(max_size=6)).map(
                             lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))))
def test_yaml_config_reader_raises_only_one_line_user_errors(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(content)
        try:
            TrainConfig.from_yaml(path)
        except UserError as e:
            assert one_line(e) and str(e).startswith(f"{path}: "), e


def test_yaml_config_reader_deep_nesting(tmp_path):
    """Found by fuzzing: PyYAML's RecursionError on deep nesting escaped the reader."""
    path = tmp_path / "c.yaml"
    path.write_text("model: " + "[" * 10_000)
    with pytest.raises(UserError, match="nested too deeply") as error:
        TrainConfig.from_yaml(path)
    assert "\n" not in str(error.value)


# --- the test-status parsers -------------------------------------------------------------------

STATUSES = ["PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL"]
test_ids = st.from_regex(r"tests/[a-z_]{1,8}\.py::(Test[A-Z][a-z]{0,5}::)?test_[a-z0-9_]{1,8}(\[[a-z0-9-]{1,6}\])?",
                         fullmatch=True)
LOG_MARKUP = ["PASSED ", "FAILED ", "ERROR ", "SKIPPED ", "XFAIL ", "SUBFAILED", "SUBFAIL ", " - ", "::", "\n",
              "=== FAILURES ===\n", "___ T.test_a ___\n", "=== short test summary info ===\n", "[100%]", "[1] "]


@FUZZ
@given(log=st.one_of(st.text(), st.lists(st.sampled_from(LOG_MARKUP) | st.text(max_size=8) | test_ids).map("".join)),
       test_id=test_ids)
def test_status_parsers_take_any_log(log, test_id):
    statuses = parse_statuses(log)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in statuses.items())
    sections = failure_sections(log)
    assert isinstance(section_for(test_id, sections), str)


@FUZZ
@given(expected=st.dictionaries(test_ids, st.sampled_from(STATUSES), max_size=8),
       subfailed=st.lists(test_ids, max_size=3), noise=st.lists(st.text(alphabet="abc xyz.:=", max_size=30)))
def test_status_parser_reads_back_a_summary(expected, subfailed, noise):
    lines = [*noise, "=" * 10 + " short test summary info " + "=" * 10]
    lines += [f"{status} {test} - boom" if status == "FAILED" else f"{status} {test}"
              for test, status in expected.items()]
    lines += [f"SUBFAILED[i=1] {test} - AssertionError" for test in subfailed]
    assert parse_statuses("\n".join(lines)) == {**expected, **dict.fromkeys(subfailed, "FAILED")}
