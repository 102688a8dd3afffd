"""The policy's batcher: concurrent requests go out as batches by the size, wait and lock-step rules, each answer
goes back to its own caller in any completion order, and a failing policy fails the callers with its reason."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from srl_agent.policy import Completion, SamplingParams
from srl_agent.policy.batcher import BatchedPolicy, Batcher, BatchLimits


class Doubler:
    """send(): each prompt's answer is twice the prompt; remembers the batches."""

    def __init__(self, seconds: float = 0.0):
        self.batches: list[list[int]] = []
        self.seconds = seconds

    def __call__(self, prompts, group):
        self.batches.append(list(prompts))
        time.sleep(self.seconds)
        return [2 * p for p in prompts]


def test_lock_step_sends_one_batch_when_every_caller_waits_in_key_order():
    send = Doubler()
    with Batcher(send) as batcher, ThreadPoolExecutor(3) as pool:
        batcher.join(3)
        # they arrive in the order 2, 0, 1; the batch goes only when the third is in, sorted by key
        futures = [pool.submit(lambda k=k: (time.sleep(0.05 * (k + 1) % 3), batcher(10 + k, key=k))[1])
                   for k in (2, 0, 1)]
        assert sorted(f.result() for f in futures) == [20, 22, 24]
    assert send.batches == [[10, 11, 12]]


def test_size_and_wait_limits_send_early():
    send = Doubler()
    with Batcher(send, BatchLimits(max_size=2)) as batcher:
        batcher.join(5)
        futures = [batcher.submit(k) for k in range(4)]
        assert [f.result(timeout=5) for f in futures] == [0, 2, 4, 6]
    assert send.batches == [[0, 1], [2, 3]]
    send = Doubler()
    with Batcher(send, BatchLimits(max_wait=0.1)) as batcher:
        batcher.join(2)  # the other caller never asks: the first goes alone after 0.1 s
        start = time.monotonic()
        assert batcher(7) == 14
        assert 0.1 <= time.monotonic() - start < 2
    assert send.batches == [[7]]


def test_a_fast_policy_is_not_held_up_for_slow_callers():
    send = Doubler(seconds=0.2)
    with Batcher(send, BatchLimits(max_wait=30, wait_share=0.5)) as batcher:
        batcher.join(2)
        assert [f.result(timeout=5) for f in [batcher.submit(1), batcher.submit(2)]] == [2, 4]
        start = time.monotonic()  # the other caller is busy: this one waits half the last generation's 0.2 s
        assert batcher(3) == 6 and time.monotonic() - start < 5
    assert send.batches == [[1, 2], [3]]


def test_a_caller_that_leaves_no_longer_holds_the_batch():
    send = Doubler()
    with Batcher(send) as batcher:
        batcher.join(2)
        future = batcher.submit(1)
        time.sleep(0.05)
        assert not future.done()
        batcher.leave()
        assert future.result(timeout=5) == 2


def test_groups_never_share_a_batch():
    send = Doubler()
    with Batcher(send) as batcher, ThreadPoolExecutor(3) as pool:
        batcher.join(3)

        def caller(k: int) -> int:
            try:
                return batcher(k, group="a" if k != 1 else "b")
            finally:
                batcher.leave()

        assert list(pool.map(caller, range(3))) == [0, 2, 4]
    assert sorted(send.batches) == [[0, 2], [1]]


def test_every_answer_goes_back_to_its_caller_in_any_order():
    send = Doubler(seconds=0.002)
    rng = random.Random(0)
    delays = [rng.random() * 0.01 for _ in range(200)]
    with Batcher(send, BatchLimits(max_size=8, max_wait=0.005)) as batcher, ThreadPoolExecutor(16) as pool:
        batcher.join(16)

        def caller(k: int) -> list[tuple[int, int]]:
            try:
                answers = []
                for turn in range(k % 5 + 1):  # callers of different lengths
                    time.sleep(delays[(k * 7 + turn) % len(delays)])
                    prompt = 1000 * k + turn
                    answers.append((prompt, batcher(prompt, key=k)))
                return answers
            finally:
                batcher.leave()

        results = [a for f in [pool.submit(caller, k) for k in range(16)] for a in f.result(timeout=30)]
    assert all(answer == 2 * prompt for prompt, answer in results) and len(results) == sum(k % 5 + 1 for k in range(16))
    assert max(len(b) for b in send.batches) > 1  # some really were batched


def test_a_failing_policy_fails_the_waiting_callers_with_its_reason_and_serves_the_next():
    calls = []

    def send(prompts, group):
        calls.append(prompts)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return prompts

    with Batcher(send) as batcher:
        batcher.join(2)
        futures = [batcher.submit(k) for k in range(2)]
        for future in futures:
            with pytest.raises(RuntimeError, match="CUDA out of memory"):
                future.result(timeout=5)
        batcher.leave()  # one caller went on alone: its next request is served
        assert batcher(5) == 5
    with Batcher(Doubler()) as batcher:
        batcher.join(2)
        waiting = batcher.submit(1)
        batcher.close(KeyboardInterrupt())  # Ctrl-C: the waiting and the later callers stop
        with pytest.raises(KeyboardInterrupt):
            waiting.result(timeout=5)
        with pytest.raises(KeyboardInterrupt):
            batcher(2)


class CountingPolicy:
    """A policy whose answer names its prompt; remembers the size of each generate call."""

    def __init__(self):
        self.sizes: list[int] = []
        self.lock = threading.Lock()
        self.context_window = 99

    def generate(self, prompts, tools, params):
        with self.lock:
            self.sizes.append(len(prompts))
        return [[Completion(f"{m[0]['content']}:{t}", [], None)] * params.n for m, t in zip(prompts, tools,
                                                                                            strict=True)]


def test_batched_policy_turns_concurrent_generate_calls_into_batches():
    inner = CountingPolicy()
    params = SamplingParams(n=1, temperature=0.0)
    with BatchedPolicy(inner) as policy, ThreadPoolExecutor(4) as pool:
        policy.batcher.join(4)
        answers = list(pool.map(lambda k: policy.generate([[{"role": "user", "content": f"p{k}"}]], [[{"t": k}]],
                                                          params)[0][0].text, range(4)))
    assert answers == [f"p{k}:[{{'t': {k}}}]" for k in range(4)] and inner.sizes == [4]
    assert policy.context_window == 99  # the wrapped policy's own attributes
