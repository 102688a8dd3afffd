"""SWE-smith trajectory rows (`SWE-bench/SWE-smith-trajectories`).

Columns: `messages` (a JSON *string* of SWE-agent history messages), `instance_id`, `resolved`,
`model`, `traj_id`, `patch`. Calls are structured `tool_calls`, or text in the "xml" style
(`<function=bash><parameter=command>ls</parameter></function>`).
"""

from __future__ import annotations

from typing import Any

from ..types import Trajectory
from .common import extract_problem_statement, first_user_text, load_messages, parse_bool, steps_from_messages
from .swe_agent import parse_response_text

NAME = "swe-smith"


def detect(record: Any) -> bool:
    if not isinstance(record, dict) or "messages" not in record:
        return False
    messages = record["messages"]
    return "traj_id" in record or isinstance(messages, str) or (
        isinstance(messages, list) and any(isinstance(m, dict) and "message_type" in m for m in messages))


def parse(record: dict[str, Any], default_id: str) -> Trajectory:
    messages = load_messages(record["messages"])
    steps = steps_from_messages(messages, parse_response_text)
    traj_id = record.get("traj_id") or record.get("instance_id") or default_id
    return Trajectory(
        id=str(traj_id),
        problem_statement=record.get("problem_statement")
        or extract_problem_statement(first_user_text(messages)),
        steps=steps, patch=record.get("patch"), resolved=parse_bool(record.get("resolved")),
        source_format=NAME,
        metadata={k: record[k] for k in ("instance_id", "model") if record.get(k) is not None})
