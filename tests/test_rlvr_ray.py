"""RLVR episodes with their sandboxes on a real two-node Ray cluster (the policy here, the sandboxes on the nodes):
they score as local episodes do, a killed Ray worker ends only its episode, and no container is left."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys

import pytest

from srl_agent.rlvr.episodes import EpisodeConfig, _open_sandbox, run_episodes
from srl_agent.rlvr.reward import EpisodeRewardConfig
from srl_agent.sandbox import LABEL
from tests.test_ray_executor import EXPERT, ROOT, is_ray_worker, ray_cluster  # noqa: F401 (the cluster fixture)
from tests.test_rlvr_episodes import FULL_HISTORY, INSTANCE_ID, ScriptedPolicy, tiny_policy  # noqa: F401


@pytest.fixture(scope="module")
def cluster(ray_cluster):  # noqa: F811
    """The cluster's address; this process's Ray connection (made by the episodes) is closed afterwards."""
    import ray

    yield ray_cluster[0]
    ray.shutdown()


@pytest.fixture(scope="module")
def expert(swe_mini_images):
    """The instance and its expert's tool calls (they resolve it: reward 1)."""
    from srl_agent.formats import load_trajectories

    (trajectory,) = [t for t in load_trajectories([str(EXPERT)]) if t.id == INSTANCE_ID]
    return next(i for i in swe_mini_images if i["instance_id"] == INSTANCE_ID), [s.action for s in trajectory.steps]


class RecordingRayOpener:
    """Opens each episode's sandbox as run_episodes would (a RaySandbox), remembering where each one ran."""

    def __init__(self):
        self.opened, self.in_ray_workers = [], []

    def __call__(self, instance, cfg):
        sandbox = _open_sandbox(instance, cfg)
        self.opened.append(sandbox)
        self.in_ray_workers.append(is_ray_worker(int(sandbox.worker.rsplit(":", 1)[1])))
        return sandbox

    def leftovers(self) -> list[str]:
        """Containers still on the engine that the actors' worker processes created."""
        import docker

        client = docker.from_env()
        try:
            return [c.name for sandbox in self.opened for c in client.containers.list(
                all=True, filters={"label": f"{LABEL}.pid={sandbox.worker.rsplit(':', 1)[1]}"})]
        finally:
            client.close()


def without_durations(text: str) -> str:
    """An episode's conversation less pytest's `in 0.05s`, the one part of an observation that varies run to run."""
    return re.sub(r" in \d+\.\d+s", " in Ns", text)


def episode_config(address: str, calls: list) -> EpisodeConfig:
    return EpisodeConfig(context="episode", group_size=2, max_turns=len(calls), max_new_tokens=256,
                         max_episode_tokens=8000, workers=2, executor="ray", ray_address=address)


def test_episodes_on_ray_nodes_score_as_local_ones_and_leave_nothing(cluster, tiny_policy, expert):  # noqa: F811
    import ray

    instance, calls = expert
    cfg = episode_config(cluster, calls)
    opener = RecordingRayOpener()
    (on_ray,) = run_episodes(ScriptedPolicy(tiny_policy.tokenizer, calls), [instance], cfg, FULL_HISTORY,
                             EpisodeRewardConfig(), opener)
    (here,) = run_episodes(ScriptedPolicy(tiny_policy.tokenizer, calls), [instance],
                           dataclasses.replace(cfg, executor="local"), FULL_HISTORY, EpisodeRewardConfig())
    # one sandbox per episode, each in a Ray worker process, spread over both nodes
    assert opener.in_ray_workers == [True, True]
    assert {s.node_id for s in opener.opened} == {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    for remote, local in zip(on_ray, here, strict=True):
        assert (remote.status, remote.turns, remote.reward.reward, remote.reward.resolved) == \
               (local.status, local.turns, local.reward.reward, local.reward.resolved) == \
               ("submitted", len(calls), 1.0, True)
        assert remote.patch == local.patch
        assert without_durations(remote.text) == without_durations(local.text)  # the same observations
    assert opener.leftovers() == []


def test_a_ray_worker_killed_mid_episode_ends_only_its_episode_and_leaks_nothing(cluster, tiny_policy,  # noqa: F811
                                                                                  expert):
    instance, calls = expert

    class KillingPolicy(ScriptedPolicy):
        """SIGKILLs the first sandbox's Ray worker before the second turn (a worker dying under the run)."""

        def generate_ids(self, prompt_ids, params):
            if self.turn == 1:
                os.kill(int(opener.opened[0].worker.rsplit(":", 1)[1]), signal.SIGKILL)
            return super().generate_ids(prompt_ids, params)

    opener = RecordingRayOpener()
    (group,) = run_episodes(KillingPolicy(tiny_policy.tokenizer, calls), [instance], episode_config(cluster, calls),
                            FULL_HISTORY, EpisodeRewardConfig(), opener)
    dead, alive = sorted(group, key=lambda episode: episode.status != "sandbox_error")
    assert (dead.status, dead.detail, dead.turns) == ("sandbox_error", "the sandbox failed at turn 2", 2)
    assert dead.reward.reward == 0.0 and "Actor" in dead.reward.reason
    assert (alive.status, alive.reward.reward, alive.reward.reason) == ("submitted", 1.0, "")
    assert opener.leftovers() == []  # the dead worker's container was swept from its (living) node


def test_train_with_a_ray_address_that_does_not_answer_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "srl_agent.cli", "train", "--env", "swe", "--method", "rlvr",
                           "--executor", "ray", "--address", "127.0.0.1:9", "--output-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "error" in line.lower()]
    assert errors == ["error: no Ray cluster answers at 127.0.0.1:9 (start one with `ray start --head`, or check "
                      "the address)"], proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()
