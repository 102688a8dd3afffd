"""The SRL reward: how close the policy's tool call is to the expert's, or -1 for a broken format.

    r = similarity(policy action, expert action)   if the completion follows the format
    r = -1                                         otherwise (no think block, zero or several
                                                   calls, unparsable arguments, unknown tool)

A policy may call any tool its prompt offers, legacy tools included; any other tool breaks the format.

Metrics (both in [0, 1]):
- `difflib`: `difflib.SequenceMatcher(None, a, b, autojunk).ratio()`, the paper's 2M/T. Computed
  with cydifflib (a compiled copy of difflib, identical results); batches reuse the expert side's
  index across the G rollouts of a prompt and spread over worker processes.
- `lcs`: the exact 2·LCS/(|a|+|b|) (rapidfuzz's Indel similarity), far faster.

autojunk is off by default: measured on the real fixtures (benchmarks/reward_autojunk.py, table in
the README), it ranks a call with one line changed above an unrelated call of the same tool at least
as often as autojunk on, and never scores such a near-miss below 0.85 where autojunk on goes down to
0.52. autojunk on (`SequenceMatcher(None, a, b)` as the paper writes it) is the paper-literal option.

Granularity:
- `string` (paper): compare the two calls rendered as SWE-agent command lines.
- `fields`: the tool names must match (else 0); then each argument is compared and the mean
  taken over the union of argument names (an argument only one side has scores 0).
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
from collections import defaultdict
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import cydifflib
import numpy as np
from rapidfuzz import process as rf_process
from rapidfuzz.distance import Indel

from .actions import CALL_STYLES, CallStyle, assistant_text, parse_completion, render_command_line
from .errors import FormatViolation
from .tools import STANDARD_TOOLS
from .types import ToolCall

Metric = Literal["difflib", "lcs"]
Granularity = Literal["string", "fields"]
METRICS: tuple[str, ...] = ("difflib", "lcs")
GRANULARITIES: tuple[str, ...] = ("string", "fields")
FORMAT_PENALTY = -1.0


@dataclass(frozen=True)
class SRLRewardConfig:
    """How the SRL step reward scores completions against expert actions (an RLVR episode's reward:
    rlvr/reward.py's EpisodeRewardConfig)."""

    metric: Metric = "difflib"
    """`difflib` (the paper's SequenceMatcher ratio) or `lcs` (exact 2·LCS/(|a|+|b|))."""
    granularity: Granularity = "string"
    """`string` compares rendered command lines (paper); `fields` compares argument by argument."""
    autojunk: bool = False
    """difflib's autojunk heuristic. Off: measured to rank near-misses better; on is Python's default and
    so the paper-literal `SequenceMatcher(None, a, b)` (the paper does not say which it used)."""
    call_style: CallStyle = "hermes"
    """The completion's tool-call syntax: `hermes` (<tool_call> JSON) or `xml` (<function=...>)."""

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        if self.call_style not in CALL_STYLES:
            raise ValueError(f"unknown call style {self.call_style!r}; choose from {', '.join(CALL_STYLES)}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {self.granularity!r}; choose from {', '.join(GRANULARITIES)}")


# --- string similarity ------------------------------------------------------------------------

def similarity(a: str, b: str, metric: Metric = "difflib", autojunk: bool = False) -> float:
    if metric == "difflib":
        return cydifflib.SequenceMatcher(None, a, b, autojunk).ratio()
    return Indel.normalized_similarity(a, b)


def _difflib_grouped(pairs: Sequence[tuple[str, str]], autojunk: bool) -> list[float]:
    """difflib ratios, building the index of each distinct `b` once (set_seq2 caches it)."""
    by_b: dict[str, list[int]] = defaultdict(list)
    for i, (_, b) in enumerate(pairs):
        by_b[b].append(i)
    out = [0.0] * len(pairs)
    matcher = cydifflib.SequenceMatcher(None, "", "", autojunk)
    for b, idx in by_b.items():
        matcher.set_seq2(b)
        for i in idx:
            matcher.set_seq1(pairs[i][0])
            out[i] = matcher.ratio()
    return out


_POOL: ProcessPoolExecutor | None = None


def _pool(workers: int) -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers:
        if _POOL is not None:
            _POOL.shutdown()
        # forkserver: safe beside torch's threads, and the workers start once per process.
        _POOL = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
        atexit.register(_POOL.shutdown)
    return _POOL


def similarities(pairs: Sequence[tuple[str, str]], metric: Metric = "difflib", autojunk: bool = False,
                 workers: int = 1) -> list[float]:
    """Similarity of every (a, b) pair; identical to calling `similarity` on each."""
    if not pairs:
        return []
    if metric == "lcs":
        a, b = zip(*pairs, strict=True)
        return rf_process.cpdist(a, b, scorer=Indel.normalized_similarity, workers=workers, dtype=np.float64).tolist()
    if workers <= 1 or len(pairs) < 64:
        return _difflib_grouped(pairs, autojunk)
    # Keep pairs that share an expert string in one chunk so each worker indexes it once.
    order = sorted(range(len(pairs)), key=lambda i: pairs[i][1])
    size = -(-len(order) // (workers * 4))
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    results = _pool(workers).map(_difflib_grouped, [[pairs[i] for i in c] for c in chunks],
                                 [autojunk] * len(chunks))
    out = [0.0] * len(pairs)
    for chunk, values in zip(chunks, results, strict=True):
        for i, v in zip(chunk, values, strict=True):
            out[i] = v
    return out


# --- action similarity ------------------------------------------------------------------------

def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def comparisons(policy: ToolCall, expert: ToolCall,
                granularity: Granularity) -> tuple[list[tuple[str, str]], int]:
    """The string pairs to compare and the count to average over (pairs + unmatched arguments).

    The action similarity is sum(similarity of pairs) / count; a count of 0 means identical
    argument-free calls (1.0), and no pairs with a non-zero count means 0.
    """
    if granularity == "string":
        return [(render_command_line(policy), render_command_line(expert))], 1
    if policy.name != expert.name:
        return [], 1
    keys = set(policy.arguments) | set(expert.arguments)
    shared = sorted(keys & set(expert.arguments) & set(policy.arguments))
    pairs = [(_value_text(policy.arguments[k]), _value_text(expert.arguments[k])) for k in shared]
    return pairs, len(keys)


def _mean(values: Sequence[float], count: int) -> float:
    return sum(values) / count if count else 1.0


def action_similarity(policy: ToolCall, expert: ToolCall, cfg: SRLRewardConfig = SRLRewardConfig()) -> float:
    pairs, count = comparisons(policy, expert, cfg.granularity)
    return _mean([similarity(a, b, cfg.metric, cfg.autojunk) for a, b in pairs], count)


# --- the reward -------------------------------------------------------------------------------

def allowed_tools_for(expert: ToolCall, offered: Collection[str] | None = None) -> set[str]:
    """The tools a prompt offers (`offered`, the example's `tool_names`); without that list, the
    standard set plus the expert's tool."""
    return set(offered) if offered else set(STANDARD_TOOLS) | {expert.name}


def explain_reward(completion: str, expert: ToolCall, cfg: SRLRewardConfig = SRLRewardConfig(),
                   offered: Collection[str] | None = None) -> tuple[float, str]:
    """The reward and a one-line reason (the format violation, or what was compared)."""
    try:
        parsed = parse_completion(completion, cfg.call_style, allowed_tools_for(expert, offered))
    except FormatViolation as e:
        return FORMAT_PENALTY, f"format violation: {e}"
    score = action_similarity(parsed.call, expert, cfg)
    return score, f"{cfg.metric}/{cfg.granularity} similarity of {parsed.call.name} to expert {expert.name}"


def srl_reward(completion: str, expert: ToolCall, cfg: SRLRewardConfig = SRLRewardConfig(),
               offered: Collection[str] | None = None) -> float:
    return explain_reward(completion, expert, cfg, offered)[0]


def srl_rewards(completions: Sequence[str], experts: Sequence[ToolCall], cfg: SRLRewardConfig = SRLRewardConfig(),
                workers: int = 1, offered: Sequence[Collection[str] | None] | None = None) -> list[float]:
    """Rewards for a batch; equal to `srl_reward` on each pair, computed in one batched pass.
    `offered[i]`: the tools completion i's prompt offered (default: the standard set and the expert's tool)."""
    rewards: list[float] = [FORMAT_PENALTY] * len(completions)
    spans: list[tuple[int, int, int, int]] = []  # (completion, first pair, pair count, mean over)
    pairs: list[tuple[str, str]] = []
    offered = offered or [None] * len(completions)
    for i, (text, expert, tools) in enumerate(zip(completions, experts, offered, strict=True)):
        try:
            call = parse_completion(text, cfg.call_style, allowed_tools_for(expert, tools)).call
        except FormatViolation:
            continue
        found, count = comparisons(call, expert, cfg.granularity)
        spans.append((i, len(pairs), len(found), count))
        pairs.extend(found)
    values = similarities(pairs, cfg.metric, cfg.autojunk, workers)
    for i, start, n, count in spans:
        rewards[i] = _mean(values[start:start + n], count)
    return rewards


# --- adapters for other trainers --------------------------------------------------------------

def expert_from(value: Any) -> ToolCall:
    """An expert action given as a JSON string (the `expert_action` column) or as a dict."""
    return ToolCall.from_dict(json.loads(value) if isinstance(value, str) else value)


def read_scoring_rows(path: str) -> tuple[list[dict], list[str], list[ToolCall]]:
    """A JSONL of rows with `completion` and `expert_action` (what `srl-agent reward --batch` scores).

    Returns the rows, their completions and their expert actions; a row without them names itself.
    """
    from .errors import DataError
    from .jsonio import read_jsonl

    rows, completions, experts = [], [], []
    for lineno, row in read_jsonl(path):
        try:
            experts.append(expert_from(row["expert_action"]))
            completions.append(str(row["completion"]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"needs 'completion' and 'expert_action' ({type(e).__name__}: {e})",
                            source=path, row=lineno) from None
        rows.append(row)
    return rows, completions, experts


def _completion_text(completion: Any) -> str:
    """TRL passes plain strings, or (conversational) a list with one assistant message."""
    if isinstance(completion, str):
        return completion
    return assistant_text(completion[-1] if isinstance(completion, list) else completion)


class TRLRewardFunction:
    """A TRL `GRPOTrainer` reward function: reads the `expert_action` column of the dataset.

        GRPOTrainer(model, reward_funcs=TRLRewardFunction(), train_dataset=steps_dataset, ...)
    """

    __name__ = "srl_reward"

    def __init__(self, cfg: SRLRewardConfig = SRLRewardConfig(), workers: int = 1):
        self.cfg, self.workers = cfg, workers

    def __call__(self, prompts=None, completions=None, expert_action=None, tool_names=None, **kwargs) -> list[float]:
        if expert_action is None:
            raise ValueError("the dataset needs an 'expert_action' column (srl-agent data build writes it)")
        texts = [_completion_text(c) for c in completions]
        return srl_rewards(texts, [expert_from(e) for e in expert_action], self.cfg, self.workers, tool_names)


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """verl's custom reward entry point (`custom_reward_function.path` = this module).

    `ground_truth` is the expert action (JSON string or dict); `extra_info` may override
    `metric`, `granularity`, `autojunk` and `call_style`, and give the prompt's `tool_names`.
    """
    overrides = {k: v for k, v in (extra_info or {}).items() if k in SRLRewardConfig.__dataclass_fields__}
    return srl_reward(solution_str, expert_from(ground_truth), SRLRewardConfig(**overrides),
                      (extra_info or {}).get("tool_names"))
