"""Shared test fixtures. The real public trajectories live in ../shared (never copied here)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "trajectories"


def fixture(rel: str) -> Path:
    path = FIXTURES / rel
    assert path.exists(), f"missing shared fixture {path}"
    return path


def load_fixture_json(rel: str):
    return json.loads(fixture(rel).read_text())


def cli_error(capsys, *argv: str) -> str:
    """Run `srl-agent ARGV` in this process; it must fail with exit 2 and end on one error line: that line."""
    from srl_agent.cli import main

    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


@pytest.fixture(scope="session")
def all_trajectories():
    from srl_agent.formats import load_trajectories

    return {t.id: t for t in load_trajectories([str(FIXTURES)])}


# --- sandboxes ----------------------------------------------------------------------------------

SANDBOX_KINDS = ["docker", "bwrap"]
# Rootless Podman's socket: `.ci/podman-rootless` starts it (as a non-root user) and prints this URL.
PODMAN_URL = os.environ.get("CONTAINER_HOST", "unix:///run/srl-podman/podman.sock")


@pytest.fixture(scope="session")
def swe_image() -> str:
    """The agent sandbox image; (re)built when missing or stale. Needs a running dockerd."""
    from srl_agent.images import SWE_IMAGE, build_swe_image, image_is_current
    from srl_agent.sandbox.docker import docker_client

    client = docker_client()
    if not image_is_current(client, SWE_IMAGE):
        build_swe_image(client)
    return SWE_IMAGE


@pytest.fixture(scope="session")
def podman_image(swe_image) -> str:
    """The same image in rootless Podman (copied from Docker, offline: docker save | podman load)."""
    from srl_agent.sandbox.container_engine import copy_images, podman_client
    from srl_agent.sandbox.docker import docker_client

    copy_images([swe_image], docker_client(), podman_client(PODMAN_URL), log=lambda message: None)
    return swe_image


@pytest.fixture(scope="session")
def swe_mini_images(swe_image) -> list[dict]:
    """swe-mini's instances, with their images built (only the missing or stale ones are)."""
    from srl_agent.sandbox.docker import docker_client
    from srl_agent.testbed.swe_mini import build_images, load_instances

    instances = load_instances()
    build_images(docker_client(), instances, swe_image, progress=lambda message: None)
    return instances


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate's state is process-wide and fixed by the first Accelerator: one test's (bf16, say) would refuse
    the next test's trainer."""
    yield
    if "accelerate.state" in sys.modules:
        sys.modules["accelerate.state"].AcceleratorState._reset_state(True)


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind():
    """After the whole session, no container labelled as ours may remain."""
    yield
    from srl_agent.sandbox import LABEL, docker_available

    if not docker_available():
        return
    import docker

    engines = [docker.from_env()]
    if Path(PODMAN_URL.removeprefix("unix://")).exists():
        with contextlib.suppress(docker.errors.DockerException):  # a socket left behind by a stopped service
            engines.append(docker.DockerClient(base_url=PODMAN_URL))
    mine = [c.name for client in engines
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}.pid={os.getpid()}"})]
    assert not mine, f"containers left behind: {mine}"


def assert_same_adam_steps(one: dict, two: dict, lrs: list[float]) -> None:
    """Two state dicts after the same AdamW steps (learning rates `lrs`) from the same start and data, whose sums ran
    in another float order (other processes, shards, CPU kind or thread count). Adam's step is about ±lr whatever a
    gradient's size, so an element whose gradient lies within float noise of 0 may step either way: each element
    within 2·Σlr. Every other element takes the same steps, to rounding; a run that stepped wrongly (a missing or
    extra step, a wrong lr or shard) moves far more than a few elements by a hundredth of a step."""
    import torch

    assert one.keys() == two.keys()
    for name in one:  # rtol 1e-5: fp32 rounding of the weight itself
        assert torch.allclose(one[name].cpu(), two[name].cpu(), atol=2 * sum(lrs)), name
    diffs = torch.cat([(one[k].cpu().float() - two[k].cpu().float()).abs().flatten() for k in one])
    apart = int((diffs > sum(lrs) / 100).sum())
    assert apart <= diffs.numel() / 1000, f"{apart} of {diffs.numel()} weights took other steps"


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository with one commit holding `files`."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    return path


CALC = {
    "calc.py": "def divide(a, b):\n    return a / b\n\n\ndef mean(values):\n    return sum(values) / len(values) + 1\n",
    "test_calc.py": "from calc import divide, mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2\n\n\n"
                    "def test_divide():\n    assert divide(6, 3) == 2\n",
}


@pytest.fixture
def calc_repo(tmp_path) -> Path:
    return make_repo(tmp_path / "calc", CALC)


@pytest.fixture(params=SANDBOX_KINDS)
def sandbox_factory(request, swe_image):
    """Opens sandboxes of one kind (docker, then bwrap) and closes them after the test."""
    yield from sandboxes_of_kind(request, swe_image)


def sandboxes_of_kind(request, swe_image):
    """The factory of `sandbox_factory` for the kind `request.param` (also podman: tests/test_sandbox.py)."""
    from srl_agent.sandbox import SandboxConfig, open_sandbox

    opened = []
    engine = None
    if request.param == "podman":
        request.getfixturevalue("podman_image")
        engine = PODMAN_URL

    def factory(repo=None, **config):
        sandbox = open_sandbox(SandboxConfig(image=swe_image, engine=engine, **config), kind=request.param,
                               repo=str(repo) if repo else None)
        opened.append(sandbox)
        return sandbox

    factory.kind = request.param
    yield factory
    for sandbox in opened:
        sandbox.close()


@pytest.fixture
def benchmark_module(monkeypatch):
    """Loads a script of benchmarks/ as a module, so that a test and the measured table share its code."""
    def load(name: str):
        monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # for its `_common` import, during the test only
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
        return module
    return load


def interactive_sigint() -> None:
    """A subprocess's preexec_fn: the child takes Ctrl-C as an interactive user's process does (a shell that starts
    the tests in the background leaves SIGINT ignored, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
