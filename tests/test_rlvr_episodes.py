"""RLVR episodes: the tokens trained on are the tokens sampled, observations carry no gradient, and every
sandbox is removed. Real tiny model, real swe-mini sandboxes."""

from __future__ import annotations

import copy
import threading

import pytest
import torch

from srl_agent.errors import UserError
from srl_agent.policy.hf import token_logprobs
from srl_agent.rlvr.episodes import (
    EpisodeConfig,
    EpisodeTokens,
    _open_sandbox,
    add_turn_context,
    continuation,
    run_episodes,
    start_episode,
)
from srl_agent.rlvr.reward import EpisodeRewardConfig
from srl_agent.sandbox import LABEL
from srl_agent.steps import StepConfig
from srl_agent.train.grpo import clipped_objective

FULL_HISTORY = StepConfig(history=None)
INSTANCE_ID = "swemini__moneyfmt-1"


@pytest.fixture(scope="module")
def tiny_policy():
    from srl_agent.policy.hf import HFPolicy
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    model, tokenizer = load_model(TrainConfig())
    return HFPolicy(model.eval(), tokenizer)


class RecordingOpener:
    """Opens each episode's sandbox as run_episodes would, remembering the container names."""

    def __init__(self):
        self.names: list[str] = []

    def __call__(self, instance, cfg):
        sandbox = _open_sandbox(instance, cfg)
        self.names.append(sandbox.name)
        return sandbox

    def leftovers(self) -> list[str]:
        import docker

        client = docker.from_env()
        try:  # the plain listing: the SDK's model listing inspects every container, and fails on one that another
            # process removes meanwhile
            listed = client.api.containers(all=True, filters={"label": LABEL})
            return [name for c in listed for name in (n.lstrip("/") for n in c["Names"]) if name in self.names]
        finally:
            client.close()


def test_continuation_is_the_added_text_or_a_loud_error():
    assert continuation("<s>a", "<s>ab") == "b"
    with pytest.raises(UserError, match=r"prefix-preserving.*at character 4"):
        continuation("<s>ab", "<s>aXb")


def test_episode_tokens_mask_sampled_ids_only():
    tokens = EpisodeTokens()
    tokens.add([1, 2, 3])
    tokens.add([4, 5], [-0.5, -1.5])
    tokens.add([6])
    assert (tokens.ids, tokens.mask, tokens.logprobs) == ([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 0],
                                                          [0.0, 0.0, 0.0, -0.5, -1.5, 0.0])
    with pytest.raises(ValueError, match="2 sampled ids but 1 log-probs"):
        tokens.add([7, 8], [-1.0])


def test_windowed_history_and_non_prefix_preserving_templates_are_refused(tiny_policy):
    instance = {"instance_id": "x__y-1", "problem_statement": "Fix it."}
    with pytest.raises(UserError, match="--history full"):
        start_episode(tiny_policy.tokenizer, instance, StepConfig(history=2))
    # a template that drops earlier answers' text (as Qwen3 drops earlier reasoning) is not prefix-preserving
    tokenizer = copy.deepcopy(tiny_policy.tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}<|im_start|>assistant\n<|im_end|>\n"
        "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    episode = start_episode(tokenizer, instance, FULL_HISTORY)
    episode.text += "I will look.<|im_end|>"
    with pytest.raises(UserError, match="prefix-preserving"):
        add_turn_context(tokenizer, episode, [{"role": "assistant", "content": "I will look."},
                                              {"role": "tool", "content": "file.py"}], FULL_HISTORY)


def test_an_answer_closed_by_another_declared_end_id_keeps_it_and_the_episode_goes_on(tiny_policy):
    """Qwen2.5 declares <|endoftext|> an end id beside <|im_end|>, and the policy stops at either (as `generate` and
    vLLM do), but the template closes a turn with <|im_end|>: the prefix check stopped the whole run. The sampled id
    stays (trained on); the template's glue follows it as context."""
    tokenizer = tiny_policy.tokenizer
    episode = start_episode(tokenizer, {"instance_id": "x__y-1", "problem_statement": "Fix it."}, FULL_HISTORY)
    prompt = list(episode.tokens.ids)
    answer = tokenizer("I will look.", add_special_tokens=False)["input_ids"]
    other_end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert other_end != tokenizer.eos_token_id
    sampled = [*answer, other_end]
    episode.tokens.add(sampled, [-0.5] * len(sampled))  # as run_episodes adds a sampled answer
    episode.text += tokenizer.decode(sampled, skip_special_tokens=False)
    add_turn_context(tokenizer, episode, [{"role": "assistant", "content": "I will look."},
                                          {"role": "tool", "content": "file.py"}], FULL_HISTORY)
    glue = episode.tokens.ids[len(prompt) + len(sampled):]
    assert episode.tokens.ids[:len(prompt) + len(sampled)] == prompt + sampled
    assert episode.tokens.mask == [0] * len(prompt) + [1] * len(sampled) + [0] * len(glue)
    assert tokenizer.decode(glue, skip_special_tokens=False).startswith("<|im_end|>\n<|im_start|>")
    assert episode.text == tokenizer.decode(prompt + answer + glue, skip_special_tokens=False)


