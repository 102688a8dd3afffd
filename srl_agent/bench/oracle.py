"""Oracle File Edit (the paper's setting): the model sees the issue and the full files the gold patch
touches, and answers with search/replace edits, which become a unified diff.

Answer format (after an optional <think>...</think>), one block per edit:

    ### path/to/file.py
    <<<<<<< SEARCH
    exact lines to find
    =======
    lines to put instead
    >>>>>>> REPLACE

An empty SEARCH part creates the file (or, for an existing file, inserts at its top).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..errors import FormatViolation

_BLOCK = re.compile(r"###\s*(\S+)\s*\n<<<<<<< SEARCH\n(.*?)=======\n(.*?)>>>>>>> REPLACE", re.DOTALL)

INSTRUCTIONS = (
    "Below are an issue and the full contents of the files that need changes. Resolve the issue. First think "
    "inside <think>...</think>, then write each change as a search/replace block:\n\n"
    "### path/to/file.py\n<<<<<<< SEARCH\nexact existing lines\n=======\nnew lines\n>>>>>>> REPLACE\n\n"
    "The SEARCH part must match the file exactly, once. Use as many blocks as needed.")


def touched_files(patch: str) -> list[str]:
    """The files a (gold) patch changes, in order."""
    from unidiff import PatchSet

    return [f.path for f in PatchSet(patch)]


def oracle_prompt(problem_statement: str, files: dict[str, str]) -> list[dict[str, str]]:
    listing = "\n\n".join(f"### {path}\n```\n{text}\n```" for path, text in files.items())
    return [{"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": f"<issue>\n{problem_statement}\n</issue>\n\n{listing}"}]


@dataclass(frozen=True)
class Edit:
    path: str
    search: str
    replace: str


def parse_edits(answer: str) -> list[Edit]:
    text = re.sub(r"^\s*<think>.*?</think>", "", answer, count=1, flags=re.DOTALL)
    edits = [Edit(m[1], m[2], m[3]) for m in _BLOCK.finditer(text)]
    if not edits:
        raise FormatViolation("no search/replace block (### path, <<<<<<< SEARCH, =======, >>>>>>> REPLACE)")
    return edits


def apply_edits(files: dict[str, str], edits: list[Edit]) -> dict[str, str]:
    """New contents of every file the edits touch; FormatViolation when a SEARCH part does not match once."""
    new = dict(files)
    for edit in edits:
        current = new.get(edit.path)
        if current is None:
            if edit.search.strip():
                raise FormatViolation(f"{edit.path}: not one of the given files, and SEARCH is not empty")
            new[edit.path] = edit.replace
            continue
        if not edit.search:
            new[edit.path] = edit.replace + current
            continue
        count = current.count(edit.search)
        if count != 1:
            raise FormatViolation(f"{edit.path}: the SEARCH part occurs {count} times, not once")
        new[edit.path] = current.replace(edit.search, edit.replace)
    return new


def unified_diff(old: dict[str, str], new: dict[str, str]) -> str:
    """A git-style patch from old to new file contents, checked by parsing it back with unidiff."""
    from unidiff import PatchSet

    parts = []
    for path in sorted(new):
        before, after = old.get(path), new[path]
        if before == after:
            continue
        source = "/dev/null" if before is None else f"a/{path}"
        lines = list(difflib.unified_diff((before or "").splitlines(keepends=True), after.splitlines(keepends=True),
                                          source, f"b/{path}"))
        body = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
        header = f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n" if before is None else "")
        parts.append(header + body)
    patch = "".join(parts)
    if patch:
        PatchSet(patch)  # raises UnidiffParseError on a malformed patch
    return patch


def oracle_patch(answer: str, files: dict[str, str]) -> str:
    """The model's answer as a patch against `files` (FormatViolation for an unusable answer)."""
    return unified_diff(files, apply_edits(files, parse_edits(answer)))
