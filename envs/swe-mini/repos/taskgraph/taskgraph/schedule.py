"""Earliest/latest start times, slack and the critical path (CPM)."""

from __future__ import annotations

from dataclasses import dataclass

from .graph import TaskGraph
from .toposort import topological_order


@dataclass(frozen=True)
class Slot:
    """When a task runs in an unconstrained (infinitely parallel) schedule."""

    name: str
    start: int
    finish: int
    slack: int

    @property
    def critical(self) -> bool:
        return self.slack == 0


@dataclass
class Schedule:
    """Result of :func:`compute_schedule`."""

    order: list[str]
    slots: dict[str, Slot]
    makespan: int
    critical_path: list[str]

    def start_of(self, name: str) -> int:
        return self.slots[name].start


def compute_schedule(graph: TaskGraph) -> Schedule:
    """Run the critical path method over ``graph``.

    Every task starts as soon as all of its dependencies have finished. The
    makespan is the time at which the whole plan is done; the critical path
    is the chain of tasks, first to last, that determines it.
    """
    order = topological_order(graph)
    if not order:
        return Schedule([], {}, 0, [])

    earliest_start: dict[str, int] = {}
    earliest_finish: dict[str, int] = {}
    for name in order:
        start = max((earliest_finish[d] for d in graph.dependencies(name)), default=0)
        earliest_start[name] = start
        earliest_finish[name] = start + graph.task(name).duration

    # The plan is done when its last task finishes.
    end = order[-1]
    makespan = earliest_finish[end]

    latest_start: dict[str, int] = {}
    for name in reversed(order):
        finish = min((latest_start[d] for d in graph.dependents(name)), default=makespan)
        latest_start[name] = finish - graph.task(name).duration

    slots = {
        name: Slot(name, earliest_start[name], earliest_finish[name],
                   latest_start[name] - earliest_start[name])
        for name in order
    }
    return Schedule(order, slots, makespan, _trace_back(graph, end, earliest_start, earliest_finish))


def _trace_back(graph: TaskGraph, end: str, starts: dict[str, int], finishes: dict[str, int]) -> list[str]:
    """Follow, from ``end`` backwards, the dependency that finishes exactly when the task starts."""
    path = [end]
    current = end
    while True:
        feeding = [d for d in graph.dependencies(current) if finishes[d] == starts[current]]
        if not feeding:
            break
        current = feeding[0]
        path.append(current)
    path.reverse()
    return path
