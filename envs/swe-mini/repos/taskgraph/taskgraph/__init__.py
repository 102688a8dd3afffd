"""taskgraph: a small task scheduler / build-graph library.

Declare tasks with durations, inputs and dependencies, then get a
deterministic execution order, cycle reports, a critical-path schedule, the
set of tasks to re-run after a change, and a text rendering of the plan.
"""

from .graph import CycleError, GraphError, Task, TaskGraph, UnknownTaskError
from .incremental import directly_affected, input_matches, select_dirty
from .render import render_plan
from .schedule import Schedule, Slot, compute_schedule
from .toposort import find_cycle, levels, topological_order

__version__ = "0.3.0"

__all__ = [
    "CycleError",
    "GraphError",
    "Schedule",
    "Slot",
    "Task",
    "TaskGraph",
    "UnknownTaskError",
    "compute_schedule",
    "directly_affected",
    "find_cycle",
    "input_matches",
    "levels",
    "render_plan",
    "select_dirty",
    "topological_order",
]
