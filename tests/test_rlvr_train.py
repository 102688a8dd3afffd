"""RLVR in the trainer: `--method rlvr|srl+rlvr` with a tiny model and real swe-mini sandboxes. The schedule,
the config sections, an RLVR step through the shared GRPO update (sampled tokens only, log-probs as sampled),
kill -9 and --resume with the same task order and no leaked containers, and bad input as one line."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srl_agent.errors import UserError
from srl_agent.metrics import STATUSES
from srl_agent.rlvr.batch import group_samples
from srl_agent.train.config import TrainConfig
from srl_agent.train.grpo import Group, RolloutBatch

ROOT = Path(__file__).resolve().parents[1]


def test_the_mixing_schedule_and_the_rlvr_config_sections():
    cfg = TrainConfig.from_dict({"method": "srl+rlvr", "sft_warmup.steps": 2, "rlvr.after": 1, "rlvr.every": 2,
                                 "episodes": {"group_size": 3, "workers": 2}, "rlvr_reward": {"partial_credit": True}})
    assert [cfg.phase(s) for s in range(9)] == ["sft", "sft", "srl", "srl", "rlvr", "srl", "rlvr", "srl", "rlvr"]
    cfg.rlvr.every = 1  # SRL, then RLVR only: the SRL -> RLVR curriculum in one run
    assert [cfg.phase(s) for s in range(5)] == ["sft", "sft", "srl", "rlvr", "rlvr"]
    cfg.rlvr.every, cfg.rlvr.after = 3, 0
    assert [cfg.phase(s) for s in range(2, 8)] == ["srl", "srl", "rlvr", "srl", "srl", "rlvr"]
    assert (cfg.episodes.group_size, cfg.episodes.workers, cfg.rlvr_reward.partial_credit) == (3, 2, True)
    cfg.method = "rlvr"
    assert [cfg.phase(s) for s in range(4)] == ["sft", "sft", "rlvr", "rlvr"]
    cfg.optim.lr, cfg.sft_warmup.lr, cfg.rlvr.lr = 1e-3, 4e-3, 0.0  # rlvr_lr 0 is a frozen RLVR phase, not `lr`
    assert [cfg.learning_rate(s) for s in range(3)] == [4e-3, 4e-3, 0.0]
    cfg.rlvr.lr, cfg.optim.lr_warmup_steps = 2e-3, 4  # a linear ramp over the run's first 4 steps, then the phase's
    assert [cfg.learning_rate(s) for s in range(6)] == pytest.approx([1e-3, 2e-3, 1.5e-3, 2e-3, 2e-3, 2e-3])
    cfg.set("episodes.max_turns", "4")
    cfg.set("rlvr_reward.format_penalty", "0.1")
    assert (cfg.episodes.max_turns, cfg.rlvr_reward.format_penalty) == (4, 0.1)
    assert cfg.to_dict()["episodes"]["max_turns"] == 4  # in config.json and the checkpoint's state
    cfg.apply_method_defaults()  # as the trainer does: rlvr's full history
    cfg.validate()
    with pytest.raises(UserError, match=r"unknown setting 'episodes\.turns' \(did you mean episodes\.max_turns\?"):
        cfg.set("episodes.turns", "4")
    cfg.set("episodes.max_new_tokens", "5000")
    with pytest.raises(UserError, match=r"episodes\.max_new_tokens \(5000\) must be below max_episode_tokens"):
        cfg.validate()
    cfg.set("episodes.max_new_tokens", "64")
    cfg.set("episodes.group_size", "1")
    with pytest.raises(UserError, match=r"episodes\.group_size must be at least 2"):
        cfg.validate()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny model's HF folder, to --init-from (as an SFT or SRL checkpoint would be)."""
    from srl_agent.train.model import load_model, save_model

    cfg = TrainConfig()
    cfg.set("tiny_model.hidden_size", "32")
    cfg.set("tiny_model.intermediate_size", "64")
    model, tokenizer = load_model(cfg)
    path = tmp_path_factory.mktemp("tiny") / "checkpoint"
    save_model(model, tokenizer, path)
    return path


SMALL = {"batch_size": "1", "grpo.group_size": "2", "rollout.max_new_tokens": "8", "validation.examples": "1",
         "validation.every": "100", "grpo.max_sample_rounds": "1", "rlvr.batch_size": "1",
         "episodes.group_size": "2", "episodes.max_turns": "2", "episodes.max_new_tokens": "16",
         "episodes.max_episode_tokens": "3000", "episodes.workers": "2"}


def rlvr_trainer(run_dir: Path, **settings: str):
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    for key, value in {"output_dir": str(run_dir), "method": "rlvr", **SMALL, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg, log=lambda _: None)


