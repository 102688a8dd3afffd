"""Load that holds: K sandboxes started at once, each an episode of mixed tool calls.

For each K: K threads each open a sandbox (start-up throttled by the engine module's start slots), run
`--calls` tool calls (bash, the editor's view/create/str_replace, python, git) and check every output,
then close it. An episode fails when any call raises or answers wrongly. After each K the engine is
asked for containers this process still owns: the leaks. Reported per K: failed episodes, leaked
containers, calls/s over the whole wave (start-up included), p50/p99 call latency and start-to-ready,
and engine calls retried after transient errors. K = 1 first is the baseline the latencies are set against.

Run: python benchmarks/sandbox_load.py [--k 16 32 64] [--calls 20] [--sandbox docker|podman] [--engine URL] [--smoke]
(needs the engine and `srl-agent env build swe`; for podman `srl-agent env copy swe --to podman`)
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from _common import arg_parser, machine

from srl_agent.images import SWE_IMAGE
from srl_agent.run_call import execute
from srl_agent.sandbox import LABEL, SandboxConfig, container_engine, open_sandbox
from srl_agent.types import ToolCall


def mix(i: int) -> list[tuple[ToolCall, str]]:
    """One round of the call mix, with the text each output must contain."""
    path = f"/testbed/mod{i}.py"
    return [
        (ToolCall("bash", {"command": f"echo round {i} && ls /testbed >/dev/null"}), f"round {i}"),
        (ToolCall("str_replace_editor", {"command": "create", "path": path, "file_text": f"X = {i}\n"}),
         "created successfully"),
        (ToolCall("str_replace_editor", {"command": "str_replace", "path": path, "old_str": f"X = {i}",
                                         "new_str": f"X = {i + 1}"}), "has been edited"),
        (ToolCall("str_replace_editor", {"command": "view", "path": path}), f"X = {i + 1}"),
        (ToolCall("bash", {"command": f"cd /testbed && python3 -c 'import mod{i}; print(mod{i}.X * 2)'"}),
         str(2 * (i + 1))),
        (ToolCall("bash", {"command": "cd /testbed && git status --short | wc -l"}), ""),
    ]


def episode(config: SandboxConfig, kind: str, calls: int, latencies: list, starts: list) -> bool:
    """One sandbox's life; True when every call answered as it should."""
    script = [step for i in range(calls) for step in mix(i)][:calls]
    try:
        begin = time.perf_counter()
        with open_sandbox(config, kind=kind) as sb:
            sb.run("git init -q /testbed")
            starts.append(time.perf_counter() - begin)
            for call, expected in script:
                start = time.perf_counter()
                obs = execute(sb, call)
                latencies.append(time.perf_counter() - start)
                if obs.timed_out or expected not in obs.output:
                    print(f"  wrong answer to {call.name}: {obs.output[:200]!r}", file=sys.stderr)
                    return False
        return True
    except Exception as e:  # a failed episode, counted; the wave goes on
        print(f"  episode failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
        return False


def owned_containers(client) -> int:
    return len(client.containers.list(all=True, filters={"label": f"{LABEL}.pid={os.getpid()}"}))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def wave(k: int, config: SandboxConfig, kind: str, calls: int, client) -> dict:
    latencies: list[float] = []
    starts: list[float] = []
    retries_before = container_engine.RETRIED[0]
    begin = time.perf_counter()
    with ThreadPoolExecutor(k) as pool:
        results = list(pool.map(lambda _: episode(config, kind, calls, latencies, starts), range(k)))
    wall = time.perf_counter() - begin
    return {"k": k, "failed": results.count(False), "leaked": owned_containers(client), "wall": wall,
            "calls_per_s": len(latencies) / wall, "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": percentile(latencies, 0.99), "start_p50": statistics.median(starts) if starts else float("nan"),
            "start_p99": percentile(starts, 0.99), "retried": container_engine.RETRIED[0] - retries_before}


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--k", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--calls", type=int, default=20, help="tool calls per episode")
    parser.add_argument("--sandbox", default="docker", choices=["docker", "podman"])
    parser.add_argument("--engine", help="engine URL (default: the local Docker, or Podman's socket)")
    args = parser.parse_args()
    if args.smoke:  # one round of the call mix, in 1 and then 2 sandboxes
        args.k, args.calls = [2], len(mix(0))
    config = SandboxConfig(image=SWE_IMAGE, engine=args.engine, memory="512m", pids=256)
    client = (container_engine.podman_client if args.sandbox == "podman"
              else container_engine.engine_client)(args.engine)
    print(f"machine: {machine()}; engine: {args.sandbox} {args.engine or ''}; "
          f"start slots {container_engine.START_SLOT_COUNT}; "
          f"{threading.active_count()} threads before")
    print(f"{'K':>4} {'failed':>7} {'leaked':>7} {'wall s':>7} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'vs K=1':>7} {'start p50':>10} {'start p99':>10} {'retried':>8}")
    baseline, broken = None, []
    for k in [1, *args.k]:
        row = wave(k, config, args.sandbox, args.calls, client)
        if row["failed"] or row["leaked"]:
            broken.append(f"K={k}: {row['failed']} failed, {row['leaked']} leaked")
        baseline = baseline or row["p50"]
        print(f"{row['k']:>4} {row['failed']:>7} {row['leaked']:>7} {row['wall']:>7.1f} {row['calls_per_s']:>8.1f} "
              f"{row['p50'] * 1e3:>8.0f} {row['p99'] * 1e3:>8.0f} {row['p50'] / baseline:>6.1f}x "
              f"{row['start_p50'] * 1e3:>10.0f} {row['start_p99'] * 1e3:>10.0f} {row['retried']:>8}", flush=True)
    if broken:  # the target is zero of both
        sys.exit("; ".join(broken))


if __name__ == "__main__":
    sys.exit(main())
