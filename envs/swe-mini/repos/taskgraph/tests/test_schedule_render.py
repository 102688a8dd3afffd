from taskgraph import TaskGraph, compute_schedule, render_plan


def pipeline():
    graph = TaskGraph()
    graph.add_task("fetch", 2)
    graph.add_task("compile", 3, deps=["fetch"])
    graph.add_task("docs", 1, deps=["fetch"])
    graph.add_task("link", 4, deps=["compile", "docs"])
    return graph


def test_earliest_starts_follow_longest_dependency():
    schedule = compute_schedule(pipeline())
    assert schedule.start_of("fetch") == 0
    assert schedule.start_of("compile") == 2
    assert schedule.start_of("docs") == 2
    assert schedule.start_of("link") == 5
    assert schedule.makespan == 9


def test_slack_and_critical_path():
    schedule = compute_schedule(pipeline())
    assert schedule.slots["docs"].slack == 2
    assert not schedule.slots["docs"].critical
    assert schedule.slots["compile"].critical
    assert schedule.critical_path == ["fetch", "compile", "link"]


def test_zero_duration_milestones():
    graph = TaskGraph()
    graph.add_task("build", 5)
    graph.add_task("release", 0, deps=["build"])
    schedule = compute_schedule(graph)
    assert schedule.slots["release"].start == schedule.slots["release"].finish == 5
    assert schedule.critical_path == ["build", "release"]


def test_empty_graph_schedule():
    schedule = compute_schedule(TaskGraph())
    assert schedule.makespan == 0
    assert schedule.critical_path == []
    assert render_plan(TaskGraph()) == "(empty plan)"


def test_render_plan_with_times():
    expected = "\n".join([
        "  #  task     start  finish  deps",
        "  1* fetch        0       2  -",
        "  2* compile      2       5  fetch",
        "  3  docs         2       3  fetch",
        "  4* link         5       9  compile, docs",
        "",
        "makespan: 9",
        "critical path: fetch -> compile -> link",
    ])
    assert render_plan(pipeline()) == expected


def test_render_plan_without_times():
    lines = render_plan(pipeline(), with_times=False).splitlines()
    assert lines[0] == "  #  task     deps"
    assert lines[-1] == "  4  link     compile, docs"
