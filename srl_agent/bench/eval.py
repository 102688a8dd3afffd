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
import functools
import json
import os
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..agent import AgentConfig, context_limit, fits_context, run_agent, save_run
from ..errors import FormatViolation, UserError
from ..jsonio import atomic_writer, read_jsonl, write_jsonl
from ..policy import ContextWindowExceeded, Policy, SamplingParams, load_policy
from ..policy.batcher import BatchedPolicy, BatchLimits
from ..sandbox import DEFAULT_DISK_MB
from ..testbed.instance import instance_sandbox
from .harness import grade, grade_in_sandboxes, instance_verdict, require_docker_for_grading
from .oracle import oracle_patch, oracle_prompt, touched_files

# Names users type -> (swebench dataset name, split). Anything else goes to swebench's loader as is
# (a Hugging Face id, or a local .json/.jsonl/.parquet file).
_VERIFIED, _LITE = ("SWE-bench/SWE-bench_Verified", "test"), ("SWE-bench/SWE-bench_Lite", "test")
BENCHES = {"swe-verified": _VERIFIED, "verified": _VERIFIED, "swe-bench-lite": _LITE, "lite": _LITE}
GOLD = "gold"
EVAL_BATCHING = BatchLimits(max_wait=1.0, wait_share=0.5)
"""Eval's default: every worker's prompt in one batch, or what waits once the oldest has waited half the last
batch's generation time, at most a second (a worker in a long tool call holds the others up no longer)."""


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
    batching: BatchLimits = EVAL_BATCHING
    """When the workers' waiting prompts go to an in-process model as one batch (a served model gets each at once)."""
    run_id: str | None = None
    """Names the run folder; the same id resumes a run. Default: a timestamp."""
    output_dir: str = "runs/eval"
    grade: bool = True
    """Grade with the swebench harness after solving."""
    grade_timeout: int = 900
    """Seconds one instance's tests may run when graded."""
    grading: Literal["sandbox", "harness"] = "sandbox"
    """`sandbox`: each patch's tests run in a hardened sandbox (no network, no capabilities, the sandboxes' limits,
    the image's non-root `agent` user where it has one), graded by swebench's own report code
    (testbed/grading.py). `harness`: the official `swebench.harness.run_evaluation`, whose containers run the
    tests as root with the engine's default network."""
    grading_network: bool = False
    """Give the grading sandboxes the network, for benchmarks whose eval scripts download (SWE-bench's reinstall
    the package with pip, which may fetch build dependencies). The harness's containers always have it."""
    retry_errors: bool = False
    """On resume, run again the instances whose earlier attempt crashed."""
    sandbox: Literal["docker", "podman"] = "docker"
    """Container engine kind of the instances' sandboxes."""
    disk_mb: int = DEFAULT_DISK_MB
    """Disk budget in MiB of each sandbox, solving and grading (docs/sandboxes.md)."""
    engine: str | None = None
    """Engine URL (`unix://…`, `tcp://…`, `ssh://…`) for sandboxes and grading; None: the local default."""
    executor: Literal["local", "ray"] = "local"
    """`local`: worker threads here. `ray`: Ray tasks, each on its node's own engine (srl_agent/executor.py)."""
    ray_address: str | None = None
    """The Ray cluster (`host:port`); None: RAY_ADDRESS, else a local one."""
    image_template: str | None = None
    """Names each instance's image, e.g. `ghcr.io/epoch-research/swe-bench.eval.x86_64.{instance_id}`;
    fields {instance_id}, {id_docker} (`__` written `_1776_`), {repo}, {version}. None: the dataset's images."""
    agent: AgentConfig = field(default_factory=AgentConfig)

    def dataset(self) -> tuple[str, str]:
        """(dataset name for swebench's loader, split)."""
        if self.bench == "swe-mini":
            from ..testbed.swe_mini import instances_path

            return str(instances_path()), "test"
        if Path(self.bench).exists():  # the harness runs in the run folder: hand it an absolute path
            return str(Path(self.bench).resolve()), self.split
        return BENCHES.get(self.bench, (self.bench, self.split))

    def grading_engine(self) -> str | None:
        """The engine URL the harness grades on: the sandboxes' engine."""
        if self.sandbox == "podman":
            from ..sandbox.container_engine import podman_url

            return podman_url(self.engine)
        return self.engine

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
        if cfg.image_template:
            instance["image"] = image_from_template(cfg.image_template, instance)
    return list(instances)


