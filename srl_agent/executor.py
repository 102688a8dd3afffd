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


def ray_address_answers(address: str, timeout: float = 5.0) -> bool:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def connect_ray(address: str | None = None):
    """The `ray` module, connected to the cluster at `address` (None: RAY_ADDRESS, else a local one); one clear
    UserError when Ray is missing or nothing answers there."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'srl-agent[ray]'") from None
    target = address or os.environ.get("RAY_ADDRESS")  # what ray.init would connect to
    if target and target != "auto" and not ray_address_answers(target):
        raise UserError(f"no Ray cluster answers at {target} (start one with `ray start --head`, or check "
                        "the address)")
    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
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
