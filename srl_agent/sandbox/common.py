"""Pieces both sandboxes share: output capping, the command wrapper, repository tarballs."""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
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

    def observation(self, exit_code: int | None, timed_out: bool, duration: float,
                    disk_exceeded: bool = False) -> Observation:
        text = bytes(self.kept).decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes not shown]"
        if disk_exceeded:
            text += "\n[the sandbox wrote past its disk budget]"
        return Observation(text, exit_code, timed_out, bool(self.dropped), duration, disk_exceeded)


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


def wrap_command(command: str, timeout: float, config: SandboxConfig, memory_and_pids: bool = False) -> list[str]:
    """argv that runs `command` in bash, stderr into stdout, killed (with its process group) at `timeout`.

    The command's largest file is the disk budget (`ulimit -f`, in KiB; set here because Podman's API drops a
    container's ulimits) and it dumps no core. With `memory_and_pids` it also gets its memory and pid limits as
    ulimits (address space per process, processes per user), for engines that cannot put them on the container.
    Without capabilities the command cannot raise them again.
    """
    seconds = max(1, round(timeout))
    limits = f"-f {config.disk_mb * 1024} -c 0"
    if memory_and_pids:
        limits += f" -u {config.pids} -v {parse_bytes(config.memory) // 1024}"
    return ["timeout", "-s", "KILL", f"{seconds}s", "bash", "-c", f"ulimit {limits} 2>/dev/null\nexec 2>&1\n{command}"]


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


MIB = 1 << 20
DISK_POLL = 1.0
"""Seconds between two measurements of a sandbox's disk use."""


def quota_mb(disk_mb: int) -> int:
    """An engine's hard quota on a sandbox's disk, where it has one: past the budget by a margin, so that the watch
    sees the budget passed (and reports it) before the quota refuses writes."""
    return disk_mb + max(disk_mb // 4, 64)


class DiskWatch:
    """A sandbox's disk budget, watched: a daemon thread measures the sandbox's use every DISK_POLL seconds and,
    while it is past `budget_mb`, calls `stop` (which kills the sandbox's commands, background ones included).

    `measure()` gives the bytes the sandbox has written; while `idle()` nothing in it can write, and the thread does
    not look. The framework's own commands (the diff after an episode) run `paused`: they are not killed, so a
    sandbox past its budget still hands in its patch.
    """

    def __init__(self, measure: Callable[[], int], budget_mb: int, stop: Callable[[], None],
                 idle: Callable[[], bool] = lambda: False):
        self.measure, self.budget, self.stop, self.idle = measure, budget_mb * MIB, stop, idle
        self.paused = False
        self._closed = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="srl-disk-watch").start()

    def over(self) -> bool:
        """Whether the sandbox is past its budget now; if it is (and not paused), its commands are killed."""
        try:
            used = self.measure()
        except Exception:  # the sandbox is going away (its container removed, its tree deleted)
            return False
        if used < self.budget:  # a file the size limit stopped at the budget is a write past it
            return False
        if not self.paused:
            self.stop()
        return True

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        self.paused = True
        try:
            yield
        finally:
            self.paused = False

    def _watch(self) -> None:
        while not self._closed.wait(DISK_POLL):
            if not self.idle():
                with contextlib.suppress(Exception):  # a kill that raced the sandbox's removal
                    self.over()

    def close(self) -> None:
        self._closed.set()


STATE_DIR = "/tmp/.srl"  # per-sandbox state of the tools (shell cwd, editor history, patches)


class SandboxBase:
    """What both implementations share: the context manager, the diff, the tools' environment."""

    config: SandboxConfig
    base_commit: str | None = None
    disk: DiskWatch | None = None
    """The disk budget's watch, once the sandbox has started."""

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
        with self.disk.pause() if self.disk else contextlib.nullcontext():
            obs = self.run(f"mkdir -p {STATE_DIR} && rm -f {patch} && submit > {patch}", timeout=120)
        if obs.exit_code != 0:
            raise RuntimeError(f"git diff failed in the sandbox: {obs.output.strip()[:500]}")
        return self.read_file(patch).decode("utf-8", errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
