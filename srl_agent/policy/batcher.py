"""Concurrent requests to one policy, sent as batches: how many episodes share one in-process model.

    with Batcher(send, BatchLimits(max_size=8, max_wait=0.2)) as batcher:   # its own thread sends
        batcher.join(n)                            # n callers take part; each leaves when it is done
        completion = batcher(prompt, key=i)        # from any thread: waits for its batch's answer

A batch goes when `max_size` requests of one group wait, when the oldest has waited `max_wait` seconds since the
policy got free (and, with `wait_share`, a share of the last batch's generation time), or when every caller
taking part waits (nothing more can come). With no limit set only the last rule holds: that is lock step, every
live episode's turn in one batch. A batch is sent in key order, so a lock-step batch
is the lock-step loop's (the sampler's random draws fall on the same rows). Requests batch only with requests
of their own group (e.g. the same sampling params).

A send that raises fails every request of its batch with that exception; `close(error)` fails the requests
waiting and those to come with `error`. Each completion is handed back as `send` returned it: token ids and
log-probs are the sampled ones.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from . import Completion, Messages, Policy, SamplingParams


@dataclass(frozen=True)
class BatchLimits:
    """When a batch of waiting requests is sent to the policy."""

    max_size: int | None = None
    """Requests in one batch; None: no limit."""
    max_wait: float | None = None
    """Seconds the oldest request waits for others once the policy is free; None: until every caller taking part
    waits (lock step when `max_size` and `wait_share` are None too)."""
    wait_share: float | None = None
    """Also wait at most this share of the last batch's generation time: waiting costs the waiting prompts that long,
    and saves a late one a generation of its own (a fast policy is not held up for slow sandboxes)."""

    def wait(self, last_generation: float | None) -> float | None:
        """Seconds a request waits for others once the policy is free (None: no limit)."""
        if self.wait_share is None or last_generation is None:
            return self.max_wait
        share = self.wait_share * last_generation
        return share if self.max_wait is None else min(self.max_wait, share)

    def __post_init__(self) -> None:
        if self.max_size is not None and self.max_size < 1:
            raise UserError(f"a batch's size must be at least 1 prompt, got {self.max_size}")
        if self.max_wait is not None and self.max_wait < 0:
            raise UserError(f"a batch's wait must be at least 0 seconds, got {self.max_wait}")
        if self.wait_share is not None and self.wait_share < 0:
            raise UserError(f"a batch's wait share must be at least 0, got {self.wait_share}")


LOCK_STEP = BatchLimits()


@dataclass(eq=False)
class _Request:
    prompt: Any
    group: Any
    order: tuple[Any, int]
    """(the caller's key, arrival): the batch is sent in this order."""
    since: float
    future: Future = field(default_factory=Future)


class Batcher:
    """Sends waiting requests as batches through `send(prompts, group) -> one result per prompt`, on its own thread
    (started by `with`, stopped at its exit; see the module doc)."""

    def __init__(self, send: Callable[[list[Any], Any], list[Any]], limits: BatchLimits = LOCK_STEP):
        self.send, self.limits = send, limits
        self.sent: list[tuple[int, float]] = []
        """(size, seconds) of each batch sent, for reports."""
        self._cond = threading.Condition()
        self._waiting: list[_Request] = []
        self._callers = 0
        self._closed: BaseException | None = None
        self._arrivals = itertools.count()
        self._free_since = 0.0  # when the last batch's answers were handed back
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Batcher:
        self._thread = threading.Thread(target=self._serve, name="batcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._thread is not None and exc[0] is None:  # on Ctrl-C or an error, not after a long generate
            self._thread.join()

    def join(self, callers: int = 1) -> None:
        """`callers` more callers take part: a batch waits for them (up to `max_wait`)."""
        with self._cond:
            self._callers += callers

    def leave(self) -> None:
        with self._cond:
            self._callers -= 1
            self._cond.notify()

    @contextmanager
    def taking_part(self) -> Iterator[None]:
        self.join()
        try:
            yield
        finally:
            self.leave()

    def submit(self, prompt: Any, key: Any = 0, group: Any = None) -> Future:
        """Queue one prompt; the future holds its result, or the exception its batch failed with."""
        request = _Request(prompt, group, (key, next(self._arrivals)), time.monotonic())
        with self._cond:
            if self._closed is not None:
                request.future.set_exception(self._closed)
            else:
                self._waiting.append(request)
                self._cond.notify()
        return request.future

    def __call__(self, prompt: Any, key: Any = 0, group: Any = None) -> Any:
        return self.submit(prompt, key, group).result()

    def close(self, error: BaseException | None = None) -> None:
        """Fail the waiting requests and those to come with `error` (by default: the batcher is closed)."""
        with self._cond:
            if self._closed is None:
                self._closed = error or RuntimeError("the policy's batcher is closed")
            for request in self._waiting:
                request.future.set_exception(self._closed)
            self._waiting.clear()
            self._cond.notify_all()

    def _next_batch(self) -> list[_Request] | None:
        """Wait for a batch to be due (module doc) and take it; None once closed."""
        limits = self.limits
        with self._cond:
            while self._closed is None:
                if self._waiting:
                    group = self._waiting[0].group
                    same = [r for r in self._waiting if r.group == group][:limits.max_size]
                    most = limits.wait(self.sent[-1][1] if self.sent else None)
                    # counted from when the policy got free: prompts that queued behind a batch wait for the rest of
                    # its callers, whose answers just came
                    wait = None if most is None else max(self._waiting[0].since, self._free_since) + most - \
                        time.monotonic()
                    if len(same) == limits.max_size or len(self._waiting) >= self._callers or (wait is not None
                                                                                               and wait <= 0):
                        taken = {id(r) for r in same}
                        self._waiting = [r for r in self._waiting if id(r) not in taken]
                        return sorted(same, key=lambda r: r.order)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            start = time.perf_counter()
            try:
                results = self.send([r.prompt for r in batch], batch[0].group)
                if len(results) != len(batch):
                    raise RuntimeError(f"the policy answered {len(results)} of {len(batch)} prompts")
            except BaseException as e:  # the callers raise it: the reason reaches every waiting episode
                for request in batch:
                    request.future.set_exception(e)
                continue
            self.sent.append((len(batch), time.perf_counter() - start))
            for request, result in zip(batch, results, strict=True):
                request.future.set_result(result)
            with self._cond:
                self._free_since = time.monotonic()


class BatchedPolicy:
    """A Policy many threads call at once: their `generate` calls go to `policy` as batched `generate` calls (one
    batch per sampling params). Use it inside `with`; its other attributes are `policy`'s."""

    def __init__(self, policy: Policy, limits: BatchLimits = LOCK_STEP):
        self.policy = policy
        self.batcher = Batcher(self._send, limits)

    def _send(self, prompts: list[tuple[Messages, list[dict] | None]], params: SamplingParams) -> list:
        return self.policy.generate([messages for messages, _ in prompts], [tools for _, tools in prompts], params)

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        futures = [self.batcher.submit((messages, tools[i] if tools else None), group=params)
                   for i, messages in enumerate(prompts)]
        return [future.result() for future in futures]

    def __enter__(self) -> BatchedPolicy:
        self.batcher.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.batcher.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:  # context_window, count_prompt_tokens, tokenizer, ...
        return getattr(self.policy, name)
