"""`srl-agent eval --executor ray` on a real two-node Ray cluster (a head and a worker node started here)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from srl_agent.sandbox import LABEL

from .conftest import interactive_sigint

ROOT = Path(__file__).resolve().parents[1]
EXPERT = ROOT / "trajectories" / "swe-mini.jsonl"
RAY = Path(sys.executable).with_name("ray")
NODE = ["--num-cpus=1", "--object-store-memory=80000000", "--disable-usage-stats", "--block"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(*args: str, log: Path) -> subprocess.Popen:
    """One Ray node in its own process group, so the test can end exactly it."""
    with open(log, "w") as out:
        return subprocess.Popen([str(RAY), "start", *args, *NODE], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_node(node: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(node.pid, sig)
            node.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def ray_cluster(swe_mini_images, tmp_path_factory):
    """The address of a head node plus one worker node, each with one CPU; both stopped afterwards."""
    import ray

    logs = tmp_path_factory.mktemp("ray")
    address = f"127.0.0.1:{free_port()}"
    nodes = [start_node("--head", f"--port={address.split(':')[1]}", "--include-dashboard=false",
                        log=logs / "head.log")]
    try:
        deadline = time.monotonic() + 90
        while True:  # the worker node can join once the head's GCS answers
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", int(address.split(":")[1]))) == 0:
                    break
            assert time.monotonic() < deadline, (logs / "head.log").read_text()[-2000:]
            time.sleep(0.5)
        nodes.append(start_node(f"--address={address}", log=logs / "worker.log"))
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
        ray.shutdown()
        yield address, nodes
    finally:
        for node in reversed(nodes):
            stop_node(node)


class RaySandboxWatch:
    """Owners of the sandboxes Ray workers create, seen live (the engine keeps only its last events)."""

    def __init__(self, client):
        self.pids: set[int] = set()
        self.events = client.events(decode=True, filters={"type": "container", "event": "create", "label": LABEL})
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        for event in self.events:
            pid = int(event["Actor"]["Attributes"].get(f"{LABEL}.pid", "0") or 0)
            if is_ray_worker(pid):
                self.pids.add(pid)

    def left(self, client) -> list[str]:
        """Containers of those owners still on the engine."""
        self.events.close()
        return [c.name for pid in self.pids
                for c in client.containers.list(all=True, filters={"label": f"{LABEL}.pid={pid}"})]


def eval_args(tmp_path: Path, address: str, instances: list[str], run_id: str, *more: str) -> list[str]:
    return [sys.executable, "-m", "srl_agent.cli", "eval", "--bench", "swe-mini", "--model", f"replay:{EXPERT}",
            "--instances", *instances, "--executor", "ray", "--address", address, "--workers", "2",
            "--output-dir", str(tmp_path), "--run-id", run_id, *more]


def worker_pids(rows) -> set[int]:
    """The Ray worker processes that solved these rows (`worker` is host:pid)."""
    return {int(r["worker"].rsplit(":", 1)[1]) for r in rows if "worker" in r}


def is_ray_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:
        return False


def test_eval_fans_out_to_both_nodes_and_resumes(ray_cluster, swe_mini_images, tmp_path):
    address, _ = ray_cluster
    ids = [i["instance_id"] for i in swe_mini_images[:3]]
    proc = subprocess.run(eval_args(tmp_path, address, ids, "fan"), capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run = tmp_path / "fan"
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["instance_id"] for r in rows) == sorted(ids) and {r["status"] for r in rows} == {"submitted"}
    assert json.loads((run / "summary.json").read_text())["resolved"] == 3
    # the workers' runs came back with their rows: both trajectory formats, for every instance
    assert sorted(p.name for p in (run / "trajectories").iterdir()) == sorted(
        f"{i}{ext}" for i in ids for ext in (".json", ".traj"))
    # two workers at once, on two nodes of one CPU each: two different worker processes solved them
    assert len(worker_pids(rows)) == 2
    again = subprocess.run(eval_args(tmp_path, address, ids, "fan"), capture_output=True, text=True, timeout=600,
                           cwd=ROOT)
    assert again.returncode == 0 and "3 instances already have predictions; solving 0" in again.stderr
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 3


def test_a_worker_killed_mid_instance_is_retried_and_leaks_nothing(ray_cluster, swe_mini_images, tmp_path):
    import docker

    address, _ = ray_cluster
    client = docker.from_env()
    ids = [i["instance_id"] for i in swe_mini_images[3:5]]
    driver = subprocess.Popen(eval_args(tmp_path, address, ids, "kill", "--no-grade"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None:  # a Ray worker's sandbox, mid-instance
        assert time.monotonic() < deadline and driver.poll() is None, "no worker sandbox appeared"
        for container in client.api.containers(filters={"label": LABEL}):  # no inspect: others come and go
            pid = int(container["Labels"][f"{LABEL}.pid"])
            if is_ray_worker(pid):
                victim = pid
                break
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, out[-2000:] + err[-3000:]
    rows = {json.loads(line)["instance_id"]: json.loads(line)
            for line in (tmp_path / "kill" / "predictions.jsonl").read_text().splitlines()}
    assert sorted(rows) == sorted(ids)
    # retried on another worker (and solved), or recorded as an error: never lost
    assert all(r["status"] in ("submitted", "error") for r in rows.values())
    assert any(r["status"] == "submitted" for r in rows.values())
    # the killed worker's container was swept when its instance was retried; no worker left one either
    assert victim not in worker_pids(rows.values())
    left = [c.name for pid in {victim, *worker_pids(rows.values())}
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}.pid={pid}"})]
    assert not left


def test_a_ray_address_that_does_not_answer_is_one_clear_line(tmp_path):
    start = time.monotonic()
    proc = subprocess.run(eval_args(tmp_path, "127.0.0.1:9", ["swemini__configlite-1"], "none"), capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert time.monotonic() - start < 30  # seconds, not Ray's minutes of GCS retries (the CLI's imports included)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == ["error: no Ray cluster answers at 127.0.0.1:9 (start one with `ray start --head`, or check "
                      "the address)"], proc.stderr


def test_an_unreachable_cluster_fails_within_seconds(monkeypatch):
    import ray

    from srl_agent.errors import UserError
    from srl_agent.executor import connect_ray

    start = time.monotonic()
    with pytest.raises(UserError) as refused:
        connect_ray(f"127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 30 and "\n" not in str(refused.value)
    assert str(refused.value).startswith("no Ray cluster answers at 127.0.0.1:")
    # a loopback GCS that answers, where Ray would dial this machine's network address (here: another loopback
    # address, which nothing listens on): a locked-down host, as ray.init would meet it
    with socket.create_server(("127.0.0.1", 0)) as gcs:
        port = gcs.getsockname()[1]
        monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.2")
        start = time.monotonic()
        with pytest.raises(UserError) as unreachable:
            connect_ray(f"localhost:{port}")
    assert time.monotonic() - start < 30 and not ray.is_initialized()
    assert str(unreachable.value) == (
        f"Ray reaches localhost:{port} through this machine's network address 127.0.0.2:{port}, which does not "
        "answer (on one machine, leave out the address for a local cluster on 127.0.0.1)")


LOCAL_CLUSTER = textwrap.dedent("""
    import json, psutil, ray
    from srl_agent.executor import connect_ray

    connect_ray()
    try:
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]  # the driver and its cluster
        listening = {c.laddr.ip for p in processes for c in p.net_connections("inet") if c.status == "LISTEN"}
        print(json.dumps({"nodes": [n["NodeManagerAddress"] for n in ray.nodes()],
                          "gcs": ray.get_runtime_context().gcs_address, "listening": sorted(listening),
                          "task": ray.get(ray.remote(lambda: "ran").remote())}))
    finally:
        ray.shutdown()