def image_from_template(template: str, instance: dict) -> str:
    """An instance's image named by `template`: {instance_id}, {id_docker} (`__` as `_1776_`), {repo}, {version}."""
    iid = instance["instance_id"]
    try:
        return template.format(instance_id=iid, id_docker=iid.replace("__", "_1776_"),
                               repo=instance.get("repo", "").replace("/", "__"), version=instance.get("version", ""))
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"--image-template {template!r}: {type(e).__name__}: {e} (fields: {{instance_id}}, "
                        "{id_docker}, {repo}, {version})") from None


class InstanceLog:
    """A JSONL log of one row per finished instance, keyed by `instance_id`, appended with a single write and
    fsync: an eval run's predictions.jsonl, and the task factory's validation.jsonl (tasks/synthesize.py).

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


def read_predictions(path: str | Path) -> list[dict]:
    """Predictions made elsewhere (JSONL, or a JSON list, of instance_id + model_patch), checked row by row."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such predictions file")
    if path.suffix == ".json":
        from ..jsonio import read_json

        rows = list(enumerate(read_json(path), 1))
    else:
        rows = list(read_jsonl(path))
    seen: dict[str, dict] = {}
    for number, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("instance_id"), str) \
                or not isinstance(row.get("model_patch") or "", str):
            raise UserError(f"{path}: row {number}: a prediction needs instance_id and model_patch (a diff)")
        seen[row["instance_id"]] = {"instance_id": row["instance_id"], "model_patch": row.get("model_patch") or "",
                                    "model_name_or_path": str(row.get("model_name_or_path") or path.stem),
                                    "status": "imported"}
    if not seen:
        raise UserError(f"{path}: no predictions")
    return list(seen.values())


def import_predictions(rows: list[dict], instances: list[dict], run_dir: Path) -> None:
    """Log predictions made elsewhere (`read_predictions`) in the run's predictions.jsonl, for grading.

    Only rows of `instances` that the log does not hold yet: a resumed run keeps what it has.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    log = InstanceLog(run_dir / "predictions.jsonl")
    wanted = {i["instance_id"] for i in instances}
    for row in rows:
        if row["instance_id"] in wanted and row["instance_id"] not in log.rows:
            log.append(row)


class Interrupted(Exception):
    """The run is stopping (Ctrl-C): a worker gives up its instance without recording it."""


class SharedPolicy:
    """The policy as the workers share it, with a stop switch: an in-process model's concurrent generate calls go to
    it as batches (policy/batcher.py), a served model's as they come (the server batches them). Use it inside `with`,
    each worker's instance inside `taking_part()`."""

    def __init__(self, policy: Policy, stop: threading.Event, batching: BatchLimits):
        self.policy, self.stop = policy, stop
        served = type(policy).__name__ == "OpenAIPolicy"
        self.batched = None if served else BatchedPolicy(policy, batching)

    def __enter__(self) -> SharedPolicy:
        if self.batched is not None:
            self.batched.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.batched is not None:
            self.batched.__exit__(*exc)

    def taking_part(self) -> contextlib.AbstractContextManager:
        """A worker's instance: while it runs, a batch may wait for its prompts (up to the batching's wait)."""
        return self.batched.batcher.taking_part() if self.batched is not None else contextlib.nullcontext()

    def interrupt(self) -> None:
        """Ctrl-C: the workers waiting for an answer, and those that ask later, stop."""
        self.stop.set()
        if self.batched is not None:
            self.batched.batcher.close(Interrupted())

    def generate(self, prompts, tools, params: SamplingParams):
        if self.stop.is_set():
            raise Interrupted
        return (self.batched or self.policy).generate(prompts, tools, params)

    def __getattr__(self, name: str) -> Any:  # context_window / count_prompt_tokens, for the context limit
        return getattr(self.policy, name)


