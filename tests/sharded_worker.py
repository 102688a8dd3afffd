"""One process of the GPU-shaped sharded tests (tests/test_sharded_gpu_shapes.py starts it plainly, or with
`accelerate launch` and configs/accelerate/fsdp2.yaml or zero3.yaml over gloo).

    python tests/sharded_worker.py MODE OUT [key=value ...]

MODE `head`: one forward and backward of the memory-safe log-probs over fixed sequences (the same on every
process), under the profiler. The first process writes `result.pt`: the log-probs, every parameter's whole
gradient, and the number of all-gathers the forward and the backward made.
MODE `generate`: one greedy `generate` of `max_new_tokens` tokens from fixed prompts inside the trainer's
sampling phase, under the profiler; the first process writes the ids and the number of all-gathers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from srl_agent.policy import SamplingParams
from srl_agent.train.config import TrainConfig
from srl_agent.train.trainer import Trainer


def make_trainer(out: Path, settings: dict[str, str]) -> Trainer:
    cfg = TrainConfig.builtin()
    base = {"output_dir": str(out / "run"), "validation.trajectories": "0", "compute.micro_batch_size": "4"}
    for key, value in {**base, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg)


def all_gathers(prof) -> int:
    """Collectives that gather weights, as the profiler names them (c10d's allgather ops, any backend)."""
    return sum(e.count for e in prof.key_averages() if "allgather" in e.key.lower().replace("_", ""))


def fixed_sequences() -> list[tuple[list[int], list[int]]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randint(10, 500, (int(p),), generator=gen).tolist(),
             torch.randint(10, 500, (int(c),), generator=gen).tolist())
            for p, c in zip(torch.randint(4, 12, (4,), generator=gen), torch.randint(6, 14, (4,), generator=gen),
                            strict=True)]


def whole_gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    grads = {}
    for name, param in trainer.accelerator.unwrap_model(trainer.model).named_parameters():
        if trainer.accelerator.distributed_type.name == "DEEPSPEED":
            from deepspeed.utils import safe_get_full_grad

            grad = safe_get_full_grad(param)
        else:
            grad = param.grad.full_tensor() if hasattr(param.grad, "full_tensor") else param.grad
        grads[name] = grad.detach().float().cpu().clone()
    return grads


def head(trainer: Trainer, out: Path) -> None:
    batch = trainer._batch(fixed_sequences(), "padded")
    with profile(activities=[ProfilerActivity.CPU]) as forward_prof:
        logp = batch.token_logprobs(trainer.model)
    loss = (logp * batch.target_mask).sum()
    with profile(activities=[ProfilerActivity.CPU]) as backward_prof:
        if trainer.accelerator.distributed_type.name == "DEEPSPEED":
            trainer.model.backward(loss)  # the engine's own: accelerate's backward would also step
        else:
            loss.backward()
    grads = whole_gradients(trainer)
    if trainer.main:
        torch.save({"logp": logp.detach().cpu(), "mask": batch.target_mask.cpu(), "grads": grads,
                    "scored": int(batch.target_mask.sum()), "forward_gathers": all_gathers(forward_prof),
                    "backward_gathers": all_gathers(backward_prof)}, out / "result.pt")


def generate(trainer: Trainer, out: Path) -> None:
    prompts = [p for p, _ in fixed_sequences()]
    params = SamplingParams(1, 0.0, 1.0, trainer.cfg.rollout.max_new_tokens)
    with profile(activities=[ProfilerActivity.CPU]) as prof, trainer.sampling_phase():
        groups = trainer.rollout.generate_ids(prompts, params, with_logprobs=False)
    if trainer.main:
        torch.save({"ids": [g[0].token_ids for g in groups], "gathers": all_gathers(prof)}, out / "result.pt")


def main() -> None:
    mode, out, *pairs = sys.argv[1:]
    out = Path(out)
    trainer = make_trainer(out, dict(pair.split("=", 1) for pair in pairs))
    {"head": head, "generate": generate}[mode](trainer, out)
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: see exit_now in tests/distributed_worker.py


if __name__ == "__main__":
    main()
