"""Training data: step examples from trajectories (or a steps.jsonl), a held-out split by trajectory,
and a seeded, resumable order."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from ..chat import template_rendering
from ..data import read_examples
from ..errors import UserError
from ..formats import load_trajectories
from ..jsonio import read_jsonl
from ..steps import ExampleBuilder, StepConfig, load_rendering, parse_history, rendering_file
from ..types import StepExample
from .config import TrainConfig


def _is_steps_file(path: str) -> bool:
    if not path.endswith(".jsonl") or not Path(path).is_file():
        return False
    # a bad first line is no steps file: the trajectory loader then reports it
    _, first = next(read_jsonl(path, bad_lines="yield"), (0, None))
    return isinstance(first, dict) and "expert_action" in first


def training_rendering(cfg: TrainConfig, tokenizer, log: Callable[[str], None] = print) -> StepConfig:
    """How the run writes its prompts and answers (saved with every checkpoint as rendering.json): from the
    config, or for a steps file, as `data build` recorded beside it."""
    name = cfg.tokenizer or cfg.model
    sources = cfg.data.trajectories
    steps = sources[0] if len(sources) == 1 and _is_steps_file(sources[0]) else None
    record = load_rendering(steps) if steps else None
    if record is not None:
        template_rendering(tokenizer, record.call_style, log, name)  # a template-less tokenizer gets ours, as then
        log(f"{steps}: rendered as recorded in {rendering_file(steps).name} ({record.call_style} calls, history "
            f"{'full' if record.history is None else record.history}, observations cut at "
            f"{record.max_observation_chars} characters); the config's rendering.* settings do not apply")
        return record
    if steps:
        log(f"{steps} has no {rendering_file(steps).name} (written by srl-agent data build): assuming the config's "
            "rendering.* settings are how it was built")
    try:
        history = parse_history(cfg.rendering.history)
    except ValueError as e:
        raise UserError(str(e)) from None
    call_style, reasoning = template_rendering(tokenizer, cfg.rendering.call_style, log, name)
    rendering = StepConfig(history=history, max_observation_chars=cfg.rendering.max_observation_chars,
                           call_style=call_style, reasoning=reasoning)
    if cfg.rendering.system_prompt is not None:
        rendering.system_prompt = cfg.rendering.system_prompt
    return rendering


def load_examples(cfg: TrainConfig, tokenizer, rendering: StepConfig | None = None) -> list[StepExample]:
    if len(cfg.data.trajectories) == 1 and _is_steps_file(cfg.data.trajectories[0]):
        return list(read_examples(cfg.data.trajectories[0]))
    step_cfg = rendering or training_rendering(cfg, tokenizer)
    builder = ExampleBuilder(step_cfg, tokenizer, cfg.data.max_prompt_tokens)
    return [ex for traj in load_trajectories(cfg.data.trajectories) for ex in builder.build(traj)]


def split_by_trajectory(examples: list[StepExample], n_val: int, seed: int) -> tuple[list, list]:
    """Hold out `n_val` whole trajectories (chosen with `seed`) for validation."""
    ids = sorted({ex.trajectory_id for ex in examples})
    if n_val and len(ids) <= n_val:
        raise UserError(f"{len(ids)} trajectories cannot leave {n_val} for validation and some for training")
    random.Random(seed).shuffle(ids)
    held = set(ids[:n_val])
    return [ex for ex in examples if ex.trajectory_id not in held], [ex for ex in examples if ex.trajectory_id in held]


class ExampleStream:
    """Endless epochs over the examples, each in a seeded permutation; its position is resumable.

    With several processes, process `rank` of `world` walks the positions rank, rank + world, ... of
    the same permutations: the processes share the work of one stream without overlapping.
    """

    def __init__(self, examples: list[StepExample], seed: int, rank: int = 0, world: int = 1):
        if len(examples) < world:
            raise UserError(f"{len(examples)} training examples cannot be shared by {world} processes; "
                            "check --trajectories")
        self.examples, self.seed = examples, seed
        self.epoch, self.pos = 0, 0
        self.rank, self.world = rank, world
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order[self.rank::self.world]

    def next(self) -> StepExample:
        if self.pos == len(self._order):
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        ex = self.examples[self._order[self.pos]]
        self.pos += 1
        return ex

    def take(self, n: int) -> list[StepExample]:
        return [self.next() for _ in range(n)]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._permutation(self.epoch)
