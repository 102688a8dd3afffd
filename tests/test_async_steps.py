"""Rollouts that overlap the update (grpo.async_steps, train/async_rollouts.py), on CPU with the tiny model: the
staleness bound, weights synced between steps and never while a sampler samples, the data order kept, the lock-step
path unchanged, kill -9 and --resume, Ctrl-C, and the refusals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from srl_agent.errors import UserError
from srl_agent.train.config import TrainConfig
from srl_agent.train.data import ExampleStream

ROOT = Path(__file__).resolve().parents[1]

SMALL = {"sft_warmup.steps": 1, "batch_size": 2, "grpo.group_size": 4, "rollout.max_new_tokens": 8,
         "grpo.dynamic_sampling": False, "tiny_model.hidden_size": 32, "tiny_model.intermediate_size": 64,
         "validation.examples": 2, "validation.every": 100}


def stand_in_rewards(texts, experts, cfg, offered=None) -> list[float]:
    """A random model never writes the answer format: every SRL reward would be -1, every group flat and every update
    zero. A reward read off the answer's length instead, so that the updates move the weights."""
    return [len(text) % 7 / 6 for text in texts]


def trainer_with(run_dir: Path, monkeypatch, **settings):
    from srl_agent.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "srl_rewards", stand_in_rewards)
    cfg = TrainConfig.builtin().updated({"output_dir": str(run_dir), **SMALL, **settings})
    return trainer_module.Trainer(cfg, log=lambda _: None)


def checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().numpy().tobytes())
    return digest.hexdigest()


def rollout_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rollouts")]


def test_rollouts_sampled_ahead_are_at_most_k_steps_stale_from_weights_synced_between_steps(tmp_path, monkeypatch):
    """async_steps 2, a checkpoint every 4 steps, a 1-step SFT warm-up: steps 1-3 and 4-6 are two segments. Each
    segment's first step samples its own rollouts and launches the next two with its weights, so their staleness is
    0, 1, 2 per segment. Every sampler holds, all through each generate call, the trainer's weights of the version it
    stamps; the updates of steps 1 and 4 and 2 and 5 run while a later step is launched; every example is used once,
    in the stream's order."""
    trainer = trainer_with(tmp_path / "run", monkeypatch, **{"grpo.async_steps": 2, "checkpointing.every": 4,
                                                            "max_steps": 7})
    weights_at_step: dict[int, str] = {}
    take_step = trainer.train_step

    def train_step():
        weights_at_step[trainer.step] = checksum(trainer.unwrapped)
        return take_step()

    trainer.train_step = train_step
    sampled_versions = []
    for sampler in trainer.pipeline.samplers:
        def generate_ids(*args, policy=sampler.policy, generate=sampler.policy.generate_ids, **kwargs):
            before = checksum(policy.model)
            completions = generate(*args, **kwargs)
            assert checksum(policy.model) == before == weights_at_step[policy.version]
            sampled_versions.append(policy.version)
            return completions

        sampler.policy.generate_ids = generate_ids
    update = trainer.grpo_update
    ahead_at_update = {}

    def grpo_update(batch, temperature):
        assert batch.behaviour_logprobs is not None and len(batch.behaviour_logprobs) == len(batch)
        ahead_at_update[trainer.step] = [s for s in (trainer.step + 1, trainer.step + 2)
                                         if trainer.pipeline.is_launched(s)]
        return update(batch, temperature)

    trainer.grpo_update = grpo_update
    rows = []
    trainer.run(on_step=rows.append)

    assert [r["phase"] for r in rows] == ["sft"] + ["srl"] * 6
    assert [r["staleness_max"] for r in rows[1:]] == [0, 1, 2, 0, 1, 2]
    assert [r["staleness_mean"] for r in rows[1:]] == [0, 1, 2, 0, 1, 2]
    assert sampled_versions == [1, 1, 1, 4, 4, 4]  # one generate call per step: 2 prompts x G 4
    assert ahead_at_update == {1: [2, 3], 2: [3], 3: [], 4: [5, 6], 5: [6], 6: []}  # none past the checkpoint
    assert all(r["grad_norm"] > 0 and r["time_wait"] >= 0 for r in rows[1:])
    stream = ExampleStream(trainer.train_examples, seed=0)
    assert [r["batch"] for r in rows] == [[f"{e.trajectory_id}:{e.step_index}" for e in stream.take(2)]
                                          for _ in rows]
    assert rollout_threads() == []  # the run closed its pipeline
    # a sampler computes with its own weights only: the trainer's changing leaves its logits as they were
    sampler = trainer.pipeline.samplers[0].policy.model
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = sampler(input_ids=ids).logits
        for weight in trainer.unwrapped.parameters():
            weight.mul_(0.5)
        assert torch.equal(sampler(input_ids=ids).logits, before)


