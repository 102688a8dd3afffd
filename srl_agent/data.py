"""`srl-agent data ...`: build step-wise examples from trajectories, summarise and inspect them."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .chat import template_rendering
from .errors import DataError
from .formats import LoadReport, load_trajectories
from .jsonio import atomic_writer, read_jsonl
from .steps import ExampleBuilder, StepConfig, save_rendering
from .tokenizer import load_tokenizer
from .types import StepExample, Trajectory


@dataclass
class BuildReport:
    load: LoadReport = field(default_factory=LoadReport)
    examples: int = 0
    dropped_too_long: int = 0


# One builder per worker process, made by _init_worker.
_WORKER: ExampleBuilder | None = None


def build_rendering(cfg: StepConfig, tokenizer: str | None, log: Callable[[str], None] = print) -> StepConfig:
    """`cfg` with its call style settled as training settles it: `auto` is read off the tokenizer's chat
    template (Hermes without a tokenizer), a template-less or tool-less tokenizer gets srl-agent's own template
    with a warning, and the monologue goes where the template puts it (Qwen3's `reasoning_content`)."""
    if not tokenizer:
        return cfg if cfg.call_style != "auto" else replace(cfg, call_style="hermes")
    call_style, reasoning = template_rendering(load_tokenizer(tokenizer), cfg.call_style, log, tokenizer)
    return replace(cfg, call_style=call_style, reasoning=reasoning)


def _make_builder(cfg: StepConfig, tokenizer: str | None, max_prompt_tokens: int | None) -> ExampleBuilder:
    tok = load_tokenizer(tokenizer) if tokenizer else None
    if tok is not None:  # the same template fallback as build_rendering (which warned already)
        template_rendering(tok, cfg.call_style, lambda _: None)
    return ExampleBuilder(cfg, tok, max_prompt_tokens)


def _init_worker(cfg: StepConfig, tokenizer: str | None, max_prompt_tokens: int | None) -> None:
    global _WORKER
    _WORKER = _make_builder(cfg, tokenizer, max_prompt_tokens)


def _build_lines(traj: Trajectory) -> tuple[list[str], int]:
    before = _WORKER.dropped
    lines = [json.dumps(ex.to_dict(), ensure_ascii=False) for ex in _WORKER.build(traj)]
    return lines, _WORKER.dropped - before


def build_steps(sources: list[str], out: str | Path, cfg: StepConfig, *, tokenizer: str | None = "tiny",
                max_prompt_tokens: int | None = None, fmt: str = "auto", only_resolved: bool = False,
                skip_bad: bool = False, workers: int = 1, on_trajectory: Callable[[int], None] | None = None,
                log: Callable[[str], None] = print) -> BuildReport:
    """Import `sources`, cut them into examples and write them to `out` as JSONL (atomically), and how they
    were rendered beside it (`steps.rendering.json`, which training from the file uses). `cfg.call_style`
    may be `auto` (see `build_rendering`)."""
    if max_prompt_tokens is not None and not tokenizer:
        raise DataError("--max-prompt-tokens needs a tokenizer to count with")
    cfg = build_rendering(cfg, tokenizer, log)
    report = BuildReport()
    trajs = load_trajectories(sources, fmt=fmt, skip_bad=skip_bad, only_resolved=only_resolved, report=report.load)
    init_args = (cfg, tokenizer, max_prompt_tokens)
    with atomic_writer(out) as f:
        if workers > 1:
            with _worker_pool(workers, init_args) as pool:
                _write(_in_order(pool, trajs, window=8 * workers), f, report, on_trajectory)
        else:
            _init_worker(*init_args)
            _write(map(_build_lines, trajs), f, report, on_trajectory)
    save_rendering(cfg, out)
    return report


def _worker_pool(workers: int, init_args: tuple) -> ProcessPoolExecutor:
    # forkserver, not fork: a fork copies locks other threads (the progress bar's) hold at that moment,
    # and a worker that then waits on one never returns. A worker that dies raises BrokenProcessPool.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no nested thread pools in the workers
    ctx = multiprocessing.get_context("forkserver")
    # Imported once by the fork server, not by every worker. The setting is per process and only counts
    # before the server starts (reward.py's pool shares it), where it is harmless.
    ctx.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init_args)


