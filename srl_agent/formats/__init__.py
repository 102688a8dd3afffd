"""Trajectory importers: read any supported source and yield canonical `Trajectory` objects.

Sources are files (`.traj`, `.json`, `.jsonl`, `.parquet`), folders of them, or Hugging Face
dataset ids written `hf:OWNER/NAME` (optionally `hf:OWNER/NAME@SPLIT`). Each record's format is
detected from its shape unless one is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import DataError, FormatViolation, UserError
from ..jsonio import read_json, read_jsonl
from ..types import Trajectory
from . import canonical, mini_swe_agent, openhands, swe_agent, swe_smith

# Detection order matters: the more specific shapes first.
FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (canonical, mini_swe_agent, swe_agent, swe_smith, openhands)}
FILE_SUFFIXES = (".traj", ".json", ".jsonl", ".parquet")
# A task folder (`srl-agent tasks synthesize`) keeps its instances and records beside its trajectories.
NOT_TRAJECTORIES = ("instances.jsonl", "validation.jsonl", "report.json")


def detect_format(record: Any) -> str | None:
    return next((name for name, mod in FORMATS.items() if mod.detect(record)), None)


def _describe(record: Any) -> str:
    if isinstance(record, dict):
        # repr()[1:-1]: a key holding a newline or control character stays on the error's one line
        return "an object with keys " + ", ".join(repr(key)[1:-1] for key in sorted(map(str, record))[:8])
    return f"a {type(record).__name__}"


def parse_record(record: Any, *, source: str, row: int | None = None, default_id: str = "",
                 fmt: str = "auto") -> Trajectory:
    """One record as a Trajectory; every failure is a DataError naming source, row and step."""
    if isinstance(record, DataError):
        raise record
    name = detect_format(record) if fmt == "auto" else fmt
    if name is None:
        raise DataError(f"unknown trajectory format ({_describe(record)}); supported: "
                        f"{', '.join(FORMATS)}", source=source, row=row)
    if name not in FORMATS:
        raise UserError(f"unknown --format {name!r}; choose from auto, {', '.join(FORMATS)}")
    try:
        traj = FORMATS[name].parse(record, default_id or Path(source).name)
    except DataError as e:
        raise e.at(source=source, row=row) from None
    except (FormatViolation, KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"malformed {name} record ({type(e).__name__}: {e})", source=source, row=row) from None
    if not traj.steps:
        raise DataError(f"{name} record has no steps (no tool calls found)", source=source, row=row)
    return traj


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".traj.json", *FILE_SUFFIXES):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_row_list(value: Any) -> bool:
    """A JSON list of records (rows), as opposed to one bare list of chat messages."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(r, dict) and "role" not in r for r in value)


def expand_sources(sources: list[str]) -> list[str]:
    """Folders become the trajectory files inside them (sorted); other sources stay as given."""
    out = []
    for source in sources:
        path = Path(source)
        if source.startswith("hf:") or not path.is_dir():
            out.append(source)
            continue
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.name.endswith(FILE_SUFFIXES)
                       and p.name not in NOT_TRAJECTORIES)
        if not files:
            raise DataError(f"no trajectory files ({', '.join(FILE_SUFFIXES)}) in this folder", source=source)
        out += files
    return out


def iter_records(source: str) -> Iterator[tuple[str, int | None, str, Any]]:
    """Yield (source, row, default id, record) for every record in one file or hf: dataset."""
    if source.startswith("hf:"):
        yield from _iter_hf(source[3:])
        return
    path = Path(source)
    if not path.exists():
        raise DataError("no such file or folder", source=source)
    stem = _stem(path)
    if path.suffix == ".jsonl":
        # a bad line becomes an error record, so --skip-bad goes on with the lines after it
        for lineno, record in read_jsonl(path, bad_lines="yield"):
            yield source, lineno, f"{stem}:{lineno}", record
    elif path.suffix == ".parquet":
        for i, record in enumerate(_iter_parquet(path), 1):
            yield source, i, f"{stem}:{i}", record
    else:
        value = read_json(path)
        if _is_row_list(value) and detect_format(value) is None:
            for i, record in enumerate(value, 1):
                yield source, i, f"{stem}:{i}" if len(value) > 1 else stem, record
        else:
            yield source, None, stem, value


def _iter_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    # pyarrow raises several types for corrupt files: a bad footer when opening, a bad page when reading rows
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise DataError(f"not a readable parquet file ({_one_line(e)})", source=str(path)) from None
    batches, done = pf.iter_batches(batch_size=256), 0
    while True:
        try:
            rows = next(batches).to_pylist()
        except StopIteration:
            return
        except Exception as e:
            raise DataError(f"not a readable parquet file after row {done} ({_one_line(e)})",
                            source=str(path)) from None
        yield from rows
        done += len(rows)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _iter_hf(spec: str) -> Iterator[tuple[str, int | None, str, Any]]:
    name, _, split = spec.partition("@")
    try:
        import datasets

        loaded = datasets.load_dataset(name, split=split or None)
    except Exception as e:  # the hub client raises many types; all mean "cannot load"
        raise DataError(f"cannot load the Hugging Face dataset ({type(e).__name__}: {e}); "
                        "it needs network access to the hub or a local cache", source=f"hf:{spec}") from None
    splits = loaded.items() if isinstance(loaded, dict) else [(split, loaded)]
    for split_name, ds in splits:
        label = f"hf:{name}@{split_name}"
        for i, record in enumerate(ds, 1):
            yield label, i, f"{name.split('/')[-1]}:{split_name}:{i}", record


@dataclass
class LoadReport:
    """What a load produced and what it skipped (with `skip_bad`), and why."""

    loaded: int = 0
    filtered: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.loaded} trajectories loaded"
        if self.filtered:
            text += f", {self.filtered} not resolved and left out"
        if self.skipped:
            text += f", {len(self.skipped)} skipped as bad input"
        return text


def load_trajectories(sources: list[str], *, fmt: str = "auto", skip_bad: bool = False,
                      only_resolved: bool = False, report: LoadReport | None = None) -> Iterator[Trajectory]:
    """Every trajectory in `sources`. Bad input raises DataError, or with `skip_bad` is recorded."""
    report = report if report is not None else LoadReport()
    for source in expand_sources(sources):
        records = iter_records(source)
        while True:
            try:
                src, row, default_id, record = next(records)
                traj = parse_record(record, source=src, row=row, default_id=default_id, fmt=fmt)
            except StopIteration:
                break
            except DataError as e:
                if not skip_bad:
                    raise
                report.skipped.append(e.located())
                if e.row is None:  # a one-record file, or one unreadable as a whole: next file
                    break
                continue
            if only_resolved and traj.resolved is not True:
                report.filtered += 1
                continue
            report.loaded += 1
            yield traj