def test_async_steps_0_is_lock_step_and_unstale_rollouts_sample_what_lock_step_samples(tmp_path, monkeypatch):
    """async_steps 0 takes the lock-step path: no pipeline, no rollout thread, no log-probs asked of the sampler, rows
    without staleness (its numbers equal the code's before async_steps existed: the objective is the same function, bit
    for bit, test_grpo.py). async_steps 1 with a checkpoint after every step never samples ahead: its sampler, a copy
    of the same weights, samples the same completions, and its loss, weighed by the sampler's log-probs, is lock
    step's up to rounding (a misplaced behaviour log-prob would weigh tokens by far more)."""
    runs = {}
    for async_steps in (0, 1):
        trainer = trainer_with(tmp_path / str(async_steps), monkeypatch, **{
            "grpo.async_steps": async_steps, "checkpointing.every": 1, "max_steps": 3})
        asked: list[bool] = []

        def generate_ids(*args, asked=asked, generate=trainer.policy.generate_ids, **kwargs):
            asked.append(kwargs["with_logprobs"])
            return generate(*args, **kwargs)

        trainer.policy.generate_ids = generate_ids
        rows = []
        for step in range(3):
            trainer.step = step
            rows.append(trainer.train_step())
        runs[async_steps] = rows, {n: p.detach().clone() for n, p in trainer.unwrapped.named_parameters()}
        if async_steps == 0:
            assert trainer.pipeline is None and set(asked) == {False}
            assert not any("staleness_max" in r or "time_wait" in r for r in rows)
        else:
            assert asked == [] and [r["staleness_max"] for r in rows[1:]] == [0, 0]
        trainer.close()
    (lock_step, lock_weights), (ahead, ahead_weights) = runs[0], runs[1]
    for a, b in zip(lock_step, ahead, strict=True):
        assert a["batch"] == b["batch"]
        for k in ("reward_mean", "completion_tokens", "update_tokens"):
            assert a.get(k) == b.get(k), k
        for k in ("loss", "grad_norm"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    assert lock_step[-1]["grad_norm"] > 0
    for name, weights in lock_weights.items():
        assert torch.allclose(weights, ahead_weights[name], rtol=1e-4, atol=1e-6), name


def test_ctrl_c_stops_the_rollouts_sampled_ahead(tmp_path, monkeypatch):
    """Ctrl-C after step 2, while step 3's rollouts are sampled ahead: run() raises KeyboardInterrupt and the rollout
    thread has ended."""
    trainer = trainer_with(tmp_path / "run", monkeypatch, **{"grpo.async_steps": 1, "max_steps": 6})

    def interrupt(row):
        if row["step"] == 2:
            assert trainer.pipeline.is_launched(2)  # step 3 (0-based 2) is in flight
            os.kill(os.getpid(), signal.SIGINT)

    # a shell that starts pytest in the background (CI scripts do) leaves SIGINT ignored: restore Python's own
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.run(on_step=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert trainer.step == 2 and rollout_threads() == [] and trainer.pipeline.launched == {}


DRIVER = """
import sys
from srl_agent.cli import main
from srl_agent.train import trainer
sys.path.insert(0, {tests!r})
from test_async_steps import stand_in_rewards
trainer.srl_rewards = stand_in_rewards
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_then_resume_with_async_steps_loses_nothing_and_samples_nothing_twice(tmp_path):
    """async_steps 1, a checkpoint every 4 steps: killed hard once step 6 is logged (step 7's rollouts in flight),
    resumed from the step-4 checkpoint. Steps 5 to 8 are sampled again from the checkpoint's data position and RNG
    state, steps 5 and 6 as the killed run had them, and the eight steps' batches hold sixteen examples, each once."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tests=str(ROOT / "tests")))
    run = tmp_path / "run"
    args = [sys.executable, str(driver), "train", "--env", "swe", "--output-dir", str(run), "--max-steps", "8",
            "--no-plot", *[a for k, v in {**SMALL, "grpo.async_steps": 1, "checkpointing.every": 4}.items()
                           for a in ("--set", f"{k}={v}")]]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    metrics, deadline = run / "metrics.jsonl", time.monotonic() + 300
    while not (metrics.exists() and '"step": 6' in metrics.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before_kill = {r["step"]: r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("phase")}
    assert (run / "latest").read_text() == "step-000004"
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "at step 4" in resumed.stderr
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("phase")]
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert [r["staleness_max"] for r in rows[1:]] == [0, 1, 1, 0, 1, 1, 1]  # the pipeline restarts at a checkpoint
    for step in (5, 6):
        for k in ("batch", "reward_mean", "completion_tokens", "staleness_max"):
            assert rows[step - 1][k] == before_kill[step][k], (step, k)
        assert rows[step - 1]["loss"] == pytest.approx(before_kill[step]["loss"], rel=1e-5, abs=1e-7)
    keys = [key for r in rows for key in r["batch"]]
    assert len(keys) == 16 and len(set(keys)) == 16


def test_async_steps_beyond_the_maximum_or_without_the_sampler_s_log_probs_are_refused_in_one_line():
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig()
    with pytest.raises(UserError, match=r"^--set: grpo\.async_steps must be at most 4, not 5$"):
        cfg.set("grpo.async_steps", "5")
    for settings, message in (({"rollout.backend": "vllm"}, "the colocated vllm engine does not report"),
                              ({"rollout.backend": "hf_paged", "rollout.top_p": 0.9}, "needs rollout.top_p 1")):
        with pytest.raises(UserError, match=message) as refused:
            cfg.updated({"grpo.async_steps": 1, **settings}).validate()
        assert "\n" not in str(refused.value)
    cfg.updated({"grpo.async_steps": 1, "rollout.backend": "hf_paged"}).validate()
    for world, sharded in ((2, False), (1, True)):
        with pytest.raises(UserError, match=r"with several processes or a sharded engine, use grpo\.async_steps 0"):
            Trainer._check_engine_fits_run(SimpleNamespace(cfg=cfg.updated({"grpo.async_steps": 1}), world=world,
                                                           sharded=sharded))


def test_rlvr_episodes_sampled_ahead_then_ctrl_c_closes_every_sandbox(tmp_path, swe_mini_images):
    """RLVR with async_steps 1, in swe-mini's sandboxes: step 2's episodes play while step 1 updates, and record the
    version that sampled each answer (staleness 0, then 1); the update scores their sampled tokens, weighed by the
    sampler's log-probs. Ctrl-C while step 3's episodes play in their sandboxes: they end, and every sandbox closes."""
    from srl_agent.train.model import load_model, save_model
    from srl_agent.train.trainer import Trainer

    from .test_rlvr_train import containers_of

    small = {"tiny_model.hidden_size": 32, "tiny_model.intermediate_size": 64}
    model, tokenizer = load_model(TrainConfig().updated(small))
    save_model(model, tokenizer, tmp_path / "start")
    cfg = TrainConfig.builtin().updated({
        "method": "rlvr", "init_from": str(tmp_path / "start"), "output_dir": str(tmp_path / "run"), **small,
        "validation.examples": 0, "rlvr.batch_size": 1, "grpo.dynamic_sampling": False, "episodes.group_size": 2,
        "episodes.max_turns": 2, "episodes.max_new_tokens": 16, "episodes.max_episode_tokens": 3000,
        "episodes.workers": 2, "grpo.async_steps": 1, "max_steps": 4})
    trainer = Trainer(cfg, log=lambda _: None)
    update, rows = trainer.grpo_update, []

    def grpo_update(batch, temperature):
        assert batch.behaviour_logprobs is not None and len(batch) > 0
        return update(batch, temperature)

    def interrupt_in_step_3(row):
        rows.append(row)
        if row["step"] == 2:
            deadline = time.monotonic() + 60
            while not containers_of(os.getpid()):  # step 3's episodes have opened their sandboxes
                assert time.monotonic() < deadline and not trainer.pipeline.launched[2].done()
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

    trainer.grpo_update = grpo_update
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in test_ctrl_c_stops_the_rollouts...
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.run(on_step=interrupt_in_step_3)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [(r["phase"], r["staleness_max"], r["episodes"]) for r in rows] == [("rlvr", 0, 2), ("rlvr", 1, 2)]
    assert all(r["update_tokens"] == r["completion_tokens"] > 0 for r in rows)
    assert rollout_threads() == [] and containers_of(os.getpid()) == []
