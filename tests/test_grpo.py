"""GRPO math: each small function against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from srl_agent.policy.hf import token_logprobs
from srl_agent.train import grpo


def test_group_advantages():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    adv = grpo.group_advantages(rewards, eps=0.0)
    assert adv[0].tolist() == [1.0, -1.0, -1.0, 1.0]  # mean 0.5, population std 0.5
    flat = grpo.group_advantages(rewards, eps=1e-6)[1]
    assert flat.abs().max() == 0
    assert grpo.group_advantages(rewards, scale=False)[0].tolist() == [0.5, -0.5, -0.5, 0.5]


def test_keep_groups_drops_flat_ones():
    rewards = torch.tensor([[-1.0, -1.0, -1.0], [0.2, 0.2, 0.2], [0.1, 0.9, 0.1], [1.0, 1.0, 1.0 + 1e-9]])
    assert grpo.keep_groups(rewards, eps=1e-6).tolist() == [False, False, True, False]


def test_clipped_objective_on_policy_is_minus_mean_advantage():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.1], [0.9, 0.8, 0.7]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    loss = grpo.clipped_objective(logp, logp, adv, mask)
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)


def test_clipping_bounds_the_ratio():
    mask = torch.ones(1, 1)
    old = torch.zeros(1, 1)
    up = torch.full((1, 1), math.log(1.5))  # ratio 1.5
    assert grpo.clipped_objective(up, old, torch.tensor([1.0]), mask).item() == pytest.approx(-1.2)
    assert grpo.clipped_objective(up, old, torch.tensor([-1.0]), mask).item() == pytest.approx(1.5)
    down = torch.full((1, 1), math.log(0.5))  # ratio 0.5
    assert grpo.clipped_objective(down, old, torch.tensor([-1.0]), mask).item() == pytest.approx(0.8)
    assert grpo.clipped_objective(down, old, torch.tensor([1.0]), mask).item() == pytest.approx(-0.5)
    assert grpo.clipped_objective(up, old, torch.tensor([1.0]), mask, clip_high=0.28).item() == pytest.approx(-1.28)


def test_sequence_and_token_normalisation_differ_on_unequal_lengths():
    logp = torch.zeros(2, 4)
    mask = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 1, 1]])
    adv = torch.tensor([1.0, -1.0])
    # per sequence: (-1) and (+1) -> mean 0; per token: (-1 + 4) / 5
    assert grpo.clipped_objective(logp, logp, adv, mask, norm="sequence").item() == pytest.approx(0.0)
    assert grpo.clipped_objective(logp, logp, adv, mask, norm="token").item() == pytest.approx(3 / 5)


def test_gradient_pushes_up_good_sequences():
    logits = torch.zeros(2, 1, 3, requires_grad=True)
    targets = torch.tensor([[0], [1]])
    logp = token_logprobs(logits, targets)
    grpo.clipped_objective(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 1)).backward()
    assert logits.grad[0, 0, 0] < 0 and logits.grad[1, 0, 1] > 0  # descent raises token 0, lowers token 1


def test_the_decoupled_objective_by_hand():
    """AReaL's decoupled objective on one token sampled with p 0.5, whose proximal (update-start) p is 0.6 and
    current p 0.9: the ratio 0.9 / 0.6 = 1.5 clips at 1.2 (not 0.9 / 0.5 = 1.8 against the sampler), then the
    importance weight 0.6 / 0.5 = 1.2 scales it."""
    behaviour, prox = torch.log(torch.tensor([[0.5]])), torch.log(torch.tensor([[0.6]]))
    mask = torch.ones(1, 1)

    def loss(p_new: float, advantage: float) -> torch.Tensor:
        new = torch.log(torch.tensor([[p_new]])).requires_grad_()
        value = grpo.decoupled_objective(new, prox, behaviour, torch.tensor([advantage]), mask)
        value.backward()
        return value, new.grad

    value, grad = loss(0.9, 1.0)
    assert value.item() == pytest.approx(-1.2 * 1.2) and grad.item() == 0  # clipped: no gradient
    assert loss(0.9, -1.0)[0].item() == pytest.approx(1.5 * 1.2)  # min(-1.5, -1.2) = -1.5, weighed 1.2
    value, grad = loss(0.6, 1.0)  # on the proximal policy: ratio 1, d(loss)/d(logp_new) = -A * weight * ratio
    assert value.item() == pytest.approx(-1.2) and grad.item() == pytest.approx(-1.2)
    # the weight carries no gradient: it is the same constant whatever the proximal log-probs' graph
    prox_with_graph = prox.clone().requires_grad_()
    grpo.decoupled_objective(prox_with_graph, prox_with_graph, behaviour, torch.tensor([1.0]), mask).backward()
    assert prox_with_graph.grad.item() == pytest.approx(0.0)  # ratio's d/d(new) and d/d(old) cancel; none via weight
    assert grpo.behaviour_weights(prox, behaviour).item() == pytest.approx(1.2)


@pytest.mark.parametrize("norm", ["sequence", "token"])
def test_the_decoupled_objective_on_the_sampler_s_own_log_probs_is_the_clipped_one_bit_for_bit(norm):
    """Behaviour = proximal (nothing stale): every weight is exactly 1, so loss and gradients equal the on-policy
    clipped objective's bit for bit, whatever the ratio and the normalisation."""
    gen = torch.Generator().manual_seed(0)
    old = torch.randn(3, 5, generator=gen) - 2
    new = (old + 0.3 * torch.randn(3, 5, generator=gen)).requires_grad_()
    mask = torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    advantages = torch.tensor([1.5, -0.5, 0.25])
    ours = grpo.decoupled_objective(new, old, old, advantages, mask, 0.2, 0.28, norm)
    (ours_grad,) = torch.autograd.grad(ours, new)
    today = grpo.clipped_objective(new, old, advantages, mask, 0.2, 0.28, norm)
    (today_grad,) = torch.autograd.grad(today, new)
    assert torch.equal(ours, today) and torch.equal(ours_grad, today_grad)


