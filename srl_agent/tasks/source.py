"""Where a repository's code comes from, and how it is laid out.

    snapshot(PATH, dest)      a clean copy of a git repository's HEAD, a plain folder, or an sdist (.tar.gz)
    download_sdist(SPEC, dir) `pip download --no-binary :all: --no-deps NAME==VERSION`
    commit_tree(folder)       the folder as a one-commit git repository with a fixed author and date, so
                              the same files always give the same commit hash (images check it)
    Layout                    the package's source files, its test folder and what goes on PYTHONPATH
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..testbed import git as testbed_git

_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "srl-agent tasks", "GIT_AUTHOR_EMAIL": "tasks@srl-agent.invalid",
                 "GIT_COMMITTER_NAME": "srl-agent tasks", "GIT_COMMITTER_EMAIL": "tasks@srl-agent.invalid",
                 "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}
_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache", ".tox", ".nox", ".venv", "*.egg-info", ".git", ".mypy_cache",
            ".ruff_cache", "build", "dist", ".eggs")
_TEST_DIRS = ("tests", "test", "testing")
_NOT_PACKAGE_CODE = {"setup.py", "conftest.py", "noxfile.py", "tasks.py", "fabfile.py", "manage.py"}


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    """`git ARGS` in `repo` as the task factory, under a fixed author and date."""
    return testbed_git.git(repo, *args, identity=_GIT_IDENTITY, stdin=stdin)


def commit_tree(folder: Path, message: str) -> str:
    """Make `folder` a git repository with one commit of everything in it; returns the commit."""
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A", "-f")
    git(folder, "commit", "-q", "--allow-empty", "-m", message)
    return git(folder, "rev-parse", "HEAD").strip()


def commit_patch(repo: Path, patch: str, message: str) -> str:
    """Apply `patch` to the repository and commit it; returns the new commit."""
    git(repo, "apply", "--whitespace=nowarn", "-", stdin=patch)
    git(repo, "add", "-A", "-f")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def source_name(path: str | Path) -> str:
    """A short name for a source: the folder's name, or an sdist's project name (`toolz-0.12.1.tar.gz` -> toolz)."""
    name = Path(path).resolve().name
    if name.endswith((".tar.gz", ".tgz", ".zip")):
        name = re.sub(r"\.(tar\.gz|tgz|zip)$", "", name)
        name = re.sub(r"-\d[\w.]*$", "", name)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.").lower() or "repo"


def snapshot(path: str | Path, dest: Path) -> None:
    """Copy the source's files (no VCS data, caches or build output) into `dest`, which must not exist."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such repository, folder or sdist")
    if path.is_file():
        _extract_sdist(path, dest)
    elif (path / ".git").exists():
        dirty = git(path, "status", "--porcelain", "--untracked-files=no").strip()
        if dirty:
            raise UserError(f"{path}: the git repository has uncommitted changes; commit or stash them first "
                            "(mutations are patches on a clean tree)")
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=path, capture_output=True)
        if archive.returncode != 0:
            raise UserError(f"{path}: git archive failed: {archive.stderr.decode(errors='replace').strip()[-300:]}")
        with tempfile.TemporaryFile() as tmp:
            tmp.write(archive.stdout)
            tmp.seek(0)
            with tarfile.open(fileobj=tmp) as tar:
                tar.extractall(dest, filter="data")
    else:
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns(*_IGNORED), symlinks=True)


def _extract_sdist(path: Path, dest: Path) -> None:
    if not tarfile.is_tarfile(path):
        raise UserError(f"{path}: not a source distribution (.tar.gz)")
    with tempfile.TemporaryDirectory(prefix="srl-sdist-") as tmp:
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise UserError(f"{path}: cannot unpack the sdist ({e})") from None
        entries = list(Path(tmp).iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else Path(tmp)  # sdists hold NAME-VERSION/
        shutil.copytree(root, dest, ignore=shutil.ignore_patterns(*_IGNORED), symlinks=True)


def download_sdist(spec: str, folder: Path) -> Path:
    """`pip download` the source distribution of NAME==VERSION into `folder`; returns the file."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9._+!-]*", spec):
        raise UserError(f"--pypi {spec!r}: expected NAME==VERSION")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                           "-q", "-d", str(folder), spec], capture_output=True, text=True)
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".tgz")))
    if proc.returncode != 0 or not files:
        raise UserError(f"--pypi {spec}: pip download failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return files[0]


@dataclass
class Layout:
    """What the factory needs to know about a repository's files."""

    source_files: list[str]
    """The package's Python files (relative paths), where bugs go: not tests, not setup scripts."""
    test_dir: str
    """The folder pytest runs (`tests`, or one inside the package: `toolz/tests`), relative to the root."""
    python_path: str
    """What goes on PYTHONPATH, relative to the root: `src` for a src layout, else `.`."""


def _find_test_dir(root: Path, python_path: str) -> str | None:
    """`tests/` (or test/, testing/) at the root, else inside a top-level package (`toolz/tests`, `src/pkg/tests`)."""
    code_root = root / python_path
    packages = sorted(p for p in code_root.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    for folder in [root, *packages]:
        for name in _TEST_DIRS:
            if (folder / name).is_dir() and _has_tests(folder / name):
                return (folder / name).relative_to(root).as_posix()
    return None


def detect_layout(root: Path) -> Layout:
    """Find the tests and the package code; a repository without tests is an error."""
    python_path = "src" if (root / "src").is_dir() else "."
    test_dir = _find_test_dir(root, python_path)
    if test_dir is None:
        raise UserError(f"{root.name}: no tests found (looked for test_*.py or *_test.py in "
                        f"{', '.join(d + '/' for d in _TEST_DIRS)} at the root and in its packages); the factory "
                        "validates bugs with the repository's own tests")
    code_root = root / python_path
    files = []
    for path in sorted(code_root.rglob("*.py")):
        relative = path.relative_to(root)
        parts = relative.parts
        if any(p in _TEST_DIRS or p.startswith(".") or p in ("docs", "doc", "examples", "benchmarks", "scripts")
               for p in parts[:-1]) or path.name in _NOT_PACKAGE_CODE or _is_test_file(path.name):
            continue
        if python_path == "." and len(parts) > 1 and not (root / parts[0] / "__init__.py").exists():
            continue  # a top-level folder that is not a package (tools, vendored scripts)
        files.append(relative.as_posix())
    if not files:
        raise UserError(f"{root.name}: no package source files found beside {test_dir}/")
    return Layout(files, test_dir, python_path)


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py")


def _has_tests(folder: Path) -> bool:
    return any(_is_test_file(p.name) for p in folder.rglob("*.py"))
