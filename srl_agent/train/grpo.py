"""GRPO math as small pure functions on tensors. Shapes: B prompts, G rollouts each, T tokens.

    advantages      A[b, g] = (r[b, g] - mean_g r[b]) / (std_g r[b] + eps)
    dynamic filter  keep prompt b only if std_g r[b] > eps (a flat group teaches nothing)
    objective       per token: min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A),
                    ratio = exp(logp_new - logp_old); averaged per sequence then per group (the
                    paper's "sequence" normalisation) or over all tokens ("token")
    rollout of n    (an RLVR episode as its n turns) each sequence gets the rollout's advantage and weighs
    sequences       1/n in those means: a rollout counts once, however many sequences it is
    stale rollouts  (grpo.async_steps > 0) AReaL's decoupled objective: the ratio against the proximal
                    policy (the weights at the update's start), each token weighed by prox / behaviour
    KL (optional)   k3 estimator exp(ref - new) - (ref - new) - 1, per token; off in the paper
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeVar

import torch

from .batching import Layout, TokenSequence, completion_mask, micro_batches, scored_tokens

G = TypeVar("G")

LossNorm = Literal["sequence", "token"]

TINY = 1e-12
"""The smallest divisor of a mean: one with nothing to average (all masked, or no weight) is 0, not NaN."""


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


def clipped_surrogate(logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      clip_low: float = 0.2, clip_high: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate per token, to maximise: [N, T] log-probs and [N] advantages -> [N, T]."""
    ratio = torch.exp(logp_new - logp_old)
    adv = advantages.unsqueeze(-1)
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv)


def masked_mean(per_token: torch.Tensor, mask: torch.Tensor, norm: LossNorm = "sequence",
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """[N, T] per-token losses (zero where `mask` [N, T] is) -> their mean. `sequence`: over each sequence's
    tokens, then over sequences (all groups have G sequences, so this is the mean per group then over groups).
    `token`: over all tokens. `weights` [N] (default all 1; RolloutBatch.loss_weights): each sequence's weight in
    that mean, its tokens' under `token`."""
    if weights is None:
        weights = torch.ones(per_token.shape[0], dtype=per_token.dtype, device=per_token.device)
    if norm == "token":
        weights = weights.unsqueeze(-1)
        return (per_token * weights).sum() / (mask * weights).sum().clamp(min=TINY)
    per_sequence = per_token.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)
    return (per_sequence * weights).sum() / weights.sum().clamp(min=TINY)


def clipped_objective(logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                      mask: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.2,
                      norm: LossNorm = "sequence", weights: torch.Tensor | None = None) -> torch.Tensor:
    """The GRPO loss to minimise (the negated clipped surrogate).

    logp_new, logp_old, mask: [N, T] with N = B*G sequences; advantages, weights: [N]; normalised by `masked_mean`.
    """
    return masked_mean(-clipped_surrogate(logp_new, logp_old, advantages, clip_low, clip_high) * mask, mask, norm,
                       weights)


def behaviour_weights(logp_prox: torch.Tensor, logp_behaviour: torch.Tensor) -> torch.Tensor:
    """[N, T] -> [N, T]: each token's importance weight pi_prox / pi_behaviour, a constant (no gradient)."""
    return torch.exp(logp_prox - logp_behaviour).detach()


def decoupled_objective(logp_new: torch.Tensor, logp_prox: torch.Tensor, logp_behaviour: torch.Tensor,
                        advantages: torch.Tensor, mask: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.2,
                        norm: LossNorm = "sequence", weights: torch.Tensor | None = None) -> torch.Tensor:
    """The loss on rollouts sampled by an older policy: AReaL's decoupled PPO objective (Fu et al. 2025, "AReaL: A
    Large-Scale Asynchronous Reinforcement Learning System for Language Reasoning", arXiv:2505.24298, eq. 5):

        per token: pi_prox / pi_behaviour * min(u * A, clip(u, 1 - eps_low, 1 + eps_high) * A),  u = pi_new / pi_prox

    The trust region is centred on the proximal policy (the weights at the update's start), not on the behaviour
    policy that sampled, so a stale rollout's ratio is not clipped away; the importance weight corrects the
    off-policy sampling. logp_*, mask: [N, T]; advantages, weights: [N]. With behaviour = proximal every weight is
    exactly 1 and this is `clipped_objective`, bit for bit.
    """
    surrogate = clipped_surrogate(logp_new, logp_prox, advantages, clip_low, clip_high)
    return masked_mean(-surrogate * behaviour_weights(logp_prox, logp_behaviour) * mask, mask, norm, weights)


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
    """G rollouts sampled for one prompt (SRL) or task (RLVR): their sequences and rewards."""

    sequences: list[TokenSequence]
    rewards: list[float]
    """One per rollout."""
    behaviour_logprobs: list[list[float]] | None = None
    """Per sequence, the sampling policy's log-prob of each completion token (0.0 where unscored): given only for
    rollouts sampled ahead of their step (grpo.async_steps), whose loss is `decoupled_objective`."""
    rollout_of: list[int] | None = None
    """Per sequence, the index in `rewards` of the rollout it is part of, where a rollout is several sequences (an
    RLVR episode's turns, rlvr/batch.py): each gets its rollout's advantage and 1/n of its weight in the loss (n:
    the rollout's sequences), so that a rollout counts once. None: sequence i is rollout i."""


