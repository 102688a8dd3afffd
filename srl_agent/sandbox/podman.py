"""The Podman sandbox: the Docker sandbox through Podman's Docker-compatible API, rootless where Docker is not allowed.

Podman serves the Docker API from `podman system service` (run as the non-root user the sandboxes should
belong to), so the container, the hardening (no network, every capability dropped, `no-new-privileges`,
an init as PID 1: catatonit here), the labels, the sweep and the tools are exactly the Docker sandbox's. Images
come from the local Docker engine with `srl-agent env copy IMAGE --to podman` (`docker save | podman load`).

Limits: rootless Podman on cgroups v2 with delegated controllers puts memory, pid and CPU limits on the
container. Where it cannot (cgroups v1, or no delegation) it silently drops them; then every command
gets the memory and pid limits as ulimits instead (address space per process; processes per user, one
budget shared by all of the Podman user's sandboxes, whose users map to the same host uids), and there
is no CPU limit.
"""

from __future__ import annotations

from .container_engine import podman_client
from .docker import DockerSandbox


class PodmanSandbox(DockerSandbox):
    def connect(self):
        return podman_client(self.config.engine)

    def _probe(self) -> None:
        host = self.api.inspect_container(self.container.id)["HostConfig"]
        self.limits_in_commands = not (host.get("Memory") and host.get("PidsLimit"))
        super()._probe()
