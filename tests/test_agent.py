"""The agent loop in real sandboxes: a replaying expert policy solves a task and submits; a tiny random
model's broken answers are counted and capped; step and context limits stop the run."""

from __future__ import annotations

import json

import pytest

from srl_agent.agent import AgentConfig, run_agent, save_run
from srl_agent.errors import UserError
from srl_agent.formats import load_trajectories
from srl_agent.policy.replay import ReplayPolicy
from srl_agent.replay import patches_match
from srl_agent.types import Step, ToolCall, Trajectory

from .test_replay import calc_trajectory


def test_replaying_expert_solves_and_submits(sandbox_factory, calc_repo, tmp_path):
    expert = calc_trajectory(calc_repo, tmp_path)
    with sandbox_factory(calc_repo) as sb:
        run = run_agent(ReplayPolicy(expert), sb, expert.problem_statement, "calc-mean")
    assert run.exit_status == "submitted" and run.format_errors == 0
    assert len(run.trajectory.steps) == 7
    assert [s.action for s in run.trajectory.steps] == [s.action for s in expert.steps]
    assert patches_match(run.patch, expert.patch)
    assert "2 passed" in run.trajectory.steps[5].observation
    canonical, swe_agent = save_run(run, tmp_path / "runs")
    (back,) = load_trajectories([str(canonical)])
    assert back == run.trajectory
    (as_traj,) = load_trajectories([str(swe_agent)])  # SWE-agent's format, read by our own importer
    assert as_traj.source_format == "swe-agent" and as_traj.patch == run.patch
    assert [(s.action.name, s.action.arguments) for s in as_traj.steps] == [
        (s.action.name, s.action.arguments) for s in run.trajectory.steps]
    info = json.loads(swe_agent.read_text())["info"]
    assert info["exit_status"] == "submitted"


def test_format_errors_are_told_and_capped(sandbox_factory, calc_repo):
    from srl_agent.policy.hf import HFPolicy
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    model, tokenizer = load_model(TrainConfig())  # random weights: never a well-formed answer
    policy = RecordingPolicy(HFPolicy(model.eval(), tokenizer))
    with sandbox_factory(calc_repo) as sb:
        run = run_agent(policy, sb, "Fix it.", "t", AgentConfig(max_format_errors=2, max_new_tokens=8))
        assert run.exit_status == "format_errors" and run.format_errors == 3
        assert run.trajectory.steps == [] and run.patch == "" and len(run.responses) == 3
        # each broken answer is shown back to the model with what was wrong and how to answer
        second = policy.prompts[1]
        assert second[-2] == {"role": "assistant", "content": run.responses[0]}
        assert second[-1]["role"] == "user"
        assert second[-1]["content"].startswith("Your answer broke the required format: ")
        assert "<tool_call>" in second[-1]["content"]
        policy.prompts.clear()
        run = run_agent(policy, sb, "Fix it.", "t", AgentConfig(max_context_tokens=10))
        assert run.exit_status == "context_limit" and run.responses == [] and policy.prompts == []
        # unset, the limit is the model's own window less the answer's tokens
        long_issue = "Fix it. " * policy.context_window
        run = run_agent(policy, sb, long_issue, "t", AgentConfig(max_new_tokens=8))
        assert run.exit_status == "context_limit" and policy.prompts == []
        with pytest.raises(UserError, match="no room for a prompt: the model's 4096-token context window"):
            run_agent(policy, sb, "Fix it.", "t", AgentConfig(max_new_tokens=policy.context_window))


class RecordingPolicy:
    """Passes everything to a policy and keeps the prompts it was asked to complete."""

    def __init__(self, policy):
        self.policy, self.prompts = policy, []

    def generate(self, prompts, tools, params):
        self.prompts += prompts
        return self.policy.generate(prompts, tools, params)

    def __getattr__(self, name):
        return getattr(self.policy, name)


