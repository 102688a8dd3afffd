"""The colocated vLLM rollout engine against a stand-in `vllm` module (vLLM needs a GPU and cannot be installed
here). The stand-in takes exactly the keyword names of vLLM's public API that the policy uses (`LLM(...)`
engine arguments, `sleep(level)`, `wake_up(tags)`, `reset_prefix_cache()`, `generate(prompts,
sampling_params, use_tqdm)`, `SamplingParams(n, temperature, top_p, max_tokens, logprobs,
skip_special_tokens)`), with no **kwargs, so a misspelt or unknown name fails; it records the call order, with
torch.cuda.empty_cache among the calls. Like vLLM's external launcher, it needs torchrun's environment."""

from __future__ import annotations

import os
import socket
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from srl_agent.policy import SamplingParams
from srl_agent.tokenizer import load_tokenizer

CALLS: list = []
STORES: list[socket.socket] = []  # the process groups' listening stores, closed after each test
LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
VLLM_DTYPES = {"auto", "half", "float16", "bfloat16", "float", "float32"}


class StandInSamplingParams:
    def __init__(self, *, n: int = 1, temperature: float = 1.0, top_p: float = 1.0, max_tokens: int | None = 16,
                 logprobs: int | None = None, skip_special_tokens: bool = True):
        self.n, self.max_tokens, self.logprobs, self.skip_special_tokens = n, max_tokens, logprobs, skip_special_tokens


class StandInLLM:
    ANSWER = '<think>look</think>\n<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>'

    def __init__(self, model: str, *, gpu_memory_utilization: float = 0.9, dtype: str = "auto", seed: int = 0,
                 tensor_parallel_size: int = 1, distributed_executor_backend: str | None = None,
                 enable_sleep_mode: bool = False):
        CALLS.append(("LLM", {"model": model, "dtype": dtype,
                              "distributed_executor_backend": distributed_executor_backend, "seed": seed,
                              "enable_sleep_mode": enable_sleep_mode}))
        if dtype not in VLLM_DTYPES:
            raise ValueError(f"Unknown dtype: {dtype}")
        if distributed_executor_backend == "external_launcher":
            self.launcher_env = {name: os.environ.get(name) for name in LAUNCHER_ENV}
            self._join_process_group()
        self.tokenizer = load_tokenizer()
        runner = SimpleNamespace(model=SimpleNamespace(load_weights=self._load_weights))
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(
            model_runner=runner)))

    @staticmethod
    def _join_process_group() -> None:
        """As vLLM's external launcher does: its executor reads RANK and LOCAL_RANK; with no process group yet
        (one process, no launcher) it starts one over env:// (rank and world size given), for which torch reads
        MASTER_ADDR and MASTER_PORT, and rank 0 listens on MASTER_PORT (the group's store) while the process lives."""
        rank, _ = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])  # KeyError, as in vLLM's _distributed_args
        if torch.distributed.is_initialized():
            return
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise ValueError(f"Error initializing torch.distributed using env:// rendezvous: environment "
                                 f"variable {name} expected, but not set")
        if rank == 0:
            store = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            STORES.append(store)
            store.bind(("", int(os.environ["MASTER_PORT"])))  # OSError when another run's store holds the port
            store.listen()

    def _load_weights(self, weights):
        weights = list(weights)
        assert len(weights) == 1  # one tensor at a time: never the whole state dict
        CALLS.append(("load_weights", weights[0][0]))

    def get_tokenizer(self):
        return self.tokenizer

    def sleep(self, level: int = 1):
        CALLS.append(("sleep", level))

    def wake_up(self, tags: list[str] | None = None):
        CALLS.append(("wake_up", tags))

    def reset_prefix_cache(self):
        CALLS.append(("reset_prefix_cache",))

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True):
        CALLS.append(("generate", len(prompts)))
        ids = self.tokenizer(self.ANSWER, add_special_tokens=False)["input_ids"]
        text = self.tokenizer.decode(ids, skip_special_tokens=sampling_params.skip_special_tokens)  # as vLLM does
        output = SimpleNamespace(text=text, token_ids=ids, logprobs=None, finish_reason="stop")
        return [SimpleNamespace(outputs=[output] * sampling_params.n) for _ in prompts]


