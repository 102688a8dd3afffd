"""What several commands share: the two consoles, progress bars and the --engine option."""

from __future__ import annotations

import argparse
import contextlib

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # logs and errors; soft_wrap keeps error lines whole for grep
out = Console()  # results


def add_engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", metavar="URL",
                   help="container engine of the sandboxes: unix://…, tcp://… (TLS from DOCKER_TLS_VERIFY and "
                        "DOCKER_CERT_PATH), ssh://user@host; default DOCKER_HOST or the local engine (podman: its own)")


def bars():
    """Progress bars with a free-text `info` field."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), console=console)


@contextlib.contextmanager
def bar(description: str, total: int):
    """One progress bar; the yielded `tick(info)` advances it by one."""
    with bars() as progress:
        task = progress.add_task(description, total=total, info="")
        yield lambda info="": progress.update(task, advance=1, info=info)
