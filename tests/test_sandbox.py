"""Sandboxes with a real Docker engine and real bubblewrap: the protocol, the limits, the abuse cases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from srl_agent.run_call import execute
from srl_agent.sandbox import LABEL, SandboxConfig
from srl_agent.types import ToolCall

from .conftest import CALC, PODMAN_URL, SANDBOX_KINDS, interactive_sigint, sandboxes_of_kind


@pytest.fixture(params=[SANDBOX_KINDS[0], "podman", *SANDBOX_KINDS[1:]])
def sandbox_factory(request, swe_image):
    """The contract below holds for every kind: Docker, rootless Podman, bubblewrap."""
    yield from sandboxes_of_kind(request, swe_image)


def test_run_files_and_diff(sandbox_factory, calc_repo):
    with sandbox_factory(calc_repo) as sb:
        obs = sb.run("id -u; pwd; ls")
        assert obs.exit_code == 0 and not obs.timed_out
        uid, cwd, *files = obs.output.split()
        assert uid != "0", "commands must not run as root"
        assert cwd == "/testbed" and files == ["calc.py", "test_calc.py"]
        assert sb.run("exit 3").exit_code == 3
        assert sb.run("echo out; echo err >&2").output == "out\nerr\n"
        sb.write_file("/testbed/notes/new.txt", "hello\n")
        assert sb.read_file("/testbed/notes/new.txt") == b"hello\n"
        assert sb.read_file("/testbed/calc.py") == CALC["calc.py"].encode()
        with pytest.raises(FileNotFoundError):
            sb.read_file("/testbed/missing.txt")
        sb.run("sed -i 's/ + 1$//' calc.py")
        patch = sb.diff()
        assert "-    return sum(values) / len(values) + 1\n+    return sum(values) / len(values)\n" in patch
        assert "+++ b/notes/new.txt" in patch


def test_non_utf8_output_is_decoded_safely(sandbox_factory):
    with sandbox_factory() as sb:
        obs = sb.run(r"printf 'ok \xff\xfe end'")
        assert obs.output == "ok \ufffd\ufffd end"


def test_sleep_times_out_and_the_sandbox_stays_usable(sandbox_factory):
    with sandbox_factory() as sb:
        start = time.monotonic()
        obs = sb.run("sleep 1000", timeout=2)
        assert obs.timed_out and time.monotonic() - start < 8
        # background and setsid'ed children of a timed-out command are gone too
        obs = sb.run("(setsid sleep 1000 &); sleep 1000 & sleep 1000", timeout=2)
        assert obs.timed_out
        assert sb.run("echo still here").output == "still here\n"
        assert "sleep 1000" not in sb.run("ps -eo args").output


def test_output_flood_is_capped(sandbox_factory):
    with sandbox_factory(output_limit=50_000) as sb:
        start = time.monotonic()
        obs = sb.run("yes | head -c 200M", timeout=60)
        assert obs.truncated and not obs.timed_out and obs.exit_code == 0
        assert len(obs.output) < 50_200
        assert obs.output.endswith(f"[output truncated: {200 * 1024 * 1024 - 50_000} more bytes not shown]")
        assert time.monotonic() - start < 30


def test_network_is_off(sandbox_factory):
    with sandbox_factory() as sb:
        obs = sb.run("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\"", timeout=20)
        assert obs.exit_code != 0 and "Network is unreachable" in obs.output


def test_memory_hog_is_killed_and_the_host_is_fine(sandbox_factory):
    with sandbox_factory(memory="256m") as sb:
        obs = sb.run("python3 -c 'x = bytearray(1024 ** 3); print(len(x))'", timeout=60)
        assert obs.exit_code != 0 and "1073741824" not in obs.output
        assert sb.run("echo alive").output == "alive\n"


def test_fork_bomb_is_contained(sandbox_factory):
    first = sandbox_factory(pids=64)
    second = sandbox_factory()
    obs = first.run(":(){ :|:& };:", timeout=5)
    assert obs.exit_code is not None
    # the host and a second sandbox are unaffected
    assert subprocess.run(["echo", "host"], capture_output=True, text=True, timeout=10).stdout == "host\n"
    assert second.run("echo second").output == "second\n"
    # the bombed sandbox recovers once the bomb has burnt out against its pid limit
    deadline = time.monotonic() + 30
    while first.run("echo ok", timeout=5).output != "ok\n":
        assert time.monotonic() < deadline, "the sandbox did not recover from the fork bomb"
        time.sleep(1)


def test_no_way_out_through_mounts(sandbox_factory, tmp_path):
    """The host's files and engine sockets are not in the sandbox, and it cannot mount anything to reach them."""
    marker = tmp_path / "host-only"
    marker.write_text("host\n")
    with sandbox_factory() as sb:
        assert sb.run(f"cat {marker}").exit_code != 0
        for socket_path in ("/var/run/docker.sock", "/run/podman/podman.sock", "/run/srl-podman/podman.sock"):
            assert sb.run(f"test -e {socket_path}").exit_code != 0, socket_path
        obs = sb.run("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m || mount --bind / /tmp/m")
        assert obs.exit_code != 0 and "/tmp/m" not in sb.run("cat /proc/mounts").output


