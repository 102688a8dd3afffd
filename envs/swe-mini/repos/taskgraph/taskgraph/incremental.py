"""Choosing which tasks must re-run after some inputs changed."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Iterable

from .graph import TaskGraph
from .toposort import topological_order


def input_matches(pattern: str, path: str) -> bool:
    """True if the changed ``path`` is covered by a task input ``pattern``.

    Patterns are shell-style globs (``src/*.py``); a pattern ending in ``/``
    covers everything below that directory.
    """
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return fnmatchcase(path, pattern)


def directly_affected(graph: TaskGraph, changed: Iterable[str]) -> set[str]:
    """Tasks with at least one input matching a changed path."""
    paths = list(changed)
    return {
        name
        for name in graph
        if any(input_matches(p, path) for p in graph.task(name).inputs for path in paths)
    }


def select_dirty(
    graph: TaskGraph,
    changed: Iterable[str] = (),
    completed: Iterable[str] | None = None,
    force: Iterable[str] = (),
) -> list[str]:
    """Return the tasks to re-run, in execution order.

    A task is dirty when one of its inputs changed, when it is in ``force``,
    when it never completed (only if ``completed`` is given), or when any of
    its dependencies is dirty.
    """
    dirty = directly_affected(graph, changed)
    for name in force:
        graph.task(name)
        dirty.add(name)
    if completed is not None:
        done = set(completed)
        dirty.update(name for name in graph if name not in done)

    result = []
    for name in topological_order(graph):
        if name in dirty or any(d in dirty for d in graph.dependencies(name)):
            dirty.add(name)
            result.append(name)
    return result