def test_behaviour_log_probs_are_laid_out_like_the_update_s_log_probs():
    """Per completion token lists -> [N, W-1] where target_mask is 1, for every layout (an RLVR mask included)."""
    from srl_agent.train.batching import make_batch

    groups = [grpo.Group([([1, 2, 3], [4, 5]), ([1, 2, 3], [6])], [1.0, 0.0], [[-0.1, -0.2], [-0.3]]),
              grpo.Group([([7], [8, 9, 10], [1, 0, 1]), ([7], [11, 12, 13], [1, 1, 0])], [0.0, 1.0],
                         [[-0.4, 0.0, -0.5], [-0.6, -0.7, 0.0]])]
    batch = grpo.RolloutBatch.from_groups(groups, 1e-6)
    for layout in ("padded", "padding_free", "shared_prefix"):
        target_mask = make_batch(batch.sequences(), 0, "cpu", layout).target_mask
        laid_out = batch.behaviour_logprob_tensor(target_mask)
        assert laid_out.shape == target_mask.shape == (4, 4)  # the longest sequence: 5 tokens
        assert laid_out[0].tolist() == pytest.approx([0, 0, -0.1, -0.2])  # position P-1+j predicts token j
        assert laid_out[1].tolist() == pytest.approx([0, 0, -0.3, 0])
        assert laid_out[2].tolist() == pytest.approx([-0.4, 0, -0.5, 0])  # the masked token's slot stays 0
        assert laid_out[3].tolist() == pytest.approx([-0.6, -0.7, 0, 0])
    parts = batch.micro_batches(2, "padded")
    assert [p.behaviour_logprobs for p in parts] == [[[-0.1, -0.2], [-0.3]], [[-0.4, 0.0, -0.5], [-0.6, -0.7, 0.0]]]
    with pytest.raises(ValueError, match="every group or none"):
        grpo.RolloutBatch.from_groups([groups[0], grpo.Group(*groups[1][:2])], 1e-6)


def test_kl_penalty():
    logp = torch.log(torch.tensor([[0.5, 0.2]]))
    mask = torch.ones(1, 2)
    assert grpo.kl_penalty(logp, logp, mask).item() == 0
    assert grpo.kl_penalty(logp, torch.log(torch.tensor([[0.3, 0.3]])), mask).item() > 0


def test_token_logprobs_match_log_softmax():
    logits = torch.randn(2, 3, 5)
    targets = torch.randint(0, 5, (2, 3))
    expected = torch.log_softmax(logits / 0.7, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, targets, 0.7), expected)


def test_dynamic_fill_drops_flat_groups_and_refills():
    rounds_of_groups = iter([
        [[0.0, 1.0], [-1.0, -1.0], [0.5, 0.5], [0.2, 0.4]],  # round 1: two of four kept
        [[-1.0, -1.0], [1.0, 0.0]],                          # round 2: one of the two missing
        [[0.3, 0.9]],                                        # round 3: the last one
    ])
    asked = []

    def sample(k):
        asked.append(k)
        groups = next(rounds_of_groups)
        assert len(groups) == k
        return groups

    kept, sampled, rounds = grpo.dynamic_fill(sample, lambda g: g, batch_size=4, max_rounds=5)
    assert kept == [[0.0, 1.0], [0.2, 0.4], [1.0, 0.0], [0.3, 0.9]]
    assert asked == [4, 2, 1] and rounds == 3
    assert len(sampled) - len(kept) == 3  # the flat groups that were dropped


def test_dynamic_fill_stops_at_the_cap():
    kept, sampled, rounds = grpo.dynamic_fill(lambda k: [[-1.0, -1.0]] * k, lambda g: g, batch_size=4, max_rounds=3)
    assert kept == [] and rounds == 3 and len(sampled) == 12
    kept, sampled, rounds = grpo.dynamic_fill(lambda k: [[-1.0, -1.0]] * k, lambda g: g, 4, 3, enabled=False)
    assert len(kept) == 4 and rounds == 1


def test_every_update_layout_gives_the_full_logits_logprobs_and_gradients():
    """The memory-safe log-probs (hidden states at completion positions only, the LM head and log-softmax
    in chunks of 4 positions, each recomputed in the backward pass) for each layout: one padded row per
    sequence, packed rows with restarting position ids (sdpa's block mask), and a group's prompt run once
    with its KV cache repeated for each completion; against full-vocabulary logits at every position."""
    from srl_agent.train.batching import make_batch
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    cfg = TrainConfig()
    cfg.compute.logprob_chunk_tokens = 4  # several chunks per micro-batch
    model, tokenizer = load_model(cfg, device=torch.device("cpu"))
    group = list(range(20, 31))  # groups share a prompt, as GRPO's rollouts do; one stands alone, and
    sequences = [(group, [9, 10]), (group, [13, 14, 15, 16, 17]), (group, [40]), ([18], [19]),
                 ([5, 6, 7, 8], [50, 51, 52]), ([5, 6, 7, 8], [53]), (group, [60, 61])]  # a prompt comes back
    results = {}

    def grads() -> tuple[torch.Tensor, torch.Tensor]:
        return model.model.embed_tokens.weight.grad.clone(), model.model.layers[0].self_attn.k_proj.weight.grad.clone()

    padded = make_batch(sequences, tokenizer.pad_token_id, "cpu", "padded")
    # the path before: logits [N, W, V] at every position, log-softmax over all of them in fp32
    logits = model(input_ids=padded.ids, attention_mask=padded.attention_mask).logits[:, :-1]
    logp = token_logprobs(logits, padded.ids[:, 1:]) * padded.target_mask
    model.zero_grad()
    logp.sum().backward()
    cold = token_logprobs(logits.detach(), padded.ids[:, 1:], temperature=0.7) * padded.target_mask
    results["full logits"] = (logp.detach(), cold, *grads())
    for layout in ("padded", "padding_free", "shared_prefix"):
        batch = make_batch(sequences, tokenizer.pad_token_id, "cpu", layout)
        logp = batch.token_logprobs(model) * batch.target_mask
        assert logp.shape == (7, 15)
        model.zero_grad()
        logp.sum().backward()
        with torch.no_grad():  # as for the old policy's and the reference model's log-probs
            cold = batch.token_logprobs(model, temperature=0.7) * batch.target_mask
        results[layout] = (logp.detach(), cold, *grads())
    reference = results.pop("full logits")
    assert reference[0].count_nonzero() == 2 + 5 + 1 + 1 + 3 + 1 + 2  # one log-prob per completion token
    assert not torch.allclose(reference[0], reference[1])  # the temperature is applied
    for layout, result in results.items():
        for ours, expected in zip(result, reference, strict=True):
            assert torch.allclose(ours, expected, atol=1e-5), layout


def test_token_logprob_blocks_match_autograd_s_log_softmax_at_a_temperature():
    """The chunk's log-softmax and its hand-written gradient (train/logprobs.py), over several row blocks,
    against autograd through log_softmax: log-probs and gradients, at temperature 0.7, for fp32 and bf16
    logits (a bf16 head's output gets a bf16 gradient)."""
    from srl_agent.train.logprobs import BLOCK_ROWS, TokenLogprob

    gen = torch.Generator().manual_seed(0)
    rows = 2 * BLOCK_ROWS + 5
    targets = torch.randint(0, 50, (rows,), generator=gen)
    upstream = torch.randn(rows, generator=gen)
    for dtype, atol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
        logits = (3 * torch.randn(rows, 50, generator=gen)).to(dtype).requires_grad_()
        expected = torch.log_softmax(logits.float() / 0.7, -1).gather(-1, targets[:, None]).squeeze(-1)
        (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), logits)
        ours = TokenLogprob.apply(logits, targets, 0.7)
        (grad,) = torch.autograd.grad((ours * upstream).sum(), logits)
        assert ours.dtype == torch.float32 and grad.dtype == dtype
        assert torch.allclose(ours, expected, atol=1e-5)
        assert torch.allclose(grad.float(), expected_grad.float(), atol=atol)


