"""Renamed copies of training runs (tasks/rename.py): which names go, what replaces them, and that a copy stays one
consistent run (worked by hand on two small packages, then on the shipped swe-mini runs)."""

from __future__ import annotations

import random
import re

from unidiff import PatchSet

from srl_agent.jsonio import read_jsonl, write_jsonl
from srl_agent.tasks.rename import (
    made_up_name,
    names,
    package_names,
    rename_text,
    renamed_copies,
    stdlib_vocabulary,
    write_renamed_copies,
)
from srl_agent.types import Step, ToolCall, Trajectory

from .conftest import ROOT

PATCH = """diff --git a/src/lrucache.py b/src/lrucache.py
--- a/src/lrucache.py
+++ b/src/lrucache.py
@@ -1,2 +1,2 @@
 def mru_cache(maxsize):
-    return maxsize > 0
+    return maxsize >= 0
"""


def run(run_id: str, module: str, test: str, function: str, patch: str | None = None) -> Trajectory:
    test_id = f"tests/test_{module}.py::{test}"
    return Trajectory(run_id, f"`python -m pytest {test_id}` fails: {function}(0) raises.", [
        Step("Run the failing test.", ToolCall("bash", {"command": f"python3 -m pytest {test_id} -q"}),
             f"FAILED {test_id} - in {function}\n"),
        Step("Find it.", ToolCall("bash", {"command": f"grep -rn 'def {function}(' ."}),
             f"./src/{module}.py:1:def {function}(maxsize):\n"),
        Step("Done.", ToolCall("submit", {}))], patch=patch)


def test_only_one_package_s_own_names_are_renamed():
    found = {"lru": {"mru_cache", "maxsize", "self", "len", "for", "ab", "shared_name", "test_tests", "__2"},
             "other": {"shared_name", "parse_tree"}}
    to_rename = package_names(found, common={"self"})
    # a name both packages use, a common one, a builtin, a keyword, a 2-letter name and one of nothing but parts
    # kept as they are stay
    assert to_rename == {"lru": {"mru_cache", "maxsize"}, "other": {"parse_tree"}}


def test_a_made_up_name_keeps_the_shape_and_what_pytest_collects_by():
    parts = ("alpha", "beta", "gamma")
    rng = random.Random(0)
    for name, shape in (("mru_cache", r"[a-z]+_[a-z]+"), ("test_decorator", r"test_[a-z]+"),
                        ("MRUDecoratorTest", r"[A-Z]{4,}[A-Z][a-z]+Test"), ("TestMisc2", r"Test[A-Z][a-z]+2"),
                        ("LRU_CACHE", r"[A-Z]+_[A-Z]+"), ("tests", r"tests")):
        new = made_up_name(name, rng, parts)
        assert re.fullmatch(shape, new), (name, new)
    # the parts come from the standard library's common names
    common, vocabulary = stdlib_vocabulary()
    assert {"self", "append", "value"} <= common and {"path", "name", "read"} <= set(vocabulary)


def test_rename_text_replaces_whole_identifiers_only():
    mapping = {"test_func": "test_spam", "Cache": "Eggs"}
    assert rename_text("tests/test_func.py::Cache::test_funcs Cache.get my_Cache", mapping) == \
        "tests/test_spam.py::Eggs::test_funcs Eggs.get my_Cache"


def test_a_renamed_copy_is_the_same_run_with_new_names_throughout():
    runs = [run("lru-1", "lrucache", "MRUTest::test_mru", "mru_cache", PATCH),
            run("other-1", "treeparse", "ParseTest::test_tree", "parse_tree")]
    package_of = {"lru-1": "lru", "other-1": "other"}
    copies = renamed_copies(runs, package_of, copies=3, seed=0)
    assert [c.id for c in copies] == ["lru-1~r1", "lru-1~r2", "lru-1~r3", "other-1~r1", "other-1~r2", "other-1~r3"]
    assert copies == renamed_copies(runs, package_of, copies=3, seed=0)  # seeded
    original, copy = runs[0], copies[0]
    gone = {"mru_cache", "MRUTest", "test_mru", "lrucache", "test_lrucache"}
    assert gone <= names(original) and not gone & names(copy)
    # both packages' runs use these, and the standard library uses maxsize often: they stay
    assert {"python3", "pytest", "grep", "tests", "src", "maxsize"} <= names(copy)
    # one name, one replacement, in the report, the calls, the observations and the patch
    new_function = re.search(r"def (\w+)\(", copy.steps[1].observation).group(1)
    new_test = re.search(r"::(\w+::\w+)", copy.problem_statement).group(1)
    assert new_function in copy.problem_statement and new_function in copy.steps[1].action.arguments["command"]
    assert new_test in copy.steps[0].action.arguments["command"] and new_test in copy.steps[0].observation
    assert new_test.startswith(new_test.split("::")[0]) and new_test.split("::")[1].startswith("test_")
    patch = PatchSet(copy.patch)  # still a patch, of the renamed file, of the renamed function
    assert patch[0].path.startswith("src/") and "lrucache" not in patch[0].path and new_function in copy.patch
    assert [s.action.name for s in copy.steps] == [s.action.name for s in original.steps]
    assert copy.metadata["renamed_from"] == "lru-1"
    assert len({c.steps[1].observation for c in copies[:3]}) == 3  # each copy its own names


def test_a_task_folder_gets_renamed_copies_of_its_runs_beside_them(tmp_path):
    """The shipped swe-mini runs, each its own package: renamed.jsonl loads as trajectories and every copy keeps
    its run's length and calls' tools."""
    runs = [row for _, row in read_jsonl(ROOT / "trajectories" / "swe-mini.jsonl")]
    write_jsonl(tmp_path / "trajectories.jsonl", runs)
    write_jsonl(tmp_path / "instances.jsonl", [{"instance_id": r["id"], "repo": r["id"].rsplit("-", 1)[0]}
                                               for r in runs])
    assert write_renamed_copies(tmp_path, copies=2, seed=0) == 2 * len(runs)
    from srl_agent.formats import load_trajectories

    loaded = list(load_trajectories([str(tmp_path)]))
    assert len(loaded) == 3 * len(runs)
    by_id = {t.id: t for t in loaded}
    for r in runs:
        original, copy = by_id[r["id"]], by_id[r["id"] + "~r1"]
        assert [s.action.name for s in copy.steps] == [s.action.name for s in original.steps]
        assert copy.problem_statement != original.problem_statement
