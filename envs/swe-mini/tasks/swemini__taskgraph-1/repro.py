from taskgraph import CycleError, TaskGraph, find_cycle

g = TaskGraph()
g.add_task("app", deps=["lib"])
g.add_task("lib", deps=["util"])
g.add_task("util", deps=["lib"])

print("find_cycle:", find_cycle(g), "(expected ['lib', 'util', 'lib'])")
try:
    g.validate()
except CycleError as exc:
    print("CycleError:", exc)
