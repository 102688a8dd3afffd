"""Hardened grading against the official harness: the same verdicts on every gold, no-op and broken patch.

Every swe-mini task and a task-factory set (`srl-agent tasks synthesize` on a small repository made here) is
graded three times over (the gold patch; a no-op patch, which adds a file nothing reads; a patch that does not
apply), once by `--grading sandbox` (testbed/grading.py) and once by `--grading harness` (the official
`swebench.harness.run_evaluation`). The two must agree on every verdict field (resolved, patch applied, outcome,
and each test's status); gold must resolve and the others must not. It also reports each path's seconds.

Run: python benchmarks/grading_agreement.py [--workers 2] [--factory-tasks 6] [--out runs/grading-agreement]
[--smoke] (needs dockerd and `srl-agent env build swe-mini`). Writes benchmarks/grading_agreement.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _common import arg_parser, machine, output_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' sample package
from srl_agent.bench.eval import EvalConfig, import_predictions, load_instances, run_eval
from srl_agent.jsonio import read_jsonl
from tests.sample_repo import OPS, TESTS, make_repo

RESULT = Path(__file__).with_suffix(".json")
NOOP = "diff --git a/srl_noop.txt b/srl_noop.txt\nnew file mode 100644\n--- /dev/null\n+++ b/srl_noop.txt\n" \
       "@@ -0,0 +1 @@\n+nothing reads this\n"
BROKEN = "diff --git a/srl_missing.py b/srl_missing.py\n--- a/srl_missing.py\n+++ b/srl_missing.py\n" \
         "@@ -1 +1 @@\n-x = 1\n+x = 2\n"
PATCHES = {"gold": lambda instance: instance["patch"], "noop": lambda instance: NOOP,
           "broken": lambda instance: BROKEN}
VERDICT_FIELDS = ("resolved", "patch_applied", "category", "tests_status")

def factory_set(root: Path, tasks: int) -> Path:
    """`srl-agent tasks synthesize` (no expert) on a small repository, then `env build`; its instances file."""
    from srl_agent.cli import main

    repo = make_repo(root / "calc", {"calc/__init__.py": "", "calc/ops.py": OPS, "tests/test_ops.py": TESTS})
    out = root / "tasks"
    if main(["tasks", "synthesize", "--repo", str(repo), "--out", str(out), "--max-tasks", str(tasks),
             "--seed", "0", "--no-expert"]) != 0 or main(["env", "build", "--instances", str(out / "instances.jsonl")]):
        raise SystemExit("tasks synthesize or env build failed")
    return out / "instances.jsonl"


def graded(bench: str, instances: list[dict], patches: dict[str, str], grading: str, run_dir: Path, workers: int,
           timeout: int = 300) -> tuple[dict[str, dict], float]:
    """{instance_id: verdict} of `patches` ({instance_id: patch}) on `instances` (of `bench`, a name or file for
    `srl-agent eval --bench`) graded by `grading`, and the seconds the grading took."""
    model = "patches"
    import_predictions([{"instance_id": i, "model_name_or_path": model, "model_patch": patch, "status": "imported"}
                        for i, patch in patches.items()], instances, run_dir)
    cfg = EvalConfig(bench=bench, model=model, instances=[i["instance_id"] for i in instances], workers=workers,
                     grading=grading, grade_timeout=timeout)
    start = time.perf_counter()
    run_eval(cfg, None, instances, run_dir, log=lambda message: None)
    seconds = time.perf_counter() - start
    rows = [row for _, row in read_jsonl(run_dir / "results.jsonl")]
    return {row["instance_id"]: {k: row.get(k) for k in VERDICT_FIELDS} for row in rows}, seconds


def disagreements(sandbox: dict[str, dict], harness: dict[str, dict]) -> dict[str, dict]:
    """The instances whose verdicts differ between the two gradings."""
    return {i: {"sandbox": sandbox.get(i), "harness": harness.get(i)} for i in sandbox.keys() | harness.keys()
            if sandbox.get(i) != harness.get(i)}


def compare(bench: str, instances: list[dict], root: Path, workers: int, kinds=tuple(PATCHES)) -> dict:
    """Both gradings of every kind of patch on `instances`: agreement, expectations, disagreements and seconds."""
    out = {"instances": len(instances), "kinds": {}}
    for kind in kinds:
        patches = {i["instance_id"]: PATCHES[kind](i) for i in instances}
        (sandbox, sandbox_s), (harness, harness_s) = (
            graded(bench, instances, patches, grading, root / f"{kind}-{grading}", workers)
            for grading in ("sandbox", "harness"))
        differ = disagreements(sandbox, harness)
        expected = all(v["resolved"] == (kind == "gold") for v in (*sandbox.values(), *harness.values()))
        out["kinds"][kind] = {"agree": not differ, "as_expected": expected,
                              "resolved": sum(v["resolved"] for v in sandbox.values()),
                              "outcomes": sorted({v["category"] for v in sandbox.values()}),
                              "sandbox_s": round(sandbox_s, 1), "harness_s": round(harness_s, 1),
                              "disagreements": differ}
    return out


def main() -> None:
    parser = arg_parser(__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--factory-tasks", type=int, default=6)
    parser.add_argument("--out", help="run folders (default: a temp dir)")
    args = parser.parse_args()
    import tempfile

    with output_dir(args.out, args.smoke) as out, tempfile.TemporaryDirectory(prefix="srl-grading-") as tmp:
        root = Path(out or tmp)
        swe_mini = load_instances(EvalConfig(bench="swe-mini"))
        sets = {"swe-mini": ("swe-mini", swe_mini[:1] if args.smoke else swe_mini)}
        if not args.smoke:
            factory = str(factory_set(root / "factory", args.factory_tasks))
            sets["factory"] = (factory, load_instances(EvalConfig(bench=factory)))
        result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "workers": args.workers}
        for name, (bench, instances) in sets.items():
            result[name] = compare(bench, instances, root / name, args.workers, ("gold",) if args.smoke else PATCHES)
            for kind, row in result[name]["kinds"].items():
                print(f"{name:9s} {kind:7s} {len(instances):3d} instances: agree {row['agree']}, as expected "
                      f"{row['as_expected']}, resolved {row['resolved']}, sandbox {row['sandbox_s']} s, "
                      f"harness {row['harness_s']} s")
    ok = all(row["agree"] and row["as_expected"] for name in sets for row in result[name]["kinds"].values())
    if not args.smoke:
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    if not ok:
        raise SystemExit("the gradings disagree, or a verdict is not what the patch should get (see above)")


if __name__ == "__main__":
    main()