@pytest.fixture
def standin_vllm(monkeypatch):
    CALLS.clear()
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = StandInLLM, StandInSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: CALLS.append(("empty_cache",)))
    # absent, as for a one-process `srl-agent train`; set first, so that what the engine sets is removed after the test
    for name in LAUNCHER_ENV:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    yield CALLS
    while STORES:
        STORES.pop().close()


def test_colocated_engine_call_order_and_arguments(standin_vllm, tmp_path):
    from accelerate import Accelerator

    from srl_agent.policy.vllm import VLLMPolicy
    from srl_agent.reward import srl_reward
    from srl_agent.train.config import TrainConfig
    from srl_agent.train.distributed import full_parameters
    from srl_agent.train.model import load_model
    from srl_agent.types import ToolCall

    # as in the trainer, the accelerator comes first: the engine sets LOCAL_RANK, which accelerate takes for a launch
    accelerator = Accelerator(cpu=True)
    engine = VLLMPolicy(str(tmp_path), gpu_memory_utilization=0.3, colocate=True, seed=3)
    engine.sleep()
    model, _ = load_model(TrainConfig(), device=torch.device("cpu"))
    engine.wake_up(full_parameters(accelerator, model))
    groups = engine.generate_ids([[1, 2, 3]], SamplingParams(n=2, max_new_tokens=32))
    engine.sleep()
    names = [name for name, _ in model.named_parameters()]
    assert standin_vllm == [
        ("empty_cache",),  # what PyTorch cached is free for vLLM, which allocates outside PyTorch's allocator
        # bf16, as training computes: with "auto", vLLM < 0.10.1 samples our fp32 checkpoints in fp16
        ("LLM", {"model": str(tmp_path), "dtype": "bfloat16", "distributed_executor_backend": "external_launcher",
                 "seed": 3, "enable_sleep_mode": True}),
        ("sleep", 2),  # level 2: the weights are dropped, not copied to CPU (fresh ones come at every wake)
        ("empty_cache",), ("wake_up", ["weights"]), *[("load_weights", n) for n in names], ("reset_prefix_cache",),
        ("empty_cache",), ("wake_up", ["kv_cache"]), ("generate", 1), ("sleep", 2)]
    answer = groups[0][0].text
    assert answer.startswith("<think>") and "<tool_call>" in answer  # special tokens kept in the text
    assert srl_reward(answer, ToolCall("bash", {"command": "ls"})) == 1.0


def test_a_lora_model_reaches_the_engine_merged_under_plain_names():
    from accelerate import Accelerator

    from srl_agent.train.config import TrainConfig
    from srl_agent.train.distributed import full_parameters
    from srl_agent.train.model import load_model

    plain, _ = load_model(TrainConfig(), device=torch.device("cpu"))
    lora, _ = load_model(TrainConfig.from_dict({"lora": {"enabled": True, "r": 4}}), device=torch.device("cpu"))
    for module in lora.modules():  # a trained adapter: B no longer 0
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
    # copied as they come, as the engine's load_weights does: the adapter is unmerged after the walk
    sent = {name: tensor.clone() for name, tensor in full_parameters(Accelerator(cpu=True), lora)}
    assert list(sent) == [name for name, _ in plain.named_parameters()]
    merged = lora.merge_and_unload()
    for name, tensor in merged.named_parameters():
        assert torch.allclose(sent[name], tensor, atol=1e-6), name


