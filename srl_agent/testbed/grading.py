"""Hardened grading: a patch graded as the official swebench harness grades it, inside an srl-agent sandbox.

The harness (`swebench.harness.run_evaluation.run_instance`) starts a container from the instance's image as
root, with the engine's default network and CAP_SYS_ADMIN added, applies the patch, runs the instance's eval
script and grades the log. `grade_patch` takes the same steps in a sandbox (sandbox/): no network unless asked
for, every capability dropped, no-new-privileges, the sandboxes' memory, pid, CPU and disk limits, and the
commands run as the image's non-root `agent` user where it has one (SWE-bench's own images have none: there
they run as root without capabilities). What decides the verdict is swebench's own code: the same TestSpec
(`make_test_spec`, whose eval script records the test command's exit status), the same patch-apply chain
(`GIT_APPLY_CMDS`, a clean tree between tries) and the same report (`get_eval_report`).

It writes the harness's files into the instance's log folder, so whatever reads the harness's logs reads
these too (bench/harness.py's `instance_verdict`):

    run_instance.log   what happened, with the harness's markers (`>>>>> Applied Patch`, `>>>>> Patch Apply
                       Failed`, `Test timed out after N seconds.`)
    patch.diff, eval.sh, test_output.txt
    report.json        {instance_id: {resolved, patch_successfully_applied, tests_status, ...}}; absent where the
                       harness writes none (the patch did not apply, the tests timed out, the sandbox failed)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import UserError

OUTPUT_LIMIT = 64 * 1024 * 1024
"""Bytes of test output kept (the harness keeps all): a log cut short loses its end marker and grades unresolved."""
EVAL_SCRIPT_PATH = "/tmp/srl_eval.sh"
SETUP_TIMEOUT = 120.0
"""Seconds for each step around the tests (writing files, applying the patch)."""


def instance_test_spec(instance: dict):
    """swebench's TestSpec of a swebench-5 instance (image, eval_script, log_parser, eval_type, tests)."""
    from swebench.harness.utils import make_test_spec

    try:
        return make_test_spec(instance)
    except KeyError as e:
        raise UserError(f"instance {instance.get('instance_id', '?')}: no {e} (a swebench-5 instance has image, "
                        "eval_script, log_parser, eval_type, FAIL_TO_PASS, PASS_TO_PASS)") from None


def apply_patch(sandbox, patch: str) -> tuple[bool, str]:
    """The harness's chain of apply commands on the sandbox's repository; (applied, the line to log).

    A failed try can leave a partial state behind, so the tree is reset before the next one; a patch that every
    command refused may still be in place (the chain's last command applied it in part), which a reverse check
    tells."""
    from swebench.harness.constants import APPLY_PATCH_FAIL, APPLY_PATCH_PASS, CONTAINER_PATCH_FILE
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    sandbox.write_file(CONTAINER_PATCH_FILE, patch)
    for attempt, command in enumerate(GIT_APPLY_CMDS):
        if attempt:
            sandbox.run("git checkout -- . ; git clean -fd", timeout=SETUP_TIMEOUT)
        obs = sandbox.run(f"{command} {CONTAINER_PATCH_FILE}", timeout=SETUP_TIMEOUT)
        if obs.exit_code == 0:
            return True, f"{APPLY_PATCH_PASS}:\n{obs.output}"
    if sandbox.run(f"git apply --check --reverse {CONTAINER_PATCH_FILE}", timeout=SETUP_TIMEOUT).exit_code == 0:
        return True, f"{APPLY_PATCH_PASS}: verified already applied"
    return False, f"{APPLY_PATCH_FAIL}:\n{obs.output}"


def run_eval_script(sandbox, script: str, timeout: float):
    """Run an eval script in the sandbox (the repository at its workdir); its Observation (output, timed_out)."""
    sandbox.write_file(EVAL_SCRIPT_PATH, script, mode=0o755)
    return sandbox.run(f"/bin/bash {EVAL_SCRIPT_PATH}", timeout=timeout)


def grading_config(image: str, engine: str | None = None, network: bool = False, disk_mb: int | None = None):
    """The SandboxConfig tests are graded in: the sandboxes' defaults (limits, user, no network), a whole log."""
    from ..sandbox import DEFAULT_DISK_MB, SandboxConfig

    return SandboxConfig(image=image, engine=engine, network=network, output_limit=OUTPUT_LIMIT,
                         default_timeout=SETUP_TIMEOUT, disk_mb=disk_mb or DEFAULT_DISK_MB)


def grade_patch(instance: dict, prediction: dict, log_dir: Path, timeout: float, *, kind: str = "docker",
                engine: str | None = None, network: bool = False, disk_mb: int | None = None) -> dict | None:
    """Grade `prediction` (instance_id, model_name_or_path, model_patch) on `instance` in a fresh hardened sandbox.

    Returns the harness's report ({instance_id: {...}}, also written as report.json), or None where the harness
    writes none; why is in run_instance.log. `kind`/`engine`: the sandbox's engine (sandbox.open_sandbox);
    `network`: for benchmarks whose eval scripts need it; `disk_mb`: the sandbox's disk budget."""
    from swebench.harness.constants import LOG_INSTANCE, LOG_REPORT, LOG_TEST_OUTPUT
    from swebench.harness.grading import get_eval_report

    from ..jsonio import atomic_writer
    from ..sandbox import open_sandbox

    spec = instance_test_spec(instance)
    log_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    try:
        (log_dir / "patch.diff").write_text(prediction["model_patch"] or "")
        (log_dir / "eval.sh").write_text(spec.eval_script)
        config = grading_config(spec.image, engine, network, disk_mb)
        with open_sandbox(config, kind=kind, base_commit=instance.get("base_commit")) as sandbox:
            lines.append(f"Sandbox for {spec.instance_id} started ({kind}, network {'on' if network else 'off'})")
            applied, line = apply_patch(sandbox, prediction["model_patch"] or "")
            lines.append(line)
            if not applied:
                return None
            start = time.monotonic()
            obs = run_eval_script(sandbox, spec.eval_script, timeout)
        lines.append(f"Test runtime: {time.monotonic() - start:_.2f} seconds")
        output = obs.output + (f"\n\nTimeout error: {timeout} seconds exceeded." if obs.timed_out else "")
        (log_dir / LOG_TEST_OUTPUT).write_text(output)
        if obs.timed_out:
            lines.append(f"Test timed out after {timeout} seconds.")
            return None
        report = get_eval_report(spec, prediction, str(log_dir / LOG_TEST_OUTPUT), include_tests_status=True)
        with atomic_writer(log_dir / LOG_REPORT) as f:
            f.write(json.dumps(report, indent=4))
        lines.append(f"Result for {spec.instance_id}: resolved: {report[spec.instance_id]['resolved']}")
        return report
    except Exception as e:  # an engine or image failure: this instance is not graded, the others go on
        lines.append(f"Error in evaluating model for {spec.instance_id}: {type(e).__name__}: {e}")
        return None
    finally:
        (log_dir / LOG_INSTANCE).write_text("\n".join(lines) + "\n")
