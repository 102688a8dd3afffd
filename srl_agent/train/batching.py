"""Update batches: (prompt, completion[, mask]) token sequences laid out for the forward pass.

The loss covers the completion's tokens, or with a mask only those where it is 1: an RLVR episode is
one sequence (its first prompt, then every later token), and its mask keeps only the ids the policy
sampled, so observations and the template's glue get no log-prob and no gradient.

Three layouts give the same per-token log-probs and gradients (a test checks it):

- padded: one row per sequence, right-padded to the longest, with an attention mask;
- padding-free: every sequence of the micro-batch concatenated into one row, with position ids that
  restart at 0 for each; transformers then keeps attention inside each sequence (flash-attention's
  variable-length kernels, or a block mask for sdpa/eager). No compute is spent on padding, which
  is what GRPO's mix of long and short completions otherwise wastes.
- shared-prefix: the G rollouts of a group share one prompt, so the prompt (but its last token) runs
  once and its KV cache is repeated for the G completion rows, each opened by the prompt's last token.
  An SRL prompt (the history so far) is far longer than a step's answer, so this cuts the update's
  tokens from G·(P+C) to P-1 + G·C (`group_chunks` keeps a group in one micro-batch). The cache keeps
  its autograd graph: the prompt's gradient is the sum over the completions, as in the padded layout.
  The numbers match only without dropout (one mask then serves all G completions), for
  attention-only models, and without gradient checkpointing (which returns no cache); the trainer's
  `auto` picks it only then.

Every layout's `token_logprobs` hands back a padded [N, W-1] tensor, so the loss math never sees it; all
go through the model's log-prob forward (train/logprobs.py), which scores completion positions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .logprobs import IGNORE

TokenSequence = tuple[list[int], list[int]] | tuple[list[int], list[int], list[int]]
"""(prompt ids, completion ids) or (prompt ids, completion ids, completion mask: 1 = scored, same length)."""
Layout = Literal["padded", "padding_free", "shared_prefix"]


@dataclass
class Batch:
    ids: torch.Tensor
    """[N, W] padded, or [1, L] padding-free."""
    target_mask: torch.Tensor
    """[N, W-1]: 1 where position t predicts a scored completion token t+1."""
    attention_mask: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None
    lengths: list[int] | None = None
    """Padding-free only: each sequence's length, in order."""
    groups: list[tuple[list[int], list[list[int]]]] | None = None
    """Shared-prefix only: (prompt, its completions) for each run of sequences with one prompt (their
    scored tokens are read off `target_mask`)."""

    def token_logprobs(self, model, temperature: float = 1.0) -> torch.Tensor:
        """[N, W-1] log-probs of each completion token (zeros elsewhere), through the model's log-prob
        forward (train/logprobs.py): no logits for prompt positions, the head run in chunks."""
        if self.groups is not None:
            return self._shared_prefix_logprobs(model, temperature)
        targets = _shifted_targets(self.ids, self.target_mask if self.lengths is None else self._flat_mask())
        logp = model(input_ids=self.ids, attention_mask=self.attention_mask, position_ids=self.position_ids,
                     use_cache=False, logprob_targets=targets, temperature=temperature)[:, :-1]
        if self.lengths is None:
            return logp
        width = self.target_mask.shape[1]
        rows, start = [], 0
        for n in self.lengths:  # position start+t predicts token start+t+1 of the same sequence
            rows.append(torch.nn.functional.pad(logp[0, start: start + n - 1], (0, width - (n - 1))))
            start += n
        return torch.stack(rows)

    def _flat_mask(self) -> torch.Tensor:
        """Padding-free: the [1, L-1] target mask of the packed row (no position predicts across sequences)."""
        rows = [torch.nn.functional.pad(self.target_mask[i, : n - 1], (0, 1)) for i, n in enumerate(self.lengths)]
        return torch.cat(rows)[:-1].unsqueeze(0)

    def _shared_prefix_logprobs(self, model, temperature: float) -> torch.Tensor:
        from transformers import DynamicCache

        width, device = self.target_mask.shape[1], self.target_mask.device
        rows, row = [], 0
        for prompt, completions in self.groups:
            n, longest = len(completions), max(len(c) for c in completions)
            # The prompt's last token opens every completion row, so all log-probs come from one pass.
            ids = torch.zeros((n, longest), dtype=torch.long)
            targets = torch.full((n, longest), IGNORE, dtype=torch.long)
            start = len(prompt) - 1  # completion token j follows a prompt of P tokens: position P-1+j below
            for i, c in enumerate(completions):
                ids[i, : len(c)] = torch.tensor(prompt[-1:] + c[:-1])
                scored = self.target_mask[row + i, start: start + len(c)].cpu().bool()
                targets[i, : len(c)] = torch.where(scored, torch.tensor(c), IGNORE)
            row += n
            cache = DynamicCache()  # our own: some models make none in training mode
            if len(prompt) > 1:
                no_targets = torch.full((1, len(prompt) - 1), IGNORE, device=device)
                model(input_ids=torch.tensor([prompt[:-1]], device=device), cache=cache, use_cache=True,
                      logprob_targets=no_targets)
                cache.batch_repeat_interleave(n)
            logp = model(input_ids=ids.to(device), cache=cache, use_cache=True, logprob_targets=targets.to(device),
                         temperature=temperature)
            rows.append(torch.nn.functional.pad(logp, (start, width - start - longest)))
        return torch.cat(rows)


