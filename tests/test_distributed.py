"""The trainer on several CPU processes (gloo, started by torchrun or accelerate launch) through accelerate's
DDP, FSDP2 and DeepSpeed ZeRO-3: the update from the same rollouts ends with the same weights as one process
(DDP and FSDP2); a whole SRL step with dynamic sampling fills the global batch while a process that kept
nothing still joins every collective; two-process runs killed with SIGKILL resume identically, replicated or
from each process's shards. Also fp32 master weights at the paper's lr,
FSDP2 over one process, and a DeepSpeed config without deepspeed."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import assert_same_adam_steps

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
pytestmark = pytest.mark.distributed  # .ci/run runs these again under the GPU machine's torch 2.11


def torchrun(processes: int, mode: str, out: Path, *settings: str) -> None:
    out.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                           str(WORKER), mode, str(out), *settings], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("split, settings", [
    ("even", ["grpo.loss_norm=sequence"]),
    # the second process keeps nothing
    ("first", ["grpo.loss_norm=token", "grpo.ppo_epochs=2", "compute.update_layout=padded"]),
])
def test_an_update_split_over_two_processes_ends_with_one_process_s_weights(tmp_path, split, settings):
    torchrun(1, "update", tmp_path / "one", *settings)
    torchrun(2, "update", tmp_path / "two", f"split={split}", *settings)
    one, two = torch.load(tmp_path / "one" / "weights.pt"), torch.load(tmp_path / "two" / "weights.pt")
    start = _initial_weights()
    assert one.keys() == two.keys()
    assert any(not torch.equal(one[k], start[k]) for k in one)  # a step was taken
    epochs = int(dict(s.split("=") for s in settings).get("grpo.ppo_epochs", 1))
    assert_same_adam_steps(one, two, [_lr()] * epochs)  # the gradients summed over 1 or 2 processes
    rows = [json.loads((tmp_path / d / "row.json").read_text()) for d in ("one", "two")]
    # a sum over tokens (float order: ~1e-7 relative); weights Adam took the other way have ~0 gradient, so
    # they move the second epoch's loss by ~0 too
    assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=1e-5, abs=1e-7)
    assert rows[1]["update_tokens"] == rows[0]["update_tokens"]


def _lr() -> float:
    """The learning rate of the worker's `update` (configs/tiny.yaml's)."""
    from srl_agent.train.config import TrainConfig

    return TrainConfig.builtin().optim.lr


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
    torchrun(2, "srl", tmp_path / "srl", "validation.trajectories=1", "validation.examples=3")
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
    cfg.compute.bf16 = True
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


def test_a_deepspeed_config_without_deepspeed_is_one_clear_line(monkeypatch):
    from srl_agent.errors import UserError
    from srl_agent.train import distributed
    from srl_agent.train.config import TrainConfig

    find_spec = distributed.importlib.util.find_spec  # ZeRO-3 where DeepSpeed is not installed (CI installs it)
    monkeypatch.setattr(distributed.importlib.util, "find_spec", lambda name: None if name == "deepspeed" else
                        find_spec(name))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(UserError, match="DeepSpeed, which is not installed: pip install --no-build-isolation"):
        distributed.make_accelerator(TrainConfig())


def test_an_update_sharded_by_fsdp2_ends_with_one_process_s_weights(tmp_path):
    """The same rollouts, split over two processes whose model accelerate's FSDP2 shards (gloo here)."""
    torchrun(1, "update", tmp_path / "one", "compute.bf16=false")
    out = tmp_path / "two"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ROOT / "configs" / "accelerate" / "fsdp2.yaml"), "--num_processes", "2", str(WORKER),
                           "update", str(out), "compute.bf16=false"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one, two = torch.load(tmp_path / "one" / "weights.pt"), torch.load(out / "weights.pt")
    assert_same_adam_steps(one, two, [_lr()])  # one step; gradients reduce-scattered over two shards


TWO_PROCESS_RUN = ["--max-steps", "4", "--set", "tiny_model.hidden_size=32", "--set", "tiny_model.intermediate_size=64",
                   "--set", "batch_size=2", "--set", "grpo.group_size=4", "--set", "rollout.max_new_tokens=16",
                   "--set", "validation.examples=4", "--set", "sft_warmup.steps=2", "--set", "validation.every=2",
                   "--set", "checkpointing.every=2", "--no-plot"]


