"""The bubblewrap sandbox: the fallback where no Docker daemon answers.

Each command runs in fresh namespaces (`--unshare-all`: no network unless asked, own pid space,
so background processes end with the command) as uid 1000, with all capabilities dropped. The host
system folders (/usr, /etc, ...) are mounted read-only; the repository is a writable copy at the
workdir; /tmp is private to the sandbox. Where cgroups can be made, memory and pid limits apply and
every process of a timed-out command is killed through them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..errors import UserError
from ..images import collect_tool_executables
from . import TOOLS_DIR_IN_SANDBOX, Observation, SandboxConfig
from .cgroups import Cgroup
from .common import KILLED, STATE_DIR, TIMEOUT_GRACE, OutputCollector, SandboxBase, wrap_command

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
SANDBOX_UID = 1000


class BwrapSandbox(SandboxBase):
    def __init__(self, config: SandboxConfig, repo: str | None = None, base_commit: str | None = None):
        if shutil.which("bwrap") is None:
            raise UserError("bubblewrap is not installed (apt-get install bubblewrap), and no Docker daemon answers")
        self.config = config
        self.base_commit = base_commit
        self.root = Path(tempfile.mkdtemp(prefix="srl-bwrap-"))
        self.work, self.state, self.tmp = self.root / "work", self.root / "state", self.root / "tmp"
        self.cgroup = Cgroup.create(config.memory, config.pids)
        try:
            if repo is not None:
                if not (Path(repo) / ".git").exists():
                    raise UserError(f"{repo}: not a git repository (the sandbox needs its base commit for diffs)")
                shutil.copytree(repo, self.work, symlinks=True)
            else:
                self.work.mkdir()
            self.state.mkdir()
            self.tmp.mkdir()
            collect_tool_executables(self.root / "tools")
            if self.base_commit is None:
                head = self.run("git rev-parse HEAD 2>/dev/null", timeout=30)
                self.base_commit = head.output.strip() if head.exit_code == 0 else None
        except BaseException:
            self.close()
            raise

    def _argv(self, command: str, timeout: float, env: dict[str, str]) -> list[str]:
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        if self.config.network:
            argv.append("--share-net")
        for name in SYSTEM_DIRS:
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(self.tmp), "/tmp",
                 "--bind", str(self.state), STATE_DIR, "--bind", str(self.work), self.config.workdir,
                 "--ro-bind", str(self.root / "tools"), TOOLS_DIR_IN_SANDBOX, "--chdir", self.config.workdir,
                 "--clearenv"]
        full_env = {"PATH": f"{TOOLS_DIR_IN_SANDBOX}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                    "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ADDOPTS": "-p no:cacheprovider",
                    "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*", **env}
        for key, value in full_env.items():
            argv += ["--setenv", key, value]
        return [*argv, "--", *wrap_command(command, timeout)]

    def run(self, command: str, timeout: float | None = None, env: dict[str, str] | None = None) -> Observation:
        timeout = timeout or self.config.default_timeout
        start = time.monotonic()
        proc = subprocess.Popen(self._argv(command, timeout, {**self.tool_env(), **(env or {})}),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=self.cgroup.enter if self.cgroup else None)
        collector = OutputCollector(self.config.output_limit)
        pump = threading.Thread(target=lambda: [collector.feed(c) for c in iter(lambda: proc.stdout.read1(65536), b"")],
                                daemon=True)
        pump.start()
        pump.join(timeout + TIMEOUT_GRACE)
        forced = pump.is_alive()
        if forced:
            self._kill(proc)
            pump.join(TIMEOUT_GRACE)
        exit_code = proc.wait()
        duration = time.monotonic() - start
        timed_out = forced or (exit_code == KILLED and duration >= timeout - 0.5)
        if timed_out:
            self._kill(proc)
        return collector.observation(exit_code, timed_out, duration)

    def _kill(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        if self.cgroup:
            self.cgroup.kill_all()

    def _host_path(self, path: str) -> Path:
        for inside, outside in ((self.config.workdir, self.work), (STATE_DIR, self.state), ("/tmp", self.tmp)):
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                return outside / os.path.relpath(path, inside)
        raise PermissionError(f"{path}: outside the sandbox's writable folders")

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        target = self._host_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)

    def read_file(self, path: str) -> bytes:
        return self._host_path(path).read_bytes()

    def close(self) -> None:
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None
        shutil.rmtree(self.root, ignore_errors=True)