def _shifted_targets(ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """[B, S] targets for the log-prob forward: token t+1 at each position t that predicts a completion token."""
    targets = torch.full_like(ids, IGNORE)
    targets[:, :-1] = torch.where(target_mask.bool(), ids[:, 1:], IGNORE)
    return targets


def supports_shared_prefix(config) -> bool:
    """Attention-only models (full or sliding window): their KV cache is all a prompt leaves behind.
    Hybrid models with linear-attention or recurrent layers keep other state, which is not repeated."""
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return set(layer_types) <= {"full_attention", "sliding_attention"} and not hasattr(config, "layers_block_type")


def _runs(items: list) -> list[list]:
    """Consecutive items with the same first element (a prompt's token ids)."""
    runs: list[list] = []
    for item in items:
        if runs and runs[-1][0][0] == item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def group_chunks(items: list, size: int) -> list[list]:
    """Micro-batches of at most `size` (prompt, completion, ...) items that never split a run of one
    prompt (a run longer than `size` goes alone), so the shared-prefix layout runs each prompt once."""
    out: list[list] = []
    for run in _runs(items):
        if out and len(out[-1]) + len(run) <= size:
            out[-1].extend(run)
        else:
            out.append(list(run))
    return out


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def micro_batches(items: list, size: int, layout: Layout) -> list[list]:
    """The update's micro-batches: `size` items each, as the memory plan counts them; shared-prefix keeps each
    prompt's run together instead (`group_chunks`), since it runs a prompt once for all its completions."""
    if layout == "shared_prefix":
        return group_chunks(items, size)
    return chunks(items, size)


def completion_mask(seq: TokenSequence) -> list[int]:
    """Which completion tokens are scored: the sequence's own mask, else all of them."""
    if len(seq) == 3:
        if len(seq[2]) != len(seq[1]):
            raise ValueError(f"a completion of {len(seq[1])} tokens with a mask of {len(seq[2])}")
        return seq[2]
    return [1] * len(seq[1])


def scored_tokens(seq: TokenSequence) -> int:
    return sum(completion_mask(seq))


def _target_mask(sequences: list[TokenSequence], width: int) -> torch.Tensor:
    mask = torch.zeros((len(sequences), width), dtype=torch.float)
    for i, seq in enumerate(sequences):
        p, c = seq[0], seq[1]
        mask[i, len(p): len(p) + len(c)] = torch.tensor(completion_mask(seq), dtype=torch.float)
    return mask[:, 1:]  # position t predicts token t+1


def _prompt_runs(sequences: list[TokenSequence]) -> list[tuple[list[int], list[list[int]]]]:
    return [(run[0][0], [seq[1] for seq in run]) for run in _runs(sequences)]


def forward_tokens(sequences: list[TokenSequence], layout: Layout) -> int:
    """Tokens the model runs on for these sequences (padding not counted): a shared prompt counts once."""
    if layout == "shared_prefix":
        return sum(len(p) - 1 + sum(len(c) for c in cs) for p, cs in _prompt_runs(sequences))
    return sum(len(seq[0]) + len(seq[1]) for seq in sequences)


def make_batch(sequences: list[TokenSequence], pad_id: int, device, layout: Layout = "padded") -> Batch:
    tokens = [seq[0] + seq[1] for seq in sequences]
    width = max(len(t) for t in tokens)
    mask = _target_mask(sequences, width).to(device)
    if layout == "shared_prefix":
        return Batch(torch.empty(0), mask, groups=_prompt_runs(sequences))
    if layout == "padding_free":
        ids = torch.tensor([t for seq in tokens for t in seq]).unsqueeze(0)
        positions = torch.cat([torch.arange(len(seq)) for seq in tokens]).unsqueeze(0)
        return Batch(ids.to(device), mask, position_ids=positions.to(device), lengths=[len(s) for s in tokens])
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, t in enumerate(tokens):
        ids[i, : len(t)] = torch.tensor(t)
        attention[i, : len(t)] = 1
    return Batch(ids.to(device), mask, attention_mask=attention.to(device))
