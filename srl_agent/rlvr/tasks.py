"""RLVR training tasks, kept apart from the tasks evaluation reports.

`envs/swe-mini/splits.json` names swe-mini's `train` and `test` task ids, split by repository (the
task factory's rule, tasks/split.py): tasks of one project share code and tests, so a model trained
on some of them is not held out on the others. RLVR trains on `train`; held-out numbers are on `test`.
Any swebench-5 instances file (`--tasks FILE`, e.g. a `srl-agent tasks split` train side) works too.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..jsonio import read_json, read_jsonl
from ..testbed.swe_mini import image_name, instances_path, swe_mini_dir

SIDES = ("train", "test")


def splits_path() -> Path:
    return swe_mini_dir() / "splits.json"


def check_split(split: dict, repo_of: dict[str, str], where: str) -> None:
    """Fail with one line when `split` names unknown tasks, a task twice, or a repository on both sides (pure)."""
    for side in SIDES:
        if not isinstance(split.get(side), list) or not split[side]:
            raise UserError(f"{where}: `{side}` must be a non-empty list of instance ids")
        unknown = sorted(set(split[side]) - set(repo_of))
        if unknown:
            raise UserError(f"{where}: `{side}` names unknown instance {unknown[0]}")
    twice = sorted(set(split["train"]) & set(split["test"]))
    if twice:
        raise UserError(f"{where}: {twice[0]} is on both sides")
    shared = sorted({repo_of[i] for i in split["train"]} & {repo_of[i] for i in split["test"]})
    if shared:
        raise UserError(f"{where}: repository {shared[0]} has tasks on both sides; split by repository")


def _parser_names() -> set[str]:
    from swebench.harness.log_parsers import PARSER_REGISTRY

    return set(PARSER_REGISTRY)


def _read_instances(path: Path) -> list[dict]:
    """A swebench-5 instances file (.jsonl or .json), one clear line on bad input."""
    # the shared readers raise a DataError (a UserError) naming the file, and the line of a bad .jsonl row
    rows = read_json(path) if path.suffix == ".json" else [row for _, row in read_jsonl(path)]
    if not isinstance(rows, list) or not rows:
        raise UserError(f"--tasks {path}: no instances")
    required = ("instance_id", "eval_script", "FAIL_TO_PASS", "PASS_TO_PASS", "image")
    for n, row in enumerate(rows, 1):
        missing = [k for k in required if not isinstance(row, dict) or k not in row]
        if missing:
            raise UserError(f"--tasks {path}: instance {n} lacks {', '.join(missing)} (a swebench-5 instance "
                            "with an `image` and an `eval_script` is needed)")
        parser = row.get("log_parser") or "parse_log_pytest"
        if parser not in _parser_names():
            raise UserError(f"--tasks {path}: instance {n} ({row['instance_id']}) names unknown log_parser {parser!r}")
    return rows


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise UserError(f"unknown split {side!r}; choose {' or '.join(SIDES)}")


def _swe_mini_instances_and_split() -> tuple[list[dict], dict]:
    """swe-mini's instances and its splits.json, checked (no repository on both sides)."""
    instances = _read_instances(instances_path())
    path = splits_path()
    split = read_json(path)
    check_split(split, {i["instance_id"]: i["repo"] for i in instances}, str(path))
    return instances, split


def swe_mini_split(side: str = "train") -> list[dict]:
    """swe-mini's instances on one side of splits.json, checked (no repository on both sides)."""
    _check_side(side)
    instances, split = _swe_mini_instances_and_split()
    wanted = set(split[side])
    return [{**i, "image": i.get("image") or image_name(i["instance_id"])} for i in instances
            if i["instance_id"] in wanted]


def split_trajectories(trajectories: list, side: str) -> list:
    """The expert runs on one side of swe-mini's split, so that SFT/SRL training data stays held-out too.

    A run is on the `test` side when its id is a task of a test repository, or its metadata names one
    (the scripted expert records `repo`); every other run (the seed tasks too) is on the `train` side."""
    _check_side(side)
    instances, split = _swe_mini_instances_and_split()
    test_listed = set(split["test"])
    test_repos = {i["repo"] for i in instances if i["instance_id"] in test_listed}
    test_ids = {i["instance_id"] for i in instances if i["repo"] in test_repos}
    return [t for t in trajectories
            if (t.id in test_ids or t.metadata.get("repo") in test_repos) == (side == "test")]


def load_training_tasks(tasks_file: str | Path | None = None) -> list[dict]:
    """RLVR's tasks: the instances in `tasks_file`, or swe-mini's train split when None."""
    if tasks_file is None:
        return swe_mini_split("train")
    return _read_instances(Path(tasks_file))


def require_images(instances: list[dict], engine: str | None = None) -> None:
    """Fail before any episode runs, naming the first task whose image the engine lacks and how to get it."""
    import docker

    from ..images import how_to_get
    from ..sandbox.docker import docker_client

    client = docker_client(engine=engine)
    try:
        for instance in instances:
            try:
                client.images.get(instance["image"])
            except docker.errors.ImageNotFound:
                raise UserError(f"task {instance['instance_id']}: image {instance['image']!r} is missing; "
                                f"{how_to_get(instance['image'], engine)}") from None
    finally:
        client.close()
