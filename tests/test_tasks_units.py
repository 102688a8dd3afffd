"""The task factory's pure parts, worked by hand: mutations, verdicts, log parsing, statements, the split."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from srl_agent.errors import UserError
from srl_agent.tasks.mutate import KINDS, candidates, combine, select
from srl_agent.tasks.split import split_folder, split_repos
from srl_agent.tasks.statements import problem_statement, rewrite, short_traceback
from srl_agent.tasks.validate import failure_sections, judge, section_for
from srl_agent.testbed.suite import SuiteRun, parse_statuses, unreadable_ids
from tests.chat_server import replying

SOURCE = '''\
def window(items, size=3, strict=True):
    """The last `size` items."""
    if not items:
        return []
    out = []
    for i in range(len(items) - 1):
        if items[i] < items[i + 1]:
            out.append(items[i])
        else:
            out.append(-items[i])
    log(out)
    return scale(out[-size:], 2), total - used, name.strip()
'''


def mutated(description: str) -> str:
    [mutation] = [m for m in candidates(SOURCE, "pkg/m.py") if m.description == description]
    assert mutation.path == "pkg/m.py" and mutation.symbol == "window"
    return mutation.apply(SOURCE)


def changed_lines(new: str) -> list[tuple[str, str]]:
    import difflib

    diff = [line for line in difflib.ndiff(SOURCE.splitlines(), new.splitlines()) if line[:1] in "-+"]
    return [(line[0], line[2:]) for line in diff]


def test_comparisons_are_flipped_and_loosened_in_place():
    assert changed_lines(mutated("flipped `<` to `>=`")) == [
        ("-", "        if items[i] < items[i + 1]:"), ("+", "        if items[i] >= items[i + 1]:")]
    assert "        if items[i] <= items[i + 1]:" in mutated("loosened `<` to `<=`")


def test_off_by_one_moves_range_and_slice_bounds():
    assert "    for i in range(len(items) - 2):" in mutated("range stop `len(items) - 1` -> `len(items) - 2`")
    assert "    for i in range(len(items)):" in mutated("range stop `len(items) - 1` -> `len(items)`")
    assert "    return scale(out[-size + 1:], 2), total - used, name.strip()" in mutated(
        "slice bound `-size` -> `-size + 1`")


def test_dropped_branches_remove_whole_lines():
    guard = mutated("removed `if not items:` block")
    assert changed_lines(guard) == [("-", "    if not items:"), ("-", "        return []")]
    no_else = mutated("removed the `else` branch of `if items[i] < items[i + 1]:`")
    assert changed_lines(no_else) == [("-", "        else:"), ("-", "            out.append(-items[i])")]


def test_swaps_constants_and_removed_calls():
    assert "scale(2, out[-size:])" in mutated("swapped the first two arguments of `scale`")
    assert "used - total" in mutated("swapped the operands of `total - used`")
    assert mutated("default of `size` `3` -> `4`").startswith("def window(items, size=4, strict=True):")
    assert mutated("default of `strict` `True` -> `False`").startswith("def window(items, size=3, strict=False):")
    assert changed_lines(mutated("removed the call `log(...)`")) == [("-", "    log(out)")]
    assert ", name\n" in mutated("dropped the call `.strip()`")


def test_a_call_alone_in_its_block_becomes_pass():
    source = "def f(x):\n    if x:\n        g(x)\n    return x\n"
    [removed] = [m for m in candidates(source, "m.py") if m.kind == "remove_call"]
    assert removed.apply(source) == "def f(x):\n    if x:\n        pass\n    return x\n"


def test_only_code_inside_functions_is_mutated_and_the_docstring_stays():
    source = ("LIMIT = 10\n\nclass A:\n    size = 2\n\n    def f(self):\n        \"\"\"Doc.\"\"\"\n"
              "        return self.size\n")
    assert candidates(source, "m.py") == []
    assert candidates("def broken(:\n", "m.py") == []


def test_selection_is_deterministic_by_seed_and_mixes_kinds():
    files = {"pkg/m.py": SOURCE}
    first, again, other = select(files, 0, 12), select(files, 0, 12), select(files, 1, 12)
    assert [m.id for m in first] == [m.id for m in again] and [m.id for m in first] != [m.id for m in other]
    assert len(first) == 12 and len({m.id for m in first}) == 12
    assert {m.kind for m in first} >= set(KINDS) - {"combined"} and "combined" in {m.kind for m in first}
    for mutation in first:
        assert mutation.kind in KINDS
        compile(mutation.apply(SOURCE), "m.py", "exec")


def test_selection_keeps_to_the_kinds_asked_for():
    files = {"pkg/m.py": SOURCE}
    chosen = select(files, 0, 12, kinds=("comparison", "swap"))
    assert chosen and {m.kind for m in chosen} == {"comparison", "swap"}
    assert [m.id for m in select(files, 0, 12)] == [m.id for m in select(files, 0, 12, kinds=KINDS)]


def test_combinations_need_edits_apart():
    singles = candidates(SOURCE, "pkg/m.py")
    flip = next(m for m in singles if m.description == "flipped `<` to `>=`")
    loosen = next(m for m in singles if m.description == "loosened `<` to `<=`")
    guard = next(m for m in singles if m.description == "removed `if not items:` block")
    assert combine(flip, loosen) is None
    both = combine(flip, guard)
    expected = guard.apply(SOURCE).replace("items[i] < items[i + 1]", "items[i] >= items[i + 1]")
    assert both.kind == "combined" and both.apply(SOURCE) == expected


def run(statuses: dict[str, str], log: str = "", **kw) -> SuiteRun:
    return SuiteRun(statuses, log, **kw)


@pytest.mark.parametrize(("statuses", "log", "kw", "status"), [
    ({"a": "PASSED", "b": "FAILED", "c": "PASSED", "d": "PASSED"}, "", {}, "accepted"),
    ({"a": "PASSED", "b": "PASSED", "c": "PASSED", "d": "PASSED"}, "", {}, "no_failing"),
    ({"a": "FAILED", "b": "FAILED", "c": "FAILED", "d": "PASSED"}, "", {}, "too_many_failing"),
    ({}, "ERROR collecting tests/test_x.py\nE   ImportError: cannot import name 'f'", {}, "import_error"),
    ({"a": "PASSED", "b": "FAILED"}, "", {}, "tests_changed"),
    ({"a": "PASSED", "b": "FAILED", "c": "SKIPPED", "d": "PASSED"}, "", {}, "tests_changed"),
    ({}, "", {"timed_out": True}, "timeout"),
    ({}, "error: patch failed", {"patch_failed": True}, "patch_failed"),
])
def test_judge_keeps_only_clean_pass_to_fail(statuses, log, kw, status):
    verdict = judge({"a", "b", "c", "d"}, run(statuses, log, **kw), max_fail_fraction=0.5)
    assert verdict.status == status
    if status == "accepted":
        assert verdict.fail_to_pass == ["b"] and verdict.pass_to_pass == ["a", "c", "d"]


def test_failing_subtests_fail_the_test_even_under_pytest_9(tmp_path):
    """pytest >= 9 prints `PASSED` for a unittest test whose subTests failed; the parser must not believe it."""
    (tmp_path / "test_sub.py").write_text(
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_cases(self):\n        for i in range(3):\n            with self.subTest(i=i):\n"
        "                self.assertLess(i, 2)\n\n    def test_fine(self):\n        self.assertTrue(True)\n")
    log = subprocess.run([sys.executable, "-m", "pytest", "-rA", "--tb=short", "-p", "no:cacheprovider",
                          "test_sub.py"], cwd=tmp_path, capture_output=True, text=True).stdout
    statuses = parse_statuses(log)
    assert statuses["test_sub.py::T::test_cases"] == "FAILED" and statuses["test_sub.py::T::test_fine"] == "PASSED"
    assert "assertLess" in section_for("test_sub.py::T::test_cases", failure_sections(log)) or \
        "not less than" in section_for("test_sub.py::T::test_cases", failure_sections(log))


FAILURE_LOG = """\
=================================== FAILURES ===================================
____________________________ TestParse.test_ms[250] ____________________________
tests/test_convert.py:50: in test_ms
    assert parse_duration("250ms") == 0.25
