"""Pretraining a model built from a config, before SFT or SRL: what a downloaded model brings and a random one lacks.

Every argument of the debugging procedure but the fix is copied from the prompt: a test id from the report, a
function name from a traceback, each 100-2,000 tokens back at a place that varies. Trained on a few hundred runs,
a small model memorises their strings instead (docs/results/2026-12-07-outcome-first-runs.md). Two phases:

1. `lm_steps` of language modelling on the standard library's Python source: the code's form.
2. A copying curriculum: rows of random tokens in which a block is written twice, the second time at a random
   later place; the model learns to continue the second from the first (an induction head). That forms in short
   rows and carries to long ones only when the row length grows a stage at a time (`copy_seq_lens`, doubling);
   each stage runs until the copy is right `copy_target` of the time.

Shapes: B rows of T tokens; `ids` [B, T] long; `copy_mask` [B, T] bool, True at the positions whose next token a
copy predicts (the repeat's tokens after its first).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..tokenizer import stdlib_source
from .config import MIN_COPY_BLOCK as MIN_BLOCK
from .config import PretrainConfig

MAX_BLOCK = 64
"""Lengths of the copied block (at most half the row): as long as a test id or a path in the tiny tokenizer."""
MAX_COPY_ROWS = 32
LOG_EVERY = 25


def copy_rows(gen: torch.Generator, rows: int, seq_len: int, vocab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`rows` rows of `seq_len` tokens drawn from `vocab` (1-D ids), each with one block of MIN_BLOCK..MAX_BLOCK
    tokens (at most half the row) written a second time at a random later place. Returns (ids, copy_mask)."""
    ids = vocab[torch.randint(len(vocab), (rows, seq_len), generator=gen)]
    mask = torch.zeros(rows, seq_len, dtype=torch.bool)
    for r in range(rows):
        block = _randint(gen, MIN_BLOCK, min(MAX_BLOCK, seq_len // 2))
        first = _randint(gen, 0, seq_len - 2 * block)
        second = _randint(gen, first + block, seq_len - block)
        ids[r, second:second + block] = ids[r, first:first + block]
        mask[r, second:second + block - 1] = True  # predicting tokens second+1 .. second+block-1
    return ids, mask


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """An int in [low, high], both included."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each position's prediction of the next token. logits [B, T, V], ids [B, T]."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())


def copy_accuracy(logits: torch.Tensor, ids: torch.Tensor, copy_mask: torch.Tensor) -> float:
    """The share of the repeat's tokens (after its first) that greedy decoding predicts."""
    right = logits[:, :-1].argmax(-1) == ids[:, 1:]
    return right[copy_mask[:, :-1]].float().mean().item()


def source_windows(gen: torch.Generator, tokens: torch.Tensor, rows: int, seq_len: int) -> torch.Tensor:
    """`rows` windows of `seq_len` tokens at random places of the 1-D `tokens`."""
    starts = torch.randint(len(tokens) - seq_len, (rows,), generator=gen)
    return torch.stack([tokens[s:s + seq_len] for s in starts.tolist()])


def copy_rows_per_step(cfg: PretrainConfig, seq_len: int) -> int:
    return max(1, min(MAX_COPY_ROWS, cfg.copy_batch_tokens // seq_len))


def stage_names(cfg: PretrainConfig) -> list[str]:
    """The stages `cfg` runs, in order: `lm`, then `copy-N` for each row length N."""
    return (["lm"] if cfg.lm_steps else []) + [f"copy-{n}" for n in cfg.copy_seq_lens]


def pretrain(model, tokenizer, cfg: PretrainConfig, seed: int, log: Callable[[str], None],
             metrics_file: Path | None = None, done: Iterable[str] = (),
             after_stage: Callable[[dict], None] | None = None) -> list[dict]:
    """The stages on `model` in place (on its own device), in train mode, but those named in `done` (a resumed
    run's); `after_stage(row)` runs after each. Returns one summary row per stage run (also logged, and appended to
    `metrics_file`). Each stage draws its rows from its own seeded generator, so a resumed run draws the same."""
    device = next(model.parameters()).device
    special = set(tokenizer.all_special_ids)
    vocab = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    model.train()
    rows = []
    for index, name in enumerate(stage_names(cfg)):
        if name in done:
            continue
        gen = torch.Generator().manual_seed(seed * 1000 + index)
        if name == "lm":
            row = _lm_stage(model, tokenizer, cfg, gen, device, log, metrics_file)
        else:
            row = _copy_stage(model, cfg, int(name.removeprefix("copy-")), gen, vocab, device, log, metrics_file)
        rows.append(row)
        if after_stage:
            after_stage(row)
    return rows


def _lm_stage(model, tokenizer, cfg: PretrainConfig, gen: torch.Generator, device: torch.device,
              log: Callable[[str], None], metrics_file: Path | None) -> dict:
    """`lm_steps` of next-token prediction on windows of the standard library's source."""
    started = time.monotonic()
    tokens = torch.tensor(stdlib_source_ids(tokenizer), dtype=torch.long)
    log(f"pretraining: language modelling on {len(tokens):,} tokens of the standard library's source, "
        f"{cfg.lm_steps} steps of {cfg.lm_batch_size} x {cfg.lm_seq_len}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lm_lr)
    losses: deque[float] = deque(maxlen=LOG_EVERY)
    for step in range(cfg.lm_steps):
        for group in optimizer.param_groups:  # a short linear warm-up: Adam's first steps are its largest
            group["lr"] = cfg.lm_lr * min(1.0, (step + 1) / LOG_EVERY)
        ids = source_windows(gen, tokens, cfg.lm_batch_size, cfg.lm_seq_len).to(device)
        losses.append(_update(model, optimizer, ids)[0])
        if (step + 1) % LOG_EVERY == 0 or step + 1 == cfg.lm_steps:
            _record(log, metrics_file, {"stage": "lm", "step": step + 1, "loss": _mean(losses)})
    return _record(log, metrics_file, {"stage": "lm", "steps": cfg.lm_steps, "loss": _mean(losses),
                                       "seconds": round(time.monotonic() - started, 1)})


def _copy_stage(model, cfg: PretrainConfig, seq_len: int, gen: torch.Generator, vocab: torch.Tensor,
                device: torch.device, log: Callable[[str], None], metrics_file: Path | None) -> dict:
    """Copy rows of `seq_len` tokens until the mean accuracy of the last LOG_EVERY steps reaches the target (the
    rows are fresh each step, so it is a held-out measure) or `copy_max_steps` pass."""
    started, rows = time.monotonic(), copy_rows_per_step(cfg, seq_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.copy_lr)
    losses: deque[float] = deque(maxlen=LOG_EVERY)
    accuracies: deque[float] = deque(maxlen=LOG_EVERY)
    step = 0
    while step < cfg.copy_max_steps:
        ids, mask = copy_rows(gen, rows, seq_len, vocab)
        loss, logits = _update(model, optimizer, ids.to(device))
        losses.append(loss)
        accuracies.append(copy_accuracy(logits.cpu(), ids, mask))
        step += 1
        if step % LOG_EVERY == 0:
            _record(log, metrics_file, {"stage": f"copy-{seq_len}", "step": step, "loss": _mean(losses),
                                        "copy_accuracy": _mean(accuracies)})
            if _mean(accuracies) >= cfg.copy_target:
                break
    accuracy = _mean(accuracies)
    return _record(log, metrics_file, {"stage": f"copy-{seq_len}", "steps": step, "rows": rows,
                                       "copy_accuracy": accuracy, "reached": accuracy >= cfg.copy_target,
                                       "seconds": round(time.monotonic() - started, 1)})


def _update(model, optimizer, ids: torch.Tensor) -> tuple[float, torch.Tensor]:
    """One AdamW step on the next-token loss of `ids`: (the loss, the logits detached)."""
    logits = model(input_ids=ids).logits
    loss = next_token_loss(logits, ids)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item(), logits.detach()


def _mean(values) -> float:
    return round(sum(values) / len(values), 4) if values else math.nan


def _record(log: Callable[[str], None], metrics_file: Path | None, row: dict) -> dict:
    log("pretraining: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if metrics_file is not None:
        with metrics_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def stdlib_source_ids(tokenizer) -> list[int]:
    """The standard library's source (tokenizer.stdlib_source), tokenized, files separated by the end token."""
    ids: list[int] = []
    for text in stdlib_source():
        # verbose=False: a whole file is longer than the model's context, and is cut into rows later
        ids += tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids
