"""The verifiable reward: hand-worked scores, and the real eval_script in a real swe-mini sandbox."""

from __future__ import annotations

import pytest

from srl_agent.rlvr.reward import (
    END_MARKER,
    START_MARKER,
    EpisodeRewardConfig,
    expected_tests,
    fault_line,
    marked_test_output,
    score,
    unplayable,
    verify,
)

F2P = ["t.py::test_a", "t.py::test_b", "t.py::test_c", "t.py::test_d"]
P2P = ["t.py::test_old1", "t.py::test_old2"]


def statuses(f2p_passing: int, p2p_broken: int = 0) -> dict[str, str]:
    out = {t: ("PASSED" if i < f2p_passing else "FAILED") for i, t in enumerate(F2P)}
    out.update({t: ("FAILED" if i < p2p_broken else "PASSED") for i, t in enumerate(P2P)})
    return out


def test_binary_reward_is_one_only_when_resolved():
    cfg = EpisodeRewardConfig()
    resolved = score(statuses(4), F2P, P2P, 0, cfg)
    assert (resolved.reward, resolved.resolved, resolved.fail_to_pass_passing) == (1.0, True, 4)
    assert score(statuses(3), F2P, P2P, 0, cfg).reward == 0.0
    broken = score(statuses(4, p2p_broken=1), F2P, P2P, 0, cfg)
    assert (broken.reward, broken.resolved, broken.pass_to_pass_broken) == (0.0, False, 1)
    # XFAIL passes (swebench's rule); a missing test does not, nor a skipped FAIL_TO_PASS test
    assert score({**statuses(4), F2P[0]: "XFAIL"}, F2P, P2P, 0, cfg).resolved
    missing = statuses(4)
    del missing[P2P[1]]
    assert not score(missing, F2P, P2P, 0, cfg).resolved
    assert not score({**statuses(4), F2P[2]: "SKIPPED"}, F2P, P2P, 0, cfg).resolved
    # a skipped PASS_TO_PASS test is no regression (swebench's test_maintained, as the harness grades)
    kept = score({**statuses(4), P2P[0]: "SKIPPED"}, F2P, P2P, 0, cfg)
    assert kept.resolved and kept.pass_to_pass_broken == 0


def test_partial_credit_is_the_f2p_fraction_cancelled_by_a_broken_p2p():
    cfg = EpisodeRewardConfig(partial_credit=True)
    assert score(statuses(3), F2P, P2P, 0, cfg).reward == 0.75  # 3 of 4
    assert score(statuses(1), F2P, P2P, 0, cfg).reward == 0.25
    assert score(statuses(3, p2p_broken=1), F2P, P2P, 0, cfg).reward == 0.0
    assert score(statuses(4), F2P, P2P, 0, cfg).reward == 1.0
    assert score({}, F2P, P2P, 0, cfg, reason="eval_timeout").reward == 0.0


def test_format_penalty_is_per_malformed_turn():
    cfg = EpisodeRewardConfig(partial_credit=True, format_penalty=0.1)
    assert score(statuses(4), F2P, P2P, 2, cfg).reward == pytest.approx(0.8)  # 1 - 2 * 0.1
    assert score(statuses(2), F2P, P2P, 3, cfg).reward == pytest.approx(0.2)  # 0.5 - 3 * 0.1
    with pytest.raises(ValueError, match="format_penalty"):
        EpisodeRewardConfig(format_penalty=-1)


def test_a_failed_sandbox_is_one_short_line_and_scores_0():
    # an engine's message of several lines (or none) still makes one log line
    assert fault_line(RuntimeError("409 Conflict:\n  container abc\tis not running\n")) == \
        "RuntimeError: 409 Conflict: container abc is not running"
    assert fault_line(TimeoutError()) == "TimeoutError"
    assert len(fault_line(OSError("x" * 500))) == len("OSError: ") + 200
    instance = {"FAIL_TO_PASS": F2P, "PASS_TO_PASS": "[]"}
    dead = unplayable(instance, EpisodeRewardConfig(partial_credit=True, format_penalty=0.1), "TimeoutError", 2)
    assert (dead.reward, dead.resolved, dead.fail_to_pass_total, dead.malformed_turns, dead.reason) == \
        (pytest.approx(-0.2), False, 4, 2, "TimeoutError")  # nothing passed: 0, less the format penalty


def test_only_the_marked_test_output_is_parsed():
    log = (f"+ git apply -v -\nPASSED t.py::test_fake\n+ : '{START_MARKER}'\nPASSED t.py::test_a\n"
           f"FAILED t.py::test_b - assert 1\n+ : '{END_MARKER}'\nPASSED t.py::test_after\n")
    assert marked_test_output(log) == "PASSED t.py::test_a\nFAILED t.py::test_b - assert 1\n"
    assert marked_test_output("PASSED x::y\n") == "PASSED x::y\n"  # no markers: all of it
    assert marked_test_output(f"+ : '{START_MARKER}'\nPASSED x::y\n") == "PASSED x::y\n"  # killed before the end


@pytest.mark.parametrize("patch_kind", ["gold", "empty"])
def test_reward_in_a_real_swe_mini_sandbox(swe_mini_images, patch_kind):
    from srl_agent.sandbox import SandboxConfig, open_sandbox

    instance = next(i for i in swe_mini_images if i["instance_id"] == "swemini__moneyfmt-1")
    config = SandboxConfig(image=instance["image"], default_timeout=120)
    with open_sandbox(config, kind="docker", base_commit=instance["base_commit"]) as sandbox:
        if patch_kind == "gold":
            sandbox.write_file("/tmp/gold.diff", instance["patch"])
            assert sandbox.run("git apply /tmp/gold.diff").exit_code == 0
        reward, log = verify(sandbox, instance, EpisodeRewardConfig(partial_credit=True))
    f2p, _ = expected_tests(instance)
    assert START_MARKER in log and reward.reason == ""
    assert reward.fail_to_pass_total == len(f2p) and reward.pass_to_pass_broken == 0
    if patch_kind == "gold":
        assert (reward.reward, reward.resolved, reward.fail_to_pass_passing) == (1.0, True, len(f2p))
    else:
        assert (reward.reward, reward.resolved, reward.fail_to_pass_passing) == (0.0, False, 0)
