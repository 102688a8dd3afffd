"""The GPU benchmark script (benchmarks/gpu_srl_step.py), run as a device run would run it but with `--smoke`:
tiny models on CPU, each side in its own process, the results and the log written to `--out`. Its numbers
mean nothing on CPU; what is checked is that every part runs and reports (a device run has no second try), and
that what it compares is fair: the FLOPs behind its MFU, both sides' prompts and precisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_srl_step  # noqa: E402  (a script beside its _common.py, not a package)


def test_the_gpu_script_runs_every_part_and_writes_its_results(tmp_path):
    # a budget that no side reaches even on a busy 2-core machine: this test is about every part running
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_srl_step.py"), "--smoke", "--budget-s",
                           "1500", "--out", str(tmp_path)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sides"] == list(gpu_srl_step.SHARES) and all(results["passed"].values()), results["passed"]
    assert results["device"] == "cpu" and results["versions"]["torch"] == torch.__version__
    # check 1: two GRPO steps and a save under FSDP2, the 7B's untied head and vocabulary, several log-prob chunks
    untied = results["untied_fsdp2"]
    assert untied["engine"] == "FSDP2" and not untied["tied"] and untied["vocab"] == 152064 and untied["layers"] == 2
    assert untied["steps"] == untied["updates"] == 2 and untied["saved"] and len(untied["step_seconds"]) == 2
    assert min(min(update) for update in untied["logprob_chunks_per_micro_batch"]) >= 3
    assert all(norm > 0 for norm in untied["grad_norms"]) and untied["save_seconds"] >= 0
    # check 2: the recipe's phases (CPU-sized), each peak beside the plan's for it
    recipe = results["recipe_7b"]
    assert recipe["group"] == 8 and recipe["generation_sequences"] == 32 and recipe["prompt_tokens"] == 64
    assert recipe["trainable_params"] < recipe["params"] and recipe["lora_r"] == 64  # LoRA, as swe-1gpu.yaml
    assert recipe["decode_ms_per_token"] > 0 and recipe["prefill_seconds"] > 0 and recipe["update_seconds"] > 0
    assert recipe["update_micro_batch_rows"] == recipe["micro_batch_size"] == 4  # a group of 8 in two, as planned
    assert recipe["generation_planned_gib"] > 0 and recipe["update_planned_gib"] > 0
    assert {"generation_peak_memory_gib", "update_peak_memory_gib"} <= set(recipe)  # None without a GPU
    speeds = {cache: r.get("tokens_per_s", 0) for cache, r in results["rollout"].items()}
    assert set(speeds) == {"dynamic", "static", "paged"} and min(speeds.values()) > 0, results["rollout"]
    # with sdpa (no flash-attention) the layouts are padded and shared_prefix; checkpointing drops the shared KV cache
    assert set(results["layouts"]) == {"padded", "padded + checkpointing", "shared_prefix"}
    # auto: ours samples with the fastest of the caches measured
    assert results["ours"]["backend"] == {"dynamic": "hf", "static": "hf_static", "paged": "hf_paged"}[
        max(speeds, key=speeds.get)] and results["ours"]["examples_per_s"] > 0
    assert results["ours"]["planned_memory_gib"] > 0  # the --dry-run plan, beside the measured peak on a card
    fsdp2 = results["fsdp2"]  # our step again, under accelerate launch with the FSDP2 config and one process
    assert fsdp2["engine"] == "FSDP2" and fsdp2["steps"] >= 1 and fsdp2["examples_per_s"] > 0
    assert fsdp2["planned_memory_gib"] > 0
    # check 3: TRL's GRPOTrainer side by side in our precision, and again with bf16 weights as its anchor; labelled
    ours, trl, trl_bf16 = results["ours"], results["trl"], results["trl_bf16"]
    assert (trl["weights_dtype"], trl["compute_dtype"]) == (ours["weights_dtype"], ours["compute_dtype"])
    assert trl_bf16["weights_dtype"] == "bfloat16" and trl["examples_per_s"] > 0 and trl_bf16["examples_per_s"] > 0
    assert results["ratio"] > 0 and results["ratio_to_trl_bf16"] > 0
    assert results["ratio_labels"]["ratio"] == f"ours ({ours['precision']}) / TRL ({trl['precision']})"
    assert "bfloat16 weights" in results["ratio_labels"]["ratio_to_trl_bf16"]
    log = (tmp_path / "log.txt").read_text()
    assert "check 1, FSDP2" in log and "check 2, the 7B" in log
    assert "generation alone: dynamic cache" in log and "update alone, padded" in log


def test_the_gpu_script_keeps_to_its_time_budget(tmp_path):
    """A budget too small for every side: the first sides run, the rest are skipped with the reason, and what was
    measured is in results.json (a device run's time is fixed and cannot be extended)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_srl_step.py"), "--smoke", "--sides",
                           "fsdp2", "layouts", "ours", "rollout", "--budget-s", "30", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sides"] == ["rollout", "ours", "layouts", "fsdp2"]  # the script's order, not the command's
    assert results["rollout"]["dynamic"]["tokens_per_s"] > 0  # the first side had its share
    assert "under 20 s of the 30 s budget left" in results["fsdp2"]["skipped"]
    assert "fsdp2: skipped" in (tmp_path / "log.txt").read_text()


def test_the_device_run_makes_the_checks_first_and_fits_its_call():
    """benchmarks/gpu_run.sh: the three checks, the untied FSDP2 one first, within the device call's 480 s even when
    the last side overruns the budget as far as the script lets it (plus its own setup: wheels, imports)."""
    run = (ROOT / "benchmarks" / "gpu_run.sh").read_text()
    sides = run.split("--sides", 1)[1].split("--", 1)[0].split()
    assert [s for s in gpu_srl_step.SHARES if s in sides] == sides == ["untied_fsdp2", "recipe_7b", "ours", "trl",
                                                                         "trl_bf16"]
    budget = float(run.split("--budget-s", 1)[1].split()[0])
    assert budget + gpu_srl_step.KILL_AFTER_BUDGET_S + gpu_srl_step.STOP_GRACE_S + 30 <= 480


def test_update_flops_charge_the_lm_head_only_on_the_scored_tokens():
    """Per token, 2 FLOPs per weight forward and 4 backward: the decoder's weights on every token the update runs
    on, the LM head's (H x V) on the scored (completion) tokens only, which is all train/logprobs.py projects."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = dict(vocab_size=1000, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2)  # head_dim 16: k and v project to 32
    # per layer: q (64 x 64 + bias 64), k and v (64 x 32 + bias 32 each), o (64 x 64), MLP (3 x 64 x 192), 2 norms
    layer = 64 * 64 + 64 + 2 * (64 * 32 + 32) + 64 * 64 + 3 * 64 * 192 + 2 * 64
    decoder, head = 2 * layer + 64, 64 * 1000  # the final norm; the embedding is a lookup
    for tied in (False, True):
        model = Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=tied))
        assert gpu_srl_step.matmul_params(model) == (decoder, head)
        # 1,280 tokens through the decoder (a 1,024-token prompt and a 256-token completion), 256 of them scored
        assert gpu_srl_step.update_flops(model, 1280, 256) == 6 * (decoder * 1280 + head * 256)


def test_both_sides_prompt_with_the_same_text_and_tool_schemas(tmp_path):
    """TRL's side gets the very text our trainer tokenizes: with the tool schemas the chat template renders from the
    example's `tools` (a conversational prompt would reach TRL without them), the same tokens as TRL tokenizes it."""
    import argparse

    from srl_agent.train.trainer import Trainer

    args = argparse.Namespace(smoke=True, model="0.5b", trajectories=str(gpu_srl_step.FIXTURES), batch=2, group=2,
                              prompt_tokens=2048, completion_tokens=16, micro_batch=8, update_layout="auto",
                              rollout_backend="hf")
    cfg = gpu_srl_step.config_for(args, str(tmp_path))
    trainer = Trainer(cfg, log=lambda _: None)
    examples = trainer.stream.take(3)
    rows, _ = gpu_srl_step.trl_workload(cfg, trainer.tokenizer, 3)
    # as GRPOTrainer tokenizes a prompt that is text (its _tokenize_prompts)
    assert [trainer.tokenizer(text=row["prompt"])["input_ids"] for row in rows] == \
        [trainer.prompt_ids(ex) for ex in examples]
    for row, ex in zip(rows, examples, strict=True):
        assert ex.tools and all(tool["function"]["description"] in row["prompt"] for tool in ex.tools)
        assert row["tool_names"] == ex.tool_names and row["expert_action"] == ex.expert_action
    trainer.accelerator.end_training()


def test_a_side_measures_fewer_steps_to_keep_to_its_share():
    assert len(list(gpu_srl_step.measured(3, None))) == 3  # no budget
    assert len(list(gpu_srl_step.measured(3, time.time() + 60))) == 3
    assert len(list(gpu_srl_step.measured(3, time.time() - 1))) == 1  # past its share: one measured step still
    now = time.time()
    assert gpu_srl_step.share_of(now + 90, 3) - now == pytest.approx(30, abs=1)  # the next of 3 parts of 90 s
    assert gpu_srl_step.share_of(now - 5, 2) == pytest.approx(now, abs=1)  # spent already: nothing left to share
    assert gpu_srl_step.share_of(None, 2) is None


SLEEPER = """import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(300)
"""


def test_a_side_past_its_time_is_stopped_with_the_workers_torchrun_started(tmp_path):
    """torchrun (what `accelerate launch` runs for the fsdp2 side) starts its workers in sessions of their own: a
    kill of the launcher's group alone would leave the worker running on the GPU and the script waiting for it."""
    script, pid_file = tmp_path / "sleeper.py", tmp_path / "worker.pid"
    script.write_text(SLEEPER)
    start, lines = time.time(), []
    code, stopped, _ = gpu_srl_step.run_child(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", str(script), str(pid_file)],
        kill_at=time.time() + 10, say=lines.append)
    assert stopped and code != 0
    assert time.time() - start < 10 + gpu_srl_step.STOP_GRACE_S + 15
    worker = int(pid_file.read_text())
    for _ in range(50):  # the worker ends within moments of its launcher
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the worker {worker} outlived the stopped side")
