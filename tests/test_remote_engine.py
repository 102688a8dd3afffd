"""Sandboxes, replay and eval on a second, real container engine: another dockerd on its own socket and data root."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srl_agent.sandbox import LABEL, SandboxConfig, open_sandbox

ROOT = Path(__file__).resolve().parents[1]
EXPERT = ROOT / "trajectories" / "swe-mini.jsonl"
INSTANCE = "swemini__configlite-1"  # the first run in EXPERT


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "srl_agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def second_engine(swe_mini_images, tmp_path_factory):
    """A second dockerd (own socket, data root and exec root), with the swe image and one task image copied in."""
    import docker

    from srl_agent.images import SWE_IMAGE
    from srl_agent.sandbox.container_engine import copy_images
    from srl_agent.sandbox.docker import docker_client
    from srl_agent.testbed.swe_mini import image_name

    # short paths: the socket path must fit a sockaddr_un, and containerd's below it too
    root = Path(tmp_path_factory.mktemp("dockerd2", numbered=True))
    url = f"unix://{root}/docker.sock"
    log = open(root / "dockerd.log", "w")  # noqa: SIM115 (open for the daemon's life)
    daemon = subprocess.Popen(["dockerd", "--host", url, "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
                               "--pidfile", f"{root}/docker.pid", "--bridge=none", "--iptables=false",
                               "--ip6tables=false", "--storage-driver=overlay2"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = None
        for _ in range(60):
            try:
                client = docker.DockerClient(base_url=url, timeout=10)
                client.ping()
                break
            except Exception:
                client = None
                time.sleep(0.5)
        assert client is not None, (root / "dockerd.log").read_text()[-2000:]
        copy_images([SWE_IMAGE, image_name(INSTANCE)], docker_client(), client, log=lambda message: None)
        yield url, client
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _labelled(client) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL}.pid={os.getpid()}"})


def test_a_sandbox_runs_on_the_engine_it_is_given(second_engine, calc_repo):
    import docker

    url, client = second_engine
    local = docker.from_env()
    with open_sandbox(SandboxConfig(engine=url), kind="docker", repo=str(calc_repo)) as sb:
        assert [c.id for c in _labelled(client)] == [sb.container.id]
        assert sb.container.id not in [c.id for c in _labelled(local)]
        assert sb.run("ls").output.split() == ["calc.py", "test_calc.py"]
        sb.run("sed -i 's/ + 1$//' calc.py")
        assert "+    return sum(values) / len(values)\n" in sb.diff()
    assert not _labelled(client)


def test_replay_and_eval_run_and_grade_on_the_second_engine(second_engine, tmp_path):
    url, client = second_engine
    time.sleep(1)  # events are counted from this second on: none of an earlier test's
    since = int(time.time())
    replay = cli("replay", str(EXPERT), "--index", "0", "--engine", url)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    assert "matches the recorded patch" in replay.stdout
    proc = cli("eval", "--bench", "swe-mini", "--model", f"replay:{EXPERT}", "--instances", INSTANCE,
               "--engine", url, "--output-dir", str(tmp_path), "--run-id", "remote")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "remote" / "summary.json").read_text())["resolved"] == 1
    # the sandboxes (replay's, eval's and the grading's) were all made on that engine
    created = [e["Actor"]["Attributes"].get("name", "") for e in
               client.events(since=since, until=int(time.time()) + 1, decode=True,
                             filters={"type": "container", "event": "create"})]
    assert sum(name.startswith("srl-agent-") for name in created) == 3
    assert not client.containers.list(all=True, filters={"label": LABEL})


def test_an_engine_that_does_not_answer_is_one_clear_line(tmp_path):
    for command in (["replay", str(EXPERT)],
                    ["eval", "--bench", "swe-mini", "--model", f"replay:{EXPERT}", "--instances", INSTANCE,
                     "--output-dir", str(tmp_path)]):
        proc = cli(*command, "--engine", "tcp://127.0.0.1:9", timeout=120)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, proc.stderr
        assert errors[0].startswith("error: cannot reach the container engine at tcp://127.0.0.1:9 ("), proc.stderr


def test_an_image_missing_on_that_engine_says_how_to_copy_it(second_engine):
    from srl_agent.errors import UserError

    url, _ = second_engine
    with pytest.raises(UserError, match=f"is not on {url} .*srl-agent env copy srl-agent/swe-mini:swemini__tabular-1"):
        open_sandbox(SandboxConfig(image="srl-agent/swe-mini:swemini__tabular-1", engine=url), kind="docker")


def test_replay_on_rootless_podman(swe_mini_images):
    """The expert's run replays the same in rootless Podman, its task image copied there offline."""
    from srl_agent.sandbox.container_engine import copy_images, podman_client
    from srl_agent.sandbox.docker import docker_client
    from srl_agent.testbed.swe_mini import image_name

    from .conftest import PODMAN_URL

    copy_images([image_name(INSTANCE)], docker_client(), podman_client(PODMAN_URL), log=lambda message: None)
    proc = cli("replay", str(EXPERT), "--index", "0", "--sandbox", "podman", "--engine", PODMAN_URL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "first divergence: none; final diff matches the recorded patch" in proc.stdout
