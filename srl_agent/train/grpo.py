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
from typing import Literal, TypeVar

import torch

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