def test_tools_run_with_their_semantics(sandbox_factory, calc_repo):
    with sandbox_factory(calc_repo) as sb:
        def call(name, **args):
            return execute(sb, ToolCall(name, args)).output

        view = call("str_replace_editor", command="view", path="/testbed/calc.py", view_range=[4, 6])
        assert view == ("Here's the result of running `cat -n` on /testbed/calc.py:\n"
                        "     4\t\n     5\tdef mean(values):\n     6\t    return sum(values) / len(values) + 1\n")
        assert "/testbed/test_calc.py" in call("str_replace_editor", command="view", path="/testbed")
        assert "did not appear verbatim" in call("str_replace_editor", command="str_replace", path="/testbed/calc.py",
                                                 old_str="nope", new_str="x")
        assert "Multiple occurrences" in call("str_replace_editor", command="str_replace", path="/testbed/calc.py",
                                              old_str="return", new_str="x")
        edited = call("str_replace_editor", command="str_replace", path="/testbed/calc.py",
                      old_str="len(values) + 1", new_str="len(values)")
        assert "has been edited" in edited and "return sum(values) / len(values)\n" in edited
        call("str_replace_editor", command="insert", path="/testbed/calc.py", insert_line=0, new_str="import math")
        assert sb.read_file("/testbed/calc.py").decode().startswith("import math\ndef divide")
        assert "undone successfully" in call("str_replace_editor", command="undo_edit", path="/testbed/calc.py")
        assert sb.read_file("/testbed/calc.py").decode().startswith("def divide")
        assert "already exists" in call("str_replace_editor", command="create", path="/testbed/calc.py", file_text="")
        assert "not an absolute path" in call("str_replace_editor", command="view", path="calc.py")
        # bash keeps its working directory between calls, as SWE-agent's shell does
        assert call("bash", command="mkdir -p pkg && cd pkg && pwd") == "/testbed/pkg\n"
        assert call("bash", command="pwd") == "/testbed/pkg\n"
        assert "2 passed" in call("bash", command="cd /testbed && python3 -m pytest -q test_calc.py 2>&1 | tail -1")
        patch = call("submit")
        assert patch.startswith("diff --git a/calc.py b/calc.py") and "+    return sum(values) / len(values)" in patch


def test_large_arguments_travel_through_a_file(sandbox_factory):
    with sandbox_factory() as sb:
        text = "x = '" + "a" * 300_000 + "'\n"
        assert "created successfully" in execute(sb, ToolCall("str_replace_editor", {
            "command": "create", "path": "/testbed/big.py", "file_text": text})).output
        assert sb.read_file("/testbed/big.py").decode() == text
        assert execute(sb, ToolCall("bash", {"command": f"echo {'b' * 200_000} | wc -c"})).output == "200001\n"


def test_fixture_expert_actions_execute_as_they_are(sandbox_factory, all_trajectories):
    """SWE-smith's recorded command lines run unchanged with our str_replace_editor."""
    traj = all_trajectories["pydantic__pydantic.acb0f10f.pr_8316"]
    create = traj.steps[2].action
    with sandbox_factory() as sb:
        sb.run("mkdir -p /testbed")
        obs = sb.run(create.raw)
        assert obs.output.strip() == traj.steps[2].observation.strip() == "File created successfully at: " \
                                                                          "/testbed/reproduce_error.py"
        assert sb.read_file("/testbed/reproduce_error.py").decode() == create.arguments["file_text"]
        view = sb.run("str_replace_editor view /testbed/reproduce_error.py  --view_range 1 3")
        assert view.output.splitlines()[1] == "     1\tfrom pydantic.alias_generators import to_snake, to_camel"


