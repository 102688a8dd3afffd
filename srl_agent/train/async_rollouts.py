"""Rollouts that overlap the update (`grpo.async_steps` = k >= 1): the rollouts of later steps are sampled on a
thread, by copies of the policy, while the current step updates.

    sampling step t:  take B_t, the rollouts of step t (launched at an earlier step; the first step after a
                      checkpoint launches its own and waits for them)
                      launch steps t+1 .. horizon(t), each sampled by a copy holding the weights W_t (version t)
                      update on B_t, while the rollout thread samples
    horizon(t) = min(t + k, the run's last step, the last step before the next checkpoint)

- One rollout thread runs the launched steps in step order: the example and task streams are read in the same
  order as in lock step, and only that thread reads them while steps are in flight.
- k samplers: step s samples with sampler s % k. It is loaded when step s is launched, after the steps before it
  that used the same sampler have been taken: its weights never change while it samples (never mid-sequence).
- Staleness: the rollouts of step s were sampled by version v >= s - k (the horizon), and each completion
  records v (`Completion.policy_version`).
- Checkpoints: no launched step reaches past the next checkpoint, so at a checkpoint nothing is in flight and the
  saved data position and RNG state are exact. A run resumed after kill -9 restarts the pipeline at the checkpoint
  as the run that never stopped did at that step, and samples the same rollouts: nothing lost, nothing twice (what
  was in flight at the kill is sampled again, from the same position). Each checkpoint costs one step of overlap.
- Sampling draws from torch's global generator on the rollout thread only (the update draws nothing: no
  dropout), so a seeded run samples the same rollouts however the two threads interleave.
- `close` (Ctrl-C, an error, the run's end): launched steps that have not started are dropped, and the running
  one fails at its next generate call; an RLVR step's episodes then end and close their sandboxes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from ..policy import Completion, SamplingParams
from ..policy.hf import HFPolicy


def horizon(step: int, async_steps: int, checkpoint_every: int, max_steps: int) -> int:
    """The last step (0-based) whose rollouts may be sampled while step `step` updates: at most `async_steps`
    ahead, never past the run's last step nor the step after which the next checkpoint is written."""
    segment_end = (step // checkpoint_every + 1) * checkpoint_every - 1
    return min(step + async_steps, segment_end, max_steps - 1)


class PipelineClosed(RuntimeError):
    """Raised in the rollout thread when the run stops while it samples."""


class Sampler:
    """One copy of the policy on the rollout side, frozen at `policy.version` while it samples; its calls fail once
    the pipeline closes."""

    def __init__(self, policy: HFPolicy, closed: threading.Event):
        self.policy, self.closed = policy, closed
        self.tokenizer = policy.tokenizer

    def generate_ids(self, prompt_ids: list[list[int]], params: SamplingParams, with_logprobs: bool = True,
                     max_sequences: int | None = None) -> list[list[Completion]]:
        if self.closed.is_set():
            raise PipelineClosed("the run stopped while rollouts were sampled ahead of the update")
        return self.policy.generate_ids(prompt_ids, params, with_logprobs, max_sequences)


class RolloutPipeline:
    """Steps' rollouts sampled on one thread, ahead of the update (see the module docstring).

    `model`: the trained model (unwrapped, whole); `sample_step(step, sampler)` samples the rollouts of `step`."""

    def __init__(self, model: torch.nn.Module, tokenizer, device, async_steps: int, cache: str,
                 sample_step: Callable[[int, Sampler], Any]):
        self.model, self.sample_step = model, sample_step
        self.closed = threading.Event()
        self.samplers = [Sampler(HFPolicy(_frozen_copy(model), tokenizer, device, cache=cache), self.closed)
                         for _ in range(async_steps)]
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="rollouts")
        self.launched: dict[int, Future] = {}

    def launch(self, step: int, version: int) -> None:
        """Start sampling the rollouts of `step` with the model's current weights, which are version `version`."""
        if step in self.launched:
            raise ValueError(f"step {step}'s rollouts are already being sampled")
        sampler = self.samplers[step % len(self.samplers)]
        with torch.no_grad():
            sampler.policy.model.load_state_dict(self.model.state_dict())
        sampler.policy.version = version
        self.launched[step] = self.thread.submit(self.sample_step, step, sampler)

    def is_launched(self, step: int) -> bool:
        return step in self.launched

    def take(self, step: int) -> Any:
        """The rollouts of `step` (launched before), once sampled; the sampling error if it failed."""
        return self.launched.pop(step).result()

    def close(self) -> None:
        """Stop: drop what has not started, fail what samples at its next call, wait for the thread to end."""
        self.closed.set()
        for future in self.launched.values():
            future.cancel()
        self.launched.clear()
        self.thread.shutdown(wait=True)


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` for sampling only: its own weights, no gradients, in eval mode.

    Forwards installed on the instances (the trainer's log-prob forward, train/logprobs.py; accelerate's autocast
    wrapper) are dropped: they are closures over the original's modules, so the copy would compute with the weights
    the update is changing. Sampling needs only the class's own forward (in the weights' dtype: no autocast)."""
    frozen = copy.deepcopy(model)
    for module in frozen.modules():
        module.__dict__.pop("forward", None)
    frozen.requires_grad_(False)
    return frozen.eval()
