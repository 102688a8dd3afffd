"""The docs cannot rot: the generated reference pages equal what docs/gen_reference.py writes now, and every
`srl-agent` command in the README's and the docs' bash blocks names a real command and only options it has."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from srl_agent.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_pages_are_current():
    gen = _gen_reference()
    for path, text in gen.pages().items():
        committed = path.read_text()
        made_with = re.search(r"under Python (\d+\.\d+)", committed)
        if made_with and made_with.group(1) != gen.PYTHON and path == gen.PAGES["cli"]:
            pytest.skip(f"{path.name} was generated under Python {made_with.group(1)}, whose argparse lays help out "
                        f"differently from {gen.PYTHON}'s")
        assert committed == text, f"{path.relative_to(ROOT)} is stale: run python docs/gen_reference.py"


def _bash_blocks(text: str):
    """The lines of every ```bash block, with backslash continuations joined."""
    for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, flags=re.M | re.S):
        yield from block.replace("\\\n", " ").splitlines()


def _invocations(line: str):
    """The argument lists after `srl-agent` (or `-m srl_agent.cli`) in one shell line, one per command of a chain."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: not a command line
        return
    command: list[str] = []
    for token in [*tokens, ";"]:  # not `|`: usage lines write alternatives as `[--resume | --overwrite]`
        if token in ("&&", "||", ";"):
            for i, word in enumerate(command):
                if word == "srl-agent" or (word == "srl_agent.cli" and i and command[i - 1] == "-m"):
                    yield command[i + 1:]
                    break
            command = []
        else:
            command.append(token)


def _subcommand(args: list[str]) -> tuple[tuple[str, ...], argparse.ArgumentParser]:
    """The sub-command words at the start of `args` and the parser that takes the rest."""
    parser, words = build_parser(), []
    for word in args:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
        words.append(word)
    return tuple(words), parser


def _documented_commands() -> dict[tuple[str, ...], set[str]]:
    """Each documented sub-command and the options it is shown with, gathered over every doc."""
    found: dict[tuple[str, ...], set[str]] = {}
    for path in DOCS:
        for line in _bash_blocks(path.read_text()):
            for args in _invocations(line):
                words, _ = _subcommand(args)
                options = {re.sub(r"^\[+|[\]=].*$", "", part) for arg in args[len(words):]
                           for part in arg.split("|") if re.match(r"\[*--?[a-z]", part)}
                found.setdefault(words, set()).update(options)
    return found


def test_the_docs_show_srl_agent_commands():
    commands = _documented_commands()
    for expected in [("train",), ("eval",), ("data", "build"), ("reward",), ("replay",), ("tasks", "synthesize")]:
        assert expected in commands, f"no bash block shows srl-agent {' '.join(expected)}"


def test_every_documented_command_parses_with_help():
    for words, options in sorted(_documented_commands().items()):
        assert words, "a bash block runs srl-agent with no command"
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
            main([*words, "--help"])
        assert done.value.code == 0, f"srl-agent {' '.join(words)} --help exited {done.value.code}"
        assert out.getvalue().startswith(f"usage: srl-agent {' '.join(words)}".rstrip())
        _, parser = _subcommand(list(words))
        known = {option for action in parser._actions for option in action.option_strings}
        unknown = sorted(options - known - {"-", "--"})
        assert not unknown, f"the docs show srl-agent {' '.join(words)} with options it lacks: {unknown}"


def test_the_invocation_parser_reads_chains_and_launchers():
    line = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && srl-agent train --env swe "
            "# the main job")
    assert list(_invocations(line)) == [["train", "--env", "swe"]]
    line = "accelerate launch --config_file x.yaml --num_processes 2 -m srl_agent.cli train --env swe  # FSDP2"
    assert list(_invocations(line)) == [["train", "--env", "swe"]]
    assert list(_invocations("grep pocketlib a.jsonl > b.jsonl")) == []
    assert _subcommand(["data", "build", "--out", "x"])[0] == ("data", "build")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
