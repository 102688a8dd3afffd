"""The Docker sandbox (docker SDK): one labelled, hardened container per task, always removed.

Hardening: no network (`network_mode=none`), every capability dropped, `no-new-privileges`, memory
(swap included), pid and CPU limits, no host mounts. PID 1 is docker-init (it reaps orphans) with a
root-owned `sleep infinity` as the keeper; commands run as the image's `agent` user where it has one.

Disk: no file may grow past the budget (`ulimit -f` on every command, which it cannot raise), the writable
layer gets a hard quota where the storage driver takes `--storage-opt size` (overlay2 on xfs with pquota;
an engine that refuses it is remembered and not asked again), and a DiskWatch reads the layer's size
(`SizeRw`) every second: past the budget, the user's processes are killed.

Timeouts: each command runs under `timeout -s KILL`, which kills its whole process group. If output
still streams after the deadline plus a grace period (a process that left the group), every process
of the command's user except the keeper is killed; the sandbox stays usable.

Cleanup: every container is labelled with this process's pid and start time and removed in
`close()` (also on Ctrl-C, through the context manager, and at interpreter exit). Starting a sandbox
sweeps labelled containers whose owner process is gone (a runner that was `kill -9`ed).

Engines: `config.engine` names any engine the docker SDK reaches (see container_engine.py); a local or remote
Docker, or Podman (podman.py). Calls that are safe to repeat are retried after transient engine errors,
and container starts wait for one of a few start slots.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import socket
import tarfile
import time
import uuid
from pathlib import Path

from ..errors import UserError
from ..images import collect_tool_executables, how_to_get
from . import LABEL, TOOLS_DIR_IN_SANDBOX, Observation, SandboxConfig
from .common import (
    KILLED,
    STATE_DIR,
    TIMEOUT_GRACE,
    DiskWatch,
    SandboxBase,
    collect_output,
    file_tarball,
    folder_tarball,
    quota_mb,
    repo_tarball,
    wrap_command,
)
from .container_engine import START_SLOTS, describe, engine_client, retrying

_LIVE: set[DockerSandbox] = set()  # strong: a sandbox nobody closed is still removed at exit
_SWEPT: set[tuple[str, str | None]] = set()  # (sandbox class, engine URL) swept of dead owners' containers
_NO_QUOTA: set[tuple[str, str | None]] = set()  # (sandbox class, engine URL) whose storage driver refused a size
MAX_READ = 64 * 1024 * 1024


def _process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {LABEL: "1", f"{LABEL}.host": socket.gethostname(), f"{LABEL}.pid": str(pid),
            f"{LABEL}.pid-start": _process_start(pid) or "", f"{LABEL}.created": str(int(time.time()))}


def docker_client(timeout: int = 120, engine: str | None = None):
    """A client of the Docker engine at `engine` (default: DOCKER_HOST or the local socket); one clear error if none."""
    return engine_client(engine, timeout)


def sweep_leftovers(client) -> int:
    """Remove labelled containers of this host whose owner process no longer runs."""
    removed = 0
    host = socket.gethostname()
    # the plain listing (labels included): the SDK's model listing inspects each container, and one that
    # another process removes meanwhile would fail it
    for container in retrying(lambda: client.api.containers(all=True, filters={"label": LABEL})):
        labels = container.get("Labels") or {}
        if labels.get(f"{LABEL}.host") != host:
            continue
        pid = int(labels.get(f"{LABEL}.pid", "0") or 0)
        if pid and _process_start(pid) == labels.get(f"{LABEL}.pid-start"):
            continue  # its owner is alive
        try:
            client.api.remove_container(container["Id"], force=True)
            removed += 1
        except Exception:  # already gone: another process swept it first
            pass
    return removed


@atexit.register
def close_all() -> None:
    """Remove every container this process still holds (at exit, and when a run is interrupted)."""
    for sandbox in list(_LIVE):
        sandbox.close()


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# SWE-bench's images keep each repository's dependencies in this conda env; its commands run inside it.
SWEBENCH_CONDA_ENV = "/opt/miniconda3/envs/testbed"


class DockerSandbox(SandboxBase):
    limits_in_commands = False
    """True where the engine cannot apply memory and pid limits to containers: commands then get them as ulimits."""

    def __init__(self, config: SandboxConfig, repo: str | None = None, base_commit: str | None = None,
                 client=None):
        self.config = config
        self.client = client or self.connect()
        self.api = self.client.api
        self.container, self.name = None, None
        self.extra_env: dict[str, str] = {}
        self.base_commit = base_commit
        # by class and URL: the SDK's base_url is the same `http+docker://localhost` for every unix socket
        engine = (type(self).__name__, config.engine)
        if engine not in _SWEPT:
            _SWEPT.add(engine)
            sweep_leftovers(self.client)
        try:
            self._start()
            if repo is not None:
                self._copy_repo(repo)
            self.base_commit = self.base_commit or self.head_commit()
        except BaseException:
            self.close()
            raise

    # --- lifecycle ------------------------------------------------------------------------------

    def connect(self):
        return docker_client(engine=self.config.engine)

    def _image(self) -> str:
        import docker

        image = self.config.image
        try:
            retrying(lambda: self.client.images.get(image))
        except docker.errors.ImageNotFound:
            try:
                self.client.images.pull(image)
            except docker.errors.APIError as e:
                where = f"on {self.config.engine}" if self.config.engine else "here"
                raise UserError(f"image {image!r} is not {where} and cannot be pulled ({e.explanation}); "
                                f"{how_to_get(image, self.config.engine)}") from None
        return image

    def _start(self) -> None:
        image = self._image()  # outside the start slots: a pull may take minutes
        with START_SLOTS:
            self._create(image)
            self._probe()
        self.disk = DiskWatch(self._disk_used, self.config.disk_mb, lambda: self._kill_user_processes(self.exec_user))

    def _disk_used(self) -> int:
        """Bytes in the container's writable layer (the engine sums its files' sizes)."""
        (listed,) = self.api.containers(all=True, size=True, filters={"id": self.container.id})
        return listed.get("SizeRw") or 0

    def _create(self, image: str) -> None:
        """Create and start the container. A retry first removes what a failed attempt may have left (same name)."""
        import docker

        cfg = self.config
        self.name = name = f"srl-agent-{uuid.uuid4().hex[:16]}"
        _LIVE.add(self)
        attempts = []
        engine = (type(self).__name__, cfg.engine)

        def attempt():
            if attempts:  # the engine may have made the container before its answer was lost
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_container(name, force=True)
            attempts.append(1)
            quota = {} if engine in _NO_QUOTA else {"storage_opt": {"size": f"{quota_mb(cfg.disk_mb)}m"}}
            try:
                return self.client.containers.run(
                    image, ["sleep", "infinity"], name=name, detach=True, init=True, user="root",
                    labels=owner_labels(), network_mode="bridge" if cfg.network else "none", cap_drop=["ALL"],
                    security_opt=["no-new-privileges"], pids_limit=cfg.pids, mem_limit=cfg.memory,
                    memswap_limit=cfg.memory, nano_cpus=int(cfg.cpus * 1e9), working_dir="/", environment=cfg.env,
                    **quota)
            except docker.errors.APIError as e:
                # "--storage-opt is supported only for overlay over xfs with 'pquota' mount option" (Podman: a 500)
                if not quota or "storage-opt" not in str(e.explanation or e):
                    raise
                _NO_QUOTA.add(engine)
                return attempt()

        try:
            self.container = retrying(attempt)
        except docker.errors.APIError as e:  # after the retries: one line, not the SDK's traceback
            raise UserError(f"{describe(cfg.engine)} cannot start a container from {image!r}: "
                            f"{e.explanation or e}") from None

    def _probe(self) -> None:
        cfg = self.config
        # One root exec learns the agent user's ids and the keeper's pid (docker-init's child).
        # It may appear late on a loaded machine: wait up to 20 s, not the 1 s an idle one needs.
        keeper = ("i=0; while [ $i -lt 200 ]; do c=$(cat /proc/1/task/1/children 2>/dev/null); "
                  '[ -n "$c" ] && break; sleep 0.1; i=$((i+1)); done; echo keeper $c')
        ids = f"id -u {cfg.user} 2>/dev/null && id -g {cfg.user}; " if cfg.user else ""
        tools = f"[ -x {TOOLS_DIR_IN_SANDBOX}/submit ] || echo no-tools; "
        conda = f"[ -x {SWEBENCH_CONDA_ENV}/bin/python ] && echo conda-env; "
        for _ in range(3):  # read-only, so safe to repeat: under load an exec's output has come back empty
            probe = self._exec(["sh", "-c", ids + tools + conda + keeper], user="root", timeout=30)
            lines = probe.output.split()
            if "keeper" in lines[:-1]:  # with its pid after it
                break
        else:
            raise RuntimeError(f"cannot find the container's keeper process: {probe.output!r}")
        path: list[str] = []
        if "no-tools" in lines:
            self._install_tools()
            path.append(TOOLS_DIR_IN_SANDBOX)
        if "conda-env" in lines:  # what `conda activate testbed` in the harness's eval script does
            path.append(f"{SWEBENCH_CONDA_ENV}/bin")
            self.extra_env.update(CONDA_PREFIX=SWEBENCH_CONDA_ENV, CONDA_DEFAULT_ENV="testbed")
        if path:
            image_env = dict(e.split("=", 1) for e in self.container.attrs["Config"].get("Env") or [] if "=" in e)
            self.extra_env["PATH"] = ":".join([*path, image_env.get("PATH", DEFAULT_PATH)])
        self.keeper = lines[lines.index("keeper") + 1]
        has_user = cfg.user is not None and lines[0].isdigit()
        self.exec_user = cfg.user if has_user else None
        self.uid, self.gid = (int(lines[0]), int(lines[1])) if has_user else (0, 0)
        # The workdir and the tools' state folder, owned by the command user.
        self._put("/", _dirs_tarball([cfg.workdir, STATE_DIR], self.uid, self.gid))

    def _put(self, path: str, tar: bytes) -> None:
        retrying(lambda: self.api.put_archive(self.container.id, path, tar))

    def _install_tools(self) -> None:
        """Images that are not ours (e.g. SWE-bench's) get the tools copied in and put first on PATH."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="srl-tools-") as tmp:
            collect_tool_executables(Path(tmp))
            self._put("/", folder_tarball(tmp, TOOLS_DIR_IN_SANDBOX))

    def _copy_repo(self, repo: str) -> None:
        self._put("/", repo_tarball(repo, self.config.workdir, self.uid, self.gid))

    def close(self) -> None:
        if self.disk:
            self.disk.close()
        container, self.container = self.container, None
        name, self.name = self.name, None  # a start that failed half way may have left it
        if container is not None or name:
            with contextlib.suppress(Exception):  # already removed (swept, or the daemon restarted)
                retrying(lambda: self.api.remove_container(container.id if container else name, force=True),
                         tries=3)
        _LIVE.discard(self)

    # --- commands -------------------------------------------------------------------------------

    def run(self, command: str, timeout: float | None = None, env: dict[str, str] | None = None) -> Observation:
        return self._exec(wrap_command(command, timeout or self.config.default_timeout, self.config,
                                       self.limits_in_commands),
                          user=self.exec_user, timeout=timeout or self.config.default_timeout,
                          env={**self.extra_env, **self.tool_env(), **(env or {})}, workdir=self.config.workdir)

    def _exec(self, argv: list[str], user: str | None, timeout: float, env: dict[str, str] | None = None,
              workdir: str = "/") -> Observation:
        if self.container is None:
            raise RuntimeError("the sandbox is closed")
        start = time.monotonic()
        container = self.container.id
        exec_id = retrying(lambda: self.api.exec_create(container, argv, user=user or "", workdir=workdir,
                                                        environment=env))["Id"]
        stream = self.api.exec_start(exec_id, stream=True)  # not repeated: the command may have run
        # past the deadline something escaped the process group: kill everything the user runs
        collector, forced = collect_output(stream, self.config.output_limit, timeout + TIMEOUT_GRACE,
                                           lambda: self._kill_user_processes(user))
        exit_code = retrying(lambda: self.api.exec_inspect(exec_id)).get("ExitCode")
        duration = time.monotonic() - start
        timed_out = forced or (exit_code == KILLED and duration >= timeout - 0.5)
        if timed_out and not forced:  # also end what left the process group (setsid, daemons)
            self._kill_user_processes(user)
        # measured now too: a quick writer ends before the watch's next look
        disk_exceeded = self.disk is not None and self.disk.over()
        return collector.observation(exit_code, timed_out, duration, disk_exceeded)

    def _kill_user_processes(self, user: str | None) -> None:
        script = (f"for d in /proc/[0-9]*; do p=${{d#/proc/}}; case $p in 1|{self.keeper}|$$) ;; "
                  "*) kill -9 $p 2>/dev/null;; esac; done")
        exec_id = self.api.exec_create(self.container.id, ["sh", "-c", script], user=user or "root")["Id"]
        self.api.exec_start(exec_id)

    # --- files ----------------------------------------------------------------------------------

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        import docker

        payload = data.encode() if isinstance(data, str) else data
        parent, name = os.path.split(path)
        tar = file_tarball(name, payload, mode, self.uid, self.gid)
        try:
            self._put(parent or "/", tar)
        except docker.errors.NotFound:
            self._put("/", _dirs_tarball([parent], self.uid, self.gid))
            self._put(parent, tar)

    def read_file(self, path: str) -> bytes:
        import docker

        try:
            stream, _ = retrying(lambda: self.api.get_archive(self.container.id, path))
        except docker.errors.NotFound:
            raise FileNotFoundError(path) from None
        data = bytearray()
        for chunk in stream:
            data += chunk
            if len(data) > MAX_READ + 1024 * 1024:
                raise ValueError(f"{path}: larger than {MAX_READ} bytes")
        with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise IsADirectoryError(path)
            return tar.extractfile(member).read()


def _dirs_tarball(paths: list[str], uid: int, gid: int) -> bytes:
    """Tar entries that create the folders `paths`, owned by uid:gid.

    Only the leaves are entries: an entry for an existing parent such as /tmp would reset its mode.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in dict.fromkeys(p.strip("/") for p in paths):
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
            tar.addfile(info)
    return buf.getvalue()
