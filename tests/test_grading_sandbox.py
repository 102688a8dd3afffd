"""Hardened grading (`srl-agent eval --grading sandbox`, the default): the official harness's verdicts, and patches
whose tests attack the grader harm nothing. Real containers, the real harness, swe-mini's and the factory's images.

The full comparison (every swe-mini task and a factory set, gold, no-op and broken patches) is
benchmarks/grading_agreement.py; here two swe-mini tasks and two factory tasks, one gold and one no-op patch each.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from srl_agent.jsonio import read_jsonl, write_jsonl
from srl_agent.sandbox import LABEL, SandboxConfig

ROOT = Path(__file__).resolve().parents[1]


def test_sandbox_grading_gives_the_harness_verdicts_on_swe_mini_and_factory_tasks(swe_mini_images, tmp_path,
                                                                                 benchmark_module):
    agreement = benchmark_module("grading_agreement")
    factory = [json.loads(line) for line in agreement.factory_set(tmp_path / "factory", 2).read_text().splitlines()]
    instances = [*swe_mini_images[:2], *factory[:2]]
    bench = tmp_path / "bench.jsonl"  # one benchmark file of both kinds: one grading run per path
    write_jsonl(bench, instances)
    patches = {i["instance_id"]: (i["patch"] if k % 2 == 0 else agreement.NOOP) for k, i in enumerate(instances)}
    sandbox, _ = agreement.graded(str(bench), instances, patches, "sandbox", tmp_path / "sandbox", workers=2)
    harness, _ = agreement.graded(str(bench), instances, patches, "harness", tmp_path / "harness", workers=2)
    assert agreement.disagreements(sandbox, harness) == {}
    assert {i: v["resolved"] for i, v in sandbox.items()} == {i["instance_id"]: k % 2 == 0
                                                              for k, i in enumerate(instances)}
    noop = sandbox[instances[1]["instance_id"]]  # applied, graded, and its FAIL_TO_PASS tests still fail
    assert noop["patch_applied"] and noop["tests_status"]["FAIL_TO_PASS"]["failure"] == \
        json.loads(instances[1]["FAIL_TO_PASS"])
    # the harness's log layout, written by the sandbox path: run_instance.log, the test output, report.json
    logs = tmp_path / "sandbox" / "logs" / "run_evaluation" / "sandbox" / "patches" / instances[0]["instance_id"]
    assert {"run_instance.log", "test_output.txt", "report.json", "eval.sh", "patch.diff"} <= \
        {p.name for p in logs.iterdir()}
    assert "network off" in (logs / "run_instance.log").read_text()


# --- patches whose tests attack the grader ---------------------------------------------------------------------

def host_address() -> str:
    """This machine's own non-loopback address, where a listener on 0.0.0.0 answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the route, sends nothing
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def with_conftest(instance: dict, conftest: str) -> str:
    """The gold patch plus a new conftest.py at the repository's root, which pytest runs before any test."""
    lines = conftest.splitlines()
    return (instance["patch"] + "diff --git a/conftest.py b/conftest.py\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/conftest.py\n@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines))


def process_count() -> int:
    return sum(name.isdigit() for name in os.listdir("/proc"))


def grade_attacks(instances: list[dict], attacks: dict[str, str], run_dir: Path, timeout: int) -> tuple[dict, dict]:
    """Grade each instance's gold patch plus its attack (`attacks`, by the instances' order) by the default grading:
    ({attack: results.jsonl row}, {attack: test output})."""
    from srl_agent.bench.eval import EvalConfig, import_predictions, run_eval

    kind_of = {i["instance_id"]: kind for i, kind in zip(instances, attacks, strict=True)}
    import_predictions([{"instance_id": i["instance_id"], "model_name_or_path": "attacker", "status": "imported",
                         "model_patch": with_conftest(i, attacks[kind_of[i["instance_id"]]])} for i in instances],
                       instances, run_dir)
    cfg = EvalConfig(bench="swe-mini", model="attacker", instances=list(kind_of), workers=2, grade_timeout=timeout)
    run_eval(cfg, None, instances, run_dir, log=lambda message: None)
    logs = run_dir / "logs" / "run_evaluation" / run_dir.name / "attacker"
    return ({kind_of[row["instance_id"]]: row for _, row in read_jsonl(run_dir / "results.jsonl")},
            {kind: (logs / i / "test_output.txt").read_text() for i, kind in kind_of.items()})


def test_patches_whose_tests_open_a_socket_or_write_outside_resolve_nothing(swe_mini_images, tmp_path):
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.1)
    port, address = server.getsockname()[1], host_address()
    escape = Path(f"/srl-grading-escape-{uuid.uuid4().hex[:8]}")
    attacks = {  # each must succeed for its tests to pass: the gold patch resolves the task otherwise
        "socket": f"import socket\nsocket.create_connection(({address!r}, {port}), timeout=5).sendall(b'escaped')\n",
        "write": f"open({str(escape)!r}, 'w').write('escaped')\n",
    }
    try:
        results, output = grade_attacks(swe_mini_images[:2], attacks, tmp_path / "attacks", timeout=120)
        connections = []
        with contextlib.suppress(OSError):  # a connection that reached the listener waits in its backlog
            connections.append(server.accept()[0].recv(100))
    finally:
        server.close()
    # the patch applied; its conftest failed before any test ran, so swebench finds no valid test results
    assert {kind: (row["resolved"], row["patch_applied"], row["category"]) for kind, row in results.items()} == \
        {kind: (False, True, "no_test_results") for kind in attacks}
    # the socket: no route out of the sandbox, and nothing reached the host's listener
    assert "Network is unreachable" in output["socket"] and connections == []
    # the write outside the repository: refused (a non-root user without capabilities), no such file on the host
    assert "PermissionError" in output["write"] and not escape.exists()


