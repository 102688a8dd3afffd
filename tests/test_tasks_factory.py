"""The task factory end to end on small repositories made here: real sandboxes, images, expert and harness."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from srl_agent.cli import main
from srl_agent.formats import expand_sources, load_trajectories
from srl_agent.tasks.mutate import KINDS
from tests.chat_server import replying
from tests.sample_repo import COVERAGE_ADDOPTS, OPS, SUBTESTS, TESTS, make_repo


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def factory(tmp_path_factory, swe_image):
    """`srl-agent tasks synthesize` on a small git repository, three tasks.

    Its pytest config asks for a plugin the image lacks (pytest-cov), as many real projects' do: every suite
    the factory, the harness or the expert runs turns `addopts` off.
    """
    tmp = tmp_path_factory.mktemp("factory")
    repo = make_repo(tmp / "calc", {"calc/__init__.py": "", "calc/ops.py": OPS, "tests/test_ops.py": TESTS,
                                    "tests/test_clamp.py": SUBTESTS, "setup.cfg": COVERAGE_ADDOPTS})
    out = tmp / "tasks" / "calc"
    argv = ["tasks", "synthesize", "--repo", str(repo), "--out", str(out), "--max-tasks", "3", "--seed", "0"]
    assert main(argv) == 0
    return {"repo": repo, "out": out, "argv": argv}


def test_tasks_are_valid_instances_whose_gold_patch_reverses_the_bug(factory, tmp_path):
    out = factory["out"]
    instances = rows(out / "instances.jsonl")
    assert len(instances) == 3 and len({i["instance_id"] for i in instances}) == 3
    for instance in instances:
        assert instance["repo"] == "calc" and instance["source"] == "sources/calc.tar.gz"
        assert instance["mutation"]["kind"] in KINDS and instance["mutation"]["file"] == "calc/ops.py"
        assert instance["instance_id"] == f"calc__{instance['mutation']['id']}"
        assert json.loads(instance["FAIL_TO_PASS"]) and json.loads(instance["PASS_TO_PASS"])
        assert not set(json.loads(instance["FAIL_TO_PASS"])) & set(json.loads(instance["PASS_TO_PASS"]))
        assert instance["test_patch"] == "" and instance["log_parser"] == "parse_log_pytest"
        assert ">>>>> Start Test Output" in instance["eval_script"]
        statement = instance["problem_statement"]
        assert "calc/ops.py" not in statement and json.loads(instance["FAIL_TO_PASS"])[0] in statement
        # the base commit holds the bug; the gold patch takes the clean source back
        work = tmp_path / instance["instance_id"]
        with tarfile.open(out / instance["source"]) as tar:
            tar.extractall(work, filter="data")
        ops = work / "calc" / "calc" / "ops.py"
        assert ops.read_text() == OPS
        subprocess.run(["git", "apply", "-"], input=instance["bug_patch"], text=True, cwd=ops.parents[1], check=True)
        assert ops.read_text() != OPS
        subprocess.run(["git", "apply", "-"], input=instance["patch"], text=True, cwd=ops.parents[1], check=True)
        assert ops.read_text() == OPS


def test_the_expert_solves_every_task_and_train_reads_the_folder(factory):
    out = factory["out"]
    ids = sorted(i["instance_id"] for i in rows(out / "instances.jsonl"))
    # the folder as `train --trajectories` reads it: only the trajectories, not instances or records
    assert expand_sources([str(out)]) == [str(out / "trajectories.jsonl")]
    trajectories = list(load_trajectories([str(out)]))
    assert sorted(t.id for t in trajectories) == ids
    for traj in trajectories:
        calls = [s.action.name for s in traj.steps]
        assert traj.resolved and calls[-1] == "submit" and "str_replace_editor" in calls
        [reproduce, *_, regressions] = [s for s in traj.steps if "pytest" in s.action.arguments.get("command", "")]
        assert reproduce in traj.steps[:4] and "failed" in reproduce.observation  # reproduced by the failing tests
        assert "passed" in regressions.observation and "failed" not in regressions.observation
        assert all("unrecognized arguments" not in s.observation for s in traj.steps)  # addopts were off
    report = json.loads((out / "report.json").read_text())
    assert report["expert_solved"] == 3 and report["expert_failed"] == []


def test_a_rerun_resumes_and_env_build_remakes_a_missing_image(factory):
    from srl_agent.sandbox.docker import docker_client

    out = factory["out"]
    before, validated = (out / "instances.jsonl").read_text(), len(rows(out / "validation.jsonl"))
    assert main(factory["argv"]) == 0
    assert (out / "instances.jsonl").read_text() == before and len(rows(out / "validation.jsonl")) == validated
    instance = rows(out / "instances.jsonl")[0]
    client = docker_client()
    client.images.remove(instance["image"], force=True)
    assert main(["env", "build", "--instances", str(out / "instances.jsonl"), instance["instance_id"]]) == 0
    head = client.containers.run(instance["image"], ["git", "rev-parse", "HEAD"], remove=True, network_mode="none")
    assert head.decode().strip() == instance["base_commit"]


def test_failing_subtests_cannot_grade_as_resolved(tmp_path, swe_image, capsys):
    """A task whose only test is a subTest suite: a patch that fixes nothing must not resolve it.

    Its tests are one module at the root (inflection's layout, common in small packages): that is the suite
    the factory validates with and the harness grades with."""
    from srl_agent.sandbox.docker import docker_client

    version = docker_client().containers.run(swe_image, ["python3", "-c", "import pytest; print(pytest.__version__)"],
                                             remove=True, network_mode="none").decode()
    assert int(version.split(".")[0]) < 9, version  # the pinned runner
    clamp_only = OPS[:OPS.index("def mean")]  # every mutation lands in clamp, which only the subTests check
    repo = make_repo(tmp_path / "clampkit", {"calc/__init__.py": "", "calc/ops.py": clamp_only,
                                             "test_clamp.py": SUBTESTS, "README.md": "clamp\n"})
    broken = tmp_path / "broken-1.0.tar.gz"
    broken.write_text("not a tarball")
    out = tmp_path / "tasks"
    writer = replying("clamp(15, 0, 10) gives 15; `TestClamp.test_clamp_cases` fails.")  # --writer's model
    try:
        assert main(["tasks", "synthesize", "--repo", str(repo), str(broken), "--out", str(out), "--max-tasks", "1",
                     "--max-fail-fraction", "1", "--no-expert", "--writer", writer.url]) == 0
    finally:
        writer.close()
    assert "skipped" in capsys.readouterr().out
    [instance] = rows(out / "instances.jsonl")
    assert json.loads(instance["FAIL_TO_PASS"]) == ["test_clamp.py::TestClamp::test_clamp_cases"]
    assert "git checkout" in instance["eval_script"] and " test_clamp.py\n" in instance["eval_script"]
    assert instance["problem_statement"] == "clamp(15, 0, 10) gives 15; `TestClamp.test_clamp_cases` fails.\n"
    assert "test_clamp_cases" in writer.requests[0]["body"]["messages"][-1]["content"]  # it got our statement
    assert main(["env", "build", "--instances", str(out / "instances.jsonl")]) == 0
    unrelated = "--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n clamp\n+more\n"
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"instance_id": instance["instance_id"], "model_patch": patch,
                                               "model_name_or_path": name}) + "\n"
                                   for name, patch in [("unrelated", unrelated)]))
    assert main(["eval", "--bench", str(out / "instances.jsonl"), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "runs"), "--run-id", "grade"]) == 0
    err = capsys.readouterr().err
    assert "no agent ran" in err and "already have predictions" not in err  # the header says it once
    [result] = rows(tmp_path / "runs" / "grade" / "results.jsonl")
    assert result["patch_applied"] and not result["resolved"] and result["category"] == "tests_failed"


@pytest.mark.parametrize(("files", "message"), [
    ({"calc/__init__.py": "", "calc/ops.py": OPS}, "no tests found"),
    ({"calc/__init__.py": "", "calc/ops.py": OPS.replace("return value\n", "return value + 1\n"),
      "tests/test_clamp.py": SUBTESTS}, "tests fail before any mutation"),
    ({"calc/__init__.py": "import missing_dependency\n", "calc/ops.py": OPS, "tests/test_clamp.py": SUBTESTS},
     "cannot be imported"),
])
def test_unusable_repositories_are_one_line_and_exit_2(tmp_path, swe_image, capsys, files, message):
    repo = make_repo(tmp_path / "repo", files, git=False)
    assert main(["tasks", "synthesize", "--repo", str(repo), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not (tmp_path / "out" / "instances.jsonl").exists()


def test_a_mutation_that_hangs_the_suite_is_dropped_and_tests_inside_the_package_are_found(tmp_path, swe_image):
    """`n -= 1` -> `n -= 2` never reaches 0: a timeout verdict, from a real suite killed in its sandbox."""
    countdown = "def countdown(n):\n    while n != 0:\n        n -= 1\n    return n\n"
    repo = make_repo(tmp_path / "spin", {"spin/__init__.py": "", "spin/ops.py": countdown,
                                         "spin/tests/test_ops.py": "from spin.ops import countdown\n\n\n"
                                                                   "def test_countdown():\n"
                                                                   "    assert countdown(3) == 0\n"})
    out = tmp_path / "tasks"
    # every mutation (a flip, two constants and their pairs) is tried; none may fail "too much" of one test
    assert main(["tasks", "synthesize", "--repo", str(repo), "--out", str(out), "--max-tasks", "8", "--workers", "2",
                 "--max-fail-fraction", "1", "--test-timeout", "10", "--no-expert"]) == 0
    verdicts = {row["mutation"]["description"]: row for row in rows(out / "validation.jsonl")}
    hang = verdicts.pop("constant `1` -> `2`")
    assert hang["status"] == "timeout" and hang["seconds"] >= 10
    assert len(verdicts) >= 3 and {row["status"] for row in verdicts.values()} == {"accepted"}  # the pairs end
    instances = rows(out / "instances.jsonl")
    assert len(instances) == len(verdicts)
    assert all(json.loads(i["FAIL_TO_PASS"]) == ["spin/tests/test_ops.py::test_countdown"] for i in instances)
    assert all("git checkout" in i["eval_script"] and " spin/tests\n" in i["eval_script"] for i in instances)


def test_a_curriculum_builds_its_packages_and_holds_one_out(tmp_path, swe_image, capsys):
    """`tasks build` from a curriculum file, its sdists already in OUT/sdists (as a rerun finds them): no network."""
    out = tmp_path / "tasks"
    for name, files in (("calc", {"calc/__init__.py": "", "calc/ops.py": OPS, "tests/test_ops.py": TESTS}),
                        ("Calc_Kit", {"calc/__init__.py": "", "calc/ops.py": OPS, "test_ops.py": TESTS})):
        root = make_repo(tmp_path / name / f"{name}-1.0", files, git=False)
        (out / "sdists").mkdir(parents=True, exist_ok=True)
        with tarfile.open(out / "sdists" / f"{name}-1.0.tar.gz", "w:gz") as tar:
            tar.add(root, arcname=root.name)
    curriculum = tmp_path / "small.yaml"
    curriculum.write_text("seed: 0\ntrain: [calc==1.0]\nheldout: [calc-kit==1.0]\ntrain_tasks: 1\nheldout_tasks: 1\n"
                          "kinds: [comparison, off_by_one]\ntraceable_only: true\n")
    assert main(["tasks", "build", str(curriculum), "--out", str(out), "--no-expert"]) == 0
    assert "test: 1 instances, 0 trajectories from pypi/calc_kit" in capsys.readouterr().out
    train, test = rows(out / "split" / "train" / "instances.jsonl"), rows(out / "split" / "test" / "instances.jsonl")
    assert [i["repo"] for i in train] == ["pypi/calc"]
    assert [i["repo"] for i in test] == ["pypi/calc_kit"]
    report = json.loads((out / "report.json").read_text())
    assert [r["tests"] for r in report["train"]["repos"] + report["heldout"]["repos"]] == [5, 5]
    assert {i["mutation"]["kind"] for i in train + test} <= {"comparison", "off_by_one"}
    # traceable: the first failing test's output names the function the bug is in
    for instance in train + test:
        first_failing = sorted(json.loads(instance["FAIL_TO_PASS"]))[0]
        assert instance["mutation"]["symbol"].split(".")[-1] in instance["problem_statement"], first_failing
