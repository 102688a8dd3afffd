"""Where a repository's code comes from, and how it is laid out.

    snapshot(PATH, dest)      a clean copy of a git repository's HEAD, a plain folder, or an sdist (.tar.gz)
    download_sdist(SPEC, dir) `pip download --no-binary :all: --no-deps NAME==VERSION`, unless dir has it
    commit_tree(folder)       the folder as a one-commit git repository with a fixed author and date, so
                              the same files always give the same commit hash (images check it)
    Layout                    the package's source files, its test suite and what goes on PYTHONPATH
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from ..errors import UserError
from ..testbed import git as testbed_git
from ..testbed.suite import TEST_COMMAND

_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "srl-agent tasks", "GIT_AUTHOR_EMAIL": "tasks@srl-agent.invalid",
                 "GIT_COMMITTER_NAME": "srl-agent tasks", "GIT_COMMITTER_EMAIL": "tasks@srl-agent.invalid",
                 "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}
_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache", ".tox", ".nox", ".venv", "*.egg-info", ".git", ".mypy_cache",
            ".ruff_cache", "build", "dist", ".eggs")
_TEST_DIRS = ("tests", "test", "testing")
_PYTHON_FILES = ("test_*.py", "*_test.py")  # pytest's default `python_files`
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
    """The source distribution of NAME==VERSION in `folder`: the one there, else `pip download`ed into it."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9._+!-]*", spec):
        raise UserError(f"--pypi {spec!r}: expected NAME==VERSION")
    wanted = _normalized(spec.replace("==", "-"))

    def cached() -> Path | None:
        return next((p for p in sorted(folder.glob("*.t*gz")) if _normalized(re.sub(r"\.(tar\.gz|tgz)$", "", p.name))
                     == wanted), None)

    folder.mkdir(parents=True, exist_ok=True)
    if found := cached():
        return found
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                           "-q", "-d", str(folder), spec], capture_output=True, text=True)
    found = cached()
    if proc.returncode != 0 or not found:
        raise UserError(f"--pypi {spec}: pip download failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return found


def _normalized(name: str) -> str:
    """A project name (or NAME-VERSION) as PyPI compares them: case, `-`, `_` and `.` runs alike."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Layout:
    """What the factory needs to know about a repository's files."""

    source_files: list[str]
    """The package's Python files (relative paths), where bugs go: not tests, not setup scripts."""
    test_paths: list[str]
    """What pytest is given, relative to the root: the project's configured `testpaths`, else a test folder
    (`tests`, or one inside the package: `toolz/tests`), else the test modules at the root (`test_inflection.py`)."""
    test_files: list[str]
    """What grading resets to the base commit: the test paths, except that a test path that holds package code
    too (`testpaths = ["src", "tests"]`) gives its test modules and conftest.py files instead."""
    python_path: str
    """What goes on PYTHONPATH, relative to the root: `src` for a src layout, else `.`."""

    def test_command(self) -> str:
        """The suite's command line (testbed/suite.py's, with the test paths)."""
        return TEST_COMMAND.format(test_dir=shlex.join(self.test_paths))


def pytest_settings(root: Path) -> dict[str, list[str]]:
    """The pytest settings of the config file pytest would pick at `root` (`testpaths`, `python_files`, ...),
    each as a list of words; {} when there is none. pytest's order: pytest.ini, .pytest.ini, pyproject.toml
    ([tool.pytest.ini_options]), tox.ini ([pytest]), setup.cfg ([tool:pytest])."""
    for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pyproject.toml", None),
                          ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = root / name
        if not path.is_file():
            continue
        try:
            if section is None:
                table = tomllib.loads(path.read_text(errors="replace")).get("tool", {}).get("pytest", {})
                options = {k: v for k, v in table.get("ini_options", table).items() if not isinstance(v, dict)}
            else:
                parser = configparser.ConfigParser(interpolation=None, strict=False)
                parser.read_string(path.read_text(errors="replace"), str(path))
                options = dict(parser.items(section)) if parser.has_section(section) else {}
            if options or name.endswith("pytest.ini"):  # pytest takes these two even without the section
                return {k: shlex.split(v) if isinstance(v, str) else [str(x) for x in v] if isinstance(v, list)
                        else [str(v)] for k, v in options.items()}
        except (tomllib.TOMLDecodeError, configparser.Error, ValueError) as e:
            raise UserError(f"{path}: cannot read its pytest settings ({str(e).splitlines()[0][:200]})") from None
    return {}


def _is_test_file(name: str, patterns: tuple[str, ...] | list[str] = _PYTHON_FILES) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _has_tests(folder: Path, patterns: list[str]) -> bool:
    return any(_is_test_file(p.name, patterns) for p in folder.rglob("*.py"))


def _find_test_paths(root: Path, python_path: str, settings: dict[str, list[str]], patterns: list[str]) -> list[str]:
    """The suite as pytest would find it: the configured `testpaths` that exist (globs expanded), else `tests/`
    (or test/, testing/) at the root, else inside a top-level package (`toolz/tests`, `src/pkg/tests`), else the
    test modules at the root. [] when there are no tests."""
    configured = sorted({p.relative_to(root).as_posix() for pattern in settings.get("testpaths", [])
                         for p in root.glob(pattern) if p.exists()})
    if configured:
        return configured
    code_root = root / python_path
    packages = sorted(p for p in code_root.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    for folder in [root, *packages]:
        for name in _TEST_DIRS:
            if (folder / name).is_dir() and _has_tests(folder / name, patterns):
                return [(folder / name).relative_to(root).as_posix()]
    return sorted(p.name for p in root.glob("*.py") if _is_test_file(p.name, patterns))


def _test_files(root: Path, test_paths: list[str], source_files: list[str], patterns: list[str]) -> list[str]:
    """`test_paths`, with each one that holds package code replaced by its test modules and conftest.py files."""
    files = []
    for test_path in test_paths:
        inside = f"{test_path}/"
        if not any(f.startswith(inside) for f in source_files):
            files.append(test_path)
            continue
        files += sorted(p.relative_to(root).as_posix() for p in (root / test_path).rglob("*.py")
                        if p.name == "conftest.py" or _is_test_file(p.name, patterns))
    return files


def detect_layout(root: Path) -> Layout:
    """Find the tests (as pytest would, see `_find_test_paths`) and the package code; no tests is an error."""
    python_path = "src" if (root / "src").is_dir() else "."
    settings = pytest_settings(root)
    patterns = settings.get("python_files") or list(_PYTHON_FILES)
    test_paths = _find_test_paths(root, python_path, settings, patterns)
    if not test_paths:
        raise UserError(f"{root.name}: no tests found (no configured testpaths; looked for "
                        f"{' or '.join(patterns)} in {', '.join(d + '/' for d in _TEST_DIRS)} at the root and in its "
                        "packages, and at the root itself); the factory validates bugs with the repository's own "
                        "tests")
    code_root = root / python_path
    files = []
    for path in sorted(code_root.rglob("*.py")):
        relative = path.relative_to(root)
        parts = relative.parts
        if any(p in _TEST_DIRS or p.startswith(".") or p in ("docs", "doc", "examples", "benchmarks", "scripts")
               for p in parts[:-1]) or path.name in _NOT_PACKAGE_CODE or _is_test_file(path.name, patterns):
            continue
        if python_path == "." and len(parts) > 1 and not (root / parts[0] / "__init__.py").exists():
            continue  # a top-level folder that is not a package (tools, vendored scripts)
        files.append(relative.as_posix())
    if not files:
        raise UserError(f"{root.name}: no package source files found beside {' '.join(test_paths)}")
    return Layout(files, test_paths, _test_files(root, test_paths, files, patterns), python_path)
