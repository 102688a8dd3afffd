"""Sandbox speed against the plain `docker` CLI, measured in the same run.

1. Tool-call round trip of a trivial command: DockerSandbox.run (and a full `bash` tool call)
   against `docker exec CONTAINER bash -c ...` on the same container. Median and p95.
2. Container start-to-ready: DockerSandbox() until a command can run, against `docker run -d` plus
   a first `docker exec` with the same limits.
3. 8 concurrent sandboxes, each making 50 tool calls: failures and wall time.
Run: python benchmarks/sandbox_roundtrip.py [--calls 100] [--smoke]   (needs dockerd and `srl-agent env build swe`)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from _common import arg_parser, machine

from srl_agent.images import SWE_IMAGE
from srl_agent.run_call import execute
from srl_agent.sandbox import SandboxConfig
from srl_agent.sandbox.bwrap import BwrapSandbox
from srl_agent.sandbox.docker import DockerSandbox
from srl_agent.types import ToolCall


def timings(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    sandboxes, calls_each = (2, 5) if args.smoke else (8, 50)  # part 3
    if args.smoke:
        args.calls, args.starts = 5, 2
    config = SandboxConfig(image=SWE_IMAGE)
    print(f"machine: {machine()}")

    print(f"\n1. round trip of `echo hi`, {args.calls} calls (ms)")
    with DockerSandbox(config) as sb:
        cid = sb.container.id
        cli = timings(lambda: subprocess.run(["docker", "exec", "-u", "agent", "-w", "/testbed", cid, "bash", "-c",
                                              "echo hi"], capture_output=True, check=True), args.calls)
        ours = timings(lambda: sb.run("echo hi"), args.calls)
        tool = timings(lambda: execute(sb, ToolCall("bash", {"command": "echo hi"})), args.calls)
    with BwrapSandbox(config) as bw:
        bwrap = timings(lambda: bw.run("echo hi"), args.calls)
    base_med = summary(cli)[0]
    print(f"{'':44} {'median':>8} {'p95':>8} {'ratio':>7}")
    for name, values in (("plain `docker exec` CLI (baseline)", cli), ("DockerSandbox.run", ours),
                         ("bash tool call (srl_bash session)", tool), ("BwrapSandbox.run (reference)", bwrap)):
        med, p95 = summary(values)
        print(f"{name:44} {med * 1e3:8.1f} {p95 * 1e3:8.1f} {med / base_med:6.2f}x")

    print(f"\n2. start-to-ready, {args.starts} starts (ms)")

    def cli_start() -> None:
        cid = subprocess.run(["docker", "run", "-d", "--init", "--network", "none", "--cap-drop", "ALL",
                              "--pids-limit", "512", "--memory", "2g", "--label", "srl-agent-bench=1", SWE_IMAGE,
                              "sleep", "infinity"], capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["docker", "exec", cid, "true"], check=True)
        subprocess.Popen(["docker", "rm", "-f", cid], stdout=subprocess.DEVNULL)

    cli_starts = timings(cli_start, args.starts)
    ready_times = []
    for _ in range(args.starts):
        start = time.perf_counter()
        sb = DockerSandbox(config)
        sb.run("true")
        ready_times.append(time.perf_counter() - start)
        sb.close()
    for name, values in (("`docker run -d` + first `docker exec` (baseline)", cli_starts),
                         ("DockerSandbox() + first run", ready_times)):
        med, p95 = summary(values)
        print(f"{name:52} median {med * 1e3:7.0f}  p95 {p95 * 1e3:7.0f}")

    print(f"\n3. {sandboxes} concurrent sandboxes x {calls_each} tool calls")

    def worker(i: int) -> int:
        failures = 0
        with DockerSandbox(config) as sb:
            for k in range(calls_each):
                obs = execute(sb, ToolCall("bash", {"command": f"echo {i}-{k} && ls /testbed > /dev/null"}))
                failures += obs.exit_code != 0 or obs.output != f"{i}-{k}\n"
        return failures

    start = time.perf_counter()
    with ThreadPoolExecutor(sandboxes) as pool:
        failures = sum(pool.map(worker, range(sandboxes)))
    wall = time.perf_counter() - start
    calls = sandboxes * calls_each
    print(f"{calls} tool calls in {wall:.1f} s ({calls / wall:.0f} calls/s), failures: {failures}")
    subprocess.run("docker rm -f $(docker ps -aq --filter label=srl-agent-bench=1) >/dev/null 2>&1", shell=True)
    if failures:
        sys.exit(f"{failures} tool calls failed")


if __name__ == "__main__":
    sys.exit(main())
