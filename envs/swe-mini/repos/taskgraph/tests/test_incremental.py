import pytest

from taskgraph import TaskGraph, UnknownTaskError, directly_affected, input_matches, select_dirty


def project():
    graph = TaskGraph()
    graph.add_task("codegen", 1, inputs=["schema/*.json"])
    graph.add_task("compile", 3, deps=["codegen"], inputs=["src/"])
    graph.add_task("docs", 1, inputs=["docs/*.md", "README.md"])
    graph.add_task("test", 2, deps=["compile"], inputs=["tests/*.py"])
    graph.add_task("package", 1, deps=["test", "docs"])
    return graph


def test_input_patterns():
    assert input_matches("src/", "src/pkg/mod.py")
    assert not input_matches("src/", "srcs/x.py")
    assert input_matches("schema/*.json", "schema/user.json")
    assert not input_matches("README.md", "readme.md")


def test_directly_affected_tasks():
    assert directly_affected(project(), ["docs/intro.md"]) == {"docs"}
    assert directly_affected(project(), []) == set()


def test_change_propagates_to_dependents_in_order():
    assert select_dirty(project(), ["src/main.py"]) == ["compile", "test", "package"]
    assert select_dirty(project(), ["schema/user.json"]) == ["codegen", "compile", "test", "package"]


def test_nothing_changed_means_nothing_to_run():
    assert select_dirty(project(), ["unrelated.txt"]) == []


def test_forced_and_never_completed_tasks_are_dirty():
    graph = project()
    assert select_dirty(graph, force=["docs"]) == ["docs", "package"]
    done = ["codegen", "compile", "docs", "test"]
    assert select_dirty(graph, completed=done) == ["package"]
    with pytest.raises(UnknownTaskError):
        select_dirty(graph, force=["nope"])
