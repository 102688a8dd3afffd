"""Memory-safe log-probs: the LM head and log-softmax run only at scored positions, a chunk at a time.

A plain forward makes [N, T, V] logits for every position, and `log_softmax` in fp32 doubles them:
8 x 9k tokens x 152k vocabulary is about 45 GB. Here the decoder's hidden states [N, T, H] are kept
(H is ~30x smaller than V), the K positions that predict a completion token are picked out, and
each chunk of `chunk_tokens` of them goes through the head and the log-softmax on its own:

    logp[k] = logits[k, target[k]] / temperature - logsumexp(logits[k] / temperature)

With gradients on, each chunk is checkpointed: the backward pass recomputes that chunk's logits
instead of keeping them, so at most one chunk of logits is alive at a time. Within a chunk the
log-softmax and its gradient (`TokenLogprob`) work `BLOCK_ROWS` positions at a time in fp32, so
besides the head's logits only their gradient is chunk-sized (autograd's log-softmax would keep
~4 fp32 chunk-sized tensors: the upcast, the scaled logits, the softmax and its gradient).

The pass runs inside the model's own forward (`install_logprob_forward`), because FSDP2 and
DeepSpeed ZeRO-3 gather a module's sharded weights only when that module is called. The head module is
called once per forward, over all the scored positions, and projects chunk by chunk inside that call with its
own `forward` (no hooks): the engine gathers the head (1.1 GB in bf16 for Qwen2.5-7B's untied head) once per
forward and once for the backward, not once per chunk and again per chunk's recompute. Called per chunk,
FSDP2 re-ran its hooks for every chunk, and torch versions before PRs #180426/#180428 lost track of the head's
group (accelerate >= 1.14 groups the final norm with the head) when the recompute called it again in backward.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from ..errors import UserError

IGNORE = -100
"""A target that is not scored (prompt, padding)."""


LOGIT_TRANSFORMS = {"final_logit_softcapping": None, "logit_scale": 1.0, "logits_scaling": 1.0}
"""Config fields (and their no-op values) of models whose forward changes the head's logits before they are
returned (Gemma 2/3 soft-capping, Cohere's and Granite's scales): the log-probs here, which take the head's
logits as they are, would not be that model's."""


BLOCK_ROWS = 128
"""Positions per fp32 block inside a chunk: 128 x 152k vocabulary is 78 MB per temporary."""


class TokenLogprob(torch.autograd.Function):
    """logits [k, V] (any dtype), targets [k] -> [k] fp32 log-probs of the targets at `temperature`:

        logp = logits[target] / t - logsumexp(logits / t)
        d logp / d logits = (onehot(target) - softmax(logits / t)) / t

    Both are computed a block of rows at a time; the backward makes the softmax in place in that block."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
        logp = torch.empty(len(targets), dtype=torch.float32, device=logits.device)
        for start in range(0, len(targets), BLOCK_ROWS):
            block = logits[start:start + BLOCK_ROWS].float() / temperature
            target = targets[start:start + BLOCK_ROWS, None]
            logp[start:start + BLOCK_ROWS] = block.gather(-1, target).squeeze(-1) - block.logsumexp(-1)
        ctx.save_for_backward(logits, targets, logp)
        ctx.temperature = temperature
        return logp

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets, logp = ctx.saved_tensors
        t = ctx.temperature
        grad_logits = torch.empty_like(logits)
        for start in range(0, len(targets), BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            block = logits[rows].float() / t
            target, g = targets[rows, None], grad[rows, None] / t
            lse = block.gather(-1, target) - logp[rows, None]  # logsumexp(logits / t), from the forward's answer
            block.sub_(lse).exp_().mul_(-g).scatter_add_(-1, target, g)  # softmax, then (onehot - softmax) * g / t
            grad_logits[rows] = block
        return grad_logits, None, None


def _chunk_logprobs(project: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """[k, H] hidden states, [k] targets -> [k] log-probs (fp32 whatever the compute dtype)."""
    return TokenLogprob.apply(project(hidden), targets, temperature)


def chunked_logprobs(hidden: torch.Tensor, project: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor,
                     temperature: float = 1.0, chunk_tokens: int = 1024) -> torch.Tensor:
    """Log-probs of `targets` [K] after `hidden` [K, H] through `project` (the head's own forward: [k, H] -> [k, V]),
    `chunk_tokens` positions at a time."""
    pieces = []
    for start in range(0, len(targets), chunk_tokens):
        h, t = hidden[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logprobs, project, h, t, temperature, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(project, h, t, temperature))
    return torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)


def install_logprob_forward(model, chunk_tokens: int = 1024) -> None:
    """Let `model(..., logprob_targets=T, temperature=t)` return [B, S] log-probs instead of logits.

    `T` [B, S] holds at each position the token it predicts, or IGNORE; the answer is 0 there.
    Every other call (generate, a plain forward) is the model's own. The new forward is installed
    before `accelerate.prepare`, so DDP, FSDP2 and ZeRO-3 wrap it like the original one.
    """
    original = model.forward
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model
    config = causal_lm.config.get_text_config()
    changed = [f"{field} = {getattr(config, field)}" for field, no_op in LOGIT_TRANSFORMS.items()
               if getattr(config, field, no_op) not in (no_op, None)]
    if changed:
        raise UserError(f"{type(causal_lm).__name__} changes its logits after the LM head ({', '.join(changed)}), "
                        "which the memory-safe log-probs (train/logprobs.py) do not reproduce: not supported yet")
    decoder, head = causal_lm.get_decoder(), causal_lm.get_output_embeddings()
    project = head.forward  # bound before the engines wrap the module: calling it runs no hooks

    @functools.wraps(project)
    def head_forward(hidden: torch.Tensor, logprob_targets: torch.Tensor | None = None, temperature: float = 1.0):
        if logprob_targets is None:
            return project(hidden)
        return chunked_logprobs(hidden, project, logprob_targets, temperature, chunk_tokens)

    head.forward = head_forward

    # `generate` reads the forward's signature: without the original's, it passes neither `logits_to_keep` (the
    # prefill then makes logits at every prompt position, ~25 % of CPU generation time here) nor `position_ids`
    # (left-padded rows would be numbered from their padding).
    @functools.wraps(original)
    def forward(*args, logprob_targets: torch.Tensor | None = None, temperature: float = 1.0, **kwargs):
        if logprob_targets is None:
            return original(*args, **kwargs)
        hidden = decoder(*args, **kwargs).last_hidden_state
        scored = logprob_targets != IGNORE
        logp = head(hidden[scored], logprob_targets=logprob_targets[scored], temperature=temperature)
        return torch.zeros(scored.shape, dtype=logp.dtype, device=logp.device).masked_scatter(scored, logp)

    model.forward = forward
