"""The task graph: tasks, their durations, inputs and dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator


class GraphError(Exception):
    """Base class for errors raised by :mod:`taskgraph`."""


class UnknownTaskError(GraphError, KeyError):
    """A task name was referenced that is not in the graph."""

    def __str__(self) -> str:
        return f"unknown task: {self.args[0]!r}"


class CycleError(GraphError):
    """The graph has a dependency cycle; ``cycle`` lists it, first task repeated at the end."""

    def __init__(self, cycle: list[str]):
        self.cycle = list(cycle)
        super().__init__("dependency cycle: " + " -> ".join(self.cycle))


@dataclass
class Task:
    """One unit of work. ``deps`` name the tasks that must finish before it starts."""

    name: str
    duration: int = 0
    deps: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)


class TaskGraph:
    """A set of named tasks and the dependencies between them.

    Edges point from a task to the tasks it depends on. Dependencies may name
    tasks that are added later; :meth:`validate` checks that they all exist.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def add_task(
        self,
        name: str,
        duration: int = 0,
        deps: Iterable[str] = (),
        inputs: Iterable[str] = (),
    ) -> Task:
        """Add a task; raises :class:`GraphError` if the name is taken."""
        if not name:
            raise ValueError("task name must not be empty")
        if name in self._tasks:
            raise GraphError(f"duplicate task: {name!r}")
        if duration < 0:
            raise ValueError(f"duration of {name!r} must not be negative")
        task = Task(name, duration, [], list(inputs))
        self._tasks[name] = task
        for dep in deps:
            self.add_dependency(name, dep)
        return task

    def add_dependency(self, name: str, dep: str) -> None:
        """Record that ``name`` depends on ``dep`` (duplicates are ignored)."""
        task = self.task(name)
        if dep == name:
            raise CycleError([name, name])
        if dep not in task.deps:
            task.deps.append(dep)

    def task(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def dependencies(self, name: str) -> list[str]:
        """Direct dependencies of ``name``, sorted by name."""
        return sorted(self.task(name).deps)

    def dependents(self, name: str) -> list[str]:
        """Tasks that depend directly on ``name``, sorted by name."""
        self.task(name)
        return sorted(n for n, t in self._tasks.items() if name in t.deps)

    def validate(self) -> None:
        """Raise if a dependency is unknown or the graph contains a cycle."""
        for task in self._tasks.values():
            for dep in task.deps:
                if dep not in self._tasks:
                    raise UnknownTaskError(dep)
        from .toposort import find_cycle

        cycle = find_cycle(self)
        if cycle:
            raise CycleError(cycle)

    def order(self) -> list[str]:
        """Shorthand for :func:`taskgraph.toposort.topological_order`."""
        from .toposort import topological_order

        return topological_order(self)