def test_the_logprob_forward_keeps_the_signature_that_generate_reads():
    """`generate` passes `logits_to_keep` (prompt logits at the last position only) and `position_ids` only to a
    forward whose signature names them; hiding them cost ~25 % of CPU generation time (benchmarks/README.md)."""
    import inspect

    from srl_agent.train.config import TrainConfig
    from srl_agent.train.model import load_model

    model, _ = load_model(TrainConfig(), device=torch.device("cpu"))
    assert inspect.signature(model.forward) == inspect.signature(type(model).forward.__get__(model))
    assert {"logits_to_keep", "position_ids"} <= set(inspect.signature(model.forward).parameters)
    assert model._supports_logits_to_keep()


@pytest.mark.parametrize("family, changes", [
    ("qwen2", {}),
    ("gemma2", {"final_logit_softcapping": 30.0}),
    ("cohere", {"logit_scale": 0.0625}),
    ("granite", {"logits_scaling": 8.0}),
])
def test_the_memory_safe_logprobs_are_the_model_s_own_or_the_model_is_refused(family, changes):
    """The chunked log-probs take the LM head's logits as they are: a model whose forward changes them afterwards
    (soft-capping, a scale) is refused in one line rather than trained on another distribution than it samples."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from srl_agent.errors import UserError
    from srl_agent.train.logprobs import IGNORE, install_logprob_forward

    torch.manual_seed(0)
    config = AutoConfig.for_model(family, vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, **changes)
    model = AutoModelForCausalLM.from_config(config).eval()
    if changes:
        with pytest.raises(UserError, match=f"changes its logits after the LM head \\({next(iter(changes))} = "):
            install_logprob_forward(model)
        return
    ids = torch.randint(0, 64, (2, 12))
    expected = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    install_logprob_forward(model, chunk_tokens=5)
    targets = torch.cat([ids[:, 1:], torch.full((2, 1), IGNORE)], dim=1)
    assert torch.allclose(model(input_ids=ids, logprob_targets=targets)[:, :-1], expected, atol=1e-5)


def test_micro_batches_keep_a_prompt_s_rollouts_together():
    from srl_agent.train.batching import group_chunks

    a, b, c = [1, 2], [3], [4, 5]
    items = [(a, 1), (a, 2), (a, 3), (b, 1), (c, 1), (c, 2), (a, 4)]
    assert group_chunks(items, 4) == [[(a, 1), (a, 2), (a, 3), (b, 1)], [(c, 1), (c, 2), (a, 4)]]
    assert group_chunks(items, 2) == [[(a, 1), (a, 2), (a, 3)], [(b, 1)], [(c, 1), (c, 2)], [(a, 4)]]
    assert [len(chunk) for chunk in group_chunks(items, 100)] == [7]


def test_shared_prefix_only_for_attention_only_models():
    from transformers import Qwen2Config

    from srl_agent.errors import UserError
    from srl_agent.train.batching import supports_shared_prefix
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.trainer import update_layout

    qwen, hybrid = Qwen2Config(), Qwen2Config()
    hybrid.layer_types = ["linear_attention", "full_attention"]
    assert supports_shared_prefix(qwen) and not supports_shared_prefix(hybrid)
    cfg = TrainConfig()
    assert update_layout(cfg, qwen) == "shared_prefix" and update_layout(cfg, hybrid) == "padded"
    cfg.compute.gradient_checkpointing = True
    assert update_layout(cfg, qwen) == "padded"
    cfg.compute.update_layout = "shared_prefix"
    with pytest.raises(UserError, match="needs an attention-only model, no gradient checkpointing and an unsharded"):
        update_layout(cfg, qwen)
    cfg.compute.gradient_checkpointing = False
    assert update_layout(cfg, qwen) == "shared_prefix"
    with pytest.raises(UserError, match="an unsharded engine"):
        update_layout(cfg, qwen, sharded=True)
    cfg.compute.update_layout = "auto"
    assert update_layout(cfg, qwen, sharded=True) == "padded"
