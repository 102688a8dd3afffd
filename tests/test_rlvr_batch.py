"""Episodes -> masked sequences of the shared update path: hand-worked splits and masks; a step-wise episode's
turns, their advantage and 1/T weight, worked by hand; every layout scores only the sampled tokens; a real update
on the tiny model."""

from __future__ import annotations

import pytest
import torch

from srl_agent.rlvr.batch import episode_sequence, group_rewards, group_samples
from srl_agent.rlvr.episodes import NOT_STARTED, Episode, EpisodeTokens, TurnSample
from srl_agent.rlvr.reward import Reward
from srl_agent.train.batching import make_batch
from srl_agent.train.grpo import Group, RolloutBatch, clipped_objective, group_advantages, masked_mean


def episode(context: list[int], sampled: list[int], logprobs: list[float], reward: float, tail=()) -> Episode:
    tokens = EpisodeTokens()
    tokens.add(context)
    tokens.add(sampled, logprobs)
    tokens.add(list(tail))
    return Episode("t", tokens, reward=Reward(reward, reward == 1.0, 0, 1, 0, 0))


def test_an_episode_is_split_at_its_first_sampled_token_and_masked():
    e = episode([5, 6], [7, 8], [-0.1, -0.2], 1.0, tail=[9, 10])
    e.tokens.add([11], [-0.3])  # a second answer after the observation 9, 10
    assert episode_sequence(e) == ([5, 6], [7, 8, 9, 10, 11], [1, 1, 0, 0, 1])
    assert episode_sequence(episode([5, 6], [], [], 0.0)) == ([5, 6], [], [])
    assert group_rewards([e, episode([5], [1], [-1.0], 0.0)]) == [1.0, 0.0]
    batch = make_batch([episode_sequence(e), ([5, 6], [3])], pad_id=0, device="cpu")
    assert batch.ids.tolist() == [[5, 6, 7, 8, 9, 10, 11], [5, 6, 3, 0, 0, 0, 0]]
    # position t predicts token t+1: 7, 8 at positions 1, 2; 11 at 5; the unmasked completion's 3 at 1
    assert batch.target_mask.tolist() == [[0, 1, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="a completion of 2 tokens with a mask of 1"):
        make_batch([([1], [2, 3], [1])], pad_id=0, device="cpu")


@pytest.fixture(scope="module")
def tiny():
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    return load_model(TrainConfig())


def test_every_layout_scores_the_sampled_tokens_only(tiny):
    model, _ = tiny
    torch.manual_seed(0)
    prompt = torch.randint(10, 500, (12,)).tolist()
    sequences = []
    for n in (9, 14):  # two episodes of one task: same first prompt, different lengths and masks
        completion = torch.randint(10, 500, (n,)).tolist()
        mask = [1, 1, 1, 0, 0, 0, 0, 1, 1, *[0, 1, 1, 0, 1][: n - 9]]
        sequences.append((prompt, completion, mask))
    with torch.no_grad():
        padded = make_batch(sequences, 0, "cpu", "padded").token_logprobs(model)
        for layout in ("padding_free", "shared_prefix"):
            batch = make_batch(sequences, 0, "cpu", layout)
            assert torch.allclose(batch.token_logprobs(model), padded, atol=1e-5), layout
    mask = make_batch(sequences, 0, "cpu").target_mask.bool()
    assert torch.all(padded[~mask] == 0) and torch.all(padded[mask] < 0)


def test_an_update_raises_the_rewarded_episode_and_lowers_the_other(tiny):
    from srl_agent.policy import SamplingParams
    from srl_agent.policy.hf import HFPolicy

    model, tokenizer = tiny
    torch.manual_seed(0)
    policy = HFPolicy(model, tokenizer)
    prompt = policy.encode_prompts([policy.render([{"role": "user", "content": "Fix the bug."}], None)])[0]
    (completions,) = policy.generate_ids([prompt], SamplingParams(n=2, max_new_tokens=12))
    group = [episode(prompt, c.token_ids, c.logprobs, r, tail=[11, 12, 13]) for c, r in zip(completions, (1.0, 0.0),
                                                                                           strict=True)]
    batch = make_batch([episode_sequence(e) for e in group], policy.pad_id, "cpu")
    advantages = group_advantages(torch.tensor([group_rewards(group)]))[0]

    def sampled_logprob() -> torch.Tensor:
        with torch.no_grad():
            return (batch.token_logprobs(model) * batch.target_mask).sum(-1)

    start = sampled_logprob()
    old = batch.token_logprobs(model).detach()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):
        loss = clipped_objective(batch.token_logprobs(model), old, advantages, batch.target_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    change = sampled_logprob() - start
    # rewarded up, unrewarded down (summed nats over 12 tokens). Seeds 0-4 measured: +4.4..+5.6 and -4.3..-5.4
    assert change[0] > 1.0 and change[1] < -1.0, change


def step_episode(turns: list[tuple[list[int], list[int]]], reward: float, detail: str = "") -> Episode:
    """A `step`-context episode: per turn (its prompt ids, its sampled ids), each sampled id at log-prob -0.5."""
    return Episode("t", context="step", turn_samples=[TurnSample(p, c, [-0.5] * len(c)) for p, c in turns],
                   reward=Reward(reward, reward == 1.0, 0, 1, 0, 0), detail=detail)


def test_turns_are_samples_with_their_episodes_advantage_and_a_1_over_T_weight():
    """Three played episodes of one task: A (1 turn, resolved), B (3 turns) and C (2 turns), and one whose sandbox
    never started. Hand-worked: rewards [1, 0, 0] have mean 1/3 and std sqrt(2)/3, so the advantages are +sqrt(2)
    and -1/sqrt(2) twice; each turn gets its episode's, and weighs 1/T."""
    a = step_episode([([1, 2], [3])], 1.0)
    b = step_episode([([1, 2], [4]), ([1, 2, 4, 9], [5, 6]), ([4, 9, 5, 6], [7])], 0.0)
    c = step_episode([([1, 2], [8]), ([1, 2, 8, 9], [6])], 0.0)
    group = [a, b, step_episode([], 0.0, detail=NOT_STARTED), c]
    samples = group_samples(group)
    # turn by turn across the group: the three first turns (one prompt) first, so shared-prefix runs it once
    assert samples.sequences == [([1, 2], [3], [1]), ([1, 2], [4], [1]), ([1, 2], [8], [1]),
                                 ([1, 2, 4, 9], [5, 6], [1, 1]), ([1, 2, 8, 9], [6], [1]), ([4, 9, 5, 6], [7], [1])]
    assert samples.rewards == [1.0, 0.0, 0.0] and samples.rollout_of == [0, 1, 2, 1, 2, 1]
    assert samples.logprobs == [[-0.5], [-0.5], [-0.5], [-0.5, -0.5], [-0.5], [-0.5]]  # the sampling ones, as kept
    batch = RolloutBatch.from_groups([Group(samples.sequences, samples.rewards, None, samples.rollout_of)], 1e-6)
    up, down = 2 ** 0.5, -(2 ** -0.5)
    assert batch.advantages == pytest.approx([up, down, down, down, down, down], abs=1e-5)
    assert batch.loss_weights == pytest.approx([1, 1 / 3, 1 / 2, 1 / 3, 1 / 2, 1 / 3])
    assert batch.loss_mass("sequence") == pytest.approx(3.0)  # three episodes
    assert batch.loss_mass("token") == pytest.approx(1 + (1 + 2 + 1) / 3 + (1 + 1) / 2)

    # on policy each token's surrogate is its advantage: an episode counting once makes the loss minus the mean
    # advantage over episodes, 0; counted per turn, B's three would outweigh A: -(up + 5 down) / 6 = +0.354
    seqs = batch.sequences()
    logp = make_batch(seqs, 0, "cpu").target_mask * -0.5
    mask = make_batch(seqs, 0, "cpu").target_mask
    advantages, weights = torch.tensor(batch.advantages), torch.tensor(batch.loss_weights)
    assert clipped_objective(logp, logp, advantages, mask, weights=weights).item() == pytest.approx(0.0, abs=1e-6)
    assert clipped_objective(logp, logp, advantages, mask).item() == pytest.approx(-(up + 5 * down) / 6, abs=1e-5)

    # per-token losses by hand: a sequence's mean is its loss; the episode's is the mean of its turns'
    per_token = torch.tensor([[6.0, 0], [3, 0], [9, 0], [1, 2], [4, 0], [7, 0]])
    token_mask = torch.tensor([[1.0, 0], [1, 0], [1, 0], [1, 1], [1, 0], [1, 0]])
    a_loss, b_loss, c_loss = 6, (3 + 1.5 + 7) / 3, (9 + 4) / 2
    assert masked_mean(per_token, token_mask, "sequence", weights).item() == pytest.approx(
        (a_loss + b_loss + c_loss) / 3)
    # `token`: each token weighs its sequence's weight
    assert masked_mean(per_token, token_mask, "token", weights).item() == pytest.approx(
        (6 + (3 + 3 + 7) / 3 + (9 + 4) / 2) / batch.loss_mass("token"))

    # the trainer's micro-batches: each part's mean, times its share of the step's mass, sums to the whole mean
    for norm in ("sequence", "token"):
        whole = masked_mean(per_token, token_mask, norm, weights)
        parts, total, row = batch.micro_batches(4, "padded"), batch.loss_mass(norm), 0
        summed = 0.0
        for part in parts:
            n = len(part)
            summed += masked_mean(per_token[row:row + n], token_mask[row:row + n], norm,
                                  torch.tensor(part.loss_weights)) * part.loss_mass(norm) / total
            row += n
        assert len(parts) == 2 and summed.item() == pytest.approx(whole.item()), norm
