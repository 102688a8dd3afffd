"""The disk budget (`SandboxConfig.disk_mb`) on real engines: Docker, rootless Podman, bubblewrap."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from srl_agent.agent import run_agent
from srl_agent.policy.replay import ReplayPolicy
from srl_agent.types import Step, ToolCall, Trajectory

from .conftest import sandboxes_of_kind

BUDGET_MB = 8
MB = 1 << 20
# What the host may lose while a test runs: a fast writer's lead over the once-a-second watch (up to 610 MB seen
# on a loaded machine) and other processes' writes. A writer the budget failed to stop writes far more (1 GB in one
# file; until the 60 s timeout, tens of GB in many).
HOST_SLACK = 1024 * MB
MANY_FILES = "i=0; while :; do head -c 1M /dev/zero > /tmp/f$i; i=$((i+1)); done"


@pytest.fixture(params=["docker", "podman", "bwrap"])
def sandbox_factory(request, swe_image):
    yield from sandboxes_of_kind(request, swe_image)


def host_free(sandbox) -> int:
    """Free bytes on the host filesystem the sandbox writes to (the engine's storage, or the bwrap tree)."""
    if hasattr(sandbox, "client"):
        info = sandbox.client.info()
        root = info.get("DockerRootDir") or (info.get("Store") or {}).get("GraphRoot") or tempfile.gettempdir()
    else:
        root = sandbox.root
    return shutil.disk_usage(root).free


def test_writing_past_the_budget_is_stopped_and_the_others_go_on(sandbox_factory, calc_repo):
    writer = sandbox_factory(calc_repo, disk_mb=BUDGET_MB)
    neighbour = sandbox_factory(disk_mb=BUDGET_MB)
    writer.run("echo '# edited' >> calc.py")
    free = host_free(writer)
    with ThreadPoolExecutor(1) as pool:
        # the neighbour writes within its own budget while the writer floods its own
        going_on = pool.submit(neighbour.run, "for i in 1 2 3 4 5 6; do head -c 1M /dev/zero > /tmp/n$i; sleep 0.2; "
                                              "done; ls /tmp | grep -c '^n'", 60)
        one_file = writer.run("head -c 1G /dev/zero > /tmp/big", timeout=60)  # the file size limit stops it
        assert free - host_free(writer) < HOST_SLACK
        many_files = writer.run(f"rm /tmp/big; {MANY_FILES}", timeout=60)  # the watch stops it
        beside = going_on.result()
    assert one_file.disk_exceeded and "File size limit exceeded" in one_file.output
    assert many_files.disk_exceeded and not many_files.timed_out and many_files.duration < 30, many_files
    assert free - host_free(writer) < HOST_SLACK
    assert beside.output == "6\n" and beside.exit_code == 0 and not beside.disk_exceeded
    # past the budget every command is ended; the diff, the framework's own, still comes
    assert writer.run("sleep 30", timeout=60).disk_exceeded
    assert "+# edited" in writer.diff()
    # a writer left in the background is stopped too: bubblewrap ends it with its command, the engines' watch kills it
    started = neighbour.run(f"rm /tmp/n*; (setsid sh -c '{MANY_FILES}' >/dev/null 2>&1 &); echo started")
    assert started.output.startswith("started\n")
    time.sleep(2)  # no command runs now: time enough for a writer left alone to fill far past the budget
    assert free - host_free(writer) < HOST_SLACK
    with neighbour.disk.pause():  # else this command, run past the budget, may be killed before it answers
        assert neighbour.run("ps -eo args | grep -c '[h]ead -c'").output.startswith("0\n")


def test_an_episode_that_writes_past_the_budget_ends_with_disk_limit(calc_repo, swe_image):
    """Through the agent loop (srl_agent/agent.py): the observation's `disk_exceeded` ends the episode."""
    from srl_agent.sandbox import SandboxConfig, open_sandbox

    steps = [Step("Fill the disk.", ToolCall("bash", {"command": "head -c 64M /dev/zero > /tmp/big"})),
             Step("Never reached.", ToolCall("submit", {}))]
    expert = Trajectory("disk", "Fill the disk.", steps)
    with open_sandbox(SandboxConfig(image=swe_image, disk_mb=BUDGET_MB), kind="docker", repo=str(calc_repo)) as sb:
        run = run_agent(ReplayPolicy(expert), sb, expert.problem_statement, "disk")
    assert run.exit_status == "disk_limit" and len(run.trajectory.steps) == 1
    assert "File size limit exceeded" in run.trajectory.steps[0].observation