def test_bwrap_is_unprivileged_on_the_host_too(calc_repo):
    """Run as root, the command is no one on the host: no capabilities, no user namespace to gain some, files owned
    by an unprivileged id, and nothing writable but its own tree."""
    from srl_agent.sandbox import open_sandbox

    with open_sandbox(SandboxConfig(), kind="bwrap", repo=str(calc_repo)) as sb:
        status = dict(line.split(":\t") for line in sb.run("cat /proc/self/status").output.splitlines())
        assert status["CapEff"] == status["CapBnd"] == "0000000000000000" and status["NoNewPrivs"] == "1"
        assert sb.run("id -u").output.strip() != "0"
        assert sb.run("unshare --user true").exit_code != 0
        # its own tree: writable, and what it makes there belongs to an unprivileged id on the host
        assert sb.run("echo more >> calc.py && mkdir made && echo x > made/here && echo x > /tmp/here").exit_code == 0
        assert 0 not in {p.stat().st_uid for p in (sb.work / "made", sb.work / "made" / "here", sb.tmp / "here")}
        sb.write_file("/testbed/notes/new.txt", "a\n")  # what the host writes in stays the sandbox's to change
        assert sb.run("echo b >> notes/new.txt && mkdir notes/sub").exit_code == 0
        # the host's files it sees are read-only; what it writes elsewhere lands in its own namespace, not the host
        for path in ("/etc/passwd", "/usr/bin/made-here", "/opt/srl-tools/bin/made-here", "/proc/sys/kernel/hostname"):
            assert sb.run(f"echo x >> {path}").exit_code != 0, path
        for path in ("/root/made-here", "/etc/made-here", "/made-here"):
            sb.run(f"mkdir -p {os.path.dirname(path)}; echo x > {path}")
            assert not os.path.exists(path), path


# --- container engines: Docker and rootless Podman (the same contract) ------------------------------

@pytest.fixture(params=["docker", "podman"])
def engine(request, swe_image):
    """(sandbox kind, engine URL, a client of that engine) for each container engine."""
    import docker

    if request.param == "docker":
        return "docker", None, docker.from_env()
    request.getfixturevalue("podman_image")
    return "podman", PODMAN_URL, docker.DockerClient(base_url=PODMAN_URL)


def test_container_hardening(engine, swe_image):
    from srl_agent.sandbox import open_sandbox

    kind, url, client = engine
    config = SandboxConfig(image=swe_image, engine=url, memory="512m", pids=100, cpus=1.0)
    with open_sandbox(config, kind=kind) as sb:
        attrs = client.api.inspect_container(sb.container.id)
        host = attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and "no-new-privileges" in host["SecurityOpt"]
        assert not attrs["Mounts"] and not host["Binds"]
        assert attrs["Config"]["Labels"][LABEL] == "1"
        assert attrs["Config"]["Labels"][f"{LABEL}.pid"] == str(os.getpid())
        # what a command sees: no capabilities at all, no way to gain any, no network device but lo
        status = dict(line.split(":\t") for line in sb.run("cat /proc/self/status").output.splitlines())
        assert status["CapEff"] == status["CapBnd"] == "0000000000000000" and status["NoNewPrivs"] == "1"
        assert sb.run("ls /sys/class/net").output.split() == ["lo"]
        assert sb.run("id -un").output == "agent\n"
        if sb.limits_in_commands:  # rootless Podman on cgroups v1: the limits come as ulimits
            assert sb.run("ulimit -u; ulimit -v").output.split() == ["100", str(512 * 1024)]
            assert "not permitted" in sb.run("ulimit -u 1000").output
        else:
            assert host["Memory"] == 512 * 1024 ** 2 and host["PidsLimit"] == 100 and host["NanoCpus"] == 10 ** 9
        container_id = sb.container.id
    assert not _exists(client, container_id)


def test_missing_image_is_a_clear_error(engine):
    from srl_agent.errors import UserError
    from srl_agent.sandbox import open_sandbox

    kind, url, _ = engine
    with pytest.raises(UserError, match=r"srl-agent/no-such-image:1' is not .*and cannot be pulled"):
        open_sandbox(SandboxConfig(image="srl-agent/no-such-image:1", engine=url), kind=kind)


def test_the_start_probe_is_asked_again_when_its_output_is_lost(swe_image):
    """Under load an exec's output has come back empty: the start probe is asked up to 3 times, then the start
    fails with one line and the container is removed."""
    from srl_agent.sandbox import Observation
    from srl_agent.sandbox.docker import DockerSandbox, docker_client

    class LossyProbe(DockerSandbox):
        """Loses the output of the first `lost` probes (the only root execs), as a loaded engine did."""

        lost, probes, names = 0, 0, []

        def _exec(self, argv, user, timeout, env=None, workdir="/"):
            observation = super()._exec(argv, user, timeout, env, workdir)
            if user != "root":
                return observation
            LossyProbe.probes += 1
            LossyProbe.names.append(self.name)
            if LossyProbe.probes > LossyProbe.lost:
                return observation
            return Observation("", observation.exit_code)

    LossyProbe.lost = 2
    with LossyProbe(SandboxConfig(image=swe_image)) as sb:
        assert LossyProbe.probes == 3 and sb.run("id -un").output == "agent\n"
    LossyProbe.lost, LossyProbe.probes, LossyProbe.names = 3, 0, []
    with pytest.raises(RuntimeError, match=r"^cannot find the container's keeper process: ''$"):
        LossyProbe(SandboxConfig(image=swe_image))
    assert LossyProbe.probes == 3 and len(set(LossyProbe.names)) == 1
    client = docker_client()
    try:
        assert not _exists(client, LossyProbe.names[0])
    finally:
        client.close()


