"""One process of the multi-process trainer tests (tests/test_distributed.py starts it with torchrun, or with
accelerate launch and one of configs/accelerate/*.yaml).

    python -m torch.distributed.run --nproc_per_node N tests/distributed_worker.py MODE OUT [key=value ...]

MODE `update`: a GRPO update from fixed rollouts, shared out as `split` says (`even`: round robin;
`first`: all to the first process, so the others keep nothing); the first process saves the weights.
MODE `srl`: validation (as configured), then one whole SRL step (sampling, dynamic sampling with
refill, update). The step's reward is a fixed function of each rollout's place in its group on the
first process (never flat) and -1 on the others (always flat, so they keep nothing); each process
writes its metrics row, its validation figures and a weight checksum.
MODE `run`: `Trainer.run` as configured (`resume=1` continues OUT/run), under whatever engine the launch
picked (tests/test_distributed.py starts it with accelerate's FSDP2 and ZeRO-3 configs); the reward is
a fixed function of each completion's text, so that groups differ and the GRPO update runs.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

import torch

from srl_agent.policy import Completion
from srl_agent.train import trainer as trainer_module
from srl_agent.train.config import TrainConfig
from srl_agent.train.grpo import RolloutBatch
from srl_agent.train.trainer import Rollout, Trainer


def make_trainer(out: Path, settings: dict[str, str], resume: bool = False, log=lambda _: None) -> Trainer:
    cfg = TrainConfig.builtin()
    base = {"output_dir": str(out / "run"), "sft_warmup.steps": "0", "batch_size": "4", "grpo.group_size": "4",
            "rollout.max_new_tokens": "8", "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64",
            "validation.trajectories": "0", "compute.micro_batch_size": "4"}
    for key, value in {**base, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg, resume=resume, log=log)


def fixed_rollouts(trainer: Trainer) -> list[Rollout]:
    """4 groups of 4 completions with random tokens and rewards, the same in every process."""
    gen = torch.Generator().manual_seed(0)
    rollouts = []
    for ex in trainer.train_examples[:4]:
        lengths = torch.randint(1, 12, (4,), generator=gen).tolist()
        completions = [Completion("", torch.randint(10, 500, (n,), generator=gen).tolist()) for n in lengths]
        rewards = torch.rand(4, generator=gen).tolist()
        rollouts.append(Rollout(ex, trainer.prompt_ids(ex)[-40:], completions, rewards))
    return rollouts


def update(trainer: Trainer, out: Path, split: str) -> None:
    rollouts = fixed_rollouts(trainer)
    mine = rollouts[trainer.rank::trainer.world] if split == "even" else rollouts if trainer.main else []
    batch = RolloutBatch.from_groups([r.group() for r in mine], trainer.cfg.grpo.std_eps)
    row = trainer.grpo_update(batch, trainer.cfg.rollout.temperature)
    weights = trainer.accelerator.get_state_dict(trainer.model)  # gathered from the shards under FSDP2
    if trainer.main:
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, out / "weights.pt")
        (out / "row.json").write_text(json.dumps(row))


def srl(trainer: Trainer, out: Path) -> None:
    group = trainer.cfg.grpo.group_size

    def rewards(texts, experts, cfg, **kwargs):
        if trainer.main:
            return [(i % group) / group for i in range(len(texts))]
        return [-1.0] * len(texts)

    val = trainer.evaluate()  # shared out among the processes (the real reward), then gathered
    trainer_module.srl_rewards = rewards
    before = [p.detach().clone() for p in trainer.unwrapped.parameters()]
    row = trainer.train_step()
    after = list(trainer.unwrapped.parameters())
    row["moved"] = sum(float((a - b).abs().sum()) for a, b in zip(after, before, strict=True))
    row["checksum"] = sum(float(p.double().sum()) for p in after)
    (out / f"rank{trainer.rank}.json").write_text(json.dumps({**row, **val}))


def text_rewards(texts, experts, cfg, **kwargs) -> list[float]:
    """A fixed reward in [0, 1) for each completion's text: the same texts score the same after a resume."""
    return [zlib.crc32(text.encode()) % 8 / 8 for text in texts]


def run(out: Path, settings: dict[str, str]) -> None:
    trainer_module.srl_rewards = text_rewards
    resume = settings.pop("resume", "0") == "1"
    make_trainer(out, settings, resume, log=print).run()


def main() -> None:
    mode, out, *pairs = sys.argv[1:]
    settings = dict(pair.split("=", 1) for pair in pairs)
    split = settings.pop("split", "even")
    out = Path(out)
    if mode == "run":
        run(out, settings)
        exit_now()
    trainer = make_trainer(out, settings)
    update(trainer, out, split) if mode == "update" else srl(trainer, out)
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()  # as Trainer.run does: a process group left to the exit can abort it
    exit_now()


def exit_now() -> None:
    """Leave without the interpreter's teardown, whose destruction of gloo's threads aborted a worker now and then
    ("terminate called without an active exception", rank 1 after its results were complete)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
