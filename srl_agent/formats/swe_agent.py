"""SWE-agent `.traj` files (and SWE-smith's, which are the same format).

Steps come from `trajectory` (thought, action, observation per step). Function-calling runs also
record structured `tool_calls` in `history`; a step takes them where its action string matches,
and otherwise its command-line action is parsed (`str_replace_editor view /p --view_range 1 20`,
plain bash, or SWE-agent's older windowed tools such as `edit N:M ... end_of_edit`).
Files with only `history` are cut from the chat messages.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..actions import find_xml_calls, parse_command_line
from ..errors import DataError, FormatViolation
from ..types import Step, ToolCall, Trajectory
from .common import (
    call_from_openai,
    content_text,
    extract_problem_statement,
    first_user_text,
    steps_from_messages,
)

NAME = "swe-agent"
_FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def detect(record: Any) -> bool:
    return isinstance(record, dict) and ("trajectory" in record or "history" in record) \
        and "messages" not in record and "steps" not in record


def parse_response_text(text: str) -> tuple[str, ToolCall] | None:
    """An action written in an assistant message: an XML `<function=...>` call or the last fenced block."""
    xml = find_xml_calls(text)
    if xml:
        if len(xml) > 1:
            raise FormatViolation(f"{len(xml)} <function=...> calls in one message")
        match, call = xml[0]
        return text[: match.start()].strip(), call
    blocks = list(_FENCED.finditer(text))
    if not blocks:
        return None
    last = blocks[-1]
    return text[: last.start()].strip(), parse_command_line(last[1])


def _history_calls(history: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(action string, first tool call) of every history message that made a structured call."""
    out = []
    for m in history:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            out.append((str(m.get("action", "")).strip(), m["tool_calls"][0]))
    return out


def _steps_from_trajectory(entries: list[Any], history: list[dict[str, Any]]) -> list[Step]:
    structured = _history_calls(history)
    steps: list[Step] = []
    for entry in entries:
        if not isinstance(entry, dict) or "action" not in entry:
            raise DataError("trajectory entry has no 'action'", step=len(steps))
        action = content_text(entry["action"])
        if not action.strip():
            continue  # SWE-agent writes empty actions for forfeits and cost-limit exits
        hit = next((i for i, (text, _) in enumerate(structured) if text == action.strip()), None)
        if hit is not None:
            call = call_from_openai(structured[hit][1], len(steps))
            call = ToolCall(call.name, call.arguments, call.original, raw=action)
            del structured[: hit + 1]
        else:
            try:
                call = parse_command_line(action)
            except FormatViolation as e:
                raise DataError(f"cannot parse the action {action[:60]!r}: {e}", step=len(steps)) from None
        meta = {k: entry[k] for k in ("execution_time", "state") if k in entry}
        steps.append(Step(content_text(entry.get("thought")), call,
                          content_text(entry.get("observation")), meta))
    return steps


def _problem_statement(record: dict[str, Any], history: list[dict[str, Any]]) -> str:
    replay = record.get("replay_config")
    if isinstance(replay, str):
        try:
            replay = json.loads(replay)
        except json.JSONDecodeError:
            replay = None
    if isinstance(replay, dict):
        text = (replay.get("problem_statement") or {}).get("text")
        if isinstance(text, str) and text.strip():
            return text.strip()
    return extract_problem_statement(first_user_text(history))


def parse(record: dict[str, Any], default_id: str) -> Trajectory:
    history = record.get("history") or []
    if not isinstance(history, list):
        raise DataError("'history' is not a list of messages")
    entries = record.get("trajectory") or []
    if entries:
        steps = _steps_from_trajectory(entries, history)
    else:
        steps = steps_from_messages(history, parse_response_text)
    info = record.get("info") or {}
    env = record.get("environment")
    traj_id = record.get("instance_id") or default_id
    return Trajectory(
        id=str(traj_id), problem_statement=_problem_statement(record, history), steps=steps,
        patch=info.get("submission"), resolved=None, source_format=NAME,
        metadata={k: v for k, v in {"environment": env, "exit_status": info.get("exit_status")}.items()
                  if v is not None})
