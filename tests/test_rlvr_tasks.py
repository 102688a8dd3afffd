"""RLVR's training tasks: swe-mini's train split shares no repository with the held-out test split."""

from __future__ import annotations

import json

import pytest

from srl_agent.errors import UserError
from srl_agent.rlvr.tasks import check_split, load_training_tasks, require_images, splits_path, swe_mini_split
from srl_agent.testbed.swe_mini import instances_path

from .conftest import cli_error


def test_shipped_split_covers_swe_mini_by_repository():
    train, test = swe_mini_split("train"), swe_mini_split("test")
    assert not {i["repo"] for i in train} & {i["repo"] for i in test}
    assert len(train) + len(test) == len(instances_path().read_text().splitlines()) == 26
    assert {i["instance_id"] for i in train} == set(json.loads(splits_path().read_text())["train"])
    assert all(i["image"] == f"srl-agent/swe-mini:{i['instance_id']}" for i in train)
    assert load_training_tasks() == train


def test_check_split_rejects_a_repository_on_both_sides():
    repo_of = {"a-1": "r/a", "a-2": "r/a", "b-1": "r/b"}
    check_split({"train": ["a-1", "a-2"], "test": ["b-1"]}, repo_of, "s.json")
    with pytest.raises(UserError, match=r"s\.json: repository r/a has tasks on both sides"):
        check_split({"train": ["a-1"], "test": ["a-2", "b-1"]}, repo_of, "s.json")
    with pytest.raises(UserError, match="a-1 is on both sides"):
        check_split({"train": ["a-1"], "test": ["a-1"]}, repo_of, "s.json")
    with pytest.raises(UserError, match="unknown instance zz"):
        check_split({"train": ["zz"], "test": ["b-1"]}, repo_of, "s.json")


def test_tasks_file_is_loaded_and_bad_rows_named(tmp_path):
    good = {"instance_id": "x__y-1", "eval_script": "#!/bin/bash\n", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]",
            "image": "img:1", "log_parser": "parse_log_pytest"}
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(good) + "\n")
    assert load_training_tasks(path) == [good]
    path.write_text(json.dumps(good) + "\n" + json.dumps({"instance_id": "x__y-2"}) + "\n")
    with pytest.raises(UserError, match=r"instance 2 lacks eval_script, FAIL_TO_PASS, PASS_TO_PASS, image"):
        load_training_tasks(path)
    path.write_text(json.dumps({**good, "log_parser": "parse_nothing"}) + "\n")
    with pytest.raises(UserError, match="unknown log_parser 'parse_nothing'"):
        load_training_tasks(path)
    with pytest.raises(UserError, match="no such file"):
        load_training_tasks(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="unknown split"):
        swe_mini_split("dev")


def test_an_unreadable_tasks_file_is_a_one_line_error_naming_its_line(tmp_path, capsys):
    tasks, run = tmp_path / "tasks.jsonl", tmp_path / "run"
    train = ("train", "--method", "rlvr", "--set", "rendering.history=full", "--output-dir", str(run), "--tasks")
    for content, expected in (
            (b'{"instance_id": "a"}\n\n{bad\n', "row 3: line is not valid JSON (Expecting property name enclosed "
                                                "in double quotes at column 2)"),
            (b'{"instance_id": "a"}\n{"instance_id": "caf\xe9"}\n', "row 2: line is not UTF-8 text "
                                                                  "(invalid continuation byte at byte 20)")):
        tasks.write_bytes(content)
        assert cli_error(capsys, *train, str(tasks)) == f"error: {tasks}: {expected}"
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    assert cli_error(capsys, *train, str(folder)) == f"error: {folder}: cannot read: is a folder, not a file"
    whole = tmp_path / "tasks.json"
    whole.write_text('[{"instance_id": "a"}]\n[{"instance_id": "b"}]\n')  # two documents, as if JSON Lines
    assert cli_error(capsys, *train, str(whole)) == f"error: {whole}: not valid JSON: Extra data at line 2 column 1"
    assert not run.exists()


def test_a_missing_task_image_fails_before_training_with_the_hint(swe_mini_images):
    train = swe_mini_split("train")
    require_images(train)  # built by the fixture
    gone = {**train[0], "instance_id": "swemini__gone-1", "image": "srl-agent/swe-mini:swemini__gone-1"}
    with pytest.raises(UserError, match=r"task swemini__gone-1: image .* is missing; .*srl-agent env build swe-mini"):
        require_images([*train, gone])
    factory = {**gone, "instance_id": "pypi-idna__swap-1", "image": "srl-agent/tasks:pypi-idna__swap-1"}
    with pytest.raises(UserError, match=r"pypi-idna__swap-1: image .* is missing; .*env build --instances FILE"):
        require_images([*train, factory])  # a factory task's image is built from its instances file


def test_expert_runs_split_with_the_tasks_so_sft_data_stays_held_out():
    from srl_agent.formats import load_trajectories
    from srl_agent.paths import project_dir
    from srl_agent.rlvr.tasks import split_trajectories
    from srl_agent.types import Trajectory

    shipped = list(load_trajectories([str(project_dir("trajectories"))]))
    train, test = split_trajectories(shipped, "train"), split_trajectories(shipped, "test")
    assert sorted(t.id for t in test) == sorted(i["instance_id"] for i in swe_mini_split("test"))
    assert len(train) + len(test) == len(shipped) and "stats-mean" in {t.id for t in train}  # seed tasks: train
    # a run on a test repository's task stays out of training, listed in splits.json or not
    unlisted = Trajectory("cron-9", "", [], metadata={"repo": "swe-mini/cronexpr"})
    assert split_trajectories([unlisted], "train") == [] and split_trajectories([unlisted], "test") == [unlisted]
    with pytest.raises(UserError, match="unknown split"):
        split_trajectories(shipped, "dev")
