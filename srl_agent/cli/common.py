"""What several commands share: the two consoles, the log printer, progress bars and the --engine option."""

from __future__ import annotations

import argparse
import contextlib

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # logs and errors; soft_wrap keeps error lines whole for grep
out = Console()  # results


def log(message: str) -> None:
    """Print a library's log line as it is (paths and brackets are not rich markup)."""
    console.print(message, markup=False, highlight=False)


def add_engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", metavar="URL",
                   help="container engine of the sandboxes: unix://…, tcp://… (TLS from DOCKER_TLS_VERIFY and "
                        "DOCKER_CERT_PATH), ssh://user@host; default DOCKER_HOST or the local engine (podman: its own)")


def bars(time_left: bool = False):
    """The progress bars of every command: description, bar, done/total, time taken (`time_left`: time remaining),
    then a free-text `info` field (each task is added with `info=""`)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn() if time_left else TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                    console=console)


@contextlib.contextmanager
def progress_bar(description: str, total: int):
    """One progress bar; the yielded `tick(info)` advances it by one."""
    with bars() as progress:
        task = progress.add_task(description, total=total, info="")
        yield lambda info="": progress.update(task, advance=1, info=info)
