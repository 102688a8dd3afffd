"""GRPO math as small pure functions on tensors. Shapes: B prompts, G rollouts each, T tokens.

    advantages      A[b, g] = (r[b, g] - mean_g r[b]) / (std_g r[b] + eps)
    dynamic filter  keep prompt b only if std_g r[b] > eps (a flat group teaches nothing)
    objective       per token: min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A),
                    ratio = exp(logp_new - logp_old); averaged per sequence then per group (the
                    paper's "sequence" normalisation) or over all tokens ("token")
    KL (optional)   k3 estimator exp(ref - new) - (ref - new) - 1, per token; off in the paper
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeVar

import torch

from .batching import Layout, TokenSequence, completion_mask, micro_batches, scored_tokens

G = TypeVar("G")

LossNorm = Literal["sequence", "token"]


def group_std(rewards: torch.Tensor) -> torch.Tensor:
    """Population std of each group's rewards: [B, G] -> [B] (what the dynamic filter tests)."""
    return rewards.std(dim=-1, unbiased=False)


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6, scale: bool = True) -> torch.Tensor:
    """[B, G] rewards -> [B, G] advantages, centred per group and (by default) scaled by its std."""
    centred = rewards - rewards.mean(dim=-1, keepdim=True)
    return centred / (group_std(rewards).unsqueeze(-1) + eps) if scale else centred


def keep_groups(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """[B, G] -> bool [B]: groups whose rewards differ (std > eps)."""
    return group_std(rewards) > eps


def clipped_objective(logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      mask: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.2,
                      norm: LossNorm = "sequence") -> torch.Tensor:
    """The GRPO loss to minimise (the negated clipped surrogate).

    logp_new, logp_old, mask: [N, T] with N = B*G sequences; advantages: [N].
    `sequence`: mean over each sequence's tokens, then over sequences (all groups have G
    sequences, so this is the mean per group then over groups). `token`: mean over all tokens.
    """
    ratio = torch.exp(logp_new - logp_old)
    adv = advantages.unsqueeze(-1)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv)
    per_token = -surrogate * mask
    if norm == "token":
        return per_token.sum() / mask.sum().clamp(min=1)
    per_sequence = per_token.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)
    return per_sequence.mean()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean k3 estimate of KL(policy || reference) over the masked tokens (always >= 0)."""
    delta = ref_logp - logp
    kl = torch.exp(delta) - delta - 1
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def dynamic_fill(sample: Callable[[int], Sequence[G]], rewards_of: Callable[[G], Sequence[float]], batch_size: int,
                 max_rounds: int, eps: float = 1e-6, enabled: bool = True,
                 gather: Callable[[int], list[int]] = lambda n: [n], rank: int = 0) -> tuple[list[G], list[G], int]:
    """Dynamic sampling with refill: sample groups for the missing prompts, keep the non-flat ones, repeat.

    `sample(k)` returns k new groups. Stops when `batch_size` groups are kept or after `max_rounds`
    rounds (the cap). Returns (kept groups, every sampled group, rounds used).

    With several processes `batch_size` is the global batch and `gather(n)` returns every process's n
    (process `rank` among them): each round, every process samples its share of the groups still
    missing, and the kept groups beyond `batch_size` are cut in process order. All processes decide on
    the same global counts, so they make the same number of rounds (and of sampling calls).
    """
    kept: list[G] = []
    sampled: list[G] = []
    rounds = 0
    while rounds < max_rounds:
        counts = gather(len(kept))
        missing = batch_size - sum(counts)
        if missing <= 0:
            break
        rounds += 1
        groups = list(sample(-(-missing // len(counts))))
        sampled += groups
        if not enabled:
            kept = groups
            break
        # one group at a time: groups may differ in size
        keep = [bool(keep_groups(torch.tensor([list(rewards_of(g))]), eps)) for g in groups]
        kept += [g for g, k in zip(groups, keep, strict=True) if k]
    before = sum(gather(len(kept))[:rank])  # kept by the processes ahead of this one
    return kept[:max(0, batch_size - before)], sampled, rounds


class Group(NamedTuple):
    """G sequences sampled for one prompt (SRL) or task (RLVR), and their rewards."""

    sequences: list[TokenSequence]
    rewards: list[float]


@dataclass
class RolloutBatch:
    """What a GRPO update learns from: a step's kept rollouts, one entry per sequence with scored tokens (an SRL
    completion, or an RLVR episode whose mask keeps the ids the policy sampled). Old log-probs are not carried:
    the update recomputes them with the policy that sampled (train/trainer.py `MicroBatch`)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    completion_mask: list[list[int]]
    """Per completion token: 1 where the loss covers it."""
    advantages: list[float]
    """Each sequence's reward, centred and scaled within its group (`group_advantages`)."""

    @classmethod
    def from_groups(cls, groups: Sequence[Group | tuple[list[TokenSequence], list[float]]],
                    std_eps: float) -> RolloutBatch:
        batch = cls([], [], [], [])
        for sequences, rewards in groups:  # group by group: RLVR groups may differ in size
            advantages = group_advantages(torch.tensor([rewards]), std_eps)[0]
            for seq, advantage in zip(sequences, advantages, strict=True):
                if scored_tokens(seq):
                    batch.prompt_ids.append(seq[0])
                    batch.completion_ids.append(seq[1])
                    batch.completion_mask.append(completion_mask(seq))
                    batch.advantages.append(float(advantage))
        return batch

    def __len__(self) -> int:
        return len(self.advantages)

    def sequences(self) -> list[TokenSequence]:
        return list(zip(self.prompt_ids, self.completion_ids, self.completion_mask, strict=True))

    def scored_tokens(self) -> int:
        return sum(sum(mask) for mask in self.completion_mask)

    def micro_batches(self, size: int, layout: Layout) -> list[RolloutBatch]:
        """The update's micro-batches (batching.micro_batches: a shared prompt's run kept together)."""
        rows = zip(self.prompt_ids, self.completion_ids, self.completion_mask, self.advantages, strict=True)
        return [RolloutBatch(*map(list, zip(*part, strict=True))) for part in micro_batches(list(rows), size, layout)]
