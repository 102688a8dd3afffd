"""`srl-agent probe`: does a model follow the answer format before any training?

SRL gives -1 to every answer that breaks the format; a model that never follows it gets flat
groups only, dynamic sampling drops them all, and nothing trains. The probe samples prompts from
expert trajectories, rendered as training renders them (the checkpoint's rendering record, else
training's defaults for its chat template), lets the model answer and reports the share of
well-formed answers, the mean SRL reward and the most common format errors.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .errors import UserError
from .policy import Policy, SamplingParams
from .reward import SRLRewardConfig, explain_reward
from .steps import StepConfig, examples_from_trajectory
from .types import StepExample, Trajectory

FORMAT_PREFIX = "format violation: "


@dataclass
class ProbeReport:
    prompts: int
    answers: int
    format_ok: float
    """Share of answers in the required format."""
    mean_reward: float
    """Mean SRL reward, -1 for each broken answer."""
    mean_similarity: float | None
    """Mean reward of the well-formed answers (None without any)."""
    errors: list[tuple[str, int]]
    """The most common format errors, with their counts."""


def config_rendering(config: str, policy: Policy, log: Callable[[str], None] = print) -> StepConfig:
    """How a training run with this YAML config would render prompts for `policy`'s tokenizer."""
    from .train.config import TrainConfig
    from .train.data import training_rendering

    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is None:
        raise UserError("--config needs a model whose tokenizer is here (a checkpoint folder or hub id), not a URL")
    return training_rendering(TrainConfig.from_yaml(config), tokenizer, log)


def sample_examples(trajectories: list[Trajectory], rendering: StepConfig, n: int, seed: int = 0) -> list[StepExample]:
    """`n` step examples drawn (seeded, without replacement) from all steps of `trajectories`."""
    examples = [ex for traj in trajectories for ex in examples_from_trajectory(traj, rendering)]
    return random.Random(seed).sample(examples, min(n, len(examples)))


def probe(policy: Policy, examples: list[StepExample], reward: SRLRewardConfig, params: SamplingParams,
          top_errors: int = 5, batch_size: int = 8) -> ProbeReport:
    rewards: list[float] = []
    errors: Counter[str] = Counter()
    for i in range(0, len(examples), batch_size):
        batch = examples[i:i + batch_size]
        groups = policy.generate([ex.prompt for ex in batch], [ex.tools for ex in batch], params)
        for ex, group in zip(batch, groups, strict=True):
            for completion in group:
                value, reason = explain_reward(completion.text, ex.expert, reward, ex.tool_names)
                rewards.append(value)
                if reason.startswith(FORMAT_PREFIX):
                    errors[reason.removeprefix(FORMAT_PREFIX)] += 1
    formed = [r for r in rewards if r > -1]
    return ProbeReport(len(examples), len(rewards), len(formed) / max(1, len(rewards)),
                       sum(rewards) / max(1, len(rewards)), sum(formed) / len(formed) if formed else None,
                       errors.most_common(top_errors))