@dataclass
class RolloutBatch:
    """What a GRPO update learns from: a step's kept rollouts, one entry per sequence with scored tokens (an SRL
    completion, an RLVR turn, or an RLVR episode whose mask keeps the ids the policy sampled). On-policy rollouts
    carry no old log-probs: the update recomputes them with the policy that sampled (train/trainer.py `MicroBatch`)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    completion_mask: list[list[int]]
    """Per completion token: 1 where the loss covers it."""
    advantages: list[float]
    """Each sequence's reward, centred and scaled within its group (`group_advantages`)."""
    loss_weights: list[float]
    """Each sequence's weight in the loss (`masked_mean`): 1, or 1/n for each of a rollout's n sequences
    (`Group.rollout_of`)."""
    behaviour_logprobs: list[list[float]] | None = None
    """Per completion token, the log-prob under the policy that sampled it (`Group.behaviour_logprobs`): rollouts
    sampled by older weights (grpo.async_steps) only."""

    @classmethod
    def from_groups(cls, groups: Sequence[Group | tuple[list[TokenSequence], list[float]]],
                    std_eps: float) -> RolloutBatch:
        """Every group's sequences with scored tokens. The groups carry behaviour log-probs all or none."""
        groups = [Group(*g) for g in groups]
        behaviour = [g.behaviour_logprobs is not None for g in groups]
        if any(behaviour) and not all(behaviour):
            raise ValueError("either every group or none carries behaviour log-probs")
        batch = cls([], [], [], [], [], [] if any(behaviour) else None)
        for sequences, rewards, logprobs, rollout_of in groups:  # group by group: RLVR groups may differ in size
            advantages = group_advantages(torch.tensor([rewards]), std_eps)[0].tolist()
            rollout_of = list(range(len(rewards))) if rollout_of is None else rollout_of
            kept = [i for i, (seq, _) in enumerate(zip(sequences, rollout_of, strict=True)) if scored_tokens(seq)]
            parts = Counter(rollout_of[i] for i in kept)  # a rollout's kept sequences share its weight
            for i in kept:
                seq, rollout = sequences[i], rollout_of[i]
                batch.prompt_ids.append(seq[0])
                batch.completion_ids.append(seq[1])
                batch.completion_mask.append(completion_mask(seq))
                batch.advantages.append(advantages[rollout])
                batch.loss_weights.append(1 / parts[rollout])
                if logprobs is not None:
                    batch.behaviour_logprobs.append(logprobs[i])
        return batch

    def __len__(self) -> int:
        return len(self.advantages)

    def sequences(self) -> list[TokenSequence]:
        return list(zip(self.prompt_ids, self.completion_ids, self.completion_mask, strict=True))

    def scored_tokens(self) -> int:
        return sum(sum(mask) for mask in self.completion_mask)

    def loss_mass(self, norm: LossNorm) -> float:
        """What `masked_mean` divides these sequences' loss by: their weights' sum (`sequence`), or their scored
        tokens', each weighed by its sequence's weight (`token`). The update's share of a micro-batch is its mass
        over the step's."""
        if norm == "token":
            return sum(w * sum(mask) for w, mask in zip(self.loss_weights, self.completion_mask, strict=True))
        return sum(self.loss_weights)

    def micro_batches(self, size: int, layout: Layout) -> list[RolloutBatch]:
        """The update's micro-batches (batching.micro_batches: a shared prompt's run kept together)."""
        columns = [self.prompt_ids, self.completion_ids, self.completion_mask, self.advantages, self.loss_weights]
        if self.behaviour_logprobs is not None:
            columns.append(self.behaviour_logprobs)
        rows = list(zip(*columns, strict=True))
        return [RolloutBatch(*map(list, zip(*part, strict=True))) for part in micro_batches(rows, size, layout)]

    def behaviour_logprob_tensor(self, target_mask: torch.Tensor) -> torch.Tensor:
        """The behaviour log-probs laid out as the update's log-probs are: [N, W-1] like `target_mask` (batching.Batch,
        made from `sequences()`), each sequence's scored tokens in order where it is 1, 0.0 elsewhere."""
        scored = [lp for logprobs, mask in zip(self.behaviour_logprobs, self.completion_mask, strict=True)
                  for lp, m in zip(logprobs, mask, strict=True) if m]
        laid_out = torch.zeros(target_mask.shape, dtype=torch.float32, device=target_mask.device)
        laid_out[target_mask.bool()] = torch.tensor(scored, dtype=torch.float32, device=target_mask.device)
        return laid_out