pkg/convert.py:31: in parse_duration
    return total * UNITS[unit]
E   assert 15000.0 == 0.25
=========================== short test summary info ============================
FAILED tests/test_convert.py::TestParse::test_ms[250] - assert 15000.0 == 0.25
"""


def test_ids_the_harness_cuts_at_a_space_stay_out_of_the_baseline():
    # swebench's pytest parser reads an id up to its first space: the failing `[a c]` overwrites the passing `[a b]`
    log = ("PASSED test_sp.py::test_s[a b]\nPASSED test_sp.py::test_s[x - y]\nPASSED test_sp.py::test_t\n"
           "FAILED test_sp.py::test_s[a c] - AssertionError: assert 'a c' != 'a c'\n")
    statuses = parse_statuses(log)
    assert statuses == {"test_sp.py::test_s[a": "FAILED", "test_sp.py::test_s[x": "PASSED",
                        "test_sp.py::test_t": "PASSED"}
    assert unreadable_ids(log) == {"test_sp.py::test_s[a", "test_sp.py::test_s[x"}
    assert SuiteRun(statuses, log).passed == {"test_sp.py::test_t"}


def test_statements_tell_the_failure_without_the_buggy_file():
    sections = failure_sections(FAILURE_LOG)
    block = section_for("tests/test_convert.py::TestParse::test_ms[250]", sections)
    assert block.startswith("tests/test_convert.py:50") and "E   assert 15000.0 == 0.25" in block
    short = short_traceback(block, ["pkg/convert.py"])
    assert short == ('tests/test_convert.py:50: in test_ms\n    assert parse_duration("250ms") == 0.25\n'
                     "E   assert 15000.0 == 0.25")
    text = problem_statement("pkg__x", {"tests/test_convert.py::TestParse::test_ms[250]": block}, ["pkg/convert.py"])
    assert "pkg/convert.py" not in text and "UNITS[unit]" not in text
    assert "python -m pytest 'tests/test_convert.py::TestParse::test_ms[250]'" in text  # quoted for the shell
    assert text.startswith("# `test_ms[250]` fails: assert 15000.0 == 0.25")
    assert text == problem_statement("pkg__x", {"tests/test_convert.py::TestParse::test_ms[250]": block},
                                     ["pkg/convert.py"])


def test_a_writer_model_rewrites_statements_but_may_not_leak_the_file():
    server = replying("<think>hmm</think>parse_duration('250ms') returns 15000.0 instead of 0.25")
    try:
        text = rewrite("# report\n", server.url, ["pkg/convert.py"], model="m")
        assert text == "parse_duration('250ms') returns 15000.0 instead of 0.25\n"
        request = server.requests[0]
        assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "m"
        assert request["body"]["messages"][-1] == {"role": "user", "content": "# report\n"}
    finally:
        server.close()
    leaky = replying("The bug is in pkg/convert.py, line 31.")
    try:
        assert rewrite("# report\n", leaky.url, ["pkg/convert.py"]) == "# report\n"
    finally:
        leaky.close()
    with pytest.raises(UserError, match=r"--writer http://127\.0\.0\.1:9/v1"):
        rewrite("# report\n", "http://127.0.0.1:9/v1", [], timeout=5, retries=1)  # retries: test_policies


def test_the_writer_talks_to_srl_agent_serve():
    """`--writer` against the project's own server (the tiny model behind `srl-agent serve`): its answer is used."""
    import torch

    from srl_agent.policy.hf import HFPolicy
    from srl_agent.policy.server import make_server
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    model, tokenizer = load_model(TrainConfig())
    server = make_server(HFPolicy(model.eval(), tokenizer), "tiny", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        torch.manual_seed(0)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        text = rewrite("# `test_ms` fails\n", url, ["pkg/convert.py"], model="tiny", max_tokens=24)
    finally:
        server.shutdown()
        server.server_close()
    # the untrained model's words, not ours: the request and its answer went through
    assert text.endswith("\n") and text.strip() and text != "# `test_ms` fails\n"


def test_split_keeps_whole_repositories_apart(tmp_path):
    assert split_repos(["a", "b", "c", "d"], ["b"], 0.25, 0) == {"b"}
    assert split_repos(["a", "b", "c", "d"], None, 0.5, 3) == split_repos(["d", "c", "b", "a"], None, 0.5, 3)
    assert len(split_repos(["a", "b", "c", "d"], None, 0.5, 3)) == 2
    with pytest.raises(UserError, match="--holdout zz"):
        split_repos(["a", "b"], ["zz"], 0.25, 0)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    instances = [{"instance_id": f"{repo}__{n}", "repo": repo, "source": f"sources/{repo}.tar.gz"}
                 for repo in ("a", "b", "c") for n in range(2)]
    (tasks / "instances.jsonl").write_text("".join(json.dumps(i) + "\n" for i in instances))
    unknown = {"id": "gone__1", "steps": []}  # its instance was removed: no side may get it
    (tasks / "trajectories.jsonl").write_text("".join(json.dumps(t) + "\n" for t in [
        *({"id": i["instance_id"], "steps": []} for i in instances), unknown]))
    counts = split_folder(tasks, tmp_path / "split", holdout=["c"])
    assert counts["test"] == {"instances": 2, "trajectories": 2, "repos": ["c"]}
    assert counts["train"]["repos"] == ["a", "b"] and counts["train"]["trajectories"] == 4
    test_file = tmp_path / "split" / "test" / "instances.jsonl"
    test_rows = [json.loads(line) for line in test_file.read_text().splitlines()]
    assert {r["source"] for r in test_rows} == {"../../tasks/sources/c.tar.gz"}


def test_sources_are_snapshotted_clean_and_laid_out(tmp_path):
    import tarfile

    from srl_agent.tasks.source import detect_layout, snapshot, source_name

    project = tmp_path / "proj"
    for name, text in {"src/pkg/__init__.py": "", "src/pkg/core.py": "def f():\n    return 1\n",
                       "tests/test_core.py": "def test_f():\n    pass\n", "setup.py": "",
                       "docs/conf.py": "", "pkg.egg-info/PKG-INFO": ""}.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    with tarfile.open(tmp_path / "proj-1.2.3.tar.gz", "w:gz") as tar:
        tar.add(project, arcname="proj-1.2.3")
    assert source_name(tmp_path / "proj-1.2.3.tar.gz") == "proj"
    snapshot(tmp_path / "proj-1.2.3.tar.gz", tmp_path / "snap")
    assert not (tmp_path / "snap" / "pkg.egg-info").exists() and (tmp_path / "snap" / "src" / "pkg").is_dir()
    layout = detect_layout(tmp_path / "snap")
    assert (layout.source_files, layout.test_paths, layout.test_files, layout.python_path) == (
        ["src/pkg/__init__.py", "src/pkg/core.py"], ["tests"], ["tests"], "src")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=project, check=True)
    (project / "src" / "pkg" / "core.py").write_text("def f():\n    return 2\n")
    with pytest.raises(UserError, match="uncommitted changes"):
        snapshot(project, tmp_path / "dirty")
    with pytest.raises(UserError, match="not a source distribution"):
        (tmp_path / "bad.tar.gz").write_text("no")
        snapshot(tmp_path / "bad.tar.gz", tmp_path / "bad")


