"""JSON helpers: atomic file writes and JSON Lines reading with line-accurate errors."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from .errors import DataError


@contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[TextIO]:
    """Write to a temporary file beside `path` and rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically as JSON Lines; returns the number of rows."""
    n = 0
    with atomic_writer(path) as f:
        for row in rows:
            f.write(json_line(row))
            f.write("\n")
            n += 1
    return n


def json_line(value: Any) -> str:
    """`value` as one line of readable UTF-8 JSON. A string with a lone surrogate (half an emoji, cut by a tool that
    counts UTF-16 units), which UTF-8 cannot hold, makes the line \\u-escaped instead, so it reads back the same."""
    line = json.dumps(value, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return line


def read_jsonl(path: str | Path, bad_lines: str = "raise") -> Iterator[tuple[int, Any]]:
    """Yield (1-based line number, parsed value) for each non-empty line.

    Lines end in \n, \r\n or \r; a leading UTF-8 BOM is skipped. A file that cannot be opened (missing, a folder,
    unreadable) raises a DataError naming it; a line that is not UTF-8 JSON raises one naming the line too, or with
    bad_lines="yield" is yielded as one.
    """
    # surrogateescape: a bad byte does not stop the reading; it is named with its line when that line is parsed
    with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = _parse_line(line, path, lineno)
            except DataError as error:
                if bad_lines != "yield":
                    raise
                value = error
            yield lineno, value


def _parse_line(line: str, path: str | Path, lineno: int) -> Any:
    try:  # the line's own bytes again, decoded strictly: a bad byte is named at its place in the line
        return json.loads(line.encode("utf-8", "surrogateescape").decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"line is not UTF-8 text ({e.reason} at byte {e.start})", source=str(path),
                        row=lineno) from None
    except json.JSONDecodeError as e:
        raise DataError(f"line is not valid JSON ({_message(e)} at column {e.colno})", source=str(path),
                        row=lineno) from None
    except (ValueError, RecursionError) as e:  # an integer longer than Python converts, nesting deeper than the stack
        raise DataError(f"line is not usable JSON ({e})", source=str(path), row=lineno) from None


def _message(e: json.JSONDecodeError) -> str:
    return e.msg.removesuffix(" at")  # "Unterminated string starting at", then our " at line …"


def read_json(path: str | Path) -> Any:
    """Parse a whole JSON file; a truncated or malformed file names where parsing stopped."""
    try:
        with _open_binary(path) as f:
            return json.loads(f.read().decode("utf-8-sig"))  # -sig: a leading BOM is skipped
    except json.JSONDecodeError as e:
        hint = " (the file looks truncated)" if e.msg.startswith(("Expecting", "Unterminated")) else ""
        raise DataError(f"not valid JSON: {_message(e)} at line {e.lineno} column {e.colno}{hint}",
                        source=str(path)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", source=str(path)) from None
    except (ValueError, RecursionError) as e:  # an integer longer than Python converts, nesting deeper than the stack
        raise DataError(f"not usable JSON ({e})", source=str(path)) from None


def _open_binary(path: str | Path) -> BinaryIO:
    """Open a file for reading; a missing, unreadable or folder path is a DataError naming it."""
    try:
        return open(path, "rb")
    except OSError as e:
        reason = "is a folder, not a file" if isinstance(e, IsADirectoryError) else (e.strerror or str(e)).lower()
        raise DataError(f"cannot read: {reason}", source=str(path)) from None
