"""A small package with tests, the task factory's subject in tests and benchmarks: `make_repo` writes it as a
git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

OPS = '''\
def clamp(value, low, high):
    """`value` limited to [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def mean(values):
    if not values:
        raise ValueError("mean of nothing")
    return sum(values) / len(values)


def chunks(items, size=2):
    return [items[i:i + size] for i in range(0, len(items), size)]


def percent(part, whole, digits=1):
    return round(100 * part / whole, digits)


def initials(name):
    return "".join(word[0].upper() for word in name.strip().split())
'''

TESTS = '''\
import pytest

from calc.ops import chunks, initials, mean, percent


def test_mean():
    assert mean([1, 2, 3, 6]) == 3


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        mean([])


def test_chunks():
    assert chunks([1, 2, 3, 4, 5]) == [[1, 2], [3, 4], [5]]
    assert chunks([1, 2, 3], size=3) == [[1, 2, 3]]


def test_percent():
    assert percent(1, 3) == 33.3
    assert percent(1, 8, digits=2) == 12.5


def test_initials():
    assert initials("  ada  lovelace ") == "AL"
'''

SUBTESTS = '''\
import unittest

from calc.ops import clamp


class TestClamp(unittest.TestCase):
    def test_clamp_cases(self):
        for value, expected in [(-5, 0), (0, 0), (5, 5), (10, 10), (15, 10)]:
            with self.subTest(value=value):
                self.assertEqual(clamp(value, 0, 10), expected)
'''


COVERAGE_ADDOPTS = "[tool:pytest]\naddopts = --cov=calc --cov-report=term-missing\n"


def make_repo(root: Path, files: dict[str, str], git: bool = True) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if git:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
            subprocess.run(["git", *command], cwd=root, check=True, env=env)
    return root
