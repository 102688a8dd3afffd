"""The asynchronous agent loop: RLVR episodes that each advance on their own play the same episodes as lock step,
in any completion order; a hung call times out, a dying sandbox ends only its episode, a failing policy or Ctrl-C
stops the run with every sandbox removed; eval's workers share an in-process model through batches; a served
model gets a batch's requests at once. Real swe-mini sandboxes, the tiny model's tokenizer, scripted answers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from srl_agent.policy import Completion, SamplingParams
from srl_agent.policy.batcher import LOCK_STEP, BatchLimits
from srl_agent.rlvr.episodes import EpisodeConfig, run_episodes
from srl_agent.rlvr.reward import EpisodeRewardConfig
from srl_agent.types import ToolCall
from tests.chat_server import ChatServer

from .test_rlvr_episodes import FULL_HISTORY, RecordingOpener

TASKS = ("swemini__moneyfmt-1", "swemini__configlite-1")


class PromptScriptedPolicy:
    """Answers by the prompt alone (which task, which turn), as exact token ids: the episodes do not depend on which
    prompts share a batch. `on_turn(task, turn)` runs before the answer (to kill a sandbox, say)."""

    def __init__(self, tokenizer, scripts: dict[str, list[ToolCall]], on_turn=lambda task, turn: None):
        self.tokenizer, self.scripts, self.on_turn = tokenizer, scripts, on_turn
        self.batches: list[int] = []

    def generate_ids(self, prompt_ids, params):
        from srl_agent.actions import assistant_message
        from srl_agent.chat import render_prompt

        self.batches.append(len(prompt_ids))
        out = []
        for ids in prompt_ids:
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            task = next(t for t in self.scripts if t in text)
            turn = text.count("<|im_start|>assistant") - 1
            self.on_turn(task, turn)
            call = self.scripts[task][min(turn, len(self.scripts[task]) - 1)]
            rendered = render_prompt(self.tokenizer, [assistant_message(f"Turn {turn}.", call, "hermes", "content")],
                                     None, generation=False)
            answer = rendered[len("<|im_start|>assistant\n"):rendered.rindex("<|im_end|>")]
            ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [
                self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
            out.append([Completion(answer, ids, [-0.5] * len(ids))])
        return out


@pytest.fixture(scope="module")
def tokenizer():
    from srl_agent.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def tasks(swe_mini_images):
    by_id = {i["instance_id"]: i for i in swe_mini_images}
    # the task id in the statement lets the scripted policy tell the episodes apart by their prompts
    return [{**by_id[t], "problem_statement": f"[{t}] {by_id[t]['problem_statement']}"} for t in TASKS]


class NamingOpener(RecordingOpener):
    """Also remembers which task each container is for."""

    def __init__(self):
        super().__init__()
        self.task_of: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, instance, cfg):
        sandbox = super().__call__(instance, cfg)
        with self.lock:
            self.task_of[sandbox.name] = instance["instance_id"]
        return sandbox


def play(tokenizer, tasks, batching: BatchLimits):
    """Task 0: writes a file, hangs past its timeout, submits. Task 1: its sandbox is killed before its turn 2."""
    import docker

    opener = NamingOpener()
    killed = []

    def kill_before(task, turn):
        if task == TASKS[1] and turn == 2 and not killed:
            name = next(n for n, t in opener.task_of.items() if t == task)
            client = docker.from_env()
            client.containers.get(name).kill()
            client.close()
            killed.append(name)

    scripts = {TASKS[0]: [ToolCall("bash", {"command": "echo async-$((6*7)) > out.txt"}),
                          ToolCall("bash", {"command": "sleep 30"}), ToolCall("submit", {})],
               TASKS[1]: [ToolCall("bash", {"command": "ls"})] * 3}
    policy = PromptScriptedPolicy(tokenizer, scripts, kill_before)
    cfg = EpisodeConfig(context="episode", group_size=1, max_turns=3, max_new_tokens=64, max_episode_tokens=3000,
                        workers=2, step_timeout=1)
    groups = run_episodes(policy, tasks, cfg, FULL_HISTORY, EpisodeRewardConfig(), opener, batching=batching)
    assert opener.leftovers() == []
    return [e for group in groups for e in group], policy.batches


def test_async_episodes_equal_lock_step_ones_and_faults_stay_in_their_episode(tokenizer, tasks):
    lock_step, lock_batches = play(tokenizer, tasks, LOCK_STEP)
    alone, alone_batches = play(tokenizer, tasks, BatchLimits(max_size=1))  # each prompt as soon as it is ready
    assert [(e.status, e.detail) for e in lock_step + alone] == [
        ("submitted", ""), ("sandbox_error", "the sandbox failed at turn 3")] * 2, [e.reward for e in lock_step + alone]
    assert (lock_batches, alone_batches) == ([2, 2, 2], [1] * 6)
    for a, b in zip(lock_step, alone, strict=True):
        assert (a.status, a.turns, a.format_errors, a.detail, a.patch) == (b.status, b.turns, b.format_errors,
                                                                           b.detail, b.patch)
        assert (a.tokens.ids, a.tokens.mask, a.tokens.logprobs) == (b.tokens.ids, b.tokens.mask, b.tokens.logprobs)
        assert (a.reward.reward, a.reward.resolved) == (b.reward.reward, b.reward.resolved)
    submitted, dead = lock_step
    assert (submitted.status, submitted.turns) == ("submitted", 3) and "+async-42" in submitted.patch
    assert "[the command was killed after 1 seconds]" in submitted.text  # the hung call timed out as ever
    assert submitted.reward.reason == ""  # graded in its own sandbox
    assert (dead.status, dead.detail, dead.turns) == ("sandbox_error", "the sandbox failed at turn 3", 3)
    assert dead.reward.reward == 0.0 and dead.reward.reason


class FailingPolicy(PromptScriptedPolicy):
    def __init__(self, tokenizer, error: BaseException):
        super().__init__(tokenizer, {t: [ToolCall("bash", {"command": "sleep 1"})] for t in TASKS})
        self.error = error

    def generate_ids(self, prompt_ids, params):
        if len(self.batches) == 1:  # the second batch: the episodes wait for it
            self.batches.append(len(prompt_ids))
            raise self.error
        return super().generate_ids(prompt_ids, params)


def test_a_failing_policy_or_ctrl_c_stops_every_episode_and_removes_every_sandbox(tokenizer, tasks):
    cfg = EpisodeConfig(group_size=1, max_turns=3, max_new_tokens=64, max_episode_tokens=3000, workers=2)
    opener = RecordingOpener()
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        run_episodes(FailingPolicy(tokenizer, RuntimeError("CUDA out of memory")), tasks, cfg,
                     FULL_HISTORY, EpisodeRewardConfig(), opener, batching=BatchLimits(max_wait=0.05))
    assert len(opener.names) == 2 and opener.leftovers() == []

    # Ctrl-C while the episodes sleep in their sandboxes: the run stops once the calls return (as in lock step)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    policy = PromptScriptedPolicy(tokenizer, {t: [ToolCall("bash", {"command": "sleep 1"})] for t in TASKS},
                                  lambda task, turn: timer.ident is None and timer.start())
    opener = RecordingOpener()
    # a shell that starts pytest in the background (CI scripts do) leaves SIGINT ignored: restore Python's own
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_episodes(policy, tasks, cfg, FULL_HISTORY, EpisodeRewardConfig(), opener,
                         batching=BatchLimits(max_wait=0.05))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(opener.names) == 2 and opener.leftovers() == [] and policy.batches in ([1, 1], [2])


def test_eval_workers_share_an_in_process_model_through_batches(swe_mini_images, tmp_path):
    from srl_agent.bench.eval import EvalConfig, run_eval
    from srl_agent.policy.replay import ReplayPolicy
    from srl_agent.types import Step, Trajectory

    instances = swe_mini_images[:2]
    look, submit = Step("Look.", ToolCall("bash", {"command": "ls"})), Step("Done.", ToolCall("submit", {}))
    replay = ReplayPolicy([Trajectory(i["instance_id"], i["problem_statement"], [look, submit]) for i in instances])

    class BatchSizes:
        def __init__(self):
            self.sizes = []

        def generate(self, prompts, tools, params):
            self.sizes.append(len(prompts))
            return replay.generate(prompts, tools, params)

    policy = BatchSizes()
    cfg = EvalConfig(bench="swe-mini", model="scripted", workers=2, grade=False, batching=LOCK_STEP,
                     instances=[i["instance_id"] for i in instances])
    summary = run_eval(cfg, policy, instances, tmp_path / "run", log=lambda m: None)
    assert summary["agent_exit"] == {"submitted": 2}
    assert policy.sizes == [2, 2]  # both workers' turns in one generate call each time (lock step)


def test_a_served_model_gets_a_batchs_requests_at_once():
    from srl_agent.policy.openai import OpenAIPolicy

    in_flight, most = [0], [0]
    lock = threading.Lock()

    def answer(body: dict) -> tuple[int, str]:  # echoes the prompt, slowly, counting the requests in flight
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.3)
        with lock:
            in_flight[0] -= 1
        return 200, body["messages"][-1]["content"]

    with ChatServer(answer) as server:
        policy = OpenAIPolicy(server.url, model="m")
        start = time.monotonic()
        answers = policy.generate([[{"role": "user", "content": f"p{k}"}] for k in range(4)], None, SamplingParams())
        assert [a[0].text for a in answers] == ["p0", "p1", "p2", "p3"]  # in prompt order
        assert most[0] == 4 and time.monotonic() - start < 1.2
