"""One process of the multi-process trainer tests (tests/test_distributed.py starts it with torchrun).

    python -m torch.distributed.run --nproc_per_node N tests/distributed_worker.py MODE OUT [key=value ...]

MODE `update`: a GRPO update from fixed rollouts, shared out as `split` says (`even`: round robin;
`first`: all to the first process, so the others keep nothing); the first process saves the weights.
MODE `srl`: validation (as configured), then one whole SRL step (sampling, dynamic sampling with
refill, update). The step's reward is a fixed function of each rollout's place in its group on the
first process (never flat) and -1 on the others (always flat, so they keep nothing); each process
writes its metrics row, its validation figures and a weight checksum.
MODE `shards`: torch's FSDP2 (`fully_shard`) on the tiny model directly, since accelerate runs FSDP only
on GPUs: a step, every process's shards saved (engine.save_shards), a second step; then a fresh model from
other weights and a fresh optimizer load the shards (engine.load_shards) and take the second step again.
The first process saves both results and the resumed one gathered into an HF folder (`hf/`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from srl_agent.policy import Completion
from srl_agent.train import trainer as trainer_module
from srl_agent.train.config import TrainConfig
from srl_agent.train.engine import load_shards, save_shards
from srl_agent.train.model import load_model, save_model
from srl_agent.train.trainer import Rollout, Trainer


def make_trainer(out: Path, settings: dict[str, str]) -> Trainer:
    cfg = TrainConfig.builtin()
    base = {"output_dir": str(out / "run"), "sft_warmup_steps": "0", "batch_size": "4", "group_size": "4",
            "max_new_tokens": "8", "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64",
            "val_trajectories": "0", "micro_batch_size": "4"}
    for key, value in {**base, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg, log=lambda _: None)


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
    row = trainer.grpo_update(mine)
    weights = trainer.accelerator.get_state_dict(trainer.model)  # gathered from the shards under FSDP2
    if trainer.main:
        torch.save({k: v.detach().cpu().clone() for k, v in weights.items()}, out / "weights.pt")
        (out / "row.json").write_text(json.dumps(row))


def srl(trainer: Trainer, out: Path) -> None:
    group = trainer.cfg.group_size

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


def shards(out: Path) -> None:
    from accelerate import Accelerator
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    accelerator = Accelerator(cpu=True)  # the gloo process group; the model is sharded by hand below
    cfg = TrainConfig.builtin()
    cfg.set("tiny_model.hidden_size", "32")
    cfg.set("tiny_model.intermediate_size", "64")
    ids = torch.randint(10, 500, (2, 16), generator=torch.Generator().manual_seed(accelerator.process_index))

    def sharded_model(seed: int):
        cfg.seed = seed
        model, tokenizer = load_model(cfg, device=torch.device("cpu"))
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3), tokenizer

    def step(model, optimizer) -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def gathered(model) -> dict[str, torch.Tensor]:
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    model, optimizer, tokenizer = sharded_model(0)
    step(model, optimizer)
    save_shards(accelerator, model, optimizer, out / "shards")
    step(model, optimizer)
    expected = gathered(model)
    fresh, fresh_optimizer, _ = sharded_model(1)  # other weights, no Adam state: the shards bring both back
    load_shards(accelerator, fresh, fresh_optimizer, out / "shards")
    step(fresh, fresh_optimizer)
    resumed = gathered(fresh)
    if accelerator.is_main_process:
        torch.save({"expected": expected, "resumed": resumed}, out / "weights.pt")
        save_model(fresh, tokenizer, out / "hf", resumed)
    # no process leaves while another still works: gloo's threads abort one that exits mid-collective
    accelerator.wait_for_everyone()
    torch.distributed.destroy_process_group()


def main() -> None:
    mode, out, *pairs = sys.argv[1:]
    settings = dict(pair.split("=", 1) for pair in pairs)
    split = settings.pop("split", "even")
    out = Path(out)
    if mode == "shards":
        return shards(out)
    trainer = make_trainer(out, settings)
    update(trainer, out, split) if mode == "update" else srl(trainer, out)
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main()