def test_episodes_train_on_exactly_the_sampled_tokens(tiny_policy, swe_mini_images):
    instance = next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID)
    cfg = EpisodeConfig(context="episode", group_size=3, max_turns=3, max_format_errors=5, max_new_tokens=24,
                        max_episode_tokens=3000, temperature=1.0, workers=3)
    opener = RecordingOpener()
    torch.manual_seed(0)
    (group,) = run_episodes(tiny_policy, [instance], cfg, FULL_HISTORY, EpisodeRewardConfig(format_penalty=0.1), opener)
    assert len(set(opener.names)) == 3 and opener.leftovers() == []  # one sandbox per episode, all gone
    assert len(group) == 3
    for episode in group:
        tokens = episode.tokens
        assert len(tokens.ids) == len(tokens.mask) == len(tokens.logprobs) <= cfg.max_episode_tokens
        # the untrained model writes no valid tool call: every turn is a malformed answer followed by the format help
        assert episode.status == "turn_limit" and episode.turns == 3 == episode.format_errors
        assert 3 <= sum(tokens.mask) <= 3 * cfg.max_new_tokens and tokens.mask[0] == 0 and tokens.mask[-1] == 0
        assert episode.reward.reward == pytest.approx(-0.3) and not episode.reward.resolved
        assert episode.reward.reason == "" and episode.patch == ""  # the tests ran on the untouched repository

        ids = torch.tensor([tokens.ids])
        mask = torch.tensor(tokens.mask[1:], dtype=torch.float32).unsqueeze(0)  # the mask of each predicted token
        logits = tiny_policy.model(input_ids=ids).logits[:, :-1].float()
        logits.retain_grad()
        logp = token_logprobs(logits, ids[:, 1:])
        sampled = torch.tensor(tokens.logprobs[1:]).unsqueeze(0)
        # recomputed log-probs equal the sampled ones (fp32 on CPU; the sampler ran the episodes left-padded as a batch)
        assert torch.allclose(logp[mask.bool()], sampled[mask.bool()], atol=1e-4)
        loss = clipped_objective(logp, sampled, torch.tensor([1.0]), mask)
        loss.backward()
        grad_per_position = logits.grad[0].abs().sum(-1)
        assert torch.all(grad_per_position[~mask[0].bool()] == 0)  # prompt, glue, observations: exactly zero
        assert torch.all(grad_per_position[mask[0].bool()] > 0)
        tiny_policy.model.zero_grad(set_to_none=True)


def test_sandboxes_are_removed_when_an_episode_cannot_start(tiny_policy, swe_mini_images):
    instance = next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID)
    missing = {**instance, "instance_id": "swemini__nothing-1", "image": "srl-agent/swe-mini:no-such-image"}
    opener = RecordingOpener()
    with pytest.raises(UserError, match="no-such-image"):
        run_episodes(tiny_policy, [missing, instance], EpisodeConfig(group_size=2, workers=4, max_new_tokens=8),
                     FULL_HISTORY, EpisodeRewardConfig(), opener)
    assert len(opener.names) == 2 and opener.leftovers() == []  # the two that started were removed


class ScriptedPolicy:
    """Answers with fixed tool calls, as exact token ids (the tiny model's tokenizer), to drive the tool path."""

    def __init__(self, tokenizer, calls):
        self.tokenizer, self.calls, self.turn = tokenizer, calls, 0

    def generate_ids(self, prompt_ids, params):
        from srl_agent.actions import assistant_message
        from srl_agent.chat import render_prompt
        from srl_agent.policy import Completion

        call, self.turn = self.calls[self.turn], self.turn + 1
        turn = assistant_message("I look first.", call, FULL_HISTORY.call_style, FULL_HISTORY.reasoning)
        text = render_prompt(self.tokenizer, [turn], None, generation=False)
        answer = text[len("<|im_start|>assistant\n"):text.rindex("<|im_end|>")]
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.convert_tokens_to_ids(
            "<|im_end|>")]
        return [[Completion(answer, ids, [-0.25] * len(ids))] for _ in prompt_ids]