def containers_of(pid: int) -> list[str]:
    import docker

    from srl_agent.sandbox import LABEL

    client = docker.from_env()
    try:  # the plain listing: the SDK's models inspect each container, and one being removed would fail that
        return [c["Names"][0] for c in client.api.containers(all=True, filters={"label": f"{LABEL}.pid={pid}"})]
    finally:
        client.close()


@pytest.mark.parametrize("context", ["step", "episode"])
def test_an_rlvr_step_trains_on_the_sampled_tokens_only(tmp_path, tiny_checkpoint, swe_mini_images, context):
    """Each turn (`step`: its windowed prompt, its answer) or each whole episode (`episode`) is a sequence of the one
    GRPO update; either way the update scores exactly the ids sampled, at their sampling log-probs."""
    trainer = rlvr_trainer(tmp_path / "run", init_from=str(tiny_checkpoint),
                           **{"grpo.dynamic_sampling": "false", "episodes.context": context})
    assert trainer.rendering.history == (2 if context == "step" else None)  # SRL's window, or the whole history
    row = trainer.train_step()  # one whole RLVR step: episodes in sandboxes, then the update
    assert row["phase"] == "rlvr" and row["episodes"] == 2 and len(row["tasks"]) == 1
    assert sum(row[f"rlvr_status_{s}"] for s in STATUSES) == 2 and row["rlvr_turns"] == 2
    assert row["rlvr_episode_tokens"] > 2 * 16 and row["completion_tokens"] <= 2 * 2 * 16
    assert row["update_tokens"] == row["completion_tokens"]  # the update scored exactly the sampled tokens
    assert min(row["time_generate"], row["time_sandbox"], row["time_update"]) > 0
    assert row["episode_faults"] == []  # every sandbox lived and every episode was graded
    assert containers_of(os.getpid()) == []  # every episode's sandbox is gone

    temperature = trainer.cfg.episodes.temperature
    with trainer.sampling_phase():
        (group,) = trainer.play(trainer.task_stream.take(1), {"generate": 0.0, "sandbox": 0.0})
    samples = group_samples(group)
    sequences = samples.sequences
    assert len(sequences) == (4 if context == "step" else 2)  # 2 episodes of 2 turns
    assert sequences[0][0] == sequences[1][0]  # one task, one first prompt: shared-prefix runs it once
    padded = trainer._batch(sequences, "padded")  # [N, T-1]: the layout every log-prob tensor comes back in
    sampled, expected_mask = torch.zeros_like(padded.target_mask), torch.zeros_like(padded.target_mask)
    for i, ((prompt, completion, scored), logprobs) in enumerate(zip(sequences, samples.logprobs, strict=True)):
        start = len(prompt) - 1  # position t predicts token t+1
        sampled[i, start: start + len(completion)] = torch.tensor(logprobs)
        expected_mask[i, start: start + len(completion)] = torch.tensor(scored, dtype=torch.float)
    assert torch.equal(padded.target_mask, expected_mask)
    mask = expected_mask.bool()
    for layout in ("padded", trainer.layout):
        with torch.no_grad():
            logp = trainer._logprobs(trainer.model, trainer._batch(sequences, layout), temperature)
        # recomputed = sampled within 1e-4 (fp32 on CPU; the sampler ran both episodes' turns left-padded in one
        # batch)
        assert torch.allclose(logp[mask], sampled[mask], atol=1e-4), layout
        assert torch.all(logp[~mask] == 0)

    # gradients reach the sampled positions and nothing else: the final hidden state of a position feeds
    # only that position's log-prob, so its gradient is exactly zero on prompt, glue and observation tokens
    trainer.optimizer.step = lambda: None  # the weights stay; only gradients are looked at
    hidden: list[torch.Tensor] = []

    def keep(module, args, out):
        out.last_hidden_state.retain_grad()
        hidden.append(out.last_hidden_state)

    handle = trainer.unwrapped.model.register_forward_hook(keep)
    try:
        for layout in ("padded", "shared_prefix"):
            trainer.layout, hidden[:] = layout, []
            batch = RolloutBatch.from_groups([Group(sequences, [1.0, 0.0], None, samples.rollout_of)],
                                             trainer.cfg.grpo.std_eps)
            assert trainer.grpo_update(batch, temperature)["grad_norm"] > 0
            if layout == "padded":
                passes = [torch.nn.functional.pad(expected_mask, (0, 1)).bool()]  # position t predicts token t+1
            else:  # per run of one prompt: its pass (no scored position), then a row per completion (k predicts c[k])
                passes = []
                for _, run in itertools.groupby(sequences, key=lambda seq: seq[0]):
                    masks = [m for _, _, m in run]
                    rows = torch.zeros((len(masks), max(map(len, masks))), dtype=torch.bool)
                    for i, m in enumerate(masks):
                        rows[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
                    passes += [None, rows]
            assert len(hidden) == len(passes), layout
            for h, scored in zip(hidden, passes, strict=True):
                if scored is None:
                    assert h.grad is None or torch.all(h.grad == 0)
                    continue
                per_position = h.grad.abs().sum(-1)
                assert torch.all(per_position[~scored] == 0), layout
                assert torch.all(per_position[scored] > 0), layout
    finally:
        handle.remove()
    if context == "episode":  # a killed sandbox ends its episode alike in either context: once is enough
        return

    # a sandbox killed under a running step: that episode scores 0 with the reason, logged; the step goes on
    sample = trainer.policy.generate_ids

    def kill_one_then_sample(*args, **kwargs):
        import docker

        if not killed:
            client = docker.from_env()
            killed.append(containers_of(os.getpid())[0].lstrip("/"))
            client.containers.get(killed[0]).kill()
            client.close()
        return sample(*args, **kwargs)

    killed: list[str] = []
    trainer.policy.generate_ids = kill_one_then_sample  # the sandboxes are all open when sampling starts
    row = trainer.train_step()
    assert len(killed) == 1 and row["episodes"] == 2 and len(row["episode_faults"]) == 1
    # an untrained model runs no tool: the death shows when its patch is read and its tests run
    assert "diff failed" in row["episode_faults"][0] and "; sandbox_error: " in row["episode_faults"][0]
    assert row["rlvr_reward_mean"] == 0.0
    assert containers_of(os.getpid()) == []


def test_bad_rlvr_input_fails_before_training(tmp_path, swe_mini_images):
    instance = {**next(i for i in swe_mini_images if i["instance_id"] == "swemini__moneyfmt-1"),
                "image": "srl-agent/swe-mini:no-such-task"}
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(instance) + "\n")
    # the image check comes before the model loads: a model path that does not exist is never reached
    with pytest.raises(UserError) as caught:
        rlvr_trainer(tmp_path / "a", model=str(tmp_path / "no-model"), **{"rlvr.tasks": str(tasks)})
    message = str(caught.value)
    assert "\n" not in message and "image 'srl-agent/swe-mini:no-such-task' is missing" in message
    assert "srl-agent env build swe-mini" in message
    with pytest.raises(UserError, match=r"full history in every prompt: rendering\.history must be full, not 'last-2'"):
        rlvr_trainer(tmp_path / "b", **{"rendering.history": "last-2", "episodes.context": "episode"})


