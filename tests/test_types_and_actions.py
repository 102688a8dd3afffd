"""Canonical types round-trip losslessly; action text parses and renders consistently."""

from __future__ import annotations

import json

import pytest

from srl_agent.actions import (
    parse_command_line,
    parse_completion,
    render_command_line,
    render_completion,
    render_xml_call,
)
from srl_agent.errors import FormatViolation
from srl_agent.formats import parse_record
from srl_agent.tools import normalise_call, tool_schemas
from srl_agent.types import ToolCall, Trajectory


def test_json_round_trip_is_lossless(all_trajectories):
    assert len(all_trajectories) == 9
    for traj in all_trajectories.values():
        text = json.dumps(traj.to_dict())
        back = Trajectory.from_dict(json.loads(text))
        assert back == traj
        assert json.dumps(back.to_dict()) == text
        # and through the importer's canonical format
        assert parse_record(json.loads(text), source="x.jsonl") == traj


def test_command_line_round_trip_on_every_fixture_call(all_trajectories):
    checked = 0
    for traj in all_trajectories.values():
        for step in traj.steps:
            call = step.action
            if call.name in ("bash", "submit") and call.original:
                continue  # scaffold-specific forms (mini-swe-agent's submit command)
            back = parse_command_line(render_command_line(call))
            assert (back.name, back.arguments) == (call.name, call.arguments), (traj.id, render_command_line(call))
            checked += 1
    assert checked > 90


def test_recorded_swe_agent_actions_parse_to_their_structured_calls(all_trajectories):
    checked = 0
    for traj in all_trajectories.values():
        if traj.source_format != "swe-agent":
            continue
        for step in traj.steps:
            if step.action.raw is None:  # history-only files record no action text
                continue
            parsed = parse_command_line(step.action.raw)
            assert (parsed.name, parsed.arguments) == (step.action.name, step.action.arguments)
            checked += 1
    assert checked == 67  # 11 + 12 + 5 + 17 + 22 steps of the five .traj files with action text


def test_name_normalisation_keeps_the_original():
    call = normalise_call("execute_bash", {"command": "ls", "is_input": "false"})
    assert call == ToolCall("bash", {"command": "ls"}, {"name": "execute_bash",
                                                         "arguments": {"command": "ls", "is_input": "false"}})
    assert normalise_call("finish", {"message": "done"}).name == "submit"
    assert normalise_call("bash", {"command": "ls"}).original is None


def test_tool_schemas_come_from_the_bundles():
    names = [s["function"]["name"] for s in tool_schemas()]
    assert names == ["bash", "str_replace_editor", "submit"]
    sre = tool_schemas(["str_replace_editor"])[0]["function"]["parameters"]
    assert sre["properties"]["command"]["enum"] == ["view", "create", "str_replace", "insert", "undo_edit"]


VIEW = ToolCall("str_replace_editor", {"command": "view", "path": "/testbed/a.py", "view_range": [1, 20]})


@pytest.mark.parametrize("style", ["hermes", "xml"])
def test_completion_round_trip(style):
    text = render_completion("look at the file", VIEW, style)
    parsed = parse_completion(text, style)
    assert parsed.call == VIEW and parsed.thought == "look at the file"


BAD_HERMES = {
    "no think block": '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>',
    "unclosed think": '<think>hmm <tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>',
    "two think blocks": '<think>a</think><think>b</think><tool_call>{"name": "submit", "arguments": {}}</tool_call>',
    "no tool call": "<think>I am done</think>",
    "two tool calls": '<think>a</think><tool_call>{"name": "submit", "arguments": {}}</tool_call>'
                      '<tool_call>{"name": "submit", "arguments": {}}</tool_call>',
    "unparsable JSON": '<think>a</think><tool_call>{"name": "bash", "arguments": {"command": "ls"</tool_call>',
    "arguments not an object": '<think>a</think><tool_call>{"name": "bash", "arguments": ["ls"]}</tool_call>',
    "unknown tool": '<think>a</think><tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
    "missing argument": '<think>a</think><tool_call>{"name": "bash", "arguments": {}}</tool_call>',
    "wrong type": '<think>a</think><tool_call>{"name": "str_replace_editor", "arguments": '
                  '{"command": "view", "path": "/a", "view_range": "1-2"}}</tool_call>',
    "bad enum": '<think>a</think><tool_call>{"name": "str_replace_editor", "arguments": '
                '{"command": "delete", "path": "/a"}}</tool_call>',
    "extra argument": '<think>a</think><tool_call>{"name": "bash", "arguments": {"command": "ls", "x": 1}}</tool_call>',
    "text after the call": '<think>a</think><tool_call>{"name": "submit", "arguments": {}}</tool_call> and more',
    "legacy tool not offered": '<think>a</think><tool_call>{"name": "open", "arguments": {"path": "a"}}</tool_call>',
}


@pytest.mark.parametrize("case", sorted(BAD_HERMES))
def test_format_violations(case):
    with pytest.raises(FormatViolation):
        parse_completion(BAD_HERMES[case])


def test_xml_violations_and_typing():
    ok = "<think>x</think>\n<function=str_replace_editor>\n<parameter=command>insert</parameter>\n" \
         "<parameter=path>/a.py</parameter>\n<parameter=insert_line>3</parameter>\n" \
         "<parameter=new_str>\nx = 1\n</parameter>\n</function>"
    call = parse_completion(ok, "xml").call
    assert call.arguments == {"command": "insert", "path": "/a.py", "insert_line": 3, "new_str": "x = 1"}
    with pytest.raises(FormatViolation, match="insert_line"):
        parse_completion(ok.replace(">3<", ">three<"), "xml")
    with pytest.raises(FormatViolation, match="exactly one"):
        parse_completion(ok + "\n" + render_xml_call(ToolCall("submit", {})), "xml")
    with pytest.raises(FormatViolation, match="exactly one"):
        parse_completion(render_completion("x", VIEW, "hermes"), "xml")  # wrong style counts as no call


def test_command_line_errors_and_bash_fallback():
    assert parse_command_line("grep -rn 'def foo' src | head").arguments == {"command": "grep -rn 'def foo' src | head"}
    with pytest.raises(FormatViolation, match="quotation"):
        parse_command_line("str_replace_editor create /a.py --file_text 'unterminated")
    with pytest.raises(FormatViolation):
        parse_command_line("str_replace_editor view /a.py --view_range one two")


@pytest.mark.parametrize("style", ["hermes", "xml", "llama"])
def test_every_fixture_call_survives_its_answer_form(style, all_trajectories):
    from srl_agent.steps import tools_for

    checked = 0
    for traj in all_trajectories.values():
        offered = set(tools_for(traj))
        for step in traj.steps:
            parsed = parse_completion(render_completion(step.thought, step.action, style), style, offered)
            assert (parsed.call.name, parsed.call.arguments) == (step.action.name, step.action.arguments)
            checked += 1
    assert checked > 100
