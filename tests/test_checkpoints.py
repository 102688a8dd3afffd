"""Checkpoints at 7B scale, on the CPU shapes: `save_total_limit` step checkpoints kept besides best/, the HF
export in bf16 by option (half the bytes) while a resume stays bit-exact in fp32, and a sharded resume (FSDP2,
ZeRO-3) that reads only its shards, never the HF export."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srl_agent.errors import UserError
from srl_agent.train.checkpoint import ENGINE_DIR, STATE_FILE, load_state

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
WEIGHTS_FILE = "model.safetensors"
MASTER_FILE = "pytorch_model.bin"  # the exact weights in accelerate's state (save_state without safetensors)
LEARNED = ("step", "batch", "loss", "grad_norm", "reward_mean", "val_reward", "completion_tokens")


def tiny_trainer(run_dir: Path, settings: dict[str, str], resume: bool = False):
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.trainer import Trainer

    cfg = TrainConfig.builtin()
    base = {"output_dir": str(run_dir), "sft_warmup.steps": "2", "batch_size": "2", "grpo.group_size": "4",
            "rollout.max_new_tokens": "8", "grpo.dynamic_sampling": "false", "tiny_model.hidden_size": "32",
            "tiny_model.intermediate_size": "64", "validation.examples": "2", "validation.every": "2",
            "checkpointing.every": "2"}
    for key, value in {**base, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg, resume=resume, log=lambda _: None)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def learned(run: Path) -> list[dict]:
    """What each metrics row says about the training (not its timings)."""
    return [{k: row[k] for k in LEARNED if k in row} for row in rows(run)]


def step_names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def killed_after(run: Path, copy: Path, step: int) -> Path:
    """A copy of a finished run as a kill right after step `step`'s checkpoint leaves it, without that checkpoint's
    HF weights: a resume that reads them fails."""
    shutil.copytree(run, copy)
    checkpoint = f"step-{step:06d}"
    for later in (copy / "checkpoints").iterdir():
        if later.name > checkpoint:
            shutil.rmtree(later)
    (copy / "latest").write_text(checkpoint)
    (copy / "checkpoints" / checkpoint / WEIGHTS_FILE).unlink()
    return copy


def test_save_total_limit_keeps_the_newest_step_checkpoints_and_best(tmp_path):
    run = tmp_path / "run"
    result = tiny_trainer(run, {"max_steps": "4", "checkpointing.every": "1", "checkpointing.total_limit": "3"}).run()
    assert step_names(run) == ["step-000002", "step-000003", "step-000004"] and (run / "best").is_dir()
    assert result["latest"] == str(run / "checkpoints" / "step-000004")


def test_save_total_limit_never_removes_the_checkpoint_it_writes(tmp_path):
    """A newer step checkpoint left by a killed attempt (written, `latest` not yet moved) sorts after the one being
    written: the limit keeps the new one, which `latest` names, and removes old ones by a rename first (a kill
    there leaves a `.stale` folder that --resume clears, never a half-removed checkpoint)."""
    from srl_agent.errors import UserError
    from srl_agent.train.checkpoint import latest_checkpoint, recover_run_dir, save_checkpoint
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    model, tokenizer = load_model(TrainConfig(), device=torch.device("cpu"))
    for step in (1, 2, 9):
        save_checkpoint(tmp_path, step, model, tokenizer, {"step": step}, total_limit=None)
    save_checkpoint(tmp_path, 3, model, tokenizer, {"step": 3}, total_limit=2)
    assert step_names(tmp_path) == ["step-000003", "step-000009"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-000003"
    save_checkpoint(tmp_path, 4, model, tokenizer, {"step": 4}, total_limit=1)
    assert step_names(tmp_path) == ["step-000004"]
    (tmp_path / "checkpoints" / "step-000002.stale").mkdir()  # killed while removing step 2
    recover_run_dir(tmp_path)
    assert step_names(tmp_path) == ["step-000004"]
    cfg = TrainConfig()
    with pytest.raises(UserError, match=r"^--set: checkpointing\.total_limit must be at least 1, not 0$"):
        cfg.set("checkpointing.total_limit", "0")
    cfg.set("checkpointing.total_limit", "null")
    assert cfg.checkpointing.total_limit is None


def test_a_bf16_export_is_half_the_bytes_and_a_resume_from_it_is_bit_exact(tmp_path):
    """The same run exported in fp32 and in bf16: the bf16 checkpoint's and best/'s weight files are half the bytes,
    loaders read them as bf16, and they are the fp32 weights rounded. accelerate's state keeps the exact fp32
    weights (only when the export rounds them): a run killed after step 2 resumes, without reading the export, with
    bit-identical weights, and ends bit-identical to the run that never stopped."""
    from transformers import AutoModelForCausalLM

    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    tiny_trainer(fp32, {"max_steps": "2"}).run()
    tiny_trainer(bf16, {"max_steps": "4", "checkpointing.export_dtype": "bf16"}).run()
    exact, rounded = fp32 / "checkpoints" / "step-000002", bf16 / "checkpoints" / "step-000002"
    ratio = (rounded / WEIGHTS_FILE).stat().st_size / (exact / WEIGHTS_FILE).stat().st_size
    assert 0.49 < ratio < 0.51, ratio
    assert (bf16 / "best" / WEIGHTS_FILE).stat().st_size < 0.51 * (fp32 / "best" / WEIGHTS_FILE).stat().st_size
    for folder in (rounded, bf16 / "best"):
        assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((exact / "config.json").read_text())["dtype"] == "float32"
    want = AutoModelForCausalLM.from_pretrained(exact).state_dict()
    got = AutoModelForCausalLM.from_pretrained(rounded).state_dict()
    assert all(got[name].dtype == torch.bfloat16 and torch.equal(got[name], want[name].bfloat16()) for name in want)

    assert not (exact / ENGINE_DIR / MASTER_FILE).exists()  # an exact export needs no second copy
    master = torch.load(rounded / ENGINE_DIR / MASTER_FILE)
    assert all(master[name].dtype == torch.float32 and torch.equal(master[name], want[name]) for name in want)
    assert any(not torch.equal(master[name], got[name].float()) for name in want)  # the export did round

    killed = killed_after(bf16, tmp_path / "killed", 2)
    resumed = tiny_trainer(killed, {"max_steps": "4", "checkpointing.export_dtype": "bf16"}, resume=True)
    assert resumed.step == 2
    assert all(torch.equal(p, master[name]) for name, p in resumed.unwrapped.state_dict().items())
    resumed.run()
    assert learned(killed) == learned(bf16)
    final, again = (torch.load(run / "checkpoints" / "step-000004" / ENGINE_DIR / MASTER_FILE)
                    for run in (bf16, killed))
    assert all(torch.equal(final[name], again[name]) for name in final)


def test_a_checkpoint_from_before_accelerate_s_state_is_one_clear_line(tmp_path):
    """A checkpoint that holds its Adam state and RNG in trainer_state.pt alone (the format before accelerate's
    save_state kept them) is refused in one line that names it, not with a KeyError deep in the resume."""
    old = tmp_path / "checkpoints" / "step-000002"
    old.mkdir(parents=True)
    torch.save({"step": 2, "optimizer": {}, "processes": [{}]}, old / STATE_FILE)
    with pytest.raises(UserError, match=rf"^{old} has no accelerate/ folder \(written before checkpoints kept "
                                        r"accelerate's state\): continue it with the srl-agent version that wrote "
                                        r"it, or start over with --overwrite$"):
        load_state(old)


def launch_sharded(engine: str, out: Path, *settings: str) -> subprocess.CompletedProcess:
    """The trainer (tests/distributed_worker.py `run`) on two gloo processes under an engine config we ship."""
    out.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ROOT / "configs" / "accelerate" / f"{engine}.yaml"), "--num_processes", "2", str(WORKER),
                           "run", str(out), "max_steps=3", "sft_warmup.steps=1", "checkpointing.every=2",
                           "validation.every=2", "validation.trajectories=1", "validation.examples=4", *settings],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.parametrize("engine, export", [
    ("fsdp2", "bf16"),
    pytest.param("zero3", None, marks=pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                                            reason="DeepSpeed is not installed (.ci/run installs it)")),
])
def test_a_sharded_resume_reads_only_its_shards(tmp_path, engine, export):
    """Each process of a sharded run resumes from its shards alone: with the checkpoint's HF weights gone, the run
    killed after step 2 builds its model from the checkpoint's config.json and ends as the run that never stopped
    (the same rows, the same final weights). A sharded run keeps no fp32 copy beside a bf16 export: the shards are
    exact."""
    from transformers import AutoModelForCausalLM

    settings = [f"checkpointing.export_dtype={export}"] if export else []  # the default export: fp32
    straight = tmp_path / "straight"
    proc = launch_sharded(engine, straight, *settings)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not (straight / "run" / "checkpoints" / "step-000002" / ENGINE_DIR / MASTER_FILE).exists()
    killed = tmp_path / "killed"
    killed_after(straight / "run", killed / "run", 2)
    proc = launch_sharded(engine, killed, *settings, "resume=1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("at step 2") == 2  # both processes resumed
    a, b = learned(straight / "run"), learned(killed / "run")
    assert [r["step"] for r in b] == [r["step"] for r in a] == [0, 1, 2, 3]
    for x, y in zip(a, b, strict=True):
        assert y.pop("batch", None) == x.pop("batch", None)
        assert y == pytest.approx(x, rel=1e-5, abs=1e-6), x["step"]
    final, again = (AutoModelForCausalLM.from_pretrained(run / "run" / "checkpoints" / "step-000003").state_dict()
                    for run in (straight, killed))
    for name in final:
        assert final[name].dtype == (torch.bfloat16 if export else torch.float32)
        assert torch.equal(final[name], again[name]), name
