"""The bubblewrap sandbox: the fallback where no Docker daemon answers.

Each command runs in fresh namespaces (`--unshare-all`: no network unless asked, own pid space,
so background processes end with the command, no further user namespaces) as uid 1000, with all
capabilities dropped. Run as root, bubblewrap itself runs as the unprivileged SANDBOX_HOST_ID (in a
user namespace uid 1000 would otherwise be the host's root), which owns the sandbox's writable tree.
The host system folders (/usr, /etc, ...) are mounted read-only; the repository is a writable copy
at the workdir; /tmp is private to the sandbox. Where cgroups can be made, memory and pid limits
apply and every process of a timed-out command is killed through them.

Disk: the sandbox's writable tree is a host folder. No file may grow past the budget (`ulimit -f`, which no
one in the user namespace can raise), and a DiskWatch sums the tree's allocated blocks every second while
it exists: past the budget, the running command is killed. Nothing outlives its command, so nothing writes
between commands.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..errors import UserError
from ..images import collect_tool_executables
from . import TOOLS_DIR_IN_SANDBOX, Observation, SandboxConfig
from .cgroups import Cgroup
from .common import (
    KILLED,
    STATE_DIR,
    TIMEOUT_GRACE,
    DiskWatch,
    SandboxBase,
    collect_output,
    require_git_repo,
    wrap_command,
)

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Only what programs need from /etc: the rest (shadow, ssh keys, ...) stays out of reach.
ETC_ENTRIES = ("passwd", "group", "hosts", "hostname", "nsswitch.conf", "ld.so.cache", "ld.so.conf",
               "ld.so.conf.d", "alternatives", "localtime", "ssl", "ca-certificates", "python3", "gitconfig",
               "bash.bashrc", "profile", "inputrc", "environment", "mime.types")
SANDBOX_UID = 1000
# Who the sandbox is on the host when this process is root: "nobody", which owns no files and gets no capabilities.
SANDBOX_HOST_ID = 65534
MAX_READ = 64 * 1024 * 1024


class BwrapSandbox(SandboxBase):
    def __init__(self, config: SandboxConfig, repo: str | None = None, base_commit: str | None = None):
        if shutil.which("bwrap") is None:
            raise UserError("bubblewrap is not installed (apt-get install bubblewrap), and no Docker daemon answers")
        self.config = config
        self.base_commit = base_commit
        self.root = Path(tempfile.mkdtemp(prefix="srl-bwrap-"))
        self.work, self.state, self.tmp = self.root / "work", self.root / "state", self.root / "tmp"
        self.cgroup = Cgroup.create(config.memory, config.pids)
        self.host_id = SANDBOX_HOST_ID if os.geteuid() == 0 else None  # None: we are unprivileged already
        self.command: subprocess.Popen | None = None  # the command running now, until it is waited for
        self.command_lock = threading.Lock()  # the watch kills it from its thread
        try:
            if repo is not None:
                require_git_repo(repo)
                shutil.copytree(repo, self.work, symlinks=True)
            else:
                self.work.mkdir()
            self.state.mkdir()
            self.tmp.mkdir()
            collect_tool_executables(self.root / "tools")
            if self.host_id is not None:
                self._hand_tree_to_sandbox()
            self.disk = DiskWatch(self._disk_used, config.disk_mb, self._kill_command,
                                  idle=lambda: self.command is None)
            started = self.run("true", timeout=30)
            if started.exit_code != 0:
                raise UserError("bubblewrap cannot start a sandbox here (it needs version 0.8 or newer, and user "
                                f"namespaces for unprivileged users): {' '.join(started.output.split())[:300]}")
            self.base_commit = self.base_commit or self.head_commit()
        except BaseException:
            self.close()
            raise

    def _hand_tree_to_sandbox(self) -> None:
        """The writable folders become SANDBOX_HOST_ID's (and no one else's to read); bubblewrap, run as that id,
        may pass through the root (not list it) to bind them. The tools stay root's, read-only."""
        self.root.chmod(0o711)
        for top in (self.work, self.state, self.tmp):
            os.chown(top, self.host_id, self.host_id)
            top.chmod(0o700)
            for folder, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.chown(os.path.join(folder, name), self.host_id, self.host_id, follow_symlinks=False)

    def _disk_used(self) -> int:
        """Bytes allocated to the sandbox's tree (blocks, so a million empty files count too)."""
        used, seen = 0, set()
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):  # a command may be deleting it
                    info = os.lstat(os.path.join(folder, name))
                    if (info.st_dev, info.st_ino) not in seen:  # a hard link is not more disk
                        seen.add((info.st_dev, info.st_ino))
                        used += info.st_blocks * 512
        return used

    def _start_process(self) -> None:
        """Runs in the child before bubblewrap starts: into the cgroup (as root), then, when root, down to
        SANDBOX_HOST_ID for good."""
        if self.cgroup:
            self.cgroup.enter()
        if self.host_id is not None:
            os.setgroups([])
            os.setresgid(self.host_id, self.host_id, self.host_id)
            os.setresuid(self.host_id, self.host_id, self.host_id)

    def _argv(self, command: str, timeout: float, env: dict[str, str]) -> list[str]:
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        if self.config.network:
            argv.append("--share-net")
        for name in SYSTEM_DIRS:
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        argv += ["--dir", "/etc"]
        for name in ETC_ENTRIES:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for versioned in sorted(Path("/etc").glob("python3.*")):
            argv += ["--ro-bind", str(versioned), str(versioned)]
        argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(self.tmp), "/tmp",
                 "--bind", str(self.state), STATE_DIR, "--bind", str(self.work), self.config.workdir,
                 "--ro-bind", str(self.root / "tools"), TOOLS_DIR_IN_SANDBOX, "--chdir", self.config.workdir,
                 "--clearenv"]
        full_env = {"PATH": f"{TOOLS_DIR_IN_SANDBOX}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                    "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ADDOPTS": "-p no:cacheprovider",
                    "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*", **env}
        for key, value in full_env.items():
            argv += ["--setenv", key, value]
        return [*argv, "--", *wrap_command(command, timeout, self.config)]

    def run(self, command: str, timeout: float | None = None, env: dict[str, str] | None = None) -> Observation:
        timeout = timeout or self.config.default_timeout
        start = time.monotonic()
        proc = subprocess.Popen(self._argv(command, timeout, {**self.tool_env(), **(env or {})}),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=self._start_process)
        self.command = proc
        chunks = iter(lambda: proc.stdout.read1(65536), b"")
        collector, forced = collect_output(chunks, self.config.output_limit, timeout + TIMEOUT_GRACE,
                                           self._kill_command)
        with self.command_lock:
            self.command = None
        exit_code = proc.wait()
        duration = time.monotonic() - start
        timed_out = forced or (exit_code == KILLED and duration >= timeout - 0.5)
        if timed_out and self.cgroup:  # the pid namespace ended with the command; the cgroup makes sure
            self.cgroup.kill_all()
        return collector.observation(exit_code, timed_out, duration, self.disk is not None and self.disk.over())

    def _kill_command(self) -> None:
        """Kill the running command's process group (its pid namespace ends with it). Only before wait(): the
        group's id cannot have been reused yet."""
        with self.command_lock:
            if self.command is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.command.pid, signal.SIGKILL)

    def _host_path(self, path: str) -> Path:
        """The host path behind a sandbox path; symlinks the sandbox made must not lead outside it."""
        for inside, outside in ((STATE_DIR, self.state), (self.config.workdir, self.work), ("/tmp", self.tmp)):
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                target = outside / os.path.relpath(path, inside)
                if not target.parent.resolve().is_relative_to(outside.resolve()):
                    raise PermissionError(f"{path}: leads outside the sandbox")
                return target
        raise PermissionError(f"{path}: outside the sandbox's writable folders")

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        target = self._host_path(path)
        for folder in reversed([p for p in (target.parent, *target.parent.parents) if not p.exists()]):
            folder.mkdir()
            if self.host_id is not None:  # what the host writes stays the sandbox's to change
                os.chown(folder, self.host_id, self.host_id, follow_symlinks=False)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with os.fdopen(os.open(target, flags, mode), "wb") as f:
            if self.host_id is not None:
                os.fchown(f.fileno(), self.host_id, self.host_id)
            f.write(data.encode() if isinstance(data, str) else data)

    def read_file(self, path: str) -> bytes:
        """At most MAX_READ bytes of a regular file (never through a symlink, never a device)."""
        try:
            fd = os.open(self._host_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise PermissionError(f"{path}: is a symlink") from None
            raise
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermissionError(f"{path}: not a regular file")
            return f.read(MAX_READ)

    def close(self) -> None:
        if self.disk:
            self.disk.close()
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None
        shutil.rmtree(self.root, ignore_errors=True)