def sandbox_engine(cfg: EvalConfig):
    """A client of the sandboxes' container engine; one clear UserError when it does not answer."""
    from ..sandbox.container_engine import engine_client, podman_client

    return (podman_client if cfg.sandbox == "podman" else engine_client)(cfg.engine)


def sweep_dead_owners(cfg: EvalConfig) -> None:
    """Remove the sandboxes on this node's engine whose owner process died (e.g. a killed Ray worker's)."""
    from ..sandbox.docker import sweep_leftovers

    with contextlib.closing(sandbox_engine(cfg)) as client:
        sweep_leftovers(client)


def solve_instance(instance: dict, policy: Policy | None, cfg: EvalConfig, run_dir: Path) -> dict:
    """One instance -> one prediction row (the patch plus what the run looked like)."""
    row: dict[str, Any] = {"instance_id": instance["instance_id"], "model_name_or_path": cfg.model_name()}
    start = time.monotonic()
    if policy is None:
        row.update(model_patch=instance["patch"], status=GOLD)
    elif cfg.mode == "agent":
        with instance_sandbox(instance, cfg.agent.step_timeout, cfg.sandbox, cfg.engine, cfg.disk_mb) as sandbox:
            run = run_agent(policy, sandbox, instance["problem_statement"], instance["instance_id"], cfg.agent)
        save_run(run, run_dir / "trajectories")
        row.update(model_patch=run.patch, status=run.exit_status, steps=len(run.trajectory.steps),
                   completion_tokens=run.completion_tokens, format_errors=run.format_errors)
    else:
        with instance_sandbox(instance, cfg.agent.step_timeout, cfg.sandbox, cfg.engine, cfg.disk_mb) as sandbox:
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


