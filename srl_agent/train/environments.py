"""`srl-agent train --env NAME`: where a run's examples and tasks come from.

    swe        the config's trajectories (built in: trajectories/, the swe-mini expert's runs and the seed tasks);
               RLVR on swe-mini's train split
    swe-mini   swe-mini alone: its expert's runs (trajectories/swe-mini.jsonl), RLVR on its train split
    factory    a task-factory curriculum: RLVR on the tasks file given with --tasks (a `srl-agent tasks split`
               train side), SRL on the config's trajectories

An environment fills `data.trajectories` and `rlvr.tasks` only where the user left them unset (config file, flags
or --set win), so `--env swe` with any config is that config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UserError
from ..paths import project_dir

if TYPE_CHECKING:  # the CLI builds its --env choices from this module: kept light
    from .config import TrainConfig


@dataclass(frozen=True)
class Environment:
    name: str
    description: str
    """One line, for --help and the run's header."""
    trajectories: str | None = None
    """SRL/SFT data: a file in the project's trajectories/ folder (None: the config's)."""
    needs_tasks: bool = False
    """RLVR needs a tasks file from the user (--tasks): there is no default curriculum."""


ENVIRONMENTS = {env.name: env for env in (
    Environment("swe", "software engineering: the config's trajectories, RLVR on swe-mini's train split"),
    Environment("swe-mini", "swe-mini alone: its expert's runs, RLVR on its train split",
                trajectories="swe-mini.jsonl"),
    Environment("factory", "a task-factory curriculum: RLVR on the --tasks file (a tasks split train side)",
                needs_tasks=True),
)}


def apply_environment(cfg: TrainConfig, name: str) -> Environment:
    """Fill the run's data and task sources from environment `name` where the user did not set them."""
    env = ENVIRONMENTS[name]
    if env.trajectories is not None and not cfg.chose("data.trajectories"):
        cfg.data.trajectories = [str(project_dir("trajectories") / env.trajectories)]
    if env.needs_tasks and cfg.uses_rlvr and cfg.rlvr.tasks is None:
        raise UserError(f"--env {name} trains RLVR on a task-factory curriculum: pass --tasks FILE (the train side "
                        "of srl-agent tasks split)")
    return env
