"""Training throughput on CPU with the tiny model: SRL (GRPO) against the SFT baseline, same data,
and SRL's update with each group's prompt run once (shared_prefix) against one padded row per rollout.

Reports examples/s (prompts per second of step time; an SRL prompt costs G rollouts), the share of
step time spent in generation, reward and update, and generation's own figures: tokens sampled per
step and per second of generation. Generation time follows how long the warmed-up model's answers
are, so compare generation across code versions by its tokens/s, not its seconds per step. The SRL
run starts from an SFT-warmed model so its rollouts are partly well formed, as in a real run after
the default config's warm-up. `fill` is the share of each SRL batch that dynamic sampling filled
with groups whose rewards differ.
Run: python benchmarks/train_step.py [--steps 10] [--smoke]
"""

from __future__ import annotations

import statistics
import sys
import tempfile

from _common import SMOKE_TRAIN_SETTINGS, arg_parser, machine

from srl_agent.train.config import TrainConfig
from srl_agent.train.trainer import Trainer


def measure(cfg: TrainConfig, steps: int) -> dict[str, float]:
    trainer = Trainer(cfg, log=lambda _: None)
    rows = [trainer.train_step() for _ in range(steps)]
    total = sum(r["seconds"] for r in rows)
    fills = [r["fill_ratio"] for r in rows if "fill_ratio" in r]
    generated, generate_s = sum(r.get("completion_tokens", 0) for r in rows), sum(r["time_generate"] for r in rows)
    return {"examples_per_s": sum(len(r["batch"]) for r in rows) / total, "gen_tokens_per_step": generated / steps,
            "gen_tokens_per_s": generated / generate_s if generate_s else None,
            "tokens_per_s": statistics.mean(r["tokens_per_s"] for r in rows),
            **{k: sum(r[f"time_{k}"] for r in rows) / total for k in ("generate", "reward", "update")},
            "step_s": total / steps,
            "fill": statistics.mean(fills) if fills else None}


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, help="SFT steps before the SRL measurement "
                                                              "(default: the built-in config's sft_warmup.steps)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    base = TrainConfig.builtin()
    if args.smoke:
        base = base.updated(SMOKE_TRAIN_SETTINGS)
        args.steps, args.warmup_steps = 1, 1
    args.warmup_steps = args.warmup_steps or base.sft_warmup.steps
    with tempfile.TemporaryDirectory() as tmp:
        warm = base.updated({"method": "sft", "optim.lr": base.sft_warmup.lr or base.optim.lr,
                             "max_steps": args.warmup_steps, "output_dir": f"{tmp}/warm", "validation.every": 10**9,
                             "checkpointing.every": 10**9})
        Trainer(warm, log=lambda _: None).run()
        results = {}
        for name, method, layout in (("srl padded", "srl", "padded"), ("srl shared", "srl", "shared_prefix"),
                                     ("sft", "sft", "padded")):
            cfg = base.updated({"method": method, "sft_warmup.steps": 0, "compute.update_layout": layout,
                                "init_from": f"{tmp}/warm/checkpoints/step-{args.warmup_steps:06d}",
                                "output_dir": f"{tmp}/{name.replace(' ', '-')}"})
            results[name] = measure(cfg, args.steps)
    print(f"\nbatch {base.batch_size} prompts, G = {base.grpo.group_size}, up to {base.rollout.max_new_tokens} new "
          "tokens, "
          f"{args.steps} steps each")
    print(f"{'':10} {'examples/s':>11} {'s/step':>8} {'tokens/s':>9} {'generate':>9} {'reward':>8} {'update':>8} "
          f"{'fill':>6} {'gen tok/step':>13} {'gen tok/s':>10}")
    for method, r in results.items():
        fill = "-" if r["fill"] is None else f"{r['fill']:.2f}"
        gen_speed = "-" if r["gen_tokens_per_s"] is None else f"{r['gen_tokens_per_s']:.0f}"
        print(f"{method:10} {r['examples_per_s']:11.2f} {r['step_s']:8.2f} {r['tokens_per_s']:9.0f} "
              f"{r['generate']:9.1%} {r['reward']:8.1%} {r['update']:8.1%} {fill:>6} {r['gen_tokens_per_step']:13.0f} "
              f"{gen_speed:>10}")
    padded, shared = results["srl padded"], results["srl shared"]
    speedup = (padded["update"] * padded["step_s"]) / (shared["update"] * shared["step_s"])
    print(f"\nSRL update time, shared_prefix vs padded (baseline): {speedup:.2f}x faster; "
          f"examples/s {shared['examples_per_s'] / padded['examples_per_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
