"""SRL training speed on one GPU, side by side with TRL's GRPOTrainer on the same workload.

Models: Qwen2.5-Coder-shaped configs shipped in configs/models/ (0.5B, 1.5B), random weights, the
shipped tokenizer: the real compute and memory, no hub. Data: SRL step examples from the fixture
trajectories in ../shared, prompts cut to --prompt-tokens, G = 8 completions of up to
--completion-tokens each. A random model rarely ends a completion early, so both trainers generate
(almost) the full length: the same work on both sides.

Each side runs in its own process, in this order:
1. rollout: generation alone with each of transformers' KV caches (dynamic; static, which transformers compiles
   on CUDA; paged, its continuous batching; policy/hf.py), tokens/s side by side.
2. ours (srl_agent.train.Trainer), the whole SRL step: bf16, gradient checkpointing, vLLM rollouts when vllm
   imports (else the fastest of those caches, `--rollout-backend` to choose), padding-free updates with
   flash-attention when it is installed. Generation and update tokens/s, update MFU (6 x parameters x tokens
   against the card's dense bf16 peak), peak memory beside `train --dry-run`'s plan, SRL examples/s.
3. layouts: the update alone per layout (padded, shared_prefix, and padding_free with flash-attention), with
   gradient checkpointing off and on: tokens/s, MFU, peak memory.
4. fsdp2: our step again under `accelerate launch` with configs/accelerate/fsdp2.yaml and one process, its peak
   memory beside the plan for FSDP2.
5. trl: GRPOTrainer with our reward function (`srl_agent.reward.TRLRewardFunction`), the same model, prompts,
   batch and lengths; its examples/s and the ratio. Where it cannot run, on the anchor workload and card the
   ratio is taken against TRL's measured anchor (TRL_ANCHOR).
Targets: >= 3x TRL's examples/s, update MFU >= 40 %, generation >= 5x 772 tokens/s.

The sides share `--budget-s` of wall-clock time (each a share of what is left; a side measures fewer steps to
keep to it, is skipped when too little is left, or is stopped when far past it). results.json is rewritten after
every side, and a side that fails is recorded and the rest still run: a device run has one try.

    python benchmarks/gpu_srl_step.py --model 0.5b [--batch 16] [--steps 3] [--out DIR]   # DIR/results.json, log.txt
    python benchmarks/gpu_srl_step.py --smoke --no-trl  # the script itself on CPU: tiny model, short lengths
    bash benchmarks/gpu_prepare.sh; bash benchmarks/gpu_run.sh   # the device run: wheels and fixtures in .carry/
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from _common import FIXTURES, machine

from srl_agent.jsonio import atomic_writer
from srl_agent.policy.hf import BACKEND_CACHES
from srl_agent.train.config import TrainConfig
from srl_agent.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FSDP2_CONFIG = ROOT / "configs" / "accelerate" / "fsdp2.yaml"
# Each side's share of the time budget (of what is left when it starts), and the limits around it.
SHARES = {"rollout": 3, "ours": 3, "layouts": 2, "fsdp2": 2, "trl": 2}
MIN_SIDE_S = 20  # a side that would start with less left is skipped
SIDE_GRACE_S = 120  # a side still running this long past its share is stopped (warm-up and one step may overrun it)
KILL_AFTER_BUDGET_S = 30  # and any side still running this long past the whole budget
STOP_GRACE_S = 15  # between the SIGTERM that stops a side and the SIGKILL
ROLLOUT_BACKENDS = {cache: backend for backend, cache in BACKEND_CACHES.items()}  # each cache measured: who samples
# TRL 1.16 GRPOTrainer on this workload on an H200 (../shared/docs/performance-anchors.md, 2026-11-26): median
# 9.8 s per step of 8 prompts. The ratio's baseline when TRL cannot run beside ours (the GPU machine lacks it).
TRL_ANCHOR = {"card": "H200", "model": "0.5b", "batch": 8, "group": 8, "prompt_tokens": 1024,
              "completion_tokens": 256, "examples_per_s": 0.82}
MODELS = {"0.5b": ROOT / "configs" / "models" / "qwen2.5-coder-0.5b",
          "1.5b": ROOT / "configs" / "models" / "qwen2.5-coder-1.5b"}
# Dense bf16 peak of the cards this runs on (tensor cores, no sparsity), in FLOP/s.
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def card_peak() -> tuple[str, float | None]:
    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def matmul_params(model) -> int:
    """Parameters that do matmul work per token: all but the input embedding (a lookup), with the
    output projection counted once even when it shares the embedding's weights."""
    total = sum(p.numel() for p in model.parameters())
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    return total - embedding.numel() + (head.numel() if head is embedding else 0)