def test_tool_observations_are_context_and_the_sequence_is_the_conversation(tiny_policy, swe_mini_images):
    from srl_agent.types import ToolCall

    instance = next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID)
    policy = ScriptedPolicy(tiny_policy.tokenizer, [ToolCall("bash", {"command": "echo obs-$((6*7)) > out.txt; "
                                                                                 "cat out.txt"}),
                                                    ToolCall("submit", {})])
    cfg = EpisodeConfig(context="episode", group_size=1, max_turns=5, max_new_tokens=64, max_episode_tokens=3000)
    opener = RecordingOpener()
    ((episode,),) = run_episodes(policy, [instance], cfg, FULL_HISTORY, EpisodeRewardConfig(partial_credit=True),
                                 opener)
    assert opener.leftovers() == []
    assert (episode.status, episode.turns, episode.format_errors) == ("submitted", 2, 0)
    assert "+obs-42" in episode.patch  # the episode's edit, graded in its own sandbox
    assert episode.reward.reason == "" and episode.reward.reward == 0.0  # tests ran; the bug is still there
    tokens = episode.tokens
    decode = tiny_policy.tokenizer.decode
    assert decode(tokens.ids, skip_special_tokens=False) == episode.text  # the sequence is the rendered conversation
    trained = decode([t for t, m in zip(tokens.ids, tokens.mask, strict=True) if m], skip_special_tokens=False)
    context = decode([t for t, m in zip(tokens.ids, tokens.mask, strict=True) if not m], skip_special_tokens=False)
    assert trained.count("<tool_call>") == 2 and "obs-42" not in trained.replace("obs-$((6*7))", "")
    assert "<tool_response>\nobs-42\n" in context  # the observation is context (mask 0)
    assert [lp for lp, m in zip(tokens.logprobs, tokens.mask, strict=True) if m] == [-0.25] * sum(tokens.mask)


def test_token_budget_and_a_dead_sandbox_end_episodes_without_stopping_the_run(tiny_policy, swe_mini_images):
    import docker

    from srl_agent.types import ToolCall

    instance = next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID)
    prompt_tokens = len(start_episode(tiny_policy.tokenizer, instance, FULL_HISTORY).tokens.ids)
    look = ToolCall("bash", {"command": "ls"})
    # room for exactly one answer: the second turn would pass max_episode_tokens
    cfg = EpisodeConfig(context="episode", group_size=1, max_turns=5, max_new_tokens=64,
                        max_episode_tokens=prompt_tokens + 100)
    ((episode,),) = run_episodes(ScriptedPolicy(tiny_policy.tokenizer, [look] * 5), [instance], cfg, FULL_HISTORY,
                                 EpisodeRewardConfig(), RecordingOpener())
    assert (episode.status, episode.turns) == ("token_limit", 1)
    assert prompt_tokens < len(episode.tokens.ids) <= cfg.max_episode_tokens < len(episode.tokens.ids) + 64
    assert episode.reward.reason == ""  # still graded on its patch

    class KillingPolicy(ScriptedPolicy):
        """Kills episode 0's container before the second turn (a sandbox dying under the run)."""

        def generate_ids(self, prompt_ids, params):
            if self.turn == 1:
                client = docker.from_env()
                client.containers.get(opener.names[0]).kill()
                client.close()
            return super().generate_ids(prompt_ids, params)

    class DiffRecordingOpener(RecordingOpener):
        """Also remembers which sandboxes were asked for their patch."""

        def __call__(self, instance, cfg):
            sandbox = super().__call__(instance, cfg)
            diff = sandbox.diff

            def recorded_diff():
                self.diffed.append(sandbox.name)
                return diff()

            sandbox.diff = recorded_diff
            return sandbox

    opener = DiffRecordingOpener()
    opener.diffed = []
    cfg = EpisodeConfig(context="episode", group_size=2, max_turns=3, max_new_tokens=64, max_episode_tokens=3000,
                        workers=2)
    (group,) = run_episodes(KillingPolicy(tiny_policy.tokenizer, [look] * 3), [instance], cfg, FULL_HISTORY,
                            EpisodeRewardConfig(), opener)
    # two workers open the sandboxes concurrently: the first container opened may be either episode's
    dead, alive = sorted(group, key=lambda episode: episode.status != "sandbox_error")
    assert opener.leftovers() == []
    assert (dead.status, dead.detail, dead.turns) == ("sandbox_error", "the sandbox failed at turn 2", 2)
    # the engine's error, on one line, is the reason; the dead sandbox was not asked for a patch or tests
    assert dead.reward.reward == 0.0 and dead.reward.reason and "\n" not in dead.reward.reason
    assert opener.diffed == opener.names[1:] and dead.patch == ""
    assert (alive.status, alive.turns, alive.reward.reason) == ("turn_limit", 3, "")