""")


def test_a_local_cluster_binds_loopback_only(tmp_path):
    """Without an address the cluster is new and on 127.0.0.1: a host whose network address does not answer to
    itself can run it. (Its own process: the cluster goes with it.)"""
    # HOME: the token Ray makes for a new local cluster would turn on token auth for every later `ray start` here
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", LOCAL_CLUSTER], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["nodes"] == ["127.0.0.1"] and seen["gcs"].startswith("127.0.0.1:") and seen["task"] == "ran"
    assert seen["listening"] and set(seen["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}, seen


def test_ctrl_c_cancels_the_workers_removes_their_sandboxes_and_resumes(ray_cluster, swe_mini_images, tmp_path):
    import docker

    address, _ = ray_cluster
    client = docker.from_env()
    ids = [i["instance_id"] for i in swe_mini_images[9:11]]
    watch = RaySandboxWatch(client)
    args = eval_args(tmp_path, address, ids, "ctrl-c", "--no-grade")
    driver = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              preexec_fn=interactive_sigint)
    deadline = time.monotonic() + 120
    while not watch.pids:  # a worker's sandbox is up: its instance is mid-run
        assert time.monotonic() < deadline and driver.poll() is None, "no worker sandbox appeared"
        time.sleep(0.05)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, out[-2000:] + err[-3000:]
    assert not watch.left(client)  # the cancelled workers' sandboxes went with them
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "ctrl-c" / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["instance_id"] for r in rows) == sorted(ids) and {r["status"] for r in rows} == {"submitted"}


def test_a_node_dying_mid_run_loses_no_finished_prediction(ray_cluster, swe_mini_images, tmp_path):
    """Runs last: it stops the worker node. Its instances move to the head node; what was finished stays."""
    import docker

    address, nodes = ray_cluster
    client = docker.from_env()
    ids = [i["instance_id"] for i in swe_mini_images[5:9]]
    watch = RaySandboxWatch(client)
    driver = subprocess.Popen(eval_args(tmp_path, address, ids, "node", "--no-grade"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    predictions = tmp_path / "node" / "predictions.jsonl"
    deadline = time.monotonic() + 180
    while not (predictions.exists() and predictions.read_text().strip()):  # the first instance is finished
        assert time.monotonic() < deadline and driver.poll() is None, "no instance finished"
        time.sleep(0.1)
    first = predictions.read_text().splitlines()[0]
    stop_node(nodes[1])  # the worker node, with whatever it was running
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, out[-2000:] + err[-3000:]
    lines = predictions.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert lines[0] == first and sorted(r["instance_id"] for r in rows) == sorted(ids)
    assert all(r["status"] in ("submitted", "error") for r in rows)
    # no sandbox of any worker is left: the dead node's were swept by the tasks retried on the live one
    assert len(watch.pids) >= 2 and not watch.left(client)
