"""Plain-text rendering of a plan."""

from __future__ import annotations

from .graph import TaskGraph
from .schedule import compute_schedule


def render_plan(graph: TaskGraph, with_times: bool = True) -> str:
    """Render the execution order as an aligned text table.

    With ``with_times`` the start and finish of every task are shown, critical
    tasks are marked with ``*``, and the makespan and critical path follow.
    """
    schedule = compute_schedule(graph)
    if not schedule.order:
        return "(empty plan)"
    width = max(len("task"), *(len(n) for n in schedule.order))
    header = f"{'#':>3}  {'task':<{width}}"
    if with_times:
        header += "  start  finish"
    header += "  deps"
    lines = [header.rstrip()]
    for i, name in enumerate(schedule.order, 1):
        slot = schedule.slots[name]
        mark = "*" if with_times and slot.critical else " "
        row = f"{i:>3}{mark} {name:<{width}}"
        if with_times:
            row += f"  {slot.start:>5}  {slot.finish:>6}"
        row += "  " + (", ".join(graph.dependencies(name)) or "-")
        lines.append(row)
    if with_times:
        lines.append("")
        lines.append(f"makespan: {schedule.makespan}")
        lines.append("critical path: " + " -> ".join(schedule.critical_path))
    return "\n".join(lines)
