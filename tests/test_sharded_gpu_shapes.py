"""What the 7B recipes meet on GPUs, shown on CPU with tiny models given the GPU-relevant shape: an untied LM head
(Qwen2.5-7B's), log-probs in several chunks, sharded by FSDP2 and ZeRO-3 over two gloo processes.

All-gathers are counted with the profiler (c10d's allgather ops, whatever the engine or backend), so each test
states a cost that does not grow with what it must not grow with: the number of log-prob chunks, or the number
of new tokens a rollout decodes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "sharded_worker.py"

pytestmark = pytest.mark.distributed

ENGINES = ["fsdp2", pytest.param("zero3", marks=pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed (.ci/run installs it)"))]


def untied_model(folder: Path) -> str:
    """A 2-layer Qwen2 with its own LM head (tie_word_embeddings false, as Qwen2.5-7B), sized for the shipped tiny
    tokenizer, saved as a checkpoint: every engine starts from these weights (ZeRO-3 initialises a model built
    from a config differently)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from srl_agent.tokenizer import TINY_TOKENIZER, load_tokenizer

    tokenizer = load_tokenizer(TINY_TOKENIZER)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def launch(engine: str | None, processes: int, mode: str, out: Path, *settings: str) -> dict:
    """The worker on `processes` gloo processes under an engine config we ship (None: one plain process)."""
    out.mkdir(parents=True)
    launcher = [] if engine is None else [
        "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs" / "accelerate" / f"{engine}.yaml"),
        "--num_processes", str(processes)]
    proc = subprocess.run([sys.executable, *launcher, str(WORKER), mode, str(out), *settings], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "mixed torch.Tensor and DTensor" not in proc.stderr
    return torch.load(out / "result.pt")


@pytest.mark.parametrize("engine", ENGINES)
def test_an_untied_head_in_chunks_gives_one_process_s_logprobs_and_gradients(tmp_path, engine):
    """The head runs once per forward whatever the number of chunks: 4 chunks of 8 scored tokens make exactly the
    all-gathers of one chunk, and log-probs and every gradient (the head's included) equal one plain process's."""
    model = untied_model(tmp_path / "model")
    plain = launch(None, 1, "head", tmp_path / "plain", f"model={model}", "compute.logprob_chunk_tokens=8")
    chunked = launch(engine, 2, "head", tmp_path / "chunked", f"model={model}", "compute.logprob_chunk_tokens=8")
    whole = launch(engine, 2, "head", tmp_path / "whole", f"model={model}", "compute.logprob_chunk_tokens=4096")
    assert plain["scored"] >= 3 * 8  # at least 3 chunks
    for stage in ("forward_gathers", "backward_gathers"):
        assert chunked[stage] == whole[stage], stage
    assert chunked["forward_gathers"] > 0  # the counter sees the engine's gathers
    # fp32 throughout; the sharded sum of two identical halves differs from one process's in float order only
    assert torch.allclose(chunked["logp"], plain["logp"], rtol=1e-5, atol=1e-6)
    assert chunked["grads"].keys() == plain["grads"].keys()
    assert any("lm_head" in name for name in plain["grads"])
    for name, grad in plain["grads"].items():
        assert grad.abs().sum() > 0, name
        assert torch.allclose(chunked["grads"][name], grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rollout_from_a_sharded_model_gathers_its_weights_once(tmp_path, engine):
    """Decoding 12 tokens makes the all-gathers of decoding 3 (each layer's weights are gathered once for the
    sampling phase, not once per token), and the greedy tokens are one plain process's."""
    model = untied_model(tmp_path / "model")
    plain = launch(None, 1, "generate", tmp_path / "plain", f"model={model}", "rollout.max_new_tokens=12")
    short = launch(engine, 2, "generate", tmp_path / "short", f"model={model}", "rollout.max_new_tokens=3")
    long = launch(engine, 2, "generate", tmp_path / "long", f"model={model}", "rollout.max_new_tokens=12")
    assert short["gathers"] > 0
    assert long["gathers"] == short["gathers"]
    assert long["ids"] == plain["ids"]
    assert all(len(ids) == 12 for ids in long["ids"])  # no early end: every step was decoded
