"""The trainer on several CPU processes (gloo, started by torchrun) through accelerate's DDP: the update from
the same rollouts ends with the same weights as one process; a whole SRL step with dynamic sampling fills
the global batch while a process that kept nothing still joins every collective. Also fp32 master weights
at the paper's lr, and the engine configs that cannot run here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"


def torchrun(processes: int, mode: str, out: Path, *settings: str) -> None:
    out.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                           str(WORKER), mode, str(out), *settings], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("split, settings", [
    ("even", ["loss_norm=sequence"]),
    ("first", ["loss_norm=token", "ppo_epochs=2", "update_layout=padded"]),  # the second process keeps nothing
])
def test_an_update_split_over_two_processes_ends_with_one_process_s_weights(tmp_path, split, settings):
    torchrun(1, "update", tmp_path / "one", *settings)
    torchrun(2, "update", tmp_path / "two", f"split={split}", *settings)
    one, two = torch.load(tmp_path / "one" / "weights.pt"), torch.load(tmp_path / "two" / "weights.pt")
    start = _initial_weights()
    assert one.keys() == two.keys()
    assert any(not torch.equal(one[k], start[k]) for k in one)  # a step was taken
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-6), name
    rows = [json.loads((tmp_path / d / "row.json").read_text()) for d in ("one", "two")]
    assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=1e-5, abs=1e-7)
    assert rows[1]["update_tokens"] == rows[0]["update_tokens"]


def _initial_weights() -> dict[str, torch.Tensor]:
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    cfg = TrainConfig.builtin()
    cfg.set("tiny_model.hidden_size", "32")
    cfg.set("tiny_model.intermediate_size", "64")
    return load_model(cfg, device=torch.device("cpu"))[0].state_dict()


def test_a_whole_srl_step_on_two_processes_fills_the_global_batch(tmp_path):
    """The first process keeps every group and the second none: dynamic sampling refills the global batch
    of 4 over three rounds (each process samples its share of what is missing: 2+2, 1+1, 1+1), and the
    process that kept nothing joins the update's collectives with stand-in micro-batches. Validation before
    it is shared out among the processes and gathered."""
    torchrun(2, "srl", tmp_path / "srl", "val_trajectories=1", "val_examples=3")
    first, second = (json.loads((tmp_path / "srl" / f"rank{r}.json").read_text()) for r in (0, 1))
    for row in (first, second):  # the statistics are global, the same on every process
        assert (row["fill_ratio"], row["sample_rounds"], row["sampled_prompts"], row["dropped_groups"]) == (
            1.0, 3, 8, 4)
    assert len(first["batch"]) == 4 and second["batch"] == []
    assert first["moved"] > 0 and first["checksum"] == second["checksum"]  # one step, the same weights
    # validation: the 3 held-out steps shared out (2 + 1, the second process repeating one uncounted), gathered
    assert first["val_steps"] == second["val_steps"] == 3 and first["val_reward"] == second["val_reward"]


def test_fp32_master_weights_take_an_lr_5e_7_step_that_bf16_weights_round_away():
    """The paper's lr 5e-7: one Adam step moves each weight by about 5e-7, far below half a bf16 ulp of a
    typical weight (|w| ~ 0.02: 6e-5). Stored in bf16, almost no weight changes; our models keep fp32
    master weights (compute still runs in bf16 under autocast) and every weight moves by about the lr."""
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    cfg = TrainConfig()
    cfg.bf16 = True
    model, _ = load_model(cfg, device=torch.device("cpu"))
    ids = torch.randint(10, 500, (2, 24))

    def adam_step(model) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        before = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-7, weight_decay=0.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        return before, [p.detach() for p in model.parameters()]

    pure = load_model(TrainConfig(), device=torch.device("cpu"))[0].to(torch.bfloat16)
    before, after = adam_step(pure)
    changed = sum(int((a != b).sum()) for a, b in zip(after, before, strict=True))
    total = sum(p.numel() for p in before)
    assert changed / total < 0.02, changed / total  # 1.1%: the weights within ~1e-4 of 0 (biases start at 0)

    assert all(p.dtype == torch.float32 for p in model.parameters())
    before, after = adam_step(model)
    moves = torch.cat([(a - b).abs().flatten() for a, b in zip(after, before, strict=True)])
    moved = moves[moves > 0]
    assert len(moved) / len(moves) > 0.99  # every weight with a gradient
    assert moved.median().item() == pytest.approx(5e-7, rel=0.1)  # Adam's first step: lr * sign(gradient)


def test_an_engine_config_that_cannot_run_here_is_one_clear_line(tmp_path):
    def launch(config: str, processes: int) -> str:
        proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                               str(ROOT / "configs" / "accelerate" / config), "--num_processes", str(processes),
                               "-m", "srl_agent.cli", "train", "--env", "swe", "--output-dir", str(tmp_path / "x")],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode != 0
        return proc.stdout + proc.stderr

    assert "has one process: pass --num_processes N" in launch("fsdp2.yaml", 1)
    assert "which accelerate runs only on GPUs: on CPU launch with configs/accelerate/ddp.yaml" in launch(
        "fsdp2.yaml", 2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="accelerate runs FSDP only on GPUs (on CPU it falls back to "
                    "DDP), and this needs two; torch's fully_shard itself works on CPU with gloo")
def test_an_update_sharded_by_fsdp2_ends_with_one_process_s_weights(tmp_path):
    torchrun(1, "update", tmp_path / "one", "bf16=false")
    out = tmp_path / "two"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ROOT / "configs" / "accelerate" / "fsdp2.yaml"), "--num_processes", "2", str(WORKER),
                           "update", str(out), "bf16=false"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one, two = torch.load(tmp_path / "one" / "weights.pt"), torch.load(out / "weights.pt")
    for name in one:
        assert torch.allclose(one[name].cpu(), two[name].cpu(), atol=1e-5), name
