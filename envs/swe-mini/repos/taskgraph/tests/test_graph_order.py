import pytest

from taskgraph import (
    CycleError,
    GraphError,
    TaskGraph,
    UnknownTaskError,
    find_cycle,
    levels,
    topological_order,
)


def build(spec):
    graph = TaskGraph()
    for name, deps in spec.items():
        graph.add_task(name, deps=deps)
    return graph


def test_dependencies_come_first():
    graph = build({"link": ["compile"], "compile": ["fetch"], "fetch": []})
    assert topological_order(graph) == ["fetch", "compile", "link"]


def test_ties_are_broken_by_name():
    graph = build({"zeta": [], "alpha": [], "mid": ["zeta"], "beta": ["alpha"]})
    assert topological_order(graph) == ["alpha", "beta", "zeta", "mid"]
    assert graph.order() == topological_order(graph)


def test_order_is_independent_of_insertion_order():
    a = build({"c": ["a", "b"], "a": [], "b": []})
    b = build({"b": [], "a": [], "c": ["b", "a"]})
    assert topological_order(a) == topological_order(b) == ["a", "b", "c"]


def test_dependents_and_dependencies_are_sorted():
    graph = build({"app": ["util", "lib"], "lib": ["util"], "util": [], "docs": ["lib"]})
    assert graph.dependencies("app") == ["lib", "util"]
    assert graph.dependents("lib") == ["app", "docs"]


def test_duplicate_and_invalid_tasks_are_rejected():
    graph = build({"a": []})
    with pytest.raises(GraphError):
        graph.add_task("a")
    with pytest.raises(ValueError):
        graph.add_task("b", duration=-1)
    with pytest.raises(CycleError):
        graph.add_dependency("a", "a")


def test_unknown_dependency_is_reported():
    graph = build({"a": ["missing"]})
    with pytest.raises(UnknownTaskError) as info:
        topological_order(graph)
    assert "missing" in str(info.value)


def test_no_cycle_returns_none():
    graph = build({"a": ["b"], "b": [], "c": ["a", "b"]})
    assert find_cycle(graph) is None


def test_cycle_is_reported_as_path():
    graph = build({"a": ["b"], "b": ["c"], "c": ["a"]})
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    with pytest.raises(CycleError) as info:
        topological_order(graph)
    assert info.value.cycle == ["a", "b", "c", "a"]
    assert str(info.value) == "dependency cycle: a -> b -> c -> a"


def test_levels_group_parallel_tasks():
    graph = build({"fetch": [], "lint": [], "compile": ["fetch"], "test": ["compile", "lint"]})
    assert levels(graph) == [["fetch", "lint"], ["compile"], ["test"]]
    assert levels(TaskGraph()) == []
