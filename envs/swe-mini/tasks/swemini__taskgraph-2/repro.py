from taskgraph import TaskGraph, compute_schedule

g = TaskGraph()
g.add_task("compile", 4)
g.add_task("test", 3, deps=["compile"])
g.add_task("write_changelog", 1)

s = compute_schedule(g)
print("makespan:", s.makespan, "(expected 7)")
print("critical path:", s.critical_path, "(expected ['compile', 'test'])")
print("slack:", {name: slot.slack for name, slot in s.slots.items()})
