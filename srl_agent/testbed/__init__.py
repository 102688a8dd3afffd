"""A task's testbed: what the benchmark, the task factory and RLVR all need to know about a task's repository.

- `suite.py`: the swebench-5 eval script, running a repository's test suite in a sandbox, parsing test statuses.
- `grading.py`: a patch graded as the official swebench harness grades it, in a hardened sandbox.
- `instance.py`: an instance's image (its repository at /testbed on the sandbox image) and its sandbox.
- `swe_mini.py`: the shipped swe-mini tasks: their paths, instances, repositories and images.
- `git.py`: git under a fixed author and date, so the same files always give the same commit.
"""