def test_step_limit(sandbox_factory, calc_repo):
    looping = Trajectory("loop", "x", [Step("look", ToolCall("bash", {"command": "ls"}), "")] * 5)
    with sandbox_factory(calc_repo) as sb:
        run = run_agent(ReplayPolicy(looping), sb, "x", "loop", AgentConfig(max_steps=3))
    assert run.exit_status == "step_limit" and len(run.trajectory.steps) == 3


def test_replay_policy_picks_the_trajectory_by_the_exact_issue():
    from srl_agent.policy import SamplingParams

    def one_step(command: str) -> list[Step]:
        return [Step("look", ToolCall("bash", {"command": command}), "")]

    first = Trajectory("a", "Fix the parser.", one_step("ls"))
    second = Trajectory("b", "Fix the parser. Also the lexer.", one_step("cat x"))
    policy = ReplayPolicy([second, first])

    def answer(issue: str) -> str:
        task = {"role": "user", "content": f"Resolve this issue in the repository:\n\n<issue>\n{issue}\n</issue>"}
        return policy.generate([[task]], None, SamplingParams())[0][0].text

    assert '"ls"' in answer("Fix the parser.") and '"cat x"' in answer("Fix the parser. Also the lexer.")
    with pytest.raises(ValueError, match="no replayed trajectory"):
        answer("Something else.")


@pytest.mark.parametrize("style", ["hermes", "xml", "llama"])
def test_agent_prompts_are_its_own_runs_training_examples(style, swe_image, calc_repo, tmp_path):
    # Train/eval parity: the agent's k-th prompt is example k of its own run, cut with the same window,
    # observation cap and call style; a replayed expert answering in that style submits the same patch.
    from srl_agent.sandbox import SandboxConfig, open_sandbox
    from srl_agent.steps import StepConfig, examples_from_trajectory

    expert = calc_trajectory(calc_repo, tmp_path)
    rendering = StepConfig(history=2, max_observation_chars=40, call_style=style)
    policy = RecordingPolicy(ReplayPolicy(expert, style))
    with open_sandbox(SandboxConfig(image=swe_image), kind="docker", repo=str(calc_repo)) as sb:
        run = run_agent(policy, sb, expert.problem_statement, "calc-mean", AgentConfig(rendering=rendering))
    assert run.exit_status == "submitted" and run.format_errors == 0 and patches_match(run.patch, expert.patch)
    examples = examples_from_trajectory(run.trajectory, rendering)
    assert policy.prompts == [ex.prompt for ex in examples]
    last = policy.prompts[-1]
    assert "(4 earlier steps not shown.)" in last[1]["content"] and len(last) == 6
    marker = len("\n[... 999 characters omitted ...]\n")
    assert all(len(m["content"]) <= 40 + marker for m in last if m["role"] == "tool")
    assert ("tool_calls" in last[2]) == (style == "hermes")


def test_eval_reads_the_checkpoints_rendering_record(tmp_path):
    from srl_agent.agent import rendering_for
    from srl_agent.steps import RENDERING_FILE, StepConfig, save_rendering

    lines = []
    assumed = rendering_for(str(tmp_path), log=lines.append)  # a run from before the record existed
    assert assumed == StepConfig() and len(lines) == 1
    assert lines[0].startswith(f"{tmp_path} has no rendering record (rendering.json") and "last 2 steps" in lines[0]
    trained = StepConfig(history=3, max_observation_chars=99, call_style="xml")
    save_rendering(trained, tmp_path)
    replayed = ReplayPolicy([])
    assert rendering_for(str(tmp_path), replayed, lines.append) == trained and len(lines) == 1
    assert replayed.call_style == "xml"  # a replayed expert answers as the run expects
    changed = rendering_for(str(tmp_path), None, lines.append, history="full", max_observation_chars=5,
                            call_style="hermes")
    assert (changed.history, changed.max_observation_chars, changed.call_style) == (None, 5, "hermes")
    assert changed.system_prompt == trained.system_prompt
    (tmp_path / RENDERING_FILE).write_text('{"history": 2, "colour": "red"}')
    with pytest.raises(UserError, match=r"rendering\.json: not a rendering record"):
        rendering_for(str(tmp_path))
