"""The KL penalty's reference model as a GPU run holds it: LoRA needs no copy (its base with the adapter switched
off is the starting model), and full fine-tuning keeps a copy in the compute dtype (bf16), not fp32."""

from __future__ import annotations

import torch

from srl_agent.train.config import TrainConfig
from srl_agent.train.grpo import RolloutBatch
from srl_agent.train.model import load_model
from srl_agent.train.trainer import Trainer
from tests.distributed_worker import fixed_rollouts


def trainer(tmp_path, settings: dict[str, str]) -> Trainer:
    cfg = TrainConfig.builtin()
    base = {"output_dir": str(tmp_path / "run"), "grpo.kl_coef": "0.1", "validation.trajectories": "0",
            "optim.lr": "1e-2", "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64"}
    for key, value in {**base, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg, log=lambda _: None)


def rollout_batch(t: Trainer) -> RolloutBatch:
    return RolloutBatch.from_groups([r.group() for r in fixed_rollouts(t)], t.cfg.grpo.std_eps)


def test_lora_s_kl_reference_is_its_base_with_the_adapter_off(tmp_path):
    t = trainer(tmp_path, {"lora.enabled": "true"})
    assert t.ref_model is None  # no second model
    batch = rollout_batch(t)
    assert t.grpo_update(batch, 1.0)["kl"] == 0.0  # LoRA starts as its base (B = 0): exactly the reference
    second = t.grpo_update(batch, 1.0)
    assert second["kl"] > 0
    base, _ = load_model(t.cfg.updated({"lora.enabled": False}), device=torch.device("cpu"))
    tokens = t._batch(batch.sequences())
    with torch.no_grad():
        expected = tokens.token_logprobs(base.eval())
    assert torch.allclose(t._reference_logprobs(tokens, 1.0), expected, atol=1e-6)  # fp32: float order only


def test_a_bf16_run_holds_its_kl_reference_in_bf16(tmp_path):
    t = trainer(tmp_path, {"compute.bf16": "true"})
    assert {p.dtype for p in t.ref_model.parameters()} == {torch.bfloat16}
    held = sum(p.numel() * p.element_size() for p in t.ref_model.parameters())
    policy = sum(p.numel() * p.element_size() for p in t.unwrapped.parameters())
    assert held == policy // 2  # the policy's fp32 master weights, halved
    batch = rollout_batch(t)
    first = t.grpo_update(batch, 1.0)
    # policy and reference are the same weights, the policy's under autocast: bf16 rounding apart only
    assert abs(first["kl"]) < 1e-3
    assert t.grpo_update(batch, 1.0)["kl"] > 10 * abs(first["kl"])


def test_no_kl_no_reference(tmp_path):
    t = trainer(tmp_path, {"grpo.kl_coef": "0"})
    assert t.ref_model is None and "kl" not in t.grpo_update(rollout_batch(t), 1.0)
