"""Where the project's data folders live, for editable (source tree) and wheel installs alike."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def project_dir(name: str) -> Path:
    """A top-level project folder such as `tools`: inside the wheel if packed there, else the source tree."""
    packed = PACKAGE_DIR / "_data" / name
    return packed if packed.is_dir() else SOURCE_ROOT / name


ASSETS_DIR = PACKAGE_DIR / "assets"
