"""git under a fixed author and date: the same files always give the same commit, which images check."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import UserError


def git(repo: Path, *args: str, identity: dict[str, str], stdin: str | None = None) -> str:
    """`git ARGS` in `repo` as `identity` (GIT_AUTHOR_* / GIT_COMMITTER_* variables); a failure is a UserError with
    git's message."""
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True,
                          env={**os.environ, **identity})
    if proc.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()[-500:]}")
    return proc.stdout
