"""RLVR episodes' sandboxes on a Ray cluster: the policy stays in the trainer, each sandbox lives on a Ray node.

    trainer process: policy, run_episodes                  a Ray node (spread over the cluster)
    RaySandbox --- run / write_file / read_file / diff ---> SandboxActor: one sandbox on this node's own engine
               <-- Observation / bytes / patch ----------

Under `episodes.executor: ray`, run_episodes opens each episode's sandbox as a `RaySandbox` of the SandboxConfig
it built (this module knows nothing of episodes): one actor per episode, placed round-robin over the live nodes
that offer CPUs and reserving none (the container, not the actor, does the work; `episodes.workers` bounds how
many calls run at once). The actor opens the task's image on its node's engine, so the images must be on every
node. The proxy has the sandbox methods the episode code calls (execute, verify, diff, close), one round trip
each.

Faults: when an actor's worker process or node dies, the proxy's next call raises, which run_episodes turns
into `sandbox_error` (reward 0, the reason logged) and the run goes on. The dead worker's container is left on
its node with a dead owner; closing the proxy sweeps that node's engine (sandbox/docker.py sweep_leftovers)
when the node lives. A new actor also sweeps its node when it opens its first sandbox, as eval's tasks do.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import socket
import threading

from ..errors import UserError
from ..sandbox import Observation, SandboxConfig

CALL_GRACE = 120.0
"""Seconds a round trip may take beyond the command's own timeout before the episode gives up on the node."""
_CONNECTING = threading.Lock()  # run_episodes opens sandboxes from several threads; ray.init must run once
_PLACED = itertools.count()


class SandboxActor:
    """One sandbox on the node this actor runs on (a Ray actor: its own worker process)."""

    def open(self, config: SandboxConfig, kind: str, base_commit: str | None) -> tuple[str, str]:
        """Start the sandbox; returns (node id, host:pid) of where it runs."""
        import ray

        from ..sandbox import open_sandbox

        self.sandbox = open_sandbox(config, kind=kind, base_commit=base_commit)
        return ray.get_runtime_context().get_node_id(), f"{socket.gethostname()}:{os.getpid()}"

    def run(self, command: str, timeout: float | None, env: dict[str, str] | None) -> Observation:
        return self.sandbox.run(command, timeout=timeout, env=env)

    def write_file(self, path: str, data: bytes | str, mode: int) -> None:
        self.sandbox.write_file(path, data, mode)

    def read_file(self, path: str) -> bytes:
        return self.sandbox.read_file(path)

    def diff(self) -> str:
        return self.sandbox.diff()

    def close(self) -> None:
        self.sandbox.close()


def sweep_node(kind: str) -> int:
    """Remove the containers of dead owners on this node's engine (a Ray task pinned to the node)."""
    from ..sandbox.container_engine import engine_client, podman_client
    from ..sandbox.docker import sweep_leftovers

    with contextlib.closing((podman_client if kind == "podman" else engine_client)()) as client:
        return sweep_leftovers(client)


@functools.cache
def _remote(ray):
    """The Ray versions of the actor and the sweep, made once per process."""
    actor = ray.remote(num_cpus=0, max_restarts=0)(SandboxActor)
    return actor, ray.remote(num_cpus=0, max_retries=0)(sweep_node)


def next_node(ray) -> str:
    """The node for the next sandbox: round-robin over the live nodes with CPUs (Ray's SPREAD does not spread
    actors that reserve nothing)."""
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)
    if not nodes:
        raise UserError("the Ray cluster has no live node with CPUs to run sandboxes on")
    return nodes[next(_PLACED) % len(nodes)]


class RaySandbox:
    """The Sandbox interface for one episode, run by a SandboxActor on a Ray node: `open_sandbox(config, kind,
    base_commit)` there, on the cluster at `address` (None: RAY_ADDRESS, else a local one)."""

    def __init__(self, config: SandboxConfig, kind: str, base_commit: str | None, address: str | None):
        from ..executor import connect_ray

        with _CONNECTING:
            self.ray = connect_ray(address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.config, self.kind = config, kind
        actor_class, self._sweep = _remote(self.ray)
        # hard: Ray 2.60 placed soft-affine actors on the other node of a two-node cluster (measured)
        on_node = NodeAffinitySchedulingStrategy(next_node(self.ray), soft=False)
        self.actor = actor_class.options(scheduling_strategy=on_node).remote()
        try:
            self.node_id, self.worker = self._get(self.actor.open.remote(config, kind, base_commit), None)
        except BaseException:
            self.ray.kill(self.actor, no_restart=True)
            raise

    def _get(self, ref, timeout: float | None):
        """The actor's answer; the sandbox's own exception when it raised one (e.g. a missing image's UserError)."""
        try:
            return self.ray.get(ref, timeout=timeout)
        except self.ray.exceptions.RayTaskError as e:
            raise (e.cause if isinstance(e.cause, Exception) else e) from None

    def run(self, command: str, timeout: float | None = None, env: dict[str, str] | None = None) -> Observation:
        wait = (timeout or self.config.default_timeout) + CALL_GRACE
        return self._get(self.actor.run.remote(command, timeout, env), wait)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self._get(self.actor.write_file.remote(path, data, mode), CALL_GRACE)

    def read_file(self, path: str) -> bytes:
        return self._get(self.actor.read_file.remote(path), CALL_GRACE)

    def diff(self) -> str:
        return self._get(self.actor.diff.remote(), 120 + CALL_GRACE)

    def close(self) -> None:
        try:
            self._get(self.actor.close.remote(), CALL_GRACE)
        except Exception:  # the worker (or its node) died with its container: sweep the node if it lives
            if self.kind in ("docker", "podman"):
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                on_node = NodeAffinitySchedulingStrategy(self.node_id, soft=False)
                with contextlib.suppress(Exception):  # a dead node cannot be swept, nor hold anything live
                    self.ray.get(self._sweep.options(scheduling_strategy=on_node).remote(self.kind),
                                 timeout=CALL_GRACE)
        finally:
            with contextlib.suppress(Exception):  # already dead, or the cluster is gone
                self.ray.kill(self.actor, no_restart=True)

    def __enter__(self) -> RaySandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
