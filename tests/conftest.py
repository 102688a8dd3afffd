"""Shared test fixtures. The real public trajectories live in ../shared (never copied here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "trajectories"


def fixture(rel: str) -> Path:
    path = FIXTURES / rel
    assert path.exists(), f"missing shared fixture {path}"
    return path


def load_fixture_json(rel: str):
    return json.loads(fixture(rel).read_text())


@pytest.fixture(scope="session")
def all_trajectories():
    from srl_agent.formats import load_trajectories

    return {t.id: t for t in load_trajectories([str(FIXTURES)])}