def launch_two(run: Path, *args: str) -> subprocess.Popen:
    """The CLI on two gloo processes (DDP) started by torchrun."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                             "srl_agent.cli", "train", "--env", "swe", "--output-dir", str(run), *TWO_PROCESS_RUN,
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def descendants(pid: int) -> list[int]:
    """A process's children, theirs and so on (torchrun starts each worker in a session of its own)."""
    children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()]
    return children + [d for c in children for d in descendants(c)]


def kill_once_latest_is(proc: subprocess.Popen, run: Path, checkpoint: str) -> None:
    """SIGKILL the launcher and all its workers at once (as a lost node goes) when `latest` names `checkpoint`."""
    deadline, latest = time.monotonic() + 600, run / "latest"
    while not (latest.exists() and latest.read_text() == checkpoint):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.1)
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def test_two_processes_killed_with_sigkill_resume_identically(tmp_path):
    """The one-process kill -9 test (test_train.py) on two DDP processes: the launcher and both workers are
    killed once `latest` names step 2 (the SFT warm-up), the resumed run samples and updates steps 3-4 from
    each process's own restored RNG and data position, and ends with the metrics and weights of a run that
    never stopped. Its checkpoints and best/ are plain HF folders."""
    from transformers import AutoModelForCausalLM

    straight = tmp_path / "straight"
    proc = launch_two(straight)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    killed = tmp_path / "killed"
    kill_once_latest_is(launch_two(killed), killed, "step-000002")
    resumed = launch_two(killed, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-4000:]
    said = " ".join(err.split())  # the console wraps long lines
    assert said.count("resumed from") == 2 and said.count("at step 2") == 2  # both processes
    a, b = rows(straight), rows(killed)
    assert [r["step"] for r in b] == [r["step"] for r in a] == [0, 1, 2, 3, 4]
    assert [r.get("batch") for r in b] == [r.get("batch") for r in a]
    # the same processes, threads and float order on the same CPU as the run that never stopped: the same sums,
    # so no Adam amplification; the tolerances (far below lr 1e-3) only allow for ops that are not bitwise repeatable
    for x, y in zip(a, b, strict=True):
        for k in ("loss", "reward_mean", "val_reward", "completion_tokens"):
            if k in x:
                assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-6), (x["step"], k)

    def hf_weights(folder: Path) -> dict[str, torch.Tensor]:
        return AutoModelForCausalLM.from_pretrained(folder).state_dict()

    final = hf_weights(straight / "checkpoints" / "step-000004")
    again = hf_weights(killed / "checkpoints" / "step-000004")
    for name in final:
        assert torch.allclose(final[name], again[name], atol=1e-6), name
    best_step = json.loads((killed / "best" / "best.json").read_text())["step"]
    best, at_step = hf_weights(killed / "best"), hf_weights(killed / "checkpoints" / f"step-{best_step:06d}")
    assert all(torch.equal(best[name], at_step[name]) for name in best)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


SHARDED_RUN = ["max_steps=3", "sft_warmup.steps=1", "checkpointing.every=2", "validation.every=2",
               "validation.trajectories=1", "validation.examples=4"]