def config_for(args: argparse.Namespace, out: str) -> TrainConfig:
    cuda = torch.cuda.is_available()
    flash = cuda and importlib.util.find_spec("flash_attn") is not None
    return TrainConfig(
        method="srl", model="tiny" if args.smoke else f"config:{MODELS[args.model]}", trajectories=[args.trajectories],
        output_dir=out, seed=0, sft_warmup_steps=0, dynamic_sampling=False,  # a random model: every group flat
        batch_size=args.batch, group_size=args.group, max_new_tokens=args.completion_tokens,
        max_prompt_tokens=args.prompt_tokens, temperature=1.0, lr=1e-6, micro_batch_size=args.micro_batch,
        generation_batch_size=args.batch * args.group, max_steps=10**6, eval_every=10**6, save_every=10**6,
        val_trajectories=1, val_examples=1, bf16=cuda, update_layout=args.update_layout,
        gradient_checkpointing=cuda and args.update_layout != "shared_prefix",  # which needs the KV cache
        attn_implementation="flash_attention_2" if flash else "sdpa",
        rollout_backend=args.rollout_backend)


def measured(steps: int, deadline: float | None):
    """Up to `steps` timed repetitions; once the side's share of the time budget is spent, no more than one."""
    for i in range(steps):
        if i and deadline and time.time() > deadline:
            return
        yield i


def share_of(deadline: float | None, parts_left: int) -> float | None:
    """The end of the next of `parts_left` equal parts of the time until `deadline` (None: no budget)."""
    return None if deadline is None else time.time() + max(0.0, deadline - time.time()) / parts_left


def measure_ours(args: argparse.Namespace) -> dict[str, float]:
    """Our whole SRL step: one process, or (side fsdp2, under accelerate launch) FSDP2 over one process."""
    from srl_agent.train.engine import engine_name

    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as out:
        cfg = config_for(args, out)
        trainer = Trainer(cfg, log=lambda _: None)
        params = sum(p.numel() for p in trainer.model.parameters())
        trainer.train_step()  # warm-up: allocations, kernels, vLLM graphs
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        rows = [trainer.train_step() for _ in measured(args.steps, args.deadline)]
        engine = "fsdp2" if trainer.sharded else "ddp"
        trainer.accelerator.end_training()
    seconds = sum(r["seconds"] for r in rows)
    generate = sum(r["time_generate"] for r in rows)
    update = sum(r["time_update"] for r in rows)
    gen_tokens = sum(r.get("completion_tokens", 0) for r in rows)
    update_tokens = sum(r.get("forward_tokens", 0) for r in rows)  # what the layout runs (a shared prompt once)
    _, peak = card_peak()
    # 6 FLOPs per matmul parameter per token (forward + backward); attention's own FLOPs not counted
    update_flops = 6 * matmul_params(trainer.model) * update_tokens / update if update else 0.0
    return {"params": params, "engine": engine_name(trainer.accelerator), "backend": cfg.rollout_backend,
            "attention": cfg.attn_implementation, "steps": len(rows),
            "examples_per_s": sum(len(r["batch"]) for r in rows) / seconds,
            "generation_tokens_per_s": gen_tokens / generate if generate else 0.0,
            "update_tokens_per_s": update_tokens / update if update else 0.0,
            "update_mfu": update_flops / peak if peak else None,
            "generate_share": generate / seconds, "update_share": update / seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            "planned_memory_gib": planned_gib(cfg, engine)}


