"""Deterministic topological ordering and cycle detection."""

from __future__ import annotations

import heapq

from .graph import CycleError, TaskGraph

_VISITING, _DONE = 1, 2


def find_cycle(graph: TaskGraph) -> list[str] | None:
    """Return one dependency cycle as a path, or ``None`` if there is none.

    The path follows dependency edges and repeats its first task at the end,
    e.g. ``['lib', 'util', 'lib']`` when ``lib`` depends on ``util`` and
    ``util`` on ``lib``. Tasks and dependencies are explored in name order,
    so the same graph always reports the same cycle.
    """
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = _VISITING
        stack.append(name)
        for dep in graph.dependencies(name):
            if dep not in graph:
                continue
            if state.get(dep) == _VISITING:
                return stack + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = _DONE
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def topological_order(graph: TaskGraph) -> list[str]:
    """All tasks, dependencies first; ties are broken by task name.

    Raises :class:`~taskgraph.graph.CycleError` if the graph has a cycle.
    """
    graph.validate()
    remaining = {name: len(graph.dependencies(name)) for name in graph}
    ready = [name for name, count in remaining.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in graph.dependents(name):
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) != len(graph):  # pragma: no cover - validate() catches cycles first
        raise CycleError(find_cycle(graph) or [])
    return order


def levels(graph: TaskGraph) -> list[list[str]]:
    """Group tasks into waves that can run in parallel.

    A task's level is one more than the highest level of its dependencies;
    each wave is sorted by name.
    """
    level: dict[str, int] = {}
    for name in topological_order(graph):
        level[name] = max((level[d] + 1 for d in graph.dependencies(name)), default=0)
    waves: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name, n in level.items():
        waves[n].append(name)
    return [sorted(w) for w in waves]