def error_row(instance: dict, cfg: EvalConfig, error: BaseException) -> dict:
    """An instance whose run crashed: recorded as its result, the run goes on."""
    return {"instance_id": instance["instance_id"], "model_name_or_path": cfg.model_name(), "model_patch": "",
            "status": "error", "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error, limit=8))}


_WORKER_POLICY: dict[str, Policy] = {}  # a Ray worker process loads the policy once and keeps it


def solve_on_worker(instance: dict, cfg: EvalConfig, gold: bool) -> tuple[dict, dict[str, bytes]]:
    """One instance on a Ray worker: the prediction row, and the files the run wrote (trajectories, answers),
    which travel back with it since the worker's node need not share the run folder."""
    import tempfile

    # a worker that died mid-instance (why this may be a retry) left its container on this node's engine
    sweep_dead_owners(cfg)
    policy = None
    if not gold:
        policy = _WORKER_POLICY.get(cfg.model) or _WORKER_POLICY.setdefault(cfg.model, load_policy(cfg.model))
    with tempfile.TemporaryDirectory(prefix="srl-eval-") as tmp:
        row = solve_instance(instance, policy, cfg, Path(tmp))
        row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        files = {str(f.relative_to(tmp)): f.read_bytes() for f in Path(tmp).rglob("*") if f.is_file()}
    return row, files


def solve_all(instances: list[dict], policy: Policy | None, cfg: EvalConfig, run_dir: Path, log: InstanceLog,
              on_done: Callable[[dict], None] = lambda row: None) -> None:
    """Solve every instance on `cfg.workers` workers (threads, or Ray tasks); each finished one is appended to
    the log at once, by this process only."""
    from ..executor import make_executor

    shared = SharedPolicy(policy, threading.Event(), cfg.batching) if policy is not None else None
    executor = make_executor(cfg.executor, cfg.workers, cfg.ray_address)
    if cfg.executor == "ray":
        job = functools.partial(solve_on_worker, cfg=cfg, gold=policy is None)
    else:
        def job(instance: dict) -> dict:
            with shared.taking_part() if shared is not None else contextlib.nullcontext():
                return solve_instance(instance, shared, cfg, run_dir)
    with shared if shared is not None else contextlib.nullcontext():
        _collect(executor, job, instances, shared, cfg, run_dir, log, on_done)


def _collect(executor, job, instances: list[dict], shared: SharedPolicy | None, cfg: EvalConfig, run_dir: Path,
             log: InstanceLog, on_done: Callable[[dict], None]) -> None:
    """Run `job` on every instance and log each outcome as it comes; Ctrl-C or a crash here stops every worker and
    removes their sandboxes."""
    try:
        for instance, outcome in executor.map(job, instances):
            if isinstance(outcome, BaseException):
                outcome = error_row(instance, cfg, outcome)
            elif cfg.executor == "ray":
                outcome, files = outcome
                for name, data in files.items():
                    with atomic_writer(run_dir / name, "wb") as f:
                        f.write(data)
            log.append(outcome)
            on_done(outcome)
        if cfg.executor == "ray":  # workers that died mid-instance left their containers; this node's go now
            sweep_dead_owners(cfg)
    except BaseException:
        if shared is not None:
            shared.interrupt()
        executor.cancel()
        from ..sandbox.docker import close_all

        close_all()
        if cfg.executor == "ray":  # cancel() killed the workers with their sandboxes open: this node's go now
            with contextlib.suppress(Exception):
                sweep_dead_owners(cfg)
        raise


def grade_predictions(cfg: EvalConfig, instances: list[dict], run_dir: Path, predictions: InstanceLog,
                      on_graded: Callable[[int], None] | None = None) -> None:
    """Grade the logged predictions of `instances` the way `cfg.grading` says; the verdicts land in the harness's
    log layout under `run_dir` (read back by `instance_verdict`)."""
    if cfg.grading == "sandbox":
        sandbox_engine(cfg).close()  # one clear line when the engine does not answer
        grade_in_sandboxes(run_dir, instances, predictions.rows, run_dir.name, cfg.workers, cfg.grade_timeout,
                           on_graded, kind=cfg.sandbox, engine=cfg.engine, network=cfg.grading_network,
                           disk_mb=cfg.disk_mb)
        return
    engine = cfg.grading_engine()
    require_docker_for_grading(engine)
    name, split = cfg.dataset()
    if cfg.image_template:  # the harness grades in the same images: hand it the instances as they are here
        name, split = str((run_dir / "instances.jsonl").resolve()), "test"
        write_jsonl(run_dir / "instances.jsonl", instances)
    grade(run_dir, name, split, predictions.path, run_dir.name, cfg.workers, cfg.grade_timeout,
          [i["instance_id"] for i in instances], on_graded, engine)


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
    predictions = InstanceLog(run_dir / "predictions.jsonl")
    finished = predictions.finished(cfg.retry_errors)
    todo = [i for i in instances if i["instance_id"] not in finished]
    # a resumed run says what it skips; `--predictions` (every row imported) said so in its header
    imported_only = all(predictions.rows.get(i["instance_id"], {}).get("status") == "imported" for i in instances)
    if len(todo) < len(instances) and not imported_only:
        log(f"{len(instances) - len(todo)} instances already have predictions; solving {len(todo)}")
    if todo and policy is not None and cfg.executor == "local":
        sandbox_engine(cfg).close()  # one clear line now, rather than one error per instance
    solve_all(todo, policy, cfg, run_dir, predictions, on_solved)
    ids = [i["instance_id"] for i in instances]
    verdicts: dict[str, dict] = {}
    if cfg.grade:
        grade_predictions(cfg, instances, run_dir, predictions, on_graded)
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
