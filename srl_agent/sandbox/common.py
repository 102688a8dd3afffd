"""Pieces both sandboxes share: output capping, the command wrapper, repository tarballs."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import UserError
from . import Observation, SandboxConfig
from .cgroups import parse_bytes

# Exit status of `timeout -s KILL` when it fired (128 + SIGKILL).
KILLED = 137
TIMEOUT_GRACE = 5.0


class OutputCollector:
    """Keeps the first `limit` bytes of a stream and counts the rest."""

    def __init__(self, limit: int):
        self.limit, self.kept, self.dropped = limit, bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def observation(self, exit_code: int | None, timed_out: bool, duration: float) -> Observation:
        text = bytes(self.kept).decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes not shown]"
        return Observation(text, exit_code, timed_out, bool(self.dropped), duration)


def collect_output(chunks: Iterable[bytes], limit: int, deadline: float,
                   on_overrun: Callable[[], None]) -> tuple[OutputCollector, bool]:
    """Drain `chunks` in a thread; past `deadline` seconds call `on_overrun` (a kill) and wait a grace period.

    Returns the collector and whether the deadline passed.
    """
    collector = OutputCollector(limit)
    pump = threading.Thread(target=lambda: [collector.feed(c) for c in chunks], daemon=True)
    pump.start()
    pump.join(deadline)
    overran = pump.is_alive()
    if overran:
        on_overrun()
        pump.join(TIMEOUT_GRACE)
    return collector, overran


def wrap_command(command: str, timeout: float, limits: SandboxConfig | None = None) -> list[str]:
    """argv that runs `command` in bash, stderr into stdout, killed (with its process group) at `timeout`.

    With `limits`, the command also gets its memory and pid limits as ulimits (address space per process,
    processes per user), for engines that cannot put them on the container. Without capabilities the
    command cannot raise them again.
    """
    seconds = max(1, round(timeout))
    prefix = f"ulimit -u {limits.pids} -v {parse_bytes(limits.memory) // 1024} 2>/dev/null\n" if limits else ""
    return ["timeout", "-s", "KILL", f"{seconds}s", "bash", "-c", f"{prefix}exec 2>&1\n{command}"]


def require_git_repo(repo: str | Path) -> Path:
    root = Path(repo)
    if not (root / ".git").exists():
        raise UserError(f"{repo}: not a git repository (the sandbox needs its base commit for diffs)")
    return root


def repo_tarball(repo: str | Path, prefix: str, uid: int = 0, gid: int = 0) -> bytes:
    """The repository folder (with .git) as an in-memory tar under `prefix`, owned by uid:gid."""
    return folder_tarball(require_git_repo(repo), prefix, uid, gid)


def folder_tarball(root: str | Path, prefix: str, uid: int = 0, gid: int = 0) -> bytes:
    """A folder as an in-memory tar under `prefix`, owned by uid:gid."""
    buf = io.BytesIO()

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        return info

    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root, arcname=prefix.strip("/"), filter=owned)
    return buf.getvalue()


def file_tarball(name: str, data: bytes, mode: int, uid: int = 0, gid: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


STATE_DIR = "/tmp/.srl"  # per-sandbox state of the tools (shell cwd, editor history, patches)


class SandboxBase:
    """What both implementations share: the context manager, the diff, the tools' environment."""

    config: SandboxConfig
    base_commit: str | None = None

    def run(self, command: str, timeout: float | None = None, env: dict[str, str] | None = None) -> Observation:
        raise NotImplementedError

    def read_file(self, path: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def head_commit(self) -> str | None:
        """The repository's current commit: the base that diffs and `submit` compare against."""
        head = self.run("git rev-parse HEAD 2>/dev/null", timeout=30)
        return head.output.strip() if head.exit_code == 0 else None

    def tool_env(self) -> dict[str, str]:
        """Environment every command gets: the tools find the repo, its base commit and their state here."""
        env = {"SRL_REPO": self.config.workdir, "SRL_STATE_DIR": STATE_DIR, **self.config.env}
        if self.base_commit:
            env["SRL_BASE_COMMIT"] = self.base_commit
        return env

    def diff(self) -> str:
        """What `submit` would hand in (the same tool), written to a file so no output cap applies."""
        patch = f"{STATE_DIR}/diff.patch"
        obs = self.run(f"mkdir -p {STATE_DIR} && rm -f {patch} && submit > {patch}", timeout=120)
        if obs.exit_code != 0:
            raise RuntimeError(f"git diff failed in the sandbox: {obs.output.strip()[:500]}")
        return self.read_file(patch).decode("utf-8", errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
