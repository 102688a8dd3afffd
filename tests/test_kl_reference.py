"""The KL penalty's reference model as a GPU run holds it: LoRA needs no copy (its base with the adapter switched
off is the starting model), and full fine-tuning keeps a copy in the compute dtype (bf16), not fp32."""

from __future__ import annotations

import dataclasses

import torch

from srl_agent.train.config import TrainConfig
from srl_agent.train.model import load_model
from srl_agent.train.trainer import Trainer
from tests.distributed_worker import fixed_rollouts


def trainer(tmp_path, **settings: str) -> Trainer:
    cfg = TrainConfig.builtin()
    base = {"output_dir": str(tmp_path / "run"), "kl_coef": "0.1", "val_trajectories": "0", "lr": "1e-2",
            "tiny_model.hidden_size": "32", "tiny_model.intermediate_size": "64"}
    for key, value in {**base, **settings}.items():
        cfg.set(key, value)
    return Trainer(cfg, log=lambda _: None)


def test_lora_s_kl_reference_is_its_base_with_the_adapter_off(tmp_path):
    t = trainer(tmp_path, lora="true")
    assert t.ref_model is None  # no second model
    groups = [r.group() for r in fixed_rollouts(t)]
    assert t.grpo_update(groups, 1.0)["kl"] == 0.0  # LoRA starts as its base (B = 0): exactly the reference
    second = t.grpo_update(groups, 1.0)
    assert second["kl"] > 0
    base, _ = load_model(dataclasses.replace(t.cfg, lora=False), device=torch.device("cpu"))
    batch = t._batch([(p, c) for group, _ in groups for p, c in group])
    with torch.no_grad():
        expected = batch.token_logprobs(base.eval())
    assert torch.allclose(t._reference_logprobs(batch, 1.0), expected, atol=1e-6)  # fp32: float order only


def test_a_bf16_run_holds_its_kl_reference_in_bf16(tmp_path):
    t = trainer(tmp_path, bf16="true")
    assert {p.dtype for p in t.ref_model.parameters()} == {torch.bfloat16}
    held = sum(p.numel() * p.element_size() for p in t.ref_model.parameters())
    policy = sum(p.numel() * p.element_size() for p in t.unwrapped.parameters())
    assert held == policy // 2  # the policy's fp32 master weights, halved
    groups = [r.group() for r in fixed_rollouts(t)]
    first = t.grpo_update(groups, 1.0)
    # policy and reference are the same weights, the policy's under autocast: bf16 rounding apart only
    assert abs(first["kl"]) < 1e-3
    assert t.grpo_update(groups, 1.0)["kl"] > 10 * abs(first["kl"])


def test_no_kl_no_reference(tmp_path):
    t = trainer(tmp_path, kl_coef="0")
    assert t.ref_model is None and "kl" not in t.grpo_update([r.group() for r in fixed_rollouts(t)], 1.0)