def planned_gib(cfg: TrainConfig, engine: str) -> float:
    """What `srl-agent train --dry-run` plans for this run on one card under `engine` (ddp: one process as it is;
    fsdp2: sharded over one process), to set beside the measured peak."""
    from srl_agent.train.plan import GB, model_shape, plan_memory

    card_gb = torch.cuda.get_device_properties(0).total_memory / GB if torch.cuda.is_available() else 80.0
    return plan_memory(cfg, model_shape(cfg), 1, card_gb, engine).total * GB / 2**30


def measure_rollout(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Generation alone, per transformers KV cache (policy/hf.py; paged: continuous batching): the step's prompts,
    G samples each, at the step's lengths; one warm-up call, then `--steps` timed calls. The static cache warms up
    at the full length (its shapes: on CUDA it compiles there), the others on 16 new tokens. A cache that fails is
    recorded as {"error": ...} and the others still measured."""
    from srl_agent.policy import SamplingParams
    from srl_agent.policy.hf import HFPolicy

    results = {}
    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as out:
        trainer = Trainer(config_for(args, out), log=lambda _: None)
        prompts = [trainer.prompt_ids(ex) for ex in trainer.stream.take(args.batch)]
        params = SamplingParams(n=args.group, temperature=1.0, max_new_tokens=args.completion_tokens)
        caches = tuple(ROLLOUT_BACKENDS)
        for i, cache in enumerate(caches):
            until = share_of(args.deadline, len(caches) - i)
            policy = HFPolicy(trainer.unwrapped, trainer.tokenizer, trainer.device, cache=cache)
            try:
                warm_up = params if cache == "static" else dataclasses.replace(params, max_new_tokens=16)
                policy.generate_ids(prompts, warm_up, with_logprobs=False)
                tokens, start = 0, time.perf_counter()
                for _ in measured(args.steps, until):
                    tokens += sum(len(c.token_ids) for g in policy.generate_ids(prompts, params, with_logprobs=False)
                                  for c in g)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                results[cache] = {"tokens_per_s": tokens / (time.perf_counter() - start)}
            except Exception as e:  # one engine's failure must not lose the others' numbers
                results[cache] = {"error": f"{type(e).__name__}: {e}"[:500]}
    return results


def measure_layouts(args: argparse.Namespace) -> dict[str, dict[str, float | None]]:
    """The update alone, per layout (train/batching.py) with gradient checkpointing on and off: one batch of
    rollouts, then per setting a warm-up update and `--steps` timed ones; forward tokens/s, MFU, peak memory."""
    results: dict[str, dict[str, float | None]] = {}
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as out:
        trainer = Trainer(config_for(args, out), log=lambda _: None)
        rollouts, _ = trainer.fill_batch({"generate": 0.0, "reward": 0.0, "update": 0.0})
        groups = [r.group() for r in rollouts]
        layouts = ["padded", "shared_prefix", *(["padding_free"] if trainer.cfg.attn_implementation ==
                                                 "flash_attention_2" else [])]
        # checkpointing drops the KV cache shared_prefix shares
        settings = [(layout, checkpointing) for layout in layouts for checkpointing in (False, True)
                    if not (layout == "shared_prefix" and checkpointing)]
        _, peak = card_peak()
        for i, (layout, checkpointing) in enumerate(settings):
            until = share_of(args.deadline, len(settings) - i)
            trainer.layout = layout
            if checkpointing:
                trainer.unwrapped.gradient_checkpointing_enable()
            else:
                trainer.unwrapped.gradient_checkpointing_disable()
            trainer.grpo_update(groups, 1.0)  # warm-up
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            tokens = sum(trainer.grpo_update(groups, 1.0)["forward_tokens"] for _ in measured(args.steps, until))
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            results[layout + (" + checkpointing" if checkpointing else "")] = {
                "tokens_per_s": tokens / seconds,
                "mfu": 6 * matmul_params(trainer.model) * tokens / seconds / peak if peak else None,
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}
    return results


def measure_trl(args: argparse.Namespace) -> dict[str, float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from srl_agent.reward import TRLRewardFunction
    from srl_agent.train.data import ExampleStream, load_examples, split_by_trajectory
    from srl_agent.train.model import load_model

    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-trl-") as out:
        cfg = config_for(args, out)
        model, tokenizer = load_model(cfg)
        # the very prompts our trainer takes, in its order (TRL's own shuffling is off)
        train, _ = split_by_trajectory(load_examples(cfg, tokenizer), cfg.val_trajectories, cfg.seed)
        examples = ExampleStream(train, cfg.seed).take(args.batch * (args.steps + 1))
        dataset = Dataset.from_list([{"prompt": ex.prompt, "expert_action": ex.expert_action} for ex in examples])
        reward = TRLRewardFunction()
        reward.__name__ = "srl_reward"
        step_times: list[float] = []

        class StepTimer(TrainerCallback):
            def on_step_begin(self, *a, **k):
                self.start = time.perf_counter()

            def on_step_end(self, _args, _state, control, **k):
                step_times.append(time.perf_counter() - self.start)
                if len(step_times) >= 2 and args.deadline and time.time() > args.deadline:  # warm-up + one measured
                    control.should_training_stop = True

        cuda = torch.cuda.is_available()
        trl_args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=args.batch * args.group, num_generations=args.group,
            max_completion_length=args.completion_tokens, max_steps=args.steps + 1, learning_rate=1e-6,
            bf16=cuda, gradient_checkpointing=cuda, report_to=[], save_strategy="no", logging_steps=10**6,
            use_cpu=not cuda, use_vllm=cfg.rollout_backend == "vllm", vllm_mode="colocate", beta=0.0,
            temperature=1.0, shuffle_dataset=False)
        GRPOTrainer(model=model, reward_funcs=reward, args=trl_args, train_dataset=dataset,
                    processing_class=tokenizer, callbacks=[StepTimer()]).train()
    timed = step_times[1:] or step_times  # the first step warms up
    return {"examples_per_s": args.batch / statistics.mean(timed)}


def with_fields(args: argparse.Namespace, **changes) -> argparse.Namespace:
    """`args` with some fields changed (the parent's own stay as they are)."""
    return argparse.Namespace(**{**vars(args), **changes})


def run_child(command: list[str], kill_at: float, say) -> tuple[int, bool, list[str]]:
    """Run `command`, saying its output as it comes: (exit code, whether it was stopped at `kill_at`, its last lines).

    It gets a process group of its own and, at `kill_at`, SIGTERM to the whole group, then SIGKILL: torchrun (under
    `accelerate launch`) starts its workers in sessions of their own, which only the TERM it forwards reaches. A
    group, not a session: the device tool's clean-up still reaches whatever is left at the end of a run."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, process_group=0)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 0)):
            with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
                os.killpg(child.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(wait_s)
                return

    killer = threading.Timer(max(0.0, kill_at - time.time()), stop)
    killer.start()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        for line in child.stdout:
            say(line.rstrip("\n"))
            tail.append(line.rstrip("\n"))
        code = child.wait()
    finally:
        killer.cancel()
    return code, stopped.is_set(), list(tail)


def in_child(args: argparse.Namespace, side: str, say, kill_at: float) -> dict:
    """One side in its own process, so each starts with a clean GPU (and its own vLLM engine); its output is said.
    The fsdp2 side runs under `accelerate launch` with our FSDP2 config and one process. A side that fails, or is
    still running at `kill_at`, comes back as {"error": ...}: the other sides still run and report."""
    with tempfile.TemporaryDirectory(prefix="srl-gpu-bench-") as tmp:
        out = Path(tmp) / f"{side}.json"
        argv = ["--model", args.model, "--batch", str(args.batch), "--group", str(args.group), "--prompt-tokens",
                str(args.prompt_tokens), "--completion-tokens", str(args.completion_tokens), "--micro-batch",
                str(args.micro_batch), "--steps", str(args.steps), "--update-layout", args.update_layout,
                "--rollout-backend", args.rollout_backend, "--trajectories", args.trajectories,
                *(["--smoke"] if args.smoke else []), "--side", side, "--deadline", str(args.deadline),
                "--json", str(out)]
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP2_CONFIG),
                    "--num_processes", "1"] if side == "fsdp2" else [sys.executable]
        code, stopped, tail = run_child([*launcher, __file__, *argv], kill_at, say)
        if code or stopped or not out.is_file():
            why = "stopped: still running at its time limit" if stopped else f"exit {code}" if code else \
                "exit 0 without its results"
            say(f"the {side} side failed ({why}); its output is above")
            return {"error": why, "output_tail": tail}
        return json.loads(out.read_text())


def report(side: str, r: dict, say) -> None:
    """The lines a person reads for one side's results."""
    if side == "rollout":
        say("generation alone: " + ", ".join(f"{cache} cache {x['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in x
                                             else f"{cache} cache failed ({x['error']})" for cache, x in r.items()))
    elif side == "layouts":
        for name, x in r.items():
            say(f"update alone, {name}: {x['tokens_per_s']:.0f} forward tokens/s"
                + (f", MFU {x['mfu']:.1%}, peak {x['peak_memory_gib']:.1f} GiB" if x["mfu"] is not None else ""))
    elif side == "trl":
        say(f"TRL GRPOTrainer: {r['examples_per_s']:.3f} examples/s")
    else:  # ours, fsdp2
        say(f"{r['engine']}: {r['examples_per_s']:.3f} examples/s over {r['steps']} steps, generation "
            f"{r['generation_tokens_per_s']:.0f} tokens/s ({r['backend']}), update {r['update_tokens_per_s']:.0f} "
            f"tokens/s" + (f", MFU {r['update_mfu']:.1%} (target >= 40 %)" if r["update_mfu"] is not None else ""))
        if r["peak_memory_gib"] is not None:
            say(f"{r['engine']}: peak memory {r['peak_memory_gib']:.1f} GiB against the --dry-run plan's "
                f"{r['planned_memory_gib']:.1f} GiB")


def ratios(results: dict, args: argparse.Namespace, card: str) -> dict[str, float]:
    """Our examples/s over TRL's: measured side by side, else (on the anchor workload and card) over TRL's anchor."""
    ours = results.get("ours", {}).get("examples_per_s")
    if not ours:
        return {}
    if "examples_per_s" in results.get("trl", {}):
        return {"ratio": ours / results["trl"]["examples_per_s"]}
    workload = {k: v for k, v in TRL_ANCHOR.items() if k not in ("card", "examples_per_s")}
    if TRL_ANCHOR["card"] in card and all(getattr(args, k) == v for k, v in workload.items()):
        return {"ratio_to_trl_anchor": ours / TRL_ANCHOR["examples_per_s"]}
    return {}


def measured_ok(side: str, r: dict) -> bool:
    """Whether a side (and, for the rollout side, every cache in it) measured what it was for."""
    if "error" in r or "skipped" in r:
        return False
    return side != "rollout" or all("tokens_per_s" in x for x in r.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="0.5b")
    parser.add_argument("--batch", type=int, default=16, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--prompt-tokens", type=int, default=2048)
    parser.add_argument("--completion-tokens", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward in the update")
    parser.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up step)")
    parser.add_argument("--update-layout", default="auto", choices=["auto", "padded", "padding_free", "shared_prefix"],
                        help="our update's layout (shared_prefix turns gradient checkpointing off)")
    parser.add_argument("--rollout-backend", default="auto", choices=["auto", "hf", "hf_static", "hf_paged", "vllm"],
                        help="ours: auto = vllm when it imports on a GPU, else the fastest KV cache measured first")
    parser.add_argument("--no-trl", action="store_true", help="skip the TRL side (e.g. trl is not installed)")
    parser.add_argument("--budget-s", type=float, default=360,
                        help="wall-clock seconds for all sides: each gets a share of what is left and measures fewer "
                             "steps (at least one) to keep to it; a side that would start with under "
                             f"{MIN_SIDE_S} s left is skipped, one still running {SIDE_GRACE_S} s past its share or "
                             f"{KILL_AFTER_BUDGET_S} s past the budget is stopped")
    parser.add_argument("--trajectories", default=str(FIXTURES),
                        help="expert trajectories for the prompts (a device run carries a copy: benchmarks/gpu_run.sh)")
    parser.add_argument("--smoke", action="store_true", help="CPU check: the tiny model and short lengths")
    parser.add_argument("--out", help="write results.json and log.txt into this folder (results.json after each side)")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # internal: where a child writes its side
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # internal: the end of a child's share
    parser.add_argument("--side", choices=list(SHARES), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.completion_tokens, args.steps, args.micro_batch = 2, 16, 1, 8
    if args.side:  # a child process: measure one side, write it, done
        measure = {"ours": measure_ours, "fsdp2": measure_ours, "trl": measure_trl, "rollout": measure_rollout,
                   "layouts": measure_layouts}[args.side]
        Path(args.json).write_text(json.dumps(measure(args)))
        return 0
    budget_end = time.time() + args.budget_s
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    log = (out / "log.txt").open("w", encoding="utf-8") if out else None

    def say(line: str) -> None:
        print(line, flush=True)
        if log:
            log.write(line + "\n")
            log.flush()

    def save(results: dict) -> None:
        if out:
            with atomic_writer(out / "results.json") as f:
                f.write(json.dumps(results, indent=1))

    card, _ = card_peak()
    say(f"machine: {machine()}; device: {card}; torch {torch.__version__}")
    say(f"model {'tiny' if args.smoke else args.model}, batch {args.batch} prompts x G {args.group}, prompts <= "
        f"{args.prompt_tokens} tokens, completions <= {args.completion_tokens}, up to {args.steps} measured steps, "
        f"{args.budget_s:.0f} s budget")
    results: dict = {"card": card, "args": dict(vars(args))}
    sides = [*(["rollout"] if args.rollout_backend != "vllm" else []), "ours", "layouts", "fsdp2",
             *([] if args.no_trl else ["trl"])]
    # Only ours (and TRL) sample with the chosen engine: the others measure caches, updates or memory, and a
    # compiled or paged engine there would cost time (or, under FSDP2, add an untried combination) for nothing.
    plain_hf = {"rollout", "layouts", "fsdp2"}
    for i, side in enumerate(sides):
        left = budget_end - time.time()
        if left < MIN_SIDE_S:
            results[side] = r = {"skipped": f"under {MIN_SIDE_S} s of the {args.budget_s:.0f} s budget left"}
            say(f"{side}: skipped, {r['skipped']}")
        else:
            deadline = time.time() + left * SHARES[side] / sum(SHARES[s] for s in sides[i:])
            side_args = with_fields(args, deadline=deadline,
                                    **({"rollout_backend": "hf"} if side in plain_hf else {}))
            kill_at = min(budget_end + KILL_AFTER_BUDGET_S, deadline + SIDE_GRACE_S)
            results[side] = r = in_child(side_args, side, say, kill_at)
            if "error" not in r:
                report(side, r, say)
        if side == "rollout" and args.rollout_backend == "auto":  # the KV caches side by side: take the fastest
            vllm = torch.cuda.is_available() and importlib.util.find_spec("vllm")
            speeds = {cache: x["tokens_per_s"] for cache, x in r.items()
                      if isinstance(x, dict) and "tokens_per_s" in x}
            args.rollout_backend = "vllm" if vllm else ROLLOUT_BACKENDS[max(speeds, key=speeds.get, default="dynamic")]
            results["rollout_backend"] = args.rollout_backend
        results.update(ratios(results, args, card))
        save(results)  # after every side: a device run cut short keeps what it measured
    if "ratio" in results:
        say(f"ours / TRL: {results['ratio']:.2f}x examples/s (target >= 3x)")
    elif "ratio_to_trl_anchor" in results:
        say(f"ours / TRL's {TRL_ANCHOR['examples_per_s']} examples/s on this workload and card "
            f"(performance-anchors.md): {results['ratio_to_trl_anchor']:.2f}x (target >= 3x)")
    if out:
        say(f"wrote {out / 'results.json'} and {out / 'log.txt'}")
    failed = [side for side in sides if "skipped" not in results[side] and not measured_ok(side, results[side])]
    if failed:
        say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
