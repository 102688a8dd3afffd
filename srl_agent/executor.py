"""Where independent jobs (eval instances, RLVR episodes) run: threads here, or tasks on a Ray cluster.

    executor = make_executor("ray", workers=8, address="head:6379")
    for item, outcome in executor.map(solve, items):   # as each finishes, in any order
        ...                                          # outcome: fn's result, or the exception it ended with

`fn` runs where the executor puts it: on a Ray worker it opens its sandboxes on that node's own
container engine. The caller keeps the single writer (e.g. the predictions file) and so its resume.

Ray: a task whose worker process or node dies is retried elsewhere (`retries` times), then comes back
as the exception. Jobs that open sandboxes sweep their node's engine first (see bench/eval.py), so a
dead worker's containers go with the retry.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Literal, Protocol, TypeVar

from .errors import UserError

T = TypeVar("T")
ExecutorKind = Literal["local", "ray"]


class Executor(Protocol):
    def map(self, fn: Callable[[T], Any], items: Iterable[T]) -> Iterator[tuple[T, Any]]:
        """(item, fn(item) or the exception it raised), as each finishes; at most `workers` run at once."""

    def cancel(self) -> None:
        """Stop what runs (Ctrl-C): nothing more is started, running jobs are abandoned."""


class LocalExecutor:
    """Jobs on threads of this process (sandboxes are containers, so threads are enough)."""

    def __init__(self, workers: int = 1):
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="job")

    def map(self, fn, items):
        futures = {self.pool.submit(fn, item): item for item in items}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.exception()
                yield futures[future], error if error is not None else future.result()
        self.pool.shutdown(wait=True)

    def cancel(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _call(fn, item):
    """What a Ray task runs (`fn` travels once, as an object reference)."""
    return fn(item)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")  # the names Ray swaps for this machine's network address


def ray_address_answers(address: str, timeout: float = 5.0) -> bool:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def unreachable_cluster(ray, address: str) -> str | None:
    """Why the cluster at `address` cannot be reached, as one line; None when its GCS port answers.

    Ray dials a loopback address through this machine's network address, so that one must answer too: where it
    does not (a locked-down host), ray.init would retry the GCS for minutes instead of failing."""
    if not ray_address_answers(address):
        return f"no Ray cluster answers at {address} (start one with `ray start --head`, or check the address)"
    host, _, port = address.rpartition(":")
    if address.startswith("ray://") or host.strip("[]") not in LOOPBACK_NAMES:
        return None
    dialed = f"{ray.util.get_node_ip_address()}:{port}"
    if not ray_address_answers(dialed):
        return (f"Ray reaches {address} through this machine's network address {dialed}, which does not answer "
                "(on one machine, leave out the address for a local cluster on 127.0.0.1)")
    return None


def start_local_cluster(ray) -> None:
    """A new local cluster whose processes bind 127.0.0.1 only.

    Ray swaps even an explicit 127.0.0.1 node address for the machine's network address, which a locked-down
    host may not answer (the driver then retries the GCS for minutes); only its single-machine mode (the default
    on macOS and Windows, `ray_constants.ENABLE_RAY_CLUSTER` off) keeps loopback. That mode is on only while the
    cluster starts: once connected, Ray takes every address from its node."""
    from ray._private import ray_constants

    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", logging_level="ERROR", log_to_driver=False, configure_logging=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode


def connect_ray(address: str | None = None):
    """The `ray` module, connected to the cluster at `address` (None: RAY_ADDRESS, else a new local one on
    127.0.0.1); one clear UserError when Ray is missing or nothing answers there."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'srl-agent[ray]'") from None
    if ray.is_initialized():
        return ray
    target = address or os.environ.get("RAY_ADDRESS")  # what ray.init would connect to
    if not target:
        start_local_cluster(ray)
        return ray
    if target != "auto" and (reason := unreachable_cluster(ray, target)):
        raise UserError(reason)
    ray.init(address=target, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    return ray


class RayExecutor:
    """Jobs as Ray tasks (one CPU each) on the cluster at `address` (None: RAY_ADDRESS, else a local one)."""

    def __init__(self, workers: int = 1, address: str | None = None, retries: int = 2):
        ray = connect_ray(address)
        self.ray, self.workers = ray, max(1, workers)
        self.task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(_call)
        self.running: dict[Any, Any] = {}

    def map(self, fn, items):
        ray = self.ray
        fn_ref = ray.put(fn)
        todo = list(items)[::-1]
        while todo or self.running:
            while todo and len(self.running) < self.workers:
                item = todo.pop()
                self.running[self.task.remote(fn_ref, item)] = item
            done, _ = ray.wait(list(self.running), num_returns=1)
            for ref in done:
                item = self.running.pop(ref)
                try:
                    yield item, ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # fn raised: hand back its own exception
                    yield item, e.as_instanceof_cause()
                except ray.exceptions.RayError as e:  # the worker or its node died, retries spent
                    yield item, e

    def cancel(self, wait: float = 30.0) -> None:
        """Kill the running tasks' worker processes; returns once they are gone (or after `wait` seconds),
        so that a sweep afterwards sees their sandboxes' owners dead."""
        refs = list(self.running)
        for ref in refs:
            self.ray.cancel(ref, force=True)
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=wait)
        self.running.clear()


def make_executor(kind: ExecutorKind = "local", workers: int = 1, address: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, address)
    raise UserError(f"unknown executor {kind!r}; choose local or ray")
