"""`srl-agent probe`: format-following measured before training, on real prompts of the shipped trajectories."""

from __future__ import annotations

import pytest

from srl_agent.formats import load_trajectories
from srl_agent.paths import project_dir
from srl_agent.policy import SamplingParams
from srl_agent.policy.replay import ReplayPolicy
from srl_agent.probe import probe, sample_examples
from srl_agent.reward import SRLRewardConfig
from srl_agent.steps import StepConfig

from .test_reward import run_cli


@pytest.fixture(scope="module")
def shipped():
    return list(load_trajectories([str(project_dir("trajectories"))]))


def test_sampled_prompts_are_seeded_and_distinct(shipped):
    first = sample_examples(shipped, StepConfig(), 12, seed=3)
    assert len({(ex.trajectory_id, ex.step_index) for ex in first}) == 12
    assert first == sample_examples(shipped, StepConfig(), 12, seed=3) != sample_examples(shipped, StepConfig(), 12)


@pytest.mark.parametrize("style", ["hermes", "xml"])
def test_probe_tells_a_formatted_policy_from_a_random_model(style, shipped):
    from srl_agent.policy.hf import HFPolicy
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    examples = sample_examples(shipped, StepConfig(call_style=style), 6)
    reward = SRLRewardConfig(call_style=style)
    expert = probe(ReplayPolicy(shipped, style), examples, reward, SamplingParams(n=2, temperature=0))
    assert (expert.prompts, expert.answers, expert.format_ok, expert.mean_reward) == (6, 12, 1.0, 1.0)
    assert expert.errors == []
    model, tokenizer = load_model(TrainConfig())  # random weights: never a well-formed answer
    random = probe(HFPolicy(model.eval(), tokenizer), examples, reward, SamplingParams(temperature=0,
                                                                                       max_new_tokens=8))
    assert (random.format_ok, random.mean_reward, random.mean_similarity) == (0.0, -1.0, None)
    assert random.errors == [("the answer must start with a <think>...</think> block", 6)]


def test_probe_cli_on_a_checkpoint_without_a_rendering_record(tmp_path):
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model, save_model

    save_model(*load_model(TrainConfig()), tmp_path / "random")
    proc = run_cli("probe", "--model", str(tmp_path / "random"), "-n", "4", "--max-new-tokens", "8")
    assert proc.returncode == 0, proc.stderr
    assert "has no rendering record (rendering.json" in proc.stderr and "hermes calls" in proc.stderr
    assert "0.0%" in proc.stdout and "-1.000" in proc.stdout and "SFT warm-up" in proc.stdout
    assert run_cli("probe", "--model", str(tmp_path / "random"), "-n", "0").returncode == 2


def test_probe_renders_as_a_training_config_would(tmp_path):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from srl_agent.actions import parse_completion
    from srl_agent.errors import UserError
    from srl_agent.paths import project_dir
    from srl_agent.probe import config_rendering
    from srl_agent.tokenizer import TINY_TOKENIZER_DIR

    policy = SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(TINY_TOKENIZER_DIR))
    paper = config_rendering(str(project_dir("configs") / "swe-paper.yaml"), policy)
    assert (paper.history, paper.max_observation_chars, paper.call_style) == (2, 4000, "hermes")
    # the paper recipe's system prompt carries one worked answer, itself well-formed
    example = paper.system_prompt[paper.system_prompt.rindex("<think>"):]
    assert parse_completion(example).call.arguments["path"] == "/testbed/src/utils.py"
    with pytest.raises(UserError, match="--config needs a model whose tokenizer is here"):
        config_rendering(str(project_dir("configs") / "swe-paper.yaml"), ReplayPolicy([]))