class FailingOpener(RecordingOpener):
    """Opens sandboxes as run_episodes would, except that the calls numbered in `fail_calls` (every call when None)
    raise the error a start on a loaded machine raised."""

    def __init__(self, fail_calls: set[int] | None):
        super().__init__()
        self.fail_calls, self.calls, self.lock = fail_calls, 0, threading.Lock()

    def __call__(self, instance, cfg):
        with self.lock:  # the sandboxes open on several threads
            self.calls += 1
            fails = self.fail_calls is None or self.calls in self.fail_calls
        if fails:
            raise RuntimeError("cannot find the container's keeper process: ''")
        return super().__call__(instance, cfg)


def test_a_sandbox_that_does_not_start_scores_0_and_the_other_episodes_play(tiny_policy, swe_mini_images):
    from srl_agent.types import ToolCall

    class BatchRecordingPolicy(ScriptedPolicy):
        def generate_ids(self, prompt_ids, params):
            self.batch_sizes.append(len(prompt_ids))
            return super().generate_ids(prompt_ids, params)

    instance = next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID)
    look = ToolCall("bash", {"command": "ls"})
    policy = BatchRecordingPolicy(tiny_policy.tokenizer, [look] * 2)
    policy.batch_sizes = []
    # one worker: the starts run in order, episode 1's second try (call 4) after episode 2's first (call 3)
    opener = FailingOpener(fail_calls={2, 4})
    cfg = EpisodeConfig(context="episode", group_size=3, max_turns=2, max_new_tokens=64, max_episode_tokens=3000,
                        workers=1)
    (group,) = run_episodes(policy, [instance], cfg, FULL_HISTORY, EpisodeRewardConfig(), opener)
    assert opener.calls == 4 and len(opener.names) == 2 and opener.leftovers() == []  # the two started were removed
    (dead,) = [e for e in group if e.status == "sandbox_error"]
    assert (dead.detail, dead.reward.reward, dead.reward.resolved) == ("the sandbox did not start", 0.0, False)
    assert dead.reward.reason == "RuntimeError: cannot find the container's keeper process: ''"
    assert dead.turns == 0 and sum(dead.tokens.mask) == 0 and dead.patch == ""
    assert policy.batch_sizes == [2, 2]  # it never generated; the two others played both turns
    played = [e for e in group if e is not dead]
    assert [(e.status, e.turns, e.reward.reason, e.detail) for e in played] == [("turn_limit", 2, "", "")] * 2

    # no sandbox started: nothing was played, so the call raises rather than hand back a group of zeros
    opener = FailingOpener(fail_calls=None)
    with pytest.raises(RuntimeError, match=r"none of the 2 sandboxes could start: RuntimeError: cannot find"):
        run_episodes(policy, [instance], EpisodeConfig(group_size=2, workers=2), FULL_HISTORY, EpisodeRewardConfig(),
                     opener)
    assert opener.calls == 4 and opener.names == []  # each tried twice


class AnswerScript:
    """Fixed answers (texts, as the policy would write them), each sampled as exact ids with its own log-probs: to
    RLVR's episodes (generate_ids) and to eval's agent (generate, whose prompts it records)."""

    def __init__(self, tokenizer, answers: list[str]):
        self.tokenizer, self.answers, self.turn, self.asked = tokenizer, answers, 0, []

    def _next(self):
        from srl_agent.policy import Completion

        text, self.turn = self.answers[self.turn], self.turn + 1
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.convert_tokens_to_ids(
            "<|im_end|>")]
        return Completion(text, ids, [-0.1 * self.turn] * len(ids))

    def generate_ids(self, prompt_ids, params):
        return [[self._next()] for _ in prompt_ids]

    def generate(self, prompts, tools, params):
        self.asked += list(zip(prompts, tools, strict=True))
        return [[self._next()] for _ in prompts]


