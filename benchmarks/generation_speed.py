"""Rollout generation speed at a fixed length, so that answer lengths do not enter: the tiny default model as
the trainer loads it (its forward replaced by the log-prob forward, train/logprobs.py) against the same
weights with the model's own forward (the baseline), in the same run.

4 prompts of 1,300 random tokens (about the default data's mean) x G = 8 rollouts, 128 new tokens each with
no early stop, sampled. Timed in process CPU seconds on one thread by default, so that other jobs on a
shared machine count little; --wall for wall-clock time with torch's default threads.
Run: python benchmarks/generation_speed.py [--repeats 3] [--wall] [--smoke]
"""

from __future__ import annotations

import sys
import time

import torch
from _common import SMOKE_TRAIN_SETTINGS, arg_parser, machine

from srl_agent.train.config import TrainConfig
from srl_agent.train.model import load_model

PROMPTS, PROMPT_TOKENS = 4, 1300
SMOKE_PROMPTS, SMOKE_PROMPT_TOKENS = 1, 32


def generate_seconds(model, ids: torch.Tensor, new_tokens: int, pad_id: int, clock) -> float:
    start = clock()
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0, top_p=1.0,
                       top_k=None, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad_id)
    return clock() - start


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="wall-clock time, torch's default threads")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.process_time
    if not args.wall:
        torch.set_num_threads(1)
    print(f"machine: {machine()}; {'wall clock' if args.wall else 'process CPU time, 1 thread'}")
    cfg, prompts, prompt_tokens = TrainConfig.builtin(), PROMPTS, PROMPT_TOKENS
    if args.smoke:
        cfg = cfg.updated({k: SMOKE_TRAIN_SETTINGS[k] for k in ("grpo.group_size", "rollout.max_new_tokens")})
        prompts, prompt_tokens, args.repeats = SMOKE_PROMPTS, SMOKE_PROMPT_TOKENS, 1
    trained, tokenizer = load_model(cfg, device=torch.device("cpu"))
    plain, _ = load_model(cfg, device=torch.device("cpu"))
    plain.forward = type(plain).forward.__get__(plain)  # the model's own forward, same weights (same seed)
    ids = torch.randint(10, len(tokenizer), (prompts, prompt_tokens), generator=torch.Generator().manual_seed(0))
    ids = ids.repeat_interleave(cfg.grpo.group_size, 0)
    tokens = len(ids) * cfg.rollout.max_new_tokens
    best = {"own forward (baseline)": float("inf"), "trainer's model": float("inf")}
    for _ in range(args.repeats):  # alternated, so that a change in load hits both
        for name, model in zip(best, (plain, trained), strict=True):
            best[name] = min(best[name], generate_seconds(model.eval(), ids, cfg.rollout.max_new_tokens,
                                                          tokenizer.pad_token_id, clock))
    print(f"{prompts} prompts x {prompt_tokens} tokens x G = {cfg.grpo.group_size}, "
          f"{cfg.rollout.max_new_tokens} new tokens each "
          f"({tokens:,} tokens), best of {args.repeats}")
    for name, seconds in best.items():
        print(f"{name:24} {seconds:7.2f} s {tokens / seconds:9,.0f} tokens/s")
    baseline, ours = best.values()
    print(f"trainer's model / baseline: {baseline / ours:.2f}x tokens/s")


if __name__ == "__main__":
    sys.exit(main())
