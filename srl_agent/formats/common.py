"""Helpers shared by the importers: message text, problem statements and chat-to-steps."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..errors import DataError, FormatViolation
from ..tools import normalise_call
from ..types import Step, ToolCall

_PROBLEM_WRAPPERS = [
    re.compile(r"<pr_description>\s*(.*?)\s*</pr_description>", re.DOTALL),
    re.compile(r"<issue>\s*(.*?)\s*</issue>", re.DOTALL),
    re.compile(r"ISSUE:\n(.*?)\n+INSTRUCTIONS:", re.DOTALL),
    re.compile(r"Please solve this issue: (.*?)\n\nYou can execute", re.DOTALL),
]
_OBSERVATION_PREFIX = re.compile(r"^OBSERVATION:\n")

# A text-form action parser: (assistant text) -> (thought, call), or None when the message holds
# no action. It raises FormatViolation for an action it cannot parse.
TextActionParser = Callable[[str], "tuple[str, ToolCall] | None"]


def content_text(content: Any) -> str:
    """Message content as text: plain strings, None, or OpenAI-style lists of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def observation_text(content: Any) -> str:
    return _OBSERVATION_PREFIX.sub("", content_text(content), count=1)


def extract_problem_statement(text: str) -> str:
    """The issue text inside a scaffold's task prompt (PR description, ISSUE: block, ...)."""
    for pattern in _PROBLEM_WRAPPERS:
        m = pattern.search(text)
        if m:
            return m[1].strip()
    return text.strip()


def parse_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    return {"true": True, "false": False, "1": True, "0": False}.get(str(value).strip().lower())


def call_from_openai(tool_call: dict[str, Any], step: int) -> ToolCall:
    """An OpenAI-shaped `tool_calls` entry as a normalised ToolCall."""
    fn = tool_call.get("function") or {}
    name, args = fn.get("name"), fn.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise DataError("tool call has no function name", step=step)
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise DataError(f"arguments of tool call {name!r} are not valid JSON ({e.msg})",
                            step=step) from None
    if not isinstance(args, dict):
        raise DataError(f"arguments of tool call {name!r} are not a JSON object", step=step)
    return normalise_call(name, args)


def first_user_text(messages: list[dict[str, Any]], skip_prefix: str = "Here is a demonstration") -> str:
    for m in messages:
        if m.get("role") == "user":
            text = content_text(m.get("content"))
            if not text.startswith(skip_prefix):
                return text
    return ""


def steps_from_messages(messages: list[Any], text_action: TextActionParser | None = None) -> list[Step]:
    """Cut a chat transcript into steps: each assistant tool call, then what answered it.

    Structured `tool_calls` win; otherwise `text_action` parses the assistant text. Tool messages
    are observations; a user message is one only for a text-form action still without one (later
    user turns, such as "please continue" nudges, are not).
    """
    steps: list[Step] = []
    by_call_id: dict[str, Step] = {}
    pending: Step | None = None  # the last text-form step, waiting for a user observation
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise DataError(f"message {i} is not a chat message with a 'role'")
        role = m["role"]
        if role == "assistant":
            pending = None
            content = content_text(m.get("content"))
            thought = content_text(m.get("thought")) or content
            calls = m.get("tool_calls") or []
            for j, tc in enumerate(calls):
                step = Step(thought if j == 0 else "", call_from_openai(tc, len(steps)))
                steps.append(step)
                by_call_id[str(tc.get("id"))] = step
            if not calls and text_action is not None:
                try:
                    parsed = text_action(content)
                except FormatViolation as e:
                    raise DataError(f"cannot parse the action: {e}", step=len(steps)) from None
                if parsed is not None:
                    pending = Step(parsed[0], parsed[1])
                    steps.append(pending)
        elif role == "tool" and steps:
            ids = m.get("tool_call_ids") or [m.get("tool_call_id")]
            target = next((by_call_id[str(x)] for x in ids if str(x) in by_call_id), steps[-1])
            text = observation_text(m.get("content"))
            target.observation = f"{target.observation}\n{text}" if target.observation else text
        elif role == "user" and pending is not None:
            pending.observation = observation_text(m.get("content"))
            pending = None
    return steps


def load_messages(value: Any) -> list[dict[str, Any]]:
    """A `messages` column: a list, or a JSON string of one (as SWE-smith stores it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"'messages' is a string but not valid JSON ({e.msg})") from None
    if not isinstance(value, list):
        raise DataError(f"'messages' must be a list of chat messages, got {type(value).__name__}")
    return value