def test_waking_the_engine_leaves_a_lora_model_s_bf16_base_as_it_was():
    """On CUDA a LoRA model's frozen base is bf16. The adapter was merged into it in place for the walk and
    unmerged after, which rounded the base anew at every wake: after 20 wakes half its elements had moved (by up to
    5e-3), and the saved adapter no longer matched the model trained. The walk leaves the model as it was and sends
    what merging gives."""
    import copy

    from accelerate import Accelerator

    from srl_agent.train.config import TrainConfig
    from srl_agent.train.distributed import full_parameters
    from srl_agent.train.model import load_model

    cfg = TrainConfig.from_dict({"lora": {"enabled": True, "r": 4}, "compute.bf16": True})
    lora, _ = load_model(cfg, device=torch.device("cpu"))
    for module in lora.modules():  # a trained adapter: B no longer 0
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
    before = {name: p.detach().clone() for name, p in lora.named_parameters()}
    assert {p.dtype for name, p in before.items() if "base_layer" in name} == {torch.bfloat16}
    for _ in range(5):
        sent = {name: tensor.clone() for name, tensor in full_parameters(Accelerator(cpu=True), lora)}
    assert all(torch.equal(p, before[name]) for name, p in lora.named_parameters())
    merged = dict(copy.deepcopy(lora).merge_and_unload().named_parameters())
    assert sent.keys() == merged.keys()
    for name, tensor in merged.items():
        assert sent[name].dtype == tensor.dtype and torch.equal(sent[name], tensor), name


def test_a_one_process_run_gets_what_the_external_launcher_reads(standin_vllm):
    """A one-process `srl-agent train` has no launcher to set RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and
    MASTER_PORT, and vLLM's external launcher stopped at KeyError: 'RANK'. The engine sets them as torchrun would."""
    from srl_agent.policy.vllm import VLLMPolicy

    engine = VLLMPolicy("model", colocate=True)
    port = engine.llm.launcher_env.pop("MASTER_PORT")
    assert engine.llm.launcher_env == {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "localhost"}
    assert int(port) > 0


def test_two_one_process_runs_on_one_machine_get_ports_of_their_own(standin_vllm, monkeypatch):
    """One run per GPU: each engine's process group listens on MASTER_PORT while its run lives, so a fixed default
    (TRL's first one was 12345) would stop the second run with 'address already in use'."""
    from srl_agent.policy.vllm import VLLMPolicy

    first = VLLMPolicy("model", colocate=True)
    for name in LAUNCHER_ENV:  # the second run is another process, started without them
        monkeypatch.delenv(name)
    second = VLLMPolicy("model", colocate=True)
    assert first.llm.launcher_env["MASTER_PORT"] != second.llm.launcher_env["MASTER_PORT"]


def test_what_a_launcher_set_stays(standin_vllm, monkeypatch):
    from srl_agent.policy.vllm import VLLMPolicy

    with socket.socket() as probe:
        probe.bind(("", 0))
        port = str(probe.getsockname()[1])
    launched = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    for name, value in launched.items():
        monkeypatch.setenv(name, value)
    assert VLLMPolicy("model", colocate=True).llm.launcher_env == launched


def test_a_process_group_started_without_torchrun_s_environment_gives_its_rank_and_size(standin_vllm, monkeypatch):
    from srl_agent.policy.vllm import VLLMPolicy

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    env = VLLMPolicy("model", colocate=True).llm.launcher_env
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == ("3", "0", "4")  # LOCAL_RANK: the GPU (none here)


def test_an_eval_engine_leaves_the_environment_and_the_dtype_to_vllm(standin_vllm):
    """`vllm:PATH` (eval) is vLLM's own engine, in processes of its own: nothing of torchrun's is set, and "auto"
    picks what the GPU supports (bf16 for our fp32 checkpoints on Ampere and later, from vLLM 0.10.1 on; fp16
    before Ampere, where bf16 would be refused)."""
    from srl_agent.policy.vllm import VLLMPolicy

    VLLMPolicy("model")
    assert standin_vllm == [("LLM", {"model": "model", "dtype": "auto", "distributed_executor_backend": None,
                                     "seed": 0, "enable_sleep_mode": False})]
    assert not {name for name in LAUNCHER_ENV if name in os.environ}