def launch_sharded(engine: str, out: Path, *settings: str) -> subprocess.Popen:
    """The trainer (tests/distributed_worker.py `run`) on two gloo processes under an engine config we ship."""
    out.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                             str(ROOT / "configs" / "accelerate" / f"{engine}.yaml"), "--num_processes", "2",
                             str(WORKER), "run", str(out), *SHARDED_RUN, *settings], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.parametrize("engine, shard_files", [
    ("fsdp2", [f"{kind}/__{r}_0.distcp" for r in (0, 1) for kind in ("pytorch_model_fsdp_0", "optimizer_0")]),
    pytest.param("zero3", [f"pytorch_model/zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1)
                           for kind in ("model", "optim")],
                 marks=pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                          reason="DeepSpeed is not installed (.ci/run installs it)")),
])
def test_a_sharded_run_killed_with_sigkill_resumes_identically(tmp_path, engine, shard_files):
    """The trainer itself, sharded by accelerate's FSDP2 or DeepSpeed ZeRO-3 on two gloo processes: an SFT step,
    then SRL steps whose GRPO update runs (the worker's reward tells completions apart), validation and
    generation in step on both processes, each process's shards saved into the checkpoint (accelerate's
    save_state). Killed with SIGKILL once `latest` names step 2, the run resumes from the shards (model, Adam state)
    and each process's RNG and data position, and
    ends as the run that never stopped; its checkpoints and best/ are whole HF folders that transformers loads."""
    from transformers import AutoModelForCausalLM

    from srl_agent.train.checkpoint import ENGINE_DIR

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = launch_sharded(engine, straight)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    kill_once_latest_is(launch_sharded(engine, killed), killed / "run", "step-000002")
    proc = launch_sharded(engine, killed, "resume=1")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    assert out.count("at step 2") == 2  # both processes resumed
    a, b = rows(straight / "run"), rows(killed / "run")
    assert [r["step"] for r in b] == [r["step"] for r in a] == [0, 1, 2, 3]
    assert [r.get("phase") for r in a] == [None, "sft", "srl", "srl"]
    assert all(r["update_tokens"] > 0 and r["grad_norm"] > 0 for r in a[1:])  # every step updated the model
    for x, y in zip(a, b, strict=True):  # the same float order as the run that never stopped (as with DDP above)
        assert y.get("batch") == x.get("batch")
        for k in ("loss", "grad_norm", "reward_mean", "val_reward", "completion_tokens"):
            if k in x:
                assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-6), (x["step"], k)
    for checkpoint in ("step-000002", "step-000003"):  # each process's part of the model and the Adam state
        shards = killed / "run" / "checkpoints" / checkpoint / ENGINE_DIR
        written = {str(p.relative_to(shards)) for p in shards.rglob("*") if p.is_file()}
        assert {*shard_files, "random_states_0.pkl", "random_states_1.pkl"} <= written
        assert not {"optimizer.bin", "pytorch_model.bin"} & written  # no whole state anywhere

    def hf_weights(folder: Path) -> dict[str, torch.Tensor]:
        return AutoModelForCausalLM.from_pretrained(folder).state_dict()

    start = _initial_weights()
    final, again = (hf_weights(run / "run" / "checkpoints" / "step-000003") for run in (straight, killed))
    assert final.keys() == start.keys()
    assert any(not torch.equal(final[k], start[k]) for k in final)
    for name in final:
        assert torch.allclose(final[name], again[name], atol=1e-6), name
    best_step = json.loads((killed / "run" / "best" / "best.json").read_text())["step"]
    best = hf_weights(killed / "run" / "best")
    at_step = hf_weights(killed / "run" / "checkpoints" / f"step-{best_step:06d}")
    assert all(torch.equal(best[name], at_step[name]) for name in best)


def test_fsdp2_over_one_process_takes_the_steps_of_one_plain_process(tmp_path):
    """FSDP2 launched with one process (how a cluster config is tried, and its memory measured, on one GPU) shards
    nothing but runs the sharded path: the same SFT and SRL steps, losses and weights as a plain run, and the
    checkpoint's model and Adam state in a shard."""
    plain, sharded = tmp_path / "plain", tmp_path / "fsdp2"
    plain.mkdir()
    proc = subprocess.run([sys.executable, str(WORKER), "run", str(plain), *SHARDED_RUN], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ROOT / "configs" / "accelerate" / "fsdp2.yaml"), "--num_processes", "1", str(WORKER),
                           "run", str(sharded), *SHARDED_RUN], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    a, b = rows(plain / "run"), rows(sharded / "run")
    assert [r.get("phase") for r in b] == [r.get("phase") for r in a] == [None, "sft", "srl", "srl"]
    assert all(r["grad_norm"] > 0 for r in b[1:])
    # sums in another float order (~1e-7 relative); the weights that Adam took the other way (below) have ~0
    # gradient, so they barely move later steps' losses and gradient norms: the exact check of the same steps
    for x, y in zip(a, b, strict=True):
        for k in ("loss", "grad_norm", "reward_mean", "val_reward"):
            if k in x:
                assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-6), (x["step"], k)
    shards = sharded / "run" / "checkpoints" / "step-000003" / "accelerate"
    assert (shards / "pytorch_model_fsdp_0" / "__0_0.distcp").is_file()
    assert (plain / "run" / "checkpoints" / "step-000003" / "accelerate" / "optimizer.bin").is_file()
    from transformers import AutoModelForCausalLM

    final = [AutoModelForCausalLM.from_pretrained(run / "run" / "checkpoints" / "step-000003").state_dict()
             for run in (plain, sharded)]
    from srl_agent.train.config import TrainConfig

    cfg = TrainConfig.builtin()
    for setting in SHARDED_RUN:
        cfg.set(*setting.split("="))
    assert_same_adam_steps(*final, [cfg.learning_rate(step) for step in range(cfg.max_steps)])  # SFT, SRL, SRL