def test_the_suite_is_where_pytest_finds_it(tmp_path):
    from srl_agent.tasks.source import detect_layout

    def layout(files: dict[str, str]):
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        found = detect_layout(root)
        return found.test_paths, found.python_path, found.source_files

    # toolz's sdist: toolz/tests and no top-level tests/
    assert layout({"toolz/__init__.py": "", "toolz/itertoolz.py": "", "toolz/tests/test_itertoolz.py": "",
                   "toolz/sandbox/__init__.py": "", "setup.py": ""}) == (
        ["toolz/tests"], ".", ["toolz/__init__.py", "toolz/itertoolz.py", "toolz/sandbox/__init__.py"])
    assert layout({"src/pkg/__init__.py": "", "src/pkg/core.py": "", "src/pkg/test/test_core.py": ""})[:2] == (
        ["src/pkg/test"], "src")
    # a top-level tests/ wins; a test folder without test files is no test folder
    assert layout({"pkg/__init__.py": "", "pkg/tests/helpers.py": "", "tests/test_pkg.py": ""})[0] == ["tests"]
    # inflection's sdist: one module of tests at the root, beside the package
    assert layout({"inflection/__init__.py": "", "inflection/py.typed": "", "test_inflection.py": "",
                   "setup.py": "", "docs/conf.py": ""}) == (["test_inflection.py"], ".", ["inflection/__init__.py"])
    assert layout({"six.py": "", "test_six.py": "", "conftest.py": ""}) == (["test_six.py"], ".", ["six.py"])
    # the project's configured testpaths and python_files decide, from the file pytest reads first
    assert layout({"pkg/__init__.py": "", "checks/check_pkg.py": "", "tests/test_unused.py": "",
                   "setup.cfg": "[tool:pytest]\ntestpaths = checks\npython_files = check_*.py\n",
                   "tox.ini": "[tox]\nenvlist = py3\n"}) == (["checks"], ".", ["pkg/__init__.py"])
    assert layout({"pkg/__init__.py": "", "pkg/core.py": "", "t1/test_a.py": "", "t2/test_b.py": "",
                   "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["t*", "missing"]\n'})[0] == ["t1", "t2"]
    with pytest.raises(UserError, match="no tests found"):
        layout({"pkg/__init__.py": "", "pkg/tests/helpers.py": ""})


def test_a_test_path_holding_package_code_resets_only_its_tests(tmp_path):
    from srl_agent.tasks.source import detect_layout

    for name in ("src/pkg/__init__.py", "src/pkg/core.py", "src/pkg/tests/test_core.py", "src/pkg/tests/conftest.py",
                 "tests/test_api.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = tests src\n")
    found = detect_layout(tmp_path)
    assert found.test_paths == ["src", "tests"] and found.source_files == ["src/pkg/__init__.py", "src/pkg/core.py"]
    # grading must not undo the fix in src/: only the tests go back to the base commit
    assert found.test_files == ["src/pkg/tests/conftest.py", "src/pkg/tests/test_core.py", "tests"]
    assert found.test_command().endswith(" src tests")


def test_a_curriculum_pins_its_packages_and_names_what_is_wrong(tmp_path):
    from srl_agent.tasks.curriculum import load_curriculum

    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ntrain: [toolz==1.0.0, six==1.16.0]\nheldout: [parse==1.20.2]\n")
    curriculum = load_curriculum(path)
    assert (curriculum.seed, curriculum.train, curriculum.heldout) == (3, ["toolz==1.0.0", "six==1.16.0"],
                                                                       ["parse==1.20.2"])
    assert curriculum.kinds == list(KINDS) and not curriculum.traceable_only
    for text, message in [("train: [toolz]\nheldout: [six==1]\n", r"train: .*NAME==VERSION, not 'toolz'"),
                          ("train: [a==1]\nheldout: [b==1]\nseeds: 2\n", "seeds: Extra inputs are not permitted"),
                          ("train: [Foo_Bar==1]\nheldout: [foo-bar==2]\n", "foo-bar listed more than once"),
                          ("train: [a==1]\n", "heldout: Field required"),
                          ("train: [a==1]\nheldout: [b==1]\nkinds: [swap, typo]\n",
                           "kinds: .*unknown mutation kind 'typo'")]:
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            load_curriculum(path)


def test_a_downloaded_sdist_is_reused_without_pip(tmp_path):
    from srl_agent.tasks.source import download_sdist

    (tmp_path / "Foo_Bar-1.0.tar.gz").write_bytes(b"")
    (tmp_path / "foo_bar-1.0.1.tar.gz").write_bytes(b"")
    assert download_sdist("foo-bar==1.0", tmp_path) == tmp_path / "Foo_Bar-1.0.tar.gz"  # PyPI's name rules
    assert download_sdist("Foo.Bar==1.0.1", tmp_path) == tmp_path / "foo_bar-1.0.1.tar.gz"


def test_validation_stops_counting_at_the_wanted_accepted_mutation():
    """Two workers validate in pairs; the report counts up to the `wanted`-th accept, not the rest of its pair."""
    from concurrent.futures import ThreadPoolExecutor

    from srl_agent.tasks.synthesize import _validate_in_order

    verdicts = ["no_failing", "accepted", "accepted", "accepted", "accepted"]  # the mutations' verdicts, in order
    started, ticks = [], []

    def start(i):
        started.append(i)
        return pool.submit(lambda: {"status": verdicts[i]})

    with ThreadPoolExecutor(2) as pool:
        validated = _validate_in_order(list(range(5)), start, 2, 2, ticks.append, lambda m, row: row["status"])
    assert [(m, verdict) for m, _, verdict in validated] == [(0, "no_failing"), (1, "accepted"), (2, "accepted")]
    assert started == [0, 1, 2, 3] and ticks[-1] == "2 accepted"  # mutation 3 ran (its pair) but is not counted
