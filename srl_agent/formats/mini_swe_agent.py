"""mini-swe-agent trajectories, v1 (`mini-swe-agent-1`) and v2 (`mini-swe-agent-1.1`).

`{"info": {...}, "messages": [...], "trajectory_format": ...}` or a bare list of messages. Each
assistant turn holds one bash command in a fenced block (```` ```bash ```` in v1,
```` ```mswea_bash_command ```` in v2) or a tool call; observations are user messages
`<returncode>0</returncode>\n<output>...</output>`. The final `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`
command becomes `submit`. A turn with zero or several blocks was a format error in the run
itself and is not a step.
"""

from __future__ import annotations

import re
from typing import Any

from ..types import Step, ToolCall, Trajectory
from .common import content_text, extract_problem_statement, first_user_text, steps_from_messages

NAME = "mini-swe-agent"
_BLOCK = re.compile(r"```(?:bash|mswea_bash_command)\s*\n(.*?)\n?```", re.DOTALL)
_SUBMIT_MARKERS = ("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "echo MINI_SWE_AGENT_FINAL_OUTPUT")


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def detect(record: Any) -> bool:
    if isinstance(record, dict):
        return str(record.get("trajectory_format", "")).startswith("mini-swe-agent")
    return _is_messages(record) and any(
        m["role"] == "assistant" and _BLOCK.search(content_text(m.get("content"))) for m in record)


def parse_turn(text: str) -> tuple[str, ToolCall] | None:
    blocks = list(_BLOCK.finditer(text))
    if len(blocks) != 1:
        return None
    thought = re.sub(r"^THOUGHT:\s*", "", text[: blocks[0].start()].strip())
    return thought, ToolCall("bash", {"command": blocks[0][1]}, raw=blocks[0][0])


def _as_submit(step: Step) -> Step:
    command = str(step.action.arguments.get("command", ""))
    if step.action.name != "bash" or not command.lstrip().startswith(_SUBMIT_MARKERS):
        return step
    call = ToolCall("submit", {}, {"name": "bash", "arguments": step.action.arguments}, step.action.raw)
    return Step(step.thought, call, step.observation, step.metadata)


def parse(record: Any, default_id: str) -> Trajectory:
    messages = record["messages"] if isinstance(record, dict) else record
    info = record.get("info", {}) if isinstance(record, dict) else {}
    steps = [_as_submit(s) for s in steps_from_messages(messages, parse_turn)]
    patch = info.get("submission")
    if patch is None and steps and steps[-1].action.name == "submit" and "diff --git" in steps[-1].observation:
        patch = steps[-1].observation
    meta = {"exit_status": info["exit_status"]} if "exit_status" in info else {}
    if isinstance(record, dict) and "trajectory_format" in record:
        meta["trajectory_format"] = record["trajectory_format"]
    return Trajectory(
        id=str(info.get("instance_id") or default_id),
        problem_statement=extract_problem_statement(first_user_text(messages)), steps=steps,
        patch=patch, resolved=None, source_format=NAME, metadata=meta)
