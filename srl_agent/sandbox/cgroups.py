"""Per-sandbox cgroups for the bubblewrap sandbox: memory and pid limits, and a sure way to kill.

Works with cgroup v2 (one unified tree) and v1 (one tree per controller), where the process may
create cgroups (as root, typically). Elsewhere `Cgroup.create` returns None and bwrap runs without
these limits (it still has its namespaces, no network and a read-only system).
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def parse_bytes(size: str) -> int:
    """Docker's memory notation (`512m`, `2g`, plain bytes) in bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    size = size.strip().lower().rstrip("b")
    return int(float(size[:-1]) * units[size[-1]]) if size[-1] in units else int(size)


class Cgroup:
    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def create(cls, memory: str, pids: int) -> Cgroup | None:
        name = f"srl-agent-{uuid.uuid4().hex[:12]}"
        limit = str(parse_bytes(memory))
        group = cls([])
        try:
            if (ROOT / "cgroup.controllers").exists():  # v2: one folder, every controller
                settings = {ROOT / name: {"memory.max": limit, "memory.swap.max": "0", "pids.max": str(pids)}}
            else:  # v1: one folder per controller
                memory_values = {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit}
                settings = {ROOT / "memory" / name: memory_values, ROOT / "pids" / name: {"pids.max": str(pids)}}
            for folder, values in settings.items():
                folder.mkdir()
                group.dirs.append(folder)
                for key, value in values.items():
                    if (folder / key).exists():  # swap accounting may be off
                        (folder / key).write_text(value)
            return group
        except OSError:
            group.remove()
            return None

    def enter(self) -> None:
        """Move the calling process in (used as a subprocess preexec_fn, before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
