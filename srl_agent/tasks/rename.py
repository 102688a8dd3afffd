"""Renamed copies of the training runs: each name that only one package uses, replaced by a made-up one throughout a
run (its report, monologues, calls, observations and patch).

Why: a small model trained on a few hundred runs lowers its loss by recalling each task's strings (a test id, a
function name) rather than copying them from its prompt, and recall is worth nothing in a package it never saw. In
a renamed copy the procedure is the same and the names are new, so only copying pays
(docs/results/2026-12-07-outcome-first-runs.md measured it).

A name is renamed when it is an identifier of at least 3 characters, used in one package's runs only, and neither
a keyword, a builtin, nor a name the standard library's source uses 3 times or more (`self`, `value`, `append`):
those read the same in every package. Its made-up replacement keeps its shape: the same `_`-separated and
CamelCase parts, each part's case, digits, and the parts `test`/`tests` that pytest collects by, with every other
part drawn from the standard library's identifier parts (`valid_contexto` -> `hextets_prep`,
`IDNATests` -> `ERFTests`).
"""

from __future__ import annotations

import builtins
import keyword
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from ..jsonio import read_jsonl, write_jsonl
from ..tokenizer import stdlib_source
from ..types import Step, Trajectory

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
"""One part of an identifier's `_`-separated segment: an acronym, a (capitalised) word, or digits."""
KEPT_PARTS = frozenset({"test", "tests"})
"""Parts kept as they are: pytest collects test_*.py files, test_* functions and Test* classes by them."""
RENAMED_FILE = "renamed.jsonl"
MIN_LENGTH = 3
COMMON_IN_STDLIB = 3
"""A name the standard library's source uses this often is a common word of Python, not one package's."""


def texts(trajectory: Trajectory) -> Iterator[str]:
    """Every text of a run that names things."""
    yield trajectory.problem_statement
    yield trajectory.patch or ""
    for step in trajectory.steps:
        yield step.thought
        yield step.observation
        yield from _strings(step.action.arguments)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def names(trajectory: Trajectory) -> set[str]:
    return {m.group(0) for text in texts(trajectory) for m in IDENTIFIER.finditer(text)}


@cache
def stdlib_vocabulary() -> tuple[frozenset[str], tuple[str, ...]]:
    """(the names the standard library's source uses COMMON_IN_STDLIB times or more, those names' lower-case word
    parts of 3-9 letters, sorted)."""
    counts: Counter[str] = Counter()
    for text in stdlib_source():
        counts.update(IDENTIFIER.findall(text))
    common = frozenset(n for n, c in counts.items() if c >= COMMON_IN_STDLIB)
    parts = sorted({p.lower() for n in common for p in PART.findall(n) if p.isalpha() and 3 <= len(p) <= 9})
    return common, tuple(parts)


def package_names(names_by_package: dict[str, set[str]], common: Iterable[str]) -> dict[str, set[str]]:
    """Per package, the names to rename: those no other package uses, of MIN_LENGTH or more, with a part to
    replace (`test_2` has none), and neither a keyword, a builtin nor in `common`."""
    seen: Counter[str] = Counter(n for found in names_by_package.values() for n in found)
    shared = set(common) | set(keyword.kwlist) | set(dir(builtins))
    return {package: {n for n in found if seen[n] == 1 and len(n) >= MIN_LENGTH and n not in shared
                      and any(_replaceable(p) for p in PART.findall(n))}
            for package, found in names_by_package.items()}


def _replaceable(part: str) -> bool:
    return not part.isdigit() and part.lower() not in KEPT_PARTS


def made_up_name(name: str, rng: random.Random, parts: tuple[str, ...]) -> str:
    """A name of `name`'s shape with its parts (but `test`/`tests` and digits) drawn from `parts`."""
    def swap(match: re.Match) -> str:
        part = match.group(0)
        if not _replaceable(part):
            return part
        new = rng.choice(parts)
        if part.isupper() and len(part) > 1:
            return new.upper()
        return new.capitalize() if part[0].isupper() else new

    return PART.sub(swap, name)


def renaming(to_rename: set[str], rng: random.Random, taken: set[str]) -> dict[str, str]:
    """{name: its made-up replacement}: each new name differs from every name in `taken` (the package's own and
    the common ones) and from the other replacements."""
    _, parts = stdlib_vocabulary()
    mapping: dict[str, str] = {}
    used = set(taken)
    for name in sorted(to_rename):
        new = made_up_name(name, rng, parts)
        while new in used or new == name:
            new = made_up_name(name, rng, parts)
        mapping[name] = new
        used.add(new)
    return mapping


def rename_text(text: str, mapping: dict[str, str]) -> str:
    """`text` with every whole identifier in `mapping` replaced (`test_func.py` renames `test_func`)."""
    return IDENTIFIER.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)


def renamed(trajectory: Trajectory, mapping: dict[str, str], copy_id: str) -> Trajectory:
    """A copy of `trajectory` with its names replaced by `mapping`, as `copy_id`. The calls' `original` and
    `raw` forms go: they would still hold the old names."""
    def call_arguments(value: Any) -> Any:
        if isinstance(value, str):
            return rename_text(value, mapping)
        if isinstance(value, dict):
            return {k: call_arguments(v) for k, v in value.items()}
        if isinstance(value, list):
            return [call_arguments(v) for v in value]
        return value

    steps = [Step(rename_text(s.thought, mapping),
                  replace(s.action, arguments=call_arguments(s.action.arguments), original=None, raw=None),
                  rename_text(s.observation, mapping), dict(s.metadata)) for s in trajectory.steps]
    return replace(trajectory, id=copy_id, problem_statement=rename_text(trajectory.problem_statement, mapping),
                   steps=steps, patch=rename_text(trajectory.patch, mapping) if trajectory.patch else trajectory.patch,
                   metadata={**trajectory.metadata, "renamed_from": trajectory.id})


def renamed_copies(trajectories: list[Trajectory], package_of: dict[str, str], copies: int,
                   seed: int) -> list[Trajectory]:
    """`copies` renamed copies of each run (ids `ID~rN`), each with its own made-up names. `package_of` maps a
    run's id to its package: a name counts as one package's when only that package's runs use it."""
    names_of = {t.id: names(t) for t in trajectories}
    found: dict[str, set[str]] = {}
    for t in trajectories:
        found.setdefault(package_of[t.id], set()).update(names_of[t.id])
    common, _ = stdlib_vocabulary()
    to_rename = package_names(found, common)
    taken = {package: own | common for package, own in found.items()}
    rng = random.Random(seed)
    out = []
    for t in trajectories:
        package = package_of[t.id]
        own = to_rename[package] & names_of[t.id]
        for n in range(1, copies + 1):
            out.append(renamed(t, renaming(own, rng, taken[package]), f"{t.id}~r{n}"))
    return out


def write_renamed_copies(side: Path, copies: int, seed: int) -> int:
    """`side`/renamed.jsonl: `copies` renamed copies of each run in `side`/trajectories.jsonl, whose package is its
    instance's `repo` in `side`/instances.jsonl. A folder of trajectories reads both files. Returns the count."""
    package_of = {row["instance_id"]: row["repo"] for _, row in read_jsonl(side / "instances.jsonl")}
    runs = [Trajectory.from_dict(row) for _, row in read_jsonl(side / "trajectories.jsonl")]
    return write_jsonl(side / RENAMED_FILE, (t.to_dict() for t in renamed_copies(runs, package_of, copies, seed)))
