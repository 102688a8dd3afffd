"""Policies: whatever turns chat prompts into completions. Backends differ only in `generate`.

- `HFPolicy` (hf.py): a transformers model on CPU or CUDA; batched sampling of n completions per
  prompt with token ids and log-probs (what training needs).
- `VLLMPolicy` (vllm.py): the optional vLLM engine, imported lazily, with weight sync after updates.
- `OpenAIPolicy` (openai.py): any OpenAI-compatible chat server (`http://host:port/v1`), for eval.
- `ReplayPolicy` (replay.py): recorded expert steps as answers (the scripted expert, tests).
- `BatchedPolicy` (batcher.py): many threads' concurrent requests to one policy, sent to it as batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import UserError


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    max_new_tokens: int = 256


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None
    finish_reason: str = "stop"  # "stop" (end of turn) or "length"
    served_tokens: int | None = None
    """The server's count of generated tokens, for served models that return no token ids."""
    policy_version: int | None = None
    """The version of the weights that sampled it (HFPolicy.version), for policies that count their updates."""

    @property
    def num_tokens(self) -> int:
        return self.served_tokens if self.served_tokens is not None else len(self.token_ids)


class ContextWindowExceeded(UserError):
    """The prompt does not fit the model's context window (a served model answered so)."""


Messages = list[dict[str, Any]]


@runtime_checkable
class Policy(Protocol):
    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt (chat messages plus the tool schemas it offers)."""


def load_policy(spec: str, **kwargs) -> Policy:
    """`http(s)://...` -> OpenAIPolicy, `vllm:PATH` -> VLLMPolicy, `replay:TRAJECTORIES` -> ReplayPolicy
    (replays recorded expert runs, any format), anything else -> HFPolicy."""
    if spec.startswith(("http://", "https://")):
        from .openai import OpenAIPolicy

        return OpenAIPolicy(spec, **kwargs)
    if spec.startswith("vllm:"):
        from .vllm import VLLMPolicy

        return VLLMPolicy(spec[5:], **kwargs)
    if spec.startswith("replay:"):
        from ..formats import load_trajectories
        from .replay import ReplayPolicy

        return ReplayPolicy(list(load_trajectories([spec[7:]])))
    from .hf import HFPolicy

    return HFPolicy.from_pretrained(spec, **kwargs)