def test_missing_podman_socket_is_one_clear_line(tmp_path):
    from srl_agent.errors import UserError
    from srl_agent.sandbox import open_sandbox

    missing = tmp_path / "podman.sock"
    with pytest.raises(UserError, match=f"no Podman socket at {missing}: start it with `podman system service"):
        open_sandbox(SandboxConfig(engine=f"unix://{missing}"), kind="podman")


RUNNER = textwrap.dedent("""
    import sys, time
    from srl_agent.sandbox import SandboxConfig, open_sandbox
    sb = open_sandbox(SandboxConfig(image=sys.argv[1], engine=sys.argv[3] or None), kind=sys.argv[2])
    print(sb.container.id, flush=True)
    time.sleep(600)
""")


def _exists(client, container_id: str) -> bool:
    import docker

    try:
        client.containers.get(container_id)
        return True
    except docker.errors.NotFound:
        return False


def _runner(engine, image: str, code: str = RUNNER) -> tuple[subprocess.Popen, str]:
    kind, url, _ = engine
    proc = subprocess.Popen([sys.executable, "-c", code, image, kind, url or ""], stdout=subprocess.PIPE, text=True,
                            preexec_fn=interactive_sigint)
    return proc, proc.stdout.readline().strip()


def test_killed_runner_leaves_a_container_that_the_next_start_sweeps(engine, swe_image):
    kind, url, client = engine
    proc, container_id = _runner(engine, swe_image)
    assert container_id and _exists(client, container_id)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _exists(client, container_id), "kill -9 gives no chance to clean up; the container is still there"
    # a Docker sandbox first: a process that already swept one engine still sweeps the next one it uses
    starter = subprocess.run([sys.executable, "-c", "from srl_agent.sandbox import SandboxConfig, open_sandbox\n"
                              f"open_sandbox(SandboxConfig(image={swe_image!r}), kind='docker').close()\n"
                              f"open_sandbox(SandboxConfig(image={swe_image!r}, engine={url!r}), kind={kind!r})"
                              ".close()"], timeout=120)
    assert starter.returncode == 0
    assert not _exists(client, container_id)


def test_sigterm_and_ctrl_c_remove_the_container(engine, swe_image):
    _, _, client = engine
    for sig in (signal.SIGINT, signal.SIGTERM):
        code = RUNNER.replace("time.sleep(600)", "import signal\nsignal.signal(signal.SIGTERM, "
                              "lambda *_: sys.exit(143))\ntime.sleep(600)")
        proc, container_id = _runner(engine, swe_image, code)
        assert _exists(client, container_id)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert not _exists(client, container_id), f"container left after {sig.name}"


def test_an_image_without_our_tools_gets_them_copied_in(swe_image):
    """SWE-bench's images lack our tools (and the agent user): they are installed at start, first on PATH."""
    from srl_agent.images import build_offline_base
    from srl_agent.sandbox import SandboxConfig, open_sandbox
    from srl_agent.sandbox.docker import docker_client

    base = build_offline_base(docker_client())  # the bare debootstrap image the swe image is built on
    with open_sandbox(SandboxConfig(image=base), kind="docker") as sb:
        obs = sb.run("command -v submit str_replace_editor && stat -c %U /opt/srl-tools/bin/submit")
    assert obs.exit_code == 0, obs.output
    assert obs.output.split() == ["/opt/srl-tools/bin/submit", "/opt/srl-tools/bin/str_replace_editor", "root"]


def test_a_swebench_style_image_runs_commands_in_its_testbed_env(swe_image):
    """SWE-bench's images keep the repository's dependencies in a conda env the harness activates."""
    import io
    import uuid

    from srl_agent.images import build_offline_base
    from srl_agent.sandbox import SandboxConfig, open_sandbox
    from srl_agent.sandbox.docker import docker_client

    client = docker_client()
    env_bin = "/opt/miniconda3/envs/testbed/bin"
    dockerfile = (f"FROM {build_offline_base(client)}\n"
                  f"RUN mkdir -p {env_bin} && printf '#!/bin/sh\\necho testbed python\\n' > {env_bin}/python "
                  f"&& chmod +x {env_bin}/python\n")
    tag = f"srl-agent/test-conda-env:{uuid.uuid4().hex[:8]}"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    try:
        with open_sandbox(SandboxConfig(image=image.tags[0]), kind="docker") as sb:
            obs = sb.run("python; echo $CONDA_DEFAULT_ENV; command -v submit")
        assert obs.exit_code == 0, obs.output
        assert obs.output.splitlines() == ["testbed python", "testbed", "/opt/srl-tools/bin/submit"]
    finally:
        client.images.remove(image.id, force=True)