def test_a_fork_bomb_in_the_tests_resolves_nothing_and_the_host_keeps_answering(swe_mini_images, tmp_path):
    from srl_agent.sandbox.docker import docker_client

    latencies, processes = [], []
    grading = threading.Event()

    def watch_host() -> None:  # while grading: how fast the host starts a process, and how many it runs
        while not grading.wait(0.2):
            start = time.monotonic()
            subprocess.run(["true"], check=True)
            latencies.append(time.monotonic() - start)
            processes.append(process_count())

    before = process_count()
    watcher = threading.Thread(target=watch_host, daemon=True)
    watcher.start()
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    try:
        results, output = grade_attacks(swe_mini_images[:1], {"fork": bomb}, tmp_path / "fork", timeout=8)
    finally:
        grading.set()
        watcher.join(10)
    # held by the pid limit until the grading timeout killed it
    assert (results["fork"]["resolved"], results["fork"]["category"]) == (False, "test_timeout")
    assert "Timeout error: 8 seconds exceeded" in output["fork"]
    assert max(processes) - before < SandboxConfig().pids + 200, (before, max(processes))
    assert max(latencies) < 5, max(latencies)
    # and the grading sandbox is gone
    assert docker_client().containers.list(all=True, filters={"label": f"{LABEL}.pid={os.getpid()}"}) == []


def test_grading_network_is_for_the_sandbox_path(capsys):
    from tests.conftest import cli_error

    line = cli_error(capsys, "eval", "--bench", "swe-mini", "--model", "gold", "--grading", "harness",
                     "--grading-network")
    assert line == "error: --grading-network is for --grading sandbox; the harness's containers always have the network"


@pytest.mark.parametrize("missing", ["eval_script", "log_parser"])
def test_an_instance_without_what_grading_needs_is_one_clear_line(missing):
    from srl_agent.errors import UserError
    from srl_agent.testbed.grading import instance_test_spec

    instance = json.loads((ROOT / "envs" / "swe-mini" / "instances.jsonl").read_text().splitlines()[0])
    del instance[missing]
    with pytest.raises(UserError, match=f"instance {instance['instance_id']}: no '{missing}'"):
        instance_test_spec(instance)
