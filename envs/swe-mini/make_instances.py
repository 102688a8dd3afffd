"""Regenerate envs/swe-mini/instances.jsonl from repos/ and tasks/ (run after editing a task).

    python envs/swe-mini/make_instances.py

Each task is validated the way SWE-bench validates its own: the suite runs with the test patch, before
and after the gold patch; FAIL_TO_PASS and PASS_TO_PASS are what changed and what stayed green.
"""

from srl_agent.bench.swe_mini import make_instances

if __name__ == "__main__":
    instances = make_instances()
    print(f"wrote {len(instances)} instances")
