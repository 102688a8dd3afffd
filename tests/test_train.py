"""The trainer on CPU with the tiny model: config handling, data order, dynamic sampling, resume after
kill -9, HF-format checkpoints, TRL compatibility, and that SRL training raises the held-out reward."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srl_agent.errors import UserError
from srl_agent.train.config import TrainConfig
from srl_agent.train.data import ExampleStream, split_by_trajectory

from .conftest import assert_same_adam_steps, cli_error

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_and_overrides(tmp_path):
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "tiny.yaml")
    assert cfg.model == "tiny" and cfg.data.trajectories == ["trajectories"] and cfg.rendering.history == "last-2"
    cfg.set("optim.lr", "1e-4")
    cfg.set("grpo.dynamic_sampling", "false")
    cfg.set("tiny_model.hidden_size", "32")
    cfg.set("data.trajectories", "[a.jsonl, b.jsonl]")
    cfg.set("init_from", "null")
    assert (cfg.optim.lr, cfg.grpo.dynamic_sampling, cfg.tiny_model.hidden_size) == (1e-4, False, 32)
    assert cfg.data.trajectories == ["a.jsonl", "b.jsonl"] and cfg.init_from is None
    cfg.set("data.trajectories", "one.jsonl")
    cfg.set("init_from", "runs/x")
    assert cfg.data.trajectories == ["one.jsonl"] and cfg.init_from == "runs/x"
    for key, value, expected in (("max_steps", "abc", "an integer"), ("optim.lr", "fast", "a number"),
                                 ("lora.enabled", "maybe", "true or false"),
                                 ("validation.examples", "2.5", "an integer"),
                                 ("method", "rlhf", "one of srl, sft, rlvr, srl+rlvr"),
                                 ("max_steps", "0", "at least 1")):
        with pytest.raises(UserError, match=f"^--set: {re.escape(key)} must be {re.escape(expected)}, not "):
            cfg.set(key, value)
    # an unknown or mistyped key names the nearest real one; a key from before the sections names its new one
    for key, message in (("optim.lrr", "unknown setting 'optim.lrr' (did you mean optim.lr?"),
                         ("episodes.turns", "unknown setting 'episodes.turns' (did you mean episodes.max_turns?"),
                         ("grpo.max_new_tokens", "(did you mean rollout.max_new_tokens?"),
                         ("lr", "lr is now optim.lr (the settings are grouped in sections"),
                         ("lora", "lora is now lora.enabled"),
                         ("reward.partial_credit", "reward.partial_credit is now rlvr_reward.partial_credit")):
        with pytest.raises(UserError, match=re.escape(message)) as error:
            cfg.set(key, "1")
        assert str(error.value).startswith("--set: ") and "\n" not in str(error.value)
    with pytest.raises(UserError, match=r"x\.yaml: batch_size must be an integer, not 'big'"):
        TrainConfig.from_dict({"batch_size": "big"}, source="x.yaml")
    with pytest.raises(UserError, match=r"x\.yaml: tiny_model\.hidden_size must be an integer"):
        TrainConfig.from_dict({"tiny_model": {"hidden_size": "big"}}, source="x.yaml")
    assert TrainConfig.from_dict({"tiny_model": {"hidden_size": 32}}).tiny_model.hidden_size == 32
    cfg.set("optim.lr", "1")  # an integer is a number
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    paper = TrainConfig.from_yaml(ROOT / "configs" / "swe-paper.yaml")
    assert (paper.model, paper.batch_size, paper.grpo.group_size, paper.optim.lr, paper.grpo.kl_coef) == (
        "Qwen/Qwen2.5-Coder-7B-Instruct", 512, 8, 5e-7, 0.0)
    old = tmp_path / "old.yaml"  # a config from before the sections: the first old key, named with its new one
    old.write_text("model: tiny\nhistory: full\nlr: 1e-4\n")
    with pytest.raises(UserError, match=f"^{re.escape(str(old))}: history is now rendering.history "):
        TrainConfig.from_yaml(old)


def test_a_method_sets_what_it_needs_unless_the_user_set_it(capsys):
    """`train --method rlvr --init-from CKPT --max-steps 2`: no warm-up from a checkpoint (the built-in config's is a
    default, not the user's), history=full for RLVR on whole episodes (turn by turn, the default, keeps SRL's
    window); what the user set themselves stays, and the plan says all."""
    from srl_agent.cli import main

    step_wise = TrainConfig.builtin().updated({"method": "rlvr", "init_from": "ckpt", "max_steps": 2})
    assert step_wise.apply_method_defaults() == ["sft_warmup.steps=0 (the run starts from a checkpoint)"]
    step_wise.validate()
    assert step_wise.rendering.history == "last-2"
    cfg = TrainConfig.builtin().updated({"method": "rlvr", "init_from": "ckpt", "max_steps": 2,
                                         "episodes.context": "episode"})
    assert cfg.apply_method_defaults() == ["sft_warmup.steps=0 (the run starts from a checkpoint)",
                                           "rendering.history=full (RLVR prompts hold whole episodes)"]
    cfg.validate()
    assert cfg.plan() == "0 SFT warm-up steps, 2 RLVR steps" and cfg.apply_method_defaults() == []
    asked = TrainConfig.builtin().updated({"method": "rlvr", "init_from": "ckpt", "sft_warmup.steps": 3,
                                           "rendering.history": "last-2", "episodes.context": "episode"})
    assert asked.apply_method_defaults() == [] and asked.sft_warmup.steps == 3
    with pytest.raises(UserError, match=r"rendering\.history must be full, not 'last-2' \(or leave it unset, or use "
                                        r"episodes\.context step\)"):
        asked.validate()
    fresh = TrainConfig.builtin().updated({"method": "srl+rlvr", "rlvr.every": 4})  # from scratch: the warm-up stays
    fresh.apply_method_defaults()
    assert fresh.plan() == "400 SFT warm-up steps, 45 SRL steps, 15 RLVR steps"
    own = TrainConfig.from_yaml(ROOT / "configs" / "tiny.yaml").updated({"init_from": "ckpt"})  # the user's own file
    assert own.apply_method_defaults() == [] and own.sft_warmup.steps == 400
    # every setting, generated from the models: key, type, default and its docstring
    assert main(["train", "--help-config"]) == 0
    printed = capsys.readouterr().out
    assert "  optim.lr: float = 5.0e-07\n      AdamW learning rate" in printed
    assert "  episodes.executor: local | ray = local\n" in printed and "[rlvr_reward] How an RLVR episode" in printed


def test_an_environment_fills_the_sources_the_user_left_unset():
    from srl_agent.train.environments import apply_environment

    cfg = TrainConfig.builtin()
    apply_environment(cfg, "swe")  # the README's `train --env swe`: the config as it is
    assert cfg == TrainConfig.builtin()
    apply_environment(cfg, "swe-mini")
    assert [Path(t).relative_to(ROOT).as_posix() for t in cfg.data.trajectories] == ["trajectories/swe-mini.jsonl"]
    mine = TrainConfig.builtin().updated({"data.trajectories": ["mine.jsonl"]})
    assert apply_environment(mine, "swe-mini").name == "swe-mini" and mine.data.trajectories == ["mine.jsonl"]
    rlvr = TrainConfig.builtin().updated({"method": "rlvr"})
    with pytest.raises(UserError, match=r"^--env factory trains RLVR on a task-factory curriculum: pass --tasks FILE"):
        apply_environment(rlvr, "factory")
    apply_environment(rlvr.updated({"rlvr.tasks": "split/train.jsonl"}), "factory")


def test_example_stream_is_seeded_and_resumable():
    from srl_agent.types import StepExample

    examples = [StepExample(f"t{i % 3}", i, 9, [], [], "{}") for i in range(9)]
    a = ExampleStream(examples, seed=1)
    first = [ex.step_index for ex in a.take(13)]
    assert sorted(first[:9]) == list(range(9))  # an epoch is a permutation
    state = a.state_dict()
    rest = [ex.step_index for ex in a.take(10)]
    b = ExampleStream(examples, seed=1)
    b.load_state_dict(state)
    assert [ex.step_index for ex in b.take(10)] == rest
    assert [ex.step_index for ex in ExampleStream(examples, seed=2).take(9)] != first[:9]
    train, val = split_by_trajectory(examples, 1, seed=0)
    assert len({ex.trajectory_id for ex in val}) == 1 and not {e.trajectory_id for e in val} & {
        e.trajectory_id for e in train}


def train_cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "srl_agent.cli", "train", "--env", "swe", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **kwargs)


FAST = ["--set", "tiny_model.hidden_size=32", "--set", "tiny_model.intermediate_size=64", "--set", "batch_size=2",
        "--set", "grpo.group_size=4", "--set", "rollout.max_new_tokens=24", "--set", "validation.examples=4",
        "--set", "sft_warmup.steps=2", "--set", "validation.every=2", "--set", "checkpointing.every=2", "--no-plot"]


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_kill_9_then_resume_continues_identically(tmp_path):
    straight = tmp_path / "straight"
    proc = train_cli("--output-dir", str(straight), "--max-steps", "6", *FAST)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    # the same run, killed hard once its step-4 checkpoint exists, then resumed
    killed = tmp_path / "killed"
    proc = train_cli("--output-dir", str(killed), "--max-steps", "6", *FAST)
    deadline = time.monotonic() + 600
    latest = killed / "latest"
    while not (latest.exists() and latest.read_text() == "step-000004"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = train_cli("--output-dir", str(killed), "--max-steps", "6", "--resume", *FAST)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resumed from" in err and "at step 4" in err
    a, b = rows(straight), rows(killed)
    assert [r["step"] for r in b] == [r["step"] for r in a]
    assert [r.get("batch") for r in b] == [r.get("batch") for r in a]  # the same data, in the same order
    # the same process, threads and float order on the same CPU as the run that never stopped: the same sums,
    # so no Adam amplification; the tolerances only allow for ops that are not bitwise repeatable
    for x, y in zip(a, b, strict=True):
        for k in ("loss", "reward_mean", "val_reward"):
            if k in x:
                assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-6), (x["step"], k)

    # a new run into a folder that holds one is refused; --overwrite starts it over, leaving nothing old
    again = train_cli("--output-dir", str(killed), "--max-steps", "2", *FAST)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 2 and f"{killed} already holds a run" in err and "--overwrite" in err
    assert len(rows(killed)) == len(a)
    again = train_cli("--output-dir", str(killed), "--max-steps", "2", "--overwrite", *FAST)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert [r["step"] for r in rows(killed)] == [0, 1, 2]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step-000002"]


def test_a_kill_or_failure_while_replacing_best_loses_nothing(tmp_path):
    from srl_agent.train.checkpoint import recover_run_dir, replace_dir

    best = tmp_path / "best"
    replace_dir(best, lambda d: (d / "w").write_text("1"))
    best.rename(tmp_path / "best.old")  # killed after the old folder went aside, before the new one came in
    (tmp_path / "best.tmp").mkdir()
    (tmp_path / "best.tmp" / "w").write_text("half")
    recover_run_dir(tmp_path)
    assert (best / "w").read_text() == "1" and not list(tmp_path.glob("best.*"))

    def fails_midway(folder: Path) -> None:
        (folder / "w").write_text("2")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_dir(best, fails_midway)
    assert (best / "w").read_text() == "1"
    replace_dir(best, lambda d: (d / "w").write_text("3"))
    assert (best / "w").read_text() == "3" and not list(tmp_path.glob("best.*"))


def test_checkpoints_are_hf_format_and_plots_are_written(tmp_path):
    run = tmp_path / "run"
    proc = train_cli("--output-dir", str(run), "--max-steps", "2", *[a for a in FAST if a != "--no-plot"])
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"curves: {run / 'curves.png'}" in err and "best checkpoint:" in err
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from srl_agent.steps import StepConfig, load_rendering
    from srl_agent.tokenizer import load_tokenizer

    text = load_tokenizer().apply_chat_template([{"role": "user", "content": "Fix 12 bugs in /testbed/a.py!"}],
                                                tokenize=False, add_generation_prompt=True)
    for folder in (run / "best", run / "checkpoints" / "step-000002"):
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)  # loads as Qwen2Tokenizer: it must agree
        assert model.config.model_type == "qwen2" and tokenizer.chat_template
        assert tokenizer(text)["input_ids"] == load_tokenizer()(text)["input_ids"]
        # how its examples were rendered, for eval to render the same way (configs/tiny.yaml's shape)
        assert load_rendering(folder) == StepConfig(history=2, max_observation_chars=400, call_style="hermes")


def test_a_checkpoint_s_rope_settings_read_the_same_under_transformers_4(tmp_path):
    """Transformers 5 writes RoPE only as `rope_parameters`; a server on transformers 4 (vLLM, TGI, SGLang builds
    that pin it) read a Qwen2.5 checkpoint we wrote with its default theta, 10,000 for 1,000,000 (measured with
    4.57.1), and served a broken model. The checkpoint also holds the keys 4.x reads, and 5.x still reads the same."""
    import json

    import torch
    from transformers import AutoConfig

    from srl_agent.train.model import load_model, save_model

    model, tokenizer = load_model(TrainConfig(), device=torch.device("cpu"))
    model.config.rope_parameters = {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
                                    "original_max_position_embeddings": 1024}  # Qwen2.5's theta, its long-context YaRN
    save_model(model, tokenizer, tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["rope_theta"] == 1e6
    assert written["rope_scaling"] == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}
    assert AutoConfig.from_pretrained(tmp_path).rope_parameters == model.config.rope_parameters


def test_a_steps_file_a_config_file_the_kl_term_and_token_loss(tmp_path):
    """The less-trodden ways in: `data build` output as input, --config and --seed, kl_coef > 0 (a frozen
    reference model), token-level loss normalisation; then `srl-agent plot` on the run."""
    steps = tmp_path / "steps.jsonl"
    subprocess.run([sys.executable, "-m", "srl_agent.cli", "data", "build", "--trajectories",
                    str(ROOT / "trajectories" / "seed.jsonl"), "--out", str(steps), "--workers", "1"],
                   check=True, capture_output=True, timeout=300)
    run = tmp_path / "run"
    proc = train_cli("--config", str(ROOT / "configs" / "tiny.yaml"), "--trajectories", str(steps), "--seed", "3",
                     "--output-dir", str(run), "--max-steps", "2", *FAST, "--set", "sft_warmup.steps=0",
                     "--set", "grpo.kl_coef=0.1", "--set", "grpo.loss_norm=token",
                     "--set", "grpo.dynamic_sampling=false")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (config["seed"], config["data"]["trajectories"], config["grpo"]["kl_coef"], config["grpo"]["loss_norm"]) == (
        3, [str(steps)], 0.1, "token")
    srl = [r for r in rows(run) if r.get("phase") == "srl"]
    assert len(srl) == 2 and all(r["kl"] >= 0 and r["update_tokens"] > 0 for r in srl)
    png = tmp_path / "curves.png"
    plot = subprocess.run([sys.executable, "-m", "srl_agent.cli", "plot", str(run), "--out", str(png)],
                          capture_output=True, text=True, timeout=120)
    assert plot.returncode == 0, plot.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trl_grpo_trainer_runs_two_steps_with_our_reward(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from srl_agent.data import read_examples
    from srl_agent.reward import TRLRewardFunction
    from srl_agent.train.model import load_model

    steps = tmp_path / "steps.jsonl"
    subprocess.run([sys.executable, "-m", "srl_agent.cli", "data", "build", "--trajectories",
                    str(ROOT / "trajectories"), "--out", str(steps), "--workers", "1"], check=True, timeout=300)
    dataset = Dataset.from_list([{"prompt": ex.prompt, "expert_action": ex.expert_action}
                                 for ex in list(read_examples(steps))[:8]])
    seen = []
    srl = TRLRewardFunction()

    def reward(prompts, completions, expert_action, **kwargs):
        values = srl(prompts=prompts, completions=completions, expert_action=expert_action)
        seen.append(values)
        return values

    reward.__name__ = "srl_reward"
    model, tokenizer = load_model(TrainConfig())
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=16, max_steps=2, report_to=[], use_cpu=True, save_strategy="no")
    result = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset,
                         processing_class=tokenizer).train()
    assert result.global_step == 2
    assert len(seen) == 2 and all(len(v) == 4 and all(-1.0 <= x <= 1.0 for x in v) for v in seen)


def test_the_main_job_learns(tmp_path):
    """`srl-agent train --env swe` with no other flags: the held-out SRL reward rises clearly, during the
    SFT warm-up and then again under SRL, and dynamic sampling drops flat groups and refills the batch."""
    run = tmp_path / "main"
    proc = train_cli("--output-dir", str(run))
    _, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err
    assert f"curves: {run / 'curves.png'}" in err
    metrics = rows(run)
    val = {r["step"]: r["val_reward"] for r in metrics if "val_reward" in r}
    cfg = TrainConfig.from_yaml(ROOT / "configs" / "tiny.yaml")
    warm, last = cfg.sft_warmup.steps, cfg.max_steps
    assert val[0] == -1.0  # a random model never writes a well-formed call
    assert val[warm] > val[0] + 0.3, val  # the warm-up taught the format to some of the steps
    assert val[last] > val[warm] + 0.03, val  # SRL improves on it
    srl = [r for r in metrics if r.get("phase") == "srl"]
    assert len(srl) == last - warm
    assert sum(r["dropped_groups"] for r in srl) > 0  # flat groups were dropped...
    assert any(r["sample_rounds"] > 1 and r["fill_ratio"] == 1.0 for r in srl)  # ...and batches refilled
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["val_reward"] == max(val.values())


def test_sft_baseline_then_srl_from_it_with_lora(tmp_path):
    """`--method sft`, then `--init-from` its checkpoint for SRL with a LoRA adapter (merged on save)."""
    sft = tmp_path / "sft"
    proc = train_cli("--method", "sft", "--output-dir", str(sft), "--max-steps", "2", *FAST)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert {r["phase"] for r in rows(sft) if "phase" in r} == {"sft"}
    srl = tmp_path / "srl"
    proc = train_cli("--init-from", str(sft / "checkpoints" / "step-000002"), "--output-dir", str(srl),
                     "--max-steps", "2", "--set", "lora.enabled=true", "--set", "lora.r=4", *FAST)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    checkpoint = srl / "checkpoints" / "step-000002"
    assert (checkpoint / "adapter" / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint)  # full weights, the adapter merged in
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_bad_settings_are_clear_errors(tmp_path):
    proc = train_cli("--output-dir", str(tmp_path / "x"), "--set", "method=rlhf")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "method must be one of srl, sft, rlvr, srl+rlvr, not 'rlhf'" in err
    proc = train_cli("--output-dir", str(tmp_path / "x"), "--set", "grpo.group_size=1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "group_size must be at least 2" in err
    try:
        import vllm  # noqa: F401
    except ImportError:  # the optional rollout engine is missing: say how to get it
        proc = train_cli("--output-dir", str(tmp_path / "x"), "--set", "rollout.backend=vllm")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "pip install 'srl-agent[vllm]'" in err


def test_unreadable_trajectories_and_metrics_are_one_line_errors(tmp_path, capsys):
    steps = tmp_path / "steps.jsonl"
    steps.write_bytes('{"note": "café"}\n'.encode("latin-1"))
    run = tmp_path / "run"
    assert cli_error(capsys, "train", "--trajectories", str(steps), "--output-dir", str(run)) == \
        f"error: {steps}: row 1: line is not UTF-8 text (invalid continuation byte at byte 13)"
    steps.write_text('{"expert_action": "..."}\n')  # a steps file: its rendering record is read first
    record = tmp_path / "steps.rendering.json"
    record.write_bytes(b"\xff")
    assert cli_error(capsys, "train", "--trajectories", str(steps), "--output-dir", str(run)) == \
        f"error: {record}: not UTF-8 text (invalid start byte at byte 0)"
    metrics = run / "metrics.jsonl"
    metrics.mkdir(parents=True)
    assert cli_error(capsys, "plot", str(run)) == f"error: {metrics}: cannot read: is a folder, not a file"


def test_a_bad_config_file_is_a_one_line_error_naming_it(tmp_path, capsys):
    config, run = tmp_path / "bad.yaml", tmp_path / "run"
    for content, expected in (
            (b"model: tiny\nlr: 1\n  bad: x: y\n", "line 3: mapping values are not allowed here"),
            (b'model: tiny\nsystem_prompt: "unclosed\n', "line 3: found unexpected end of stream "
                                                         "(while scanning a quoted scalar)"),
            (b"model: tiny\nsystem_prompt: caf\xe9\n", "line 2: not UTF-8 text (invalid continuation byte at byte 30)"),
            (b"- model: tiny\n- lr: 1\n", "the top level must be a mapping of settings (key: value), not a list"),
            (b"42\n", "the top level must be a mapping of settings (key: value), not the value 42"),
            (b"1: x\n", "unknown setting '1' (srl-agent train --help-config lists them)"),
            (b"rollout:\n  temprature: 0.5\n",
             "unknown setting 'rollout.temprature' (did you mean rollout.temperature? srl-agent train --help-config "
             "lists them)"),
            (b"rollout: 3\n", "rollout must be a mapping of its fields, not 3")):
        config.write_bytes(content)
        assert cli_error(capsys, "train", "--config", str(config), "--output-dir", str(run)) == \
            f"error: {config}: {expected}"
    assert cli_error(capsys, "train", "--config", str(tmp_path), "--output-dir", str(run)) == \
        f"error: {tmp_path}: cannot read the config (is a directory)"
    assert not run.exists()
    config.write_text("")  # an empty config is all defaults
    assert TrainConfig.from_yaml(config) == TrainConfig()


def test_two_processes_train_like_one(tmp_path):
    """torchrun with two CPU processes (gloo): each takes half of every batch, gradients are summed,
    and the weights end up as those of the one-process run (SFT: no sampling randomness)."""
    from safetensors.torch import load_file

    args = ["--method", "sft", "--max-steps", "3", *FAST, "--set", "batch_size=4", "--set", "validation.trajectories=0"]
    one = tmp_path / "one"
    proc = train_cli("--output-dir", str(one), *args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    two = tmp_path / "two"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                           "srl_agent.cli", "train", "--env", "swe", "--output-dir", str(two), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 processes, DDP (gloo))" in proc.stderr
    a = load_file(one / "checkpoints" / "step-000003" / "model.safetensors")
    b = load_file(two / "checkpoints" / "step-000003" / "model.safetensors")
    # 3 SFT steps at `lr` (method sft); the gradients summed over 1 or 2 processes
    assert_same_adam_steps(a, b, [TrainConfig.builtin().optim.lr] * 3)
    one_batches = [r["batch"] for r in rows(one) if "batch" in r]
    two_batches = [r["batch"] for r in rows(two) if "batch" in r]  # logged by the first process
    assert [len(b) for b in one_batches] == [4, 4, 4] and [b[0::2] for b in one_batches] == two_batches


class RecordingEngine:
    """Stands in for a colocated vLLM engine (vLLM needs a GPU): samples with the HF policy, records calls and
    the weights it is handed at each wake."""

    def __init__(self, policy):
        self.policy, self.calls, self.weights = policy, [], []

    def generate_ids(self, *args, **kwargs):
        self.calls.append("generate")
        return self.policy.generate_ids(*args, **kwargs)

    def wake_up(self, named_tensors):
        self.calls.append("wake")
        self.weights.append({name: tensor.clone() for name, tensor in named_tensors})

    def sleep(self):
        self.calls.append("sleep")


def tiny_trainer(run_dir: Path, settings: dict[str, str] | None = None, resume: bool = False, overwrite: bool = False):
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    base = {"output_dir": str(run_dir), "sft_warmup.steps": "0", "batch_size": "2", "grpo.group_size": "4",
            "rollout.max_new_tokens": "8", "grpo.dynamic_sampling": "false", "tiny_model.hidden_size": "32",
            "tiny_model.intermediate_size": "64"}
    for key, value in {**base, **(settings or {})}.items():
        cfg.set(key, value)
    return Trainer(cfg, resume=resume, overwrite=overwrite, log=lambda _: None)


def test_a_folder_holding_a_run_is_continued_or_started_over_never_mixed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0, "val_reward": -1.0}\n')  # killed before its first checkpoint
    (run / "best").mkdir()
    (run / "notes.old").write_text("the user's")
    with pytest.raises(UserError, match=r"already holds a run \(best, metrics\.jsonl\): pass --resume"):
        tiny_trainer(run)
    with pytest.raises(UserError, match="pass one of them"):
        tiny_trainer(run, resume=True, overwrite=True)
    with pytest.raises(UserError, match="--overwrite would delete init_from"):
        tiny_trainer(run, {"init_from": str(run / "best")}, overwrite=True)
    assert (run / "metrics.jsonl").exists()  # refusals touch nothing
    tiny_trainer(run, resume=True)  # no checkpoint: from scratch, without the old run's rows
    assert not (run / "metrics.jsonl").exists() and not (run / "best").exists()
    assert (run / "notes.old").read_text() == "the user's" and (run / "config.json").exists()


@pytest.mark.parametrize("loss_norm", ["sequence", "token"])
def test_gradient_accumulation_matches_one_batch_and_the_norm_is_clipped(tmp_path, loss_norm):
    import torch

    from srl_agent.policy import Completion
    from srl_agent.train.grpo import RolloutBatch
    from srl_agent.train.trainer import Rollout

    trainer = tiny_trainer(tmp_path, {"grpo.loss_norm": loss_norm, "optim.max_grad_norm": "1e9"})
    torch.manual_seed(0)
    rollouts = [Rollout(ex, trainer.prompt_ids(ex)[-48:],
                        [Completion("", torch.randint(10, 500, (n,)).tolist()) for n in (3, 5, 8, 13)],
                        [0.1, 0.5, -1.0, 0.9]) for ex in trainer.train_examples[:2]]
    batch = RolloutBatch.from_groups([r.group() for r in rollouts], trainer.cfg.grpo.std_eps)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = []
    trainer.optimizer.step = lambda: grads.append(torch.cat([p.grad.flatten() for p in params]))  # weights stay
    norms = {}
    for micro in (8, 3, 1):  # one padded batch, uneven chunks, one sequence at a time
        trainer.cfg.compute.micro_batch_size = micro
        norms[micro] = trainer.grpo_update(batch, trainer.cfg.rollout.temperature)["grad_norm"]
    assert grads[0].abs().sum() > 0
    # gradients before any step: the sums reordered over micro-batches, ~2^-24 relative each (measured: 1.5e-8
    # apart at most, ~1e-7 of the largest, 0.14, under AVX-512, AVX2, SSE and 1-2 threads); atol ~1e-6 of it
    for g in grads[1:]:
        assert torch.allclose(g, grads[0], rtol=1e-4, atol=1e-7)
    trainer.cfg.optim.max_grad_norm = norms[8] / 10
    reported = trainer.grpo_update(batch, trainer.cfg.rollout.temperature)["grad_norm"]
    assert reported == pytest.approx(norms[8], rel=1e-4)  # reported unclipped
    assert grads[-1].norm() == pytest.approx(norms[8] / 10, rel=1e-3)  # applied clipped (clip_grad_norm_'s eps 1e-6)
    assert torch.allclose(grads[-1] * 10, grads[0], rtol=1e-3, atol=1e-7)  # same direction (atol: as above)


def test_a_colocated_engine_sleeps_during_updates_and_gets_the_new_weights(tmp_path):
    import torch

    trainer = tiny_trainer(tmp_path, {"sft_warmup.steps": "1", "validation.examples": "4"})
    engine = trainer.rollout = RecordingEngine(trainer.policy)
    trainer.evaluate()  # samples with the initial weights
    trainer.train_step()  # an SFT step: new weights, no sampling
    after_step_1 = {name: p.detach().clone() for name, p in trainer.unwrapped.named_parameters()}
    trainer.step = 1
    trainer.train_step()  # SRL: samples
    # the engine holds memory only while it samples, and samples with the trainer's latest weights
    assert engine.calls == ["wake", "generate", "sleep", "wake", "generate", "sleep"]
    first, second = engine.weights
    assert list(first) == list(second) == list(after_step_1)  # every weight, under its HF name
    assert any(not torch.equal(first[n], second[n]) for n in first)  # the SFT step changed them...
    assert all(torch.equal(second[n], after_step_1[n]) for n in second)  # ...and SRL sampled with them


def test_rollout_backend_hf_paged_samples_the_steps_rollouts_like_hf(tmp_path):
    """--set rollout.backend=hf_paged: the step's rollouts come from continuous batching (policy/hf.py), with the
    same greedy completions, and so the same rewards, as the default `generate`."""
    from srl_agent.policy import SamplingParams

    greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=8)
    runs = {}
    for backend in ("hf", "hf_paged"):
        trainer = tiny_trainer(tmp_path / backend, {"rollout.backend": backend})
        runs[backend] = trainer.sample(trainer.stream.take(2), greedy)
    assert trainer.rollout.cache == "paged"
    for want, got in zip(runs["hf"], runs["hf_paged"], strict=True):
        assert got.prompt_ids == want.prompt_ids and got.rewards == want.rewards
        assert [c.token_ids for c in got.completions] == [c.token_ids for c in want.completions]
