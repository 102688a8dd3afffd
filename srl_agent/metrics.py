"""A training run's metrics.jsonl: reading it back, and the RLVR episode statuses its rows count.

The trainer appends a row per step (and trims the file back on resume); `srl-agent plot` draws it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .jsonio import read_jsonl

STATUSES = ("submitted", "turn_limit", "format_errors", "token_limit", "disk_limit", "sandbox_error")
"""How an RLVR episode can end (see rlvr/episodes.py); each RLVR row counts them as `rlvr_status_<status>`."""


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise UserError(f"{path}: no metrics (is {run_dir} a training run folder?)")
    # a line cut short by a kill comes back as a DataError and is skipped
    return [row for _, row in read_jsonl(path, bad_lines="yield") if isinstance(row, dict)]
