"""The memory planner (`srl-agent train --dry-run`, train/plan.py) against the measured peak of a real step.

One process on CPU (fp32 compute, so the plan is made with 4-byte activations): the model built from
its config, AdamW, and one update micro-batch (forward, backward of the memory-safe log-probs, the
optimizer step). The measured figure is the peak resident memory above what the process held before
the model was built; the planned one is weights + gradients + optimizer + activations + log-prob
buffers (no rollouts run here). Each model runs in a fresh process.
Run: python benchmarks/plan_vs_measured.py [--rows 2] [--prompt 960] [--completion 64] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from _common import arg_parser, machine

MODELS = {"tiny": "tiny", "0.5B shape": "config:configs/models/qwen2.5-coder-0.5b"}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(model_source: str, rows: int, prompt: int, completion: int) -> dict[str, float]:
    import torch

    from srl_agent.train.batching import make_batch
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model
    from srl_agent.train.plan import FP32, UPDATE, model_shape, plan_memory

    cfg = TrainConfig.from_dict({"model": model_source, "compute.micro_batch_size": rows,
                                 "data.max_prompt_tokens": prompt, "rollout.max_new_tokens": completion})
    planned = plan_memory(cfg, model_shape(cfg), 1, 80, "ddp", compute_bytes=FP32).phases[UPDATE]
    start = rss_mb()
    model, _ = load_model(cfg, device=torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (rows, prompt + completion))
    batch = make_batch([(row[:prompt].tolist(), row[prompt:].tolist()) for row in ids], 0, "cpu", "padded")
    loss = -(batch.token_logprobs(model) * batch.target_mask).sum()
    loss.backward()
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"measured_gb": (peak - start) * 2**20 / 1e9, "planned_gb": sum(planned.values()),
            **{f"plan {k}": v for k, v in planned.items()}}


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=960)
    parser.add_argument("--completion", type=int, default=64)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model:
        print(json.dumps(measure(args.model, args.rows, args.prompt, args.completion)))
        return
    models = MODELS
    if args.smoke:  # the tiny model alone (the 0.5B shape's step takes 10 GB), a short micro-batch
        models, args.rows, args.prompt, args.completion = {"tiny": MODELS["tiny"]}, 1, 32, 8
    print(f"machine: {machine()}")
    print(f"one micro-batch of {args.rows} x ({args.prompt} + {args.completion}) tokens, fp32 on CPU\n")
    print(f"{'model':<12} {'planned GB':>11} {'measured GB':>12} {'plan/measured':>14}")
    for name, source in models.items():
        out = subprocess.run([sys.executable, __file__, "--model", source, "--rows", str(args.rows), "--prompt",
                              str(args.prompt), "--completion", str(args.completion)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = r["planned_gb"] / r["measured_gb"]
        print(f"{name:<12} {r['planned_gb']:11.3f} {r['measured_gb']:12.3f} {ratio:13.2f}x")
        print("             " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in r.items() if k.startswith("plan ")))


if __name__ == "__main__":
    sys.exit(main())