def _in_order(pool: ProcessPoolExecutor, trajs: Iterable[Trajectory],
              window: int) -> Iterator[tuple[list[str], int]]:
    """Results of `_build_lines` in input order, at most `window` in flight.

    Trajectories are read here, in the calling thread, so a bad file or an unreachable dataset raises
    at once instead of travelling through a pool thread and a worker."""
    pending: deque[Future] = deque()
    for traj in trajs:
        pending.append(pool.submit(_build_lines, traj))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write(results: Iterable[tuple[list[str], int]], f, report: BuildReport,
           on_trajectory: Callable[[int], None] | None) -> None:
    for lines, dropped in results:
        for line in lines:
            f.write(line)
            f.write("\n")
        report.examples += len(lines)
        report.dropped_too_long += dropped
        if on_trajectory:
            on_trajectory(len(lines))


def read_examples(path: str | Path) -> Iterator[StepExample]:
    for lineno, row in read_jsonl(path):
        try:
            yield StepExample.from_dict(row)
        except TypeError as e:
            raise DataError(f"not a step example ({e}); make one with `srl-agent data build`",
                            source=str(path), row=lineno) from None


def _percentiles(values: list[int], qs=(50, 90, 95, 99)) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    out = {f"p{q}": float(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]) for q in qs}
    out["max"] = float(ordered[-1])
    out["mean"] = round(statistics.fmean(ordered), 1)
    return out


def steps_stats(path: str | Path) -> dict[str, Any]:
    """Counts, steps per trajectory, the tool distribution and prompt-token percentiles."""
    steps_per_traj: dict[str, int] = {}
    tools: Counter[str] = Counter()
    tokens: list[int] = []
    history: Counter[int] = Counter()
    n = 0
    for ex in read_examples(path):
        n += 1
        steps_per_traj[ex.trajectory_id] = ex.num_steps
        tools[ex.expert.name] += 1
        history[ex.history_steps] += 1
        if ex.prompt_tokens is not None:
            tokens.append(ex.prompt_tokens)
    per = list(steps_per_traj.values())
    return {
        "examples": n,
        "trajectories": len(per),
        "steps_per_trajectory": {"min": min(per), "median": statistics.median(per),
                                 "mean": round(statistics.fmean(per), 2), "max": max(per)} if per else {},
        "tools": dict(tools.most_common()),
        "history_steps": dict(sorted(history.items())),
        "prompt_tokens": _percentiles(tokens),
    }


def find_example(path: str | Path, index: int | None = None, trajectory: str | None = None,
                 step: int | None = None) -> StepExample:
    """The example at 0-based `index`, or the one for (trajectory id, step)."""
    for i, ex in enumerate(read_examples(path)):
        if trajectory is None and i == (index or 0):
            return ex
        if trajectory is not None and ex.trajectory_id == trajectory and ex.step_index == (step or 0):
            return ex
    what = f"trajectory {trajectory!r} step {step or 0}" if trajectory is not None else f"index {index or 0}"
    raise DataError(f"no example at {what}", source=str(path))


def convert_trajectories(sources: list[str], out: str | Path, *, fmt: str = "auto", skip_bad: bool = False,
                         only_resolved: bool = False) -> LoadReport:
    """Import trajectories of any supported format into canonical JSONL."""
    report = LoadReport()
    with atomic_writer(out) as f:
        for traj in load_trajectories(sources, fmt=fmt, skip_bad=skip_bad, only_resolved=only_resolved,
                                      report=report):
            f.write(json.dumps(traj.to_dict(), ensure_ascii=False) + "\n")
    return report
