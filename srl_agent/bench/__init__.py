"""Benchmarks the agent is graded on (SWE-bench style) and the paper's Oracle File Edit setting."""
