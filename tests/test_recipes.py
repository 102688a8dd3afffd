"""What the shipped recipes choose once they run where they are meant to (8 GPUs, FSDP2 or ZeRO-3)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from transformers import AutoConfig

from srl_agent.errors import UserError
from srl_agent.train.config import TrainConfig
from srl_agent.train.model import require_attention_kernels
from srl_agent.train.trainer import Trainer, update_layout

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "swe-paper.yaml"


def test_the_paper_recipe_updates_padding_free_under_a_sharded_engine():
    """Sharding and gradient checkpointing rule out shared-prefix; with sdpa the recipe's 4-row micro-batches of up
    to 9,216 tokens would be padded to their longest row. The recipe asks for flash-attention: no padding."""
    cfg = TrainConfig.from_yaml(PAPER)
    shape = AutoConfig.from_pretrained(ROOT / "configs" / "models" / "qwen2.5-coder-7b")
    assert update_layout(cfg, shape, sharded=True) == "padding_free"
    cfg.set("compute.attn_implementation", "sdpa")
    assert update_layout(cfg, shape, sharded=True) == "padded"


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed here")
def test_flash_attention_without_flash_attn_is_one_line_before_any_weights_load(tmp_path):
    cfg = TrainConfig.builtin()
    cfg.set("compute.attn_implementation", "flash_attention_2")
    cfg.set("output_dir", str(tmp_path / "run"))
    with pytest.raises(UserError, match="pip install flash-attn") as error:
        require_attention_kernels(cfg)
    assert "attn_implementation=sdpa" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError, match="pip install flash-attn"):
        Trainer(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_the_update_runs_micro_batch_size_rows_unless_a_prompt_is_shared():
    """The paper recipe's groups of 8 with micro_batch_size 4: padded and padding-free updates run 4 rows at a time,
    as the memory plan counts them (they ran 8, a whole group, twice the planned activations); shared-prefix keeps a
    group together, as it must to run the prompt once."""
    from srl_agent.train.batching import micro_batches

    cfg = TrainConfig.from_yaml(PAPER)
    group = [([1, 2, 3], [i]) for i in range(cfg.grpo.group_size)]
    other = [([4, 5], [i]) for i in range(cfg.grpo.group_size)]
    for layout in ("padded", "padding_free"):
        assert [len(m) for m in micro_batches(group + other, cfg.compute.micro_batch_size, layout)] == [4, 4, 4, 4]
    assert micro_batches(group + other, cfg.compute.micro_batch_size, "shared_prefix") == [group, other]
