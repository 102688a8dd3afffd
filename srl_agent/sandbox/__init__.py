"""Sandboxes: where expert and policy tool calls run. One small protocol, three implementations.

- `DockerSandbox` (docker SDK): a labelled container per task with no network, a non-root user,
  all capabilities dropped, and memory, pid and CPU limits, on the local engine or any engine URL.
- `PodmanSandbox`: the same through Podman's Docker-compatible API (rootless where Docker is not allowed).
- `BwrapSandbox` (bubblewrap): the fallback where no Docker daemon answers: a read-only view of the
  host system, a writable copy of the repository, no network.

    with open_sandbox(SandboxConfig(image="srl-agent/swe:latest"), repo="path/to/checkout") as sb:
        obs = sb.run("pytest -x", timeout=60)
        print(obs.output, obs.exit_code, obs.timed_out)
        print(sb.diff())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

SandboxKind = Literal["auto", "docker", "podman", "bwrap"]
LABEL = "srl-agent"  # every container carries this label (value "1"), swept by label
DEFAULT_IMAGE = "srl-agent/swe:latest"
TOOLS_DIR_IN_SANDBOX = "/opt/srl-tools/bin"
DEFAULT_DISK_MB = 4096


@dataclass
class Observation:
    """What a command produced: combined stdout+stderr (capped, decoded safely) and how it ended."""

    output: str
    exit_code: int | None
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    disk_exceeded: bool = False
    """The sandbox wrote past its disk budget (`SandboxConfig.disk_mb`): its episode ends with `disk_limit`."""


@dataclass
class SandboxConfig:
    """Limits and identity of a sandbox. The defaults are the hardened ones."""

    image: str = DEFAULT_IMAGE
    """Docker image (ignored by bwrap)."""
    engine: str | None = None
    """URL of the container engine (`unix://…`, `tcp://…`, `ssh://…`). None: DOCKER_HOST or the local Docker,
    or for Podman CONTAINER_HOST or its rootless socket."""
    workdir: str = "/testbed"
    """Where the repository lives inside the sandbox (the SWE-bench convention)."""
    user: str | None = "agent"
    """Commands run as this user; None or a user the image lacks means the image's default user."""
    network: bool = False
    """Network access. Off unless asked for."""
    memory: str = "2g"
    pids: int = 512
    cpus: float = 2.0
    output_limit: int = 100_000
    """Bytes of output kept per command; the rest is dropped and counted."""
    default_timeout: float = 120.0
    disk_mb: int = DEFAULT_DISK_MB
    """Disk budget in MiB: all the sandbox writes (its copy of the repository included). A command that writes past
    it is killed and its Observation says `disk_exceeded` (docs/sandboxes.md says how each engine enforces it)."""
    env: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Sandbox(Protocol):
    config: SandboxConfig

    def run(self, command: str, timeout: float | None = None, env: dict[str, str] | None = None) -> Observation:
        """Run a bash command in the workdir; killed hard after `timeout` seconds."""

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...

    def read_file(self, path: str) -> bytes: ...

    def diff(self) -> str:
        """The repository's changes (new files included) against its base commit."""

    def close(self) -> None: ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc) -> None: ...


def docker_available() -> bool:
    """True when a Docker daemon answers."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:  # the SDK raises many types when no daemon is there
        return False


def open_sandbox(config: SandboxConfig | None = None, kind: SandboxKind = "auto", repo: str | None = None,
                 base_commit: str | None = None) -> Sandbox:
    """Start a sandbox (Docker when a daemon answers, else bubblewrap; or Podman), with `repo` copied in."""
    config = config or SandboxConfig()
    if kind == "auto":
        kind = "docker" if config.engine or docker_available() else "bwrap"
    if kind == "docker":
        from .docker import DockerSandbox

        return DockerSandbox(config, repo=repo, base_commit=base_commit)
    if kind == "podman":
        from .podman import PodmanSandbox

        return PodmanSandbox(config, repo=repo, base_commit=base_commit)
    if kind == "bwrap":
        from .bwrap import BwrapSandbox

        return BwrapSandbox(config, repo=repo, base_commit=base_commit)
    raise ValueError(f"unknown sandbox kind {kind!r}; choose auto, docker, podman or bwrap")
