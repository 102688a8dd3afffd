"""OpenHands / SWE-Gym rows (`SWE-Gym/OpenHands-Sampled-Trajectories`) and similar message rows.

Rows: `instance_id`, `run_id`, `resolved`, `messages` (OpenAI chat with `tool_calls` for
`execute_bash`, `str_replace_editor` and `finish`; results are `role: tool`), `test_result`
(with `git_patch`). `execute_bash` becomes `bash` and `finish` becomes `submit`.
"""

from __future__ import annotations

import json
from typing import Any

from ..types import Trajectory
from .common import extract_problem_statement, first_user_text, load_messages, parse_bool, steps_from_messages

NAME = "openhands"


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "messages" in record


def _patch(record: dict[str, Any]) -> str | None:
    result = record.get("test_result")
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except json.JSONDecodeError:
            result = None
    if isinstance(result, dict) and result.get("git_patch"):
        return result["git_patch"]
    return record.get("patch") or record.get("git_patch")


def parse(record: dict[str, Any], default_id: str) -> Trajectory:
    messages = load_messages(record["messages"])
    instance = record.get("instance_id")
    traj_id = f"{instance}/{record['run_id']}" if instance and record.get("run_id") else instance
    return Trajectory(
        id=str(traj_id or default_id),
        problem_statement=extract_problem_statement(first_user_text(messages)),
        steps=steps_from_messages(messages), patch=_patch(record),
        resolved=parse_bool(record.get("resolved")), source_format=NAME,
        metadata={k: record[k] for k in ("instance_id", "run_id") if record.get(k) is not None})