def call_text(tokenizer, call, rendering: StepConfig) -> str:
    """An answer that makes `call`, as the policy writes it (the assistant turn the template renders)."""
    from srl_agent.actions import assistant_message
    from srl_agent.chat import render_prompt

    turn = assistant_message("I look first.", call, rendering.call_style, rendering.reasoning)
    text = render_prompt(tokenizer, [turn], None, generation=False)
    return text[len("<|im_start|>assistant\n"):text.rindex("<|im_end|>")]


def test_step_context_turns_are_the_prompts_srl_and_eval_render_with_the_ids_as_sampled(tiny_policy, swe_mini_images):
    """One context shape: a `step` episode's turn prompts are, token for token, those SRL's examples of its recorded
    run are rendered as (every turn that follows a step) and those eval's agent sends when it gives the same answers
    (every turn, a broken answer's format help included), with the last 2 steps and observations cut to 200
    characters; each turn's completion is the sampled ids and log-probs, unchanged."""
    from srl_agent.agent import AgentConfig, run_agent
    from srl_agent.rlvr.batch import group_samples
    from srl_agent.steps import examples_from_trajectory
    from srl_agent.types import ToolCall, Trajectory

    instance = next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID)
    rendering = StepConfig(history=2, max_observation_chars=200)
    tokenizer = tiny_policy.tokenizer
    calls = [ToolCall("bash", {"command": "seq 1 300"}), None, ToolCall("bash", {"command": "echo step-$((6*7))"}),
             ToolCall("bash", {"command": "ls"}), ToolCall("submit", {})]
    answers = [call_text(tokenizer, c, rendering) if c else "Let me think about it." for c in calls]
    cfg = EpisodeConfig(group_size=1, max_turns=len(answers), max_new_tokens=64, max_episode_tokens=3000)
    assert cfg.context == "step"  # the default
    script = AnswerScript(tokenizer, answers)
    ((episode,),) = run_episodes(script, [instance], cfg, rendering, EpisodeRewardConfig(), RecordingOpener())
    assert (episode.status, episode.turns, episode.format_errors, len(episode.steps)) == ("submitted", 5, 1, 4)
    assert episode.tokens.ids == []  # no whole-episode sequence
    turns = episode.turn_samples
    sampled = [script.tokenizer(a, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids(
        "<|im_end|>")] for a in answers]
    assert [t.ids for t in turns] == sampled  # the ids as sampled, never re-tokenised
    assert [t.logprobs for t in turns] == [[-0.1 * (k + 1)] * len(ids) for k, ids in enumerate(sampled)]

    def ids(messages, tools) -> list[int]:  # as the trainer renders and tokenises an SRL example (Trainer.prompt_ids)
        return tiny_policy.encode_prompts([tiny_policy.render(messages, tools)])[0]

    # SRL: the examples of the recorded run; turn 2 answered the format help, which no example holds
    run = Trajectory(instance["instance_id"], instance["problem_statement"], episode.steps)
    examples = examples_from_trajectory(run, rendering)
    assert [ids(ex.prompt, ex.tools) for ex in examples] == [turns[k].prompt_ids for k in (0, 1, 3, 4)]
    shown = tokenizer.decode(turns[4].prompt_ids)
    assert "(1 earlier step not shown.)" in shown and "seq 1 300" not in shown  # the window: the last 2 steps
    # the observation cut once to 200 characters, as eval cuts it
    assert tokenizer.decode(turns[1].prompt_ids).count("characters omitted") == 1

    # eval: the agent loop given the same answers, in a sandbox of its own
    eval_policy = AnswerScript(tokenizer, answers)
    with _open_sandbox(instance, cfg) as sandbox:
        agent = run_agent(eval_policy, sandbox, instance["problem_statement"], instance["instance_id"],
                          AgentConfig(rendering=rendering, max_steps=10))
    assert agent.exit_status == "submitted" and agent.format_errors == 1
    assert [ids(messages, tools) for messages, tools in eval_policy.asked] == [t.prompt_ids for t in turns]

    # the update's sequences: exactly these prompts and sampled ids
    assert group_samples([episode]).sequences == [(t.prompt_ids, t.ids, [1] * len(t.ids)) for t in turns]
