"""srl-agent's own format: `Trajectory.to_dict()` per JSON object or JSONL row."""

from __future__ import annotations

from typing import Any

from ..errors import DataError
from ..types import Trajectory

NAME = "canonical"


def detect(record: Any) -> bool:
    return isinstance(record, dict) and "steps" in record and "problem_statement" in record


def parse(record: dict[str, Any], default_id: str) -> Trajectory:
    try:
        return Trajectory.from_dict(record)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"not a valid canonical trajectory ({type(e).__name__}: {e})") from None
