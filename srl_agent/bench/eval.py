"""`srl-agent eval`: solve benchmark instances with a policy, then grade them with the swebench harness.

    instances (swebench's loader)
      -> N workers, one sandbox per instance: the agent loop, or Oracle File Edit, or the gold patch
      -> predictions.jsonl, one atomic append per finished instance (a rerun with the same --run-id skips them)
      -> the swebench harness grades the predictions
      -> results.jsonl (one verdict per instance) and summary.json

A crash in one instance is recorded as that instance's `error` and the run goes on. Ctrl-C stops the
workers, removes their containers and leaves a run that the same command with `--run-id` resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..agent import AgentConfig, context_limit, fits_context, run_agent, save_run
from ..errors import FormatViolation, UserError
from ..jsonio import atomic_writer, read_jsonl, write_jsonl
from ..policy import ContextWindowExceeded, Policy, SamplingParams
from .harness import grade, instance_verdict, require_docker_for_grading
from .oracle import oracle_patch, oracle_prompt, touched_files

# Names users type -> (swebench dataset name, split). Anything else goes to swebench's loader as is
# (a Hugging Face id, or a local .json/.jsonl/.parquet file).
_VERIFIED, _LITE = ("SWE-bench/SWE-bench_Verified", "test"), ("SWE-bench/SWE-bench_Lite", "test")
BENCHES = {"swe-verified": _VERIFIED, "verified": _VERIFIED, "swe-bench-lite": _LITE, "lite": _LITE}
GOLD = "gold"


@dataclass
class EvalConfig:
    """One evaluation run."""

    bench: str = "swe-verified"
    """swe-verified, swe-bench-lite, swe-mini (offline, shipped), a Hugging Face dataset id or a local file."""
    model: str = GOLD
    """A checkpoint folder, a Hugging Face id, an OpenAI-compatible URL (http://host:port/v1), or `gold`."""
    mode: Literal["agent", "oracle-file-edit"] = "agent"
    """`agent`: tool calls in a sandbox. `oracle-file-edit`: the paper's setting, one search/replace answer."""
    instances: list[str] | None = None
    """Instance ids to run (default: all)."""
    split: str = "test"
    workers: int = 1
    """Instances solved (and graded) at once, each in its own sandbox."""
    run_id: str | None = None
    """Names the run folder; the same id resumes a run. Default: a timestamp."""
    output_dir: str = "runs/eval"
    grade: bool = True
    """Grade with the swebench harness after solving."""
    grade_timeout: int = 900
    """Seconds the harness gives one instance's tests."""
    retry_errors: bool = False
    """On resume, run again the instances whose earlier attempt crashed."""
    agent: AgentConfig = field(default_factory=AgentConfig)

    def dataset(self) -> tuple[str, str]:
        """(dataset name for swebench's loader, split)."""
        if self.bench == "swe-mini":
            from .swe_mini import instances_path

            return str(instances_path()), "test"
        if Path(self.bench).exists():  # the harness runs in the run folder: hand it an absolute path
            return str(Path(self.bench).resolve()), self.split
        return BENCHES.get(self.bench, (self.bench, self.split))

    def model_name(self) -> str:
        """The `model_name_or_path` written into predictions."""
        return GOLD if self.model == GOLD else self.model.rstrip("/").replace("://", "_")


def load_instances(cfg: EvalConfig) -> list[dict]:
    """The benchmark's instances through swebench's loader, with a clear error when they cannot be had."""
    from swebench.harness.utils import load_swebench_dataset

    name, split = cfg.dataset()
    try:
        instances = load_swebench_dataset(name, split, cfg.instances)
    except ValueError as e:  # unknown instance ids
        raise UserError(f"{name}: {e}") from None
    except Exception as e:  # offline hub, missing file, bad parquet...
        raise UserError(f"cannot load {name} ({type(e).__name__}: {str(e)[:300]}). Without access to the "
                        "Hugging Face hub pass a local .jsonl/.parquet with --bench, or use --bench swe-mini") from None
    for instance in instances:  # the official per-instance images (`__` is written `_1776_`)
        instance.setdefault("image", f"swebench/sweb.eval.x86_64.{instance['instance_id'].replace('__', '_1776_')}")
    return list(instances)


class PredictionLog:
    """predictions.jsonl: one line per finished instance, appended with a single write and fsync.

    A line torn by a crash mid-write is dropped when the log is opened again.
    """

    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        self.rows: dict[str, dict] = {}
        if path.exists():
            lines = [row for _, row in read_jsonl(path, bad_lines="yield")]
            good = [row for row in lines if isinstance(row, dict)]
            if len(good) != len(lines):
                write_jsonl(path, good)
            self.rows = {row["instance_id"]: row for row in good}

    def finished(self, retry_errors: bool = False) -> set[str]:
        return {i for i, row in self.rows.items() if not (retry_errors and row.get("status") == "error")}

    def append(self, row: dict) -> None:
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = 0
                while written < len(line):  # a large row may take several writes
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            self.rows[row["instance_id"]] = row


class Interrupted(Exception):
    """The run is stopping (Ctrl-C): a worker gives up its instance without recording it."""


class SharedPolicy:
    """The policy as the workers share it: one generate at a time for an in-process model, and a stop switch."""

    def __init__(self, policy: Policy, stop: threading.Event):
        self.policy, self.stop = policy, stop
        remote = type(policy).__name__ == "OpenAIPolicy"  # a server batches concurrent requests itself
        self.lock = threading.Lock() if not remote else None

    def generate(self, prompts, tools, params: SamplingParams):
        if self.stop.is_set():
            raise Interrupted
        if self.lock is None:
            return self.policy.generate(prompts, tools, params)
        with self.lock:
            if self.stop.is_set():  # Ctrl-C came while this worker waited for its turn
                raise Interrupted
            return self.policy.generate(prompts, tools, params)

    def __getattr__(self, name: str) -> Any:  # context_window / count_prompt_tokens, for the context limit
        return getattr(self.policy, name)


def instance_sandbox(instance: dict, step_timeout: float = 120.0):
    """A Docker sandbox made from the instance's image (which holds the repository at its base commit)."""
    from ..sandbox import SandboxConfig, open_sandbox

    return open_sandbox(SandboxConfig(image=instance["image"], default_timeout=step_timeout), kind="docker",
                        base_commit=instance.get("base_commit"))


def solve_instance(instance: dict, policy: Policy | None, cfg: EvalConfig, run_dir: Path) -> dict:
    """One instance -> one prediction row (the patch plus what the run looked like)."""
    row: dict[str, Any] = {"instance_id": instance["instance_id"], "model_name_or_path": cfg.model_name()}
    start = time.monotonic()
    if policy is None:
        row.update(model_patch=instance["patch"], status=GOLD)
    elif cfg.mode == "agent":
        with instance_sandbox(instance, cfg.agent.step_timeout) as sandbox:
            run = run_agent(policy, sandbox, instance["problem_statement"], instance["instance_id"], cfg.agent)
        save_run(run, run_dir / "trajectories")
        row.update(model_patch=run.patch, status=run.exit_status, steps=len(run.trajectory.steps),
                   completion_tokens=run.completion_tokens, format_errors=run.format_errors)
    else:
        with instance_sandbox(instance, cfg.agent.step_timeout) as sandbox:
            files = {}
            for path in touched_files(instance["patch"]):
                with contextlib.suppress(FileNotFoundError):  # a file the gold patch creates
                    files[path] = sandbox.read_file(f"{sandbox.config.workdir}/{path}").decode("utf-8", "replace")
        params = SamplingParams(n=1, temperature=cfg.agent.temperature, max_new_tokens=cfg.agent.max_new_tokens)
        prompt = oracle_prompt(instance["problem_statement"], files)
        try:
            if not fits_context(policy, prompt, None, cfg.agent):
                raise ContextWindowExceeded("the issue and the files are longer than the context limit")
            completion = policy.generate([prompt], None, params)[0][0]
        except ContextWindowExceeded as e:
            row.update(model_patch="", status="context_limit", error=str(e), steps=0)
        else:
            try:
                row.update(model_patch=oracle_patch(completion.text, files), status="submitted")
            except FormatViolation as e:
                row.update(model_patch="", status="format_errors", error=str(e))
            row.update(steps=1, completion_tokens=completion.num_tokens)
            with atomic_writer(run_dir / "answers" / f"{instance['instance_id']}.txt") as f:
                f.write(completion.text)
    row["seconds"] = round(time.monotonic() - start, 2)
    return row


def solve_all(instances: list[dict], policy: Policy | None, cfg: EvalConfig, run_dir: Path, log: PredictionLog,
              on_done: Callable[[dict], None] = lambda row: None) -> None:
    """Solve every instance on `cfg.workers` threads; each finished one is appended to the log at once."""
    stop = threading.Event()
    shared = SharedPolicy(policy, stop) if policy is not None else None

    def work(instance: dict) -> dict | None:
        try:
            return solve_instance(instance, shared, cfg, run_dir)
        except Exception as e:  # one instance's crash is its own result, not the run's
            if stop.is_set():
                return None
            return {"instance_id": instance["instance_id"], "model_name_or_path": cfg.model_name(),
                    "model_patch": "", "status": "error", "error": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc(limit=8)}

    pool = ThreadPoolExecutor(max_workers=max(1, cfg.workers), thread_name_prefix="eval")
    try:
        for future in as_completed([pool.submit(work, instance) for instance in instances]):
            row = future.result()
            if row is not None:
                log.append(row)
                on_done(row)
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        from ..sandbox.docker import close_all

        close_all()
        raise
    pool.shutdown(wait=True)


def summarize(instances: list[dict], rows: dict[str, dict], verdicts: dict[str, dict]) -> dict[str, Any]:
    """The numbers the summary table shows (also written as summary.json)."""
    n = len(instances)
    ids = [i["instance_id"] for i in instances]
    solved = [rows[i] for i in ids if i in rows]
    steps = [r["steps"] for r in solved if "steps" in r]
    tokens = [r["completion_tokens"] for r in solved if "completion_tokens" in r]
    resolved = sorted(i for i in ids if verdicts.get(i, {}).get("resolved"))
    pct = (lambda k: round(100 * k / n, 1)) if n else (lambda k: 0.0)
    return {
        "instances": n, "resolved": len(resolved), "resolved_pct": pct(len(resolved)),
        "patch_applied_pct": pct(sum(1 for i in ids if verdicts.get(i, {}).get("patch_applied"))),
        "empty_patches": sum(1 for r in solved if r.get("status") != "error"
                             and not (r.get("model_patch") or "").strip()),
        "mean_steps": round(sum(steps) / len(steps), 2) if steps else None,
        "mean_completion_tokens": round(sum(tokens) / len(tokens), 1) if tokens else None,
        "agent_exit": dict(Counter(r.get("status", "?") for r in solved)),
        "outcomes": dict(Counter(verdicts.get(i, {}).get("category", "not_solved") for i in ids)),
        "resolved_ids": resolved,
    }


def run_eval(cfg: EvalConfig, policy: Policy | None, instances: list[dict], run_dir: Path,
             on_solved: Callable[[dict], None] = lambda row: None,
             on_graded: Callable[[int], None] | None = None, log=print) -> dict[str, Any]:
    """Solve what is not solved yet, grade, and write results.jsonl and summary.json into `run_dir`."""
    if policy is not None:
        context_limit(policy, cfg.agent)  # a budget with no room for a prompt fails here, not per instance
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions = PredictionLog(run_dir / "predictions.jsonl")
    finished = predictions.finished(cfg.retry_errors)
    todo = [i for i in instances if i["instance_id"] not in finished]
    if len(todo) < len(instances):
        log(f"{len(instances) - len(todo)} instances already have predictions; solving {len(todo)}")
    solve_all(todo, policy, cfg, run_dir, predictions, on_solved)
    ids = [i["instance_id"] for i in instances]
    verdicts: dict[str, dict] = {}
    if cfg.grade:
        require_docker_for_grading()
        name, split = cfg.dataset()
        grade(run_dir, name, split, predictions.path, run_dir.name, cfg.workers, cfg.grade_timeout, ids, on_graded)
        for instance_id in ids:
            row = predictions.rows[instance_id]
            verdicts[instance_id] = {"resolved": False, "patch_applied": False, "category": "agent_error"} \
                if row.get("status") == "error" else \
                instance_verdict(run_dir, run_dir.name, row["model_name_or_path"], instance_id,
                                 row.get("model_patch") or "")
        write_jsonl(run_dir / "results.jsonl", [
            {"instance_id": i, "status": predictions.rows[i].get("status"), **verdicts[i]} for i in ids])
    summary = summarize(instances, predictions.rows, verdicts)
    with atomic_writer(run_dir / "summary.json") as f:
        json.dump(summary, f, indent=2)
    return summary