def train_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "srl_agent.cli", "train", "--env", "swe", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_srl_rlvr_alternates_and_resumes_after_kill_9_without_leaking(tmp_path, tiny_checkpoint, swe_mini_images):
    from srl_agent.rlvr.tasks import load_training_tasks
    from srl_agent.train.data import ExampleStream

    run = tmp_path / "run"
    args = ["--method", "srl+rlvr", "--init-from", str(tiny_checkpoint), "--output-dir", str(run), "--max-steps", "4",
            "--set", "rlvr.every=2", "--set", "checkpointing.every=1",
            *[a for k, v in SMALL.items() if k != "episodes.workers" for a in ("--set", f"{k}={v}")], "--workers", "2"]
    proc = train_cli(*args)
    # killed hard in step 4, an RLVR step, while its episodes' sandboxes run (step 2's tasks are checkpointed)
    deadline = time.monotonic() + 600
    while not ((run / "latest").exists() and (run / "latest").read_text() == "step-000003"
               and containers_of(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert containers_of(proc.pid)  # kill -9 leaves them; the next sandbox start sweeps a dead owner's
    resumed = train_cli(*args, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resumed from" in err and "at step 3" in err and f"curves: {run / 'curves.png'}" in err
    # the first line says what the run does; from a checkpoint, no warm-up; SRL's history window kept for RLVR
    assert err.startswith("plan: 0 SFT warm-up steps, 2 SRL steps, 2 RLVR steps (set for this run: "
                          "sft_warmup.steps=0 (the run starts from a checkpoint))\n"), err
    assert containers_of(proc.pid) == [] and containers_of(resumed.pid) == []
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "phase" in r]
    assert [(r["step"], r["phase"]) for r in steps] == [(1, "srl"), (2, "rlvr"), (3, "srl"), (4, "rlvr")]
    stream = ExampleStream(load_training_tasks(), seed=0)  # the run's seed: the same task order as never killed
    assert [r["tasks"] for r in steps if r["phase"] == "rlvr"] == [[t["instance_id"]] for t in stream.take(2)]
    for r in steps:
        if r["phase"] == "rlvr":
            assert r["episodes"] == 2 and r["rlvr_reward_mean"] == 0.0 and r["rlvr_resolve_rate"] == 0.0
            assert r["rlvr_format_errors"] == 2 and r["rlvr_status_turn_limit"] == 2 and r["time_sandbox"] > 0
            # an untrained model never calls a tool: every group is flat, dropped, and nothing is updated
            assert (r["dropped_groups"], r["fill_ratio"], r["batch"]) == (1, 0.0, [])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