def test_a_checkpoint_takes_in_the_processes_state_before_it_comes_into_place(tmp_path):
    """The folder scheme: what the processes wrote into `step-N.accelerate` (accelerate's save_state) moves inside
    the checkpoint before its rename; `latest` names it; what a kill left in a staging folder goes on --resume."""
    from srl_agent.train.checkpoint import (
        ENGINE_DIR,
        engine_staging,
        latest_checkpoint,
        load_state,
        recover_run_dir,
        save_checkpoint,
    )
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    cfg = TrainConfig.builtin()
    cfg.set("tiny_model.hidden_size", "32")
    cfg.set("tiny_model.intermediate_size", "64")
    model, tokenizer = load_model(cfg, device=torch.device("cpu"))
    staging = engine_staging(tmp_path, 2)
    staging.mkdir(parents=True)
    for rank in range(2):
        (staging / f"random_states_{rank}.pkl").write_bytes(bytes([rank]))
    save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2, "sharded": False}, engine_state=staging)
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint == tmp_path / "checkpoints" / "step-000002" and not staging.exists()
    assert sorted(p.name for p in (checkpoint / ENGINE_DIR).iterdir()) == ["random_states_0.pkl",
                                                                          "random_states_1.pkl"]
    assert load_state(checkpoint) == {"step": 2, "sharded": False}
    engine_staging(tmp_path, 4).mkdir()  # killed while the processes wrote step 4's state
    recover_run_dir(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002"]


def test_resuming_a_sharded_run_with_another_engine_is_one_clear_line(tmp_path):
    """A checkpoint whose model and optimizer state are shards (FSDP2/ZeRO-3) cannot continue on one process."""
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "srl_agent.cli", "train", "--env", "swe", "--output-dir", str(run), *TWO_PROCESS_RUN]
    first = subprocess.run([*cli, "--set", "validation.examples=0"], capture_output=True, text=True, cwd=ROOT,
                           timeout=600)
    assert first.returncode == 0, first.stderr[-4000:]
    state_file = run / "checkpoints" / (run / "latest").read_text() / "trainer_state.pt"
    state = torch.load(state_file, weights_only=False)
    torch.save({**state, "sharded": True}, state_file)  # as a sharded engine writes it
    again = subprocess.run([*cli, "--resume"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 2
    assert "was written by a sharded engine (FSDP2/ZeRO-3): resume with the same accelerate config" in " ".join(
        again.stderr.split())


def test_lora_under_a_sharded_engine_is_one_clear_line_before_any_weights_load(tmp_path):
    """LoRA under FSDP2 got as far as the first generation (validation or rollouts), which calls the model inside
    the peft wrapper past FSDP2's root, whose weights then stay shards: a DTensor error from deep in transformers.
    It is refused at once, in one line, with nothing written."""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ROOT / "configs" / "accelerate" / "fsdp2.yaml"), "--num_processes", "1", "-m",
                           "srl_agent.cli", "train", "--output-dir", str(run), *TWO_PROCESS_RUN,
                           "--set", "lora.enabled=true"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode != 0
    assert "error: LoRA with a sharded engine (FSDP2/ZeRO-3) is not supported: train LoRA with one process or DDP" in \
        " ".join((proc.stdout + proc.stderr).split())
    assert not run.exists()
