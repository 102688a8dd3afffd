"""Policies behind one protocol: HF sampling, the OpenAI-compatible client against a real local
server backed by the tiny model, and vLLM's lazy import."""

from __future__ import annotations

import threading

import pytest
import torch

from srl_agent.policy import ContextWindowExceeded, SamplingParams, load_policy
from srl_agent.policy.hf import HFPolicy, token_logprobs
from srl_agent.policy.openai import OpenAIPolicy
from srl_agent.policy.server import make_server
from srl_agent.train.config import TrainConfig
from srl_agent.train.model import load_model
from tests.chat_server import ChatServer

PROMPT = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Fix the bug."}]


@pytest.fixture(scope="module")
def tiny_policy() -> HFPolicy:
    model, tokenizer = load_model(TrainConfig())
    return HFPolicy(model.eval(), tokenizer)


def test_a_static_kv_cache_samples_the_same_ids_and_logprobs(tiny_policy):
    """rollout_backend hf_static: the same model behind a static cache (fixed shapes, compiled on CUDA) must be
    a drop-in: the same ids, greedy and sampled with the same seed, and the same log-probs."""
    static = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, cache="static")
    prompts = tiny_policy.encode_prompts([tiny_policy.render(PROMPT, None), "Fix the bug in the parser, please."])
    for params in (SamplingParams(temperature=0.0, max_new_tokens=16), SamplingParams(n=2, max_new_tokens=16)):
        torch.manual_seed(0)
        dynamic_out = tiny_policy.generate_ids(prompts, params)
        torch.manual_seed(0)
        static_out = static.generate_ids(prompts, params)
        for want, got in zip([c for g in dynamic_out for c in g], [c for g in static_out for c in g], strict=True):
            assert got.token_ids == want.token_ids and got.finish_reason == want.finish_reason
            assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
    with pytest.raises(ValueError, match="cache must be dynamic, static or paged"):
        HFPolicy(tiny_policy.model, tiny_policy.tokenizer, cache="offloaded")


def test_continuous_batching_samples_the_same_ids_and_logprobs(tiny_policy):
    """rollout_backend hf_paged: transformers' continuous batching (paged KV cache, one request per sequence, no
    padding) must be a drop-in for `generate`: the same greedy ids and log-probs, the same stops at an end-of-turn
    token, and sampled log-probs that are the model's at the sampling temperature. Its sampler draws in another
    order than `generate`'s, so sampled ids are checked for reproducibility under a seed, not for equality."""
    paged = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, cache="paged")
    prompts = tiny_policy.encode_prompts([tiny_policy.render(PROMPT, None), "Fix the bug in the parser, please.", "a",
                                          "def f(x):\n    return x + 1\n" * 5])  # 23, 11, 1 and 55 tokens
    greedy = SamplingParams(temperature=0.0, max_new_tokens=16)
    want, got = tiny_policy.generate_ids(prompts, greedy), paged.generate_ids(prompts, greedy)
    for w, g in zip([c for gr in want for c in gr], [c for gr in got for c in gr], strict=True):
        assert g.token_ids == w.token_ids and g.text == w.text and g.finish_reason == w.finish_reason == "length"
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)  # measured: at most 5e-7 apart
    # an end-of-turn token mid-batch: that sequence stops there (the token kept), the others run on
    stop_at = want[1][0].token_ids[0]
    for policy in (tiny_policy, paged):
        policy.eos_ids = [stop_at]
    try:
        want, got = tiny_policy.generate_ids(prompts, greedy), paged.generate_ids(prompts, greedy)
    finally:
        tiny_policy.eos_ids = paged.eos_ids = HFPolicy(tiny_policy.model, tiny_policy.tokenizer).eos_ids
    assert [(c.token_ids, c.finish_reason) for g in got for c in g] == \
        [(c.token_ids, c.finish_reason) for g in want for c in g]
    assert got[1][0].token_ids == [stop_at] and got[1][0].finish_reason == "stop"
    assert "length" in [c.finish_reason for g in got for c in g]

    sampled = SamplingParams(n=3, temperature=0.7, max_new_tokens=12)
    torch.manual_seed(0)
    groups = paged.generate_ids(prompts, sampled)
    torch.manual_seed(0)
    assert [[c.token_ids for c in g] for g in paged.generate_ids(prompts, sampled)] == \
        [[c.token_ids for c in g] for g in groups]
    assert [len(g) for g in groups] == [3] * len(prompts) and len({tuple(c.token_ids) for c in groups[0]}) > 1
    for prompt, group in zip(prompts, groups, strict=True):
        for c in group:
            ids = torch.tensor([prompt + c.token_ids])
            with torch.no_grad():
                logits = tiny_policy.model(input_ids=ids).logits[0, len(prompt) - 1:-1]
            assert c.logprobs == pytest.approx(token_logprobs(logits, torch.tensor(c.token_ids), 0.7).tolist(),
                                               abs=1e-4)  # measured: at most 1e-6 apart
    assert paged.generate_ids(prompts[:1], sampled, with_logprobs=False)[0][0].logprobs is None
    assert tiny_policy.model.config._attn_implementation == "sdpa"  # the engine's own attention is undone


def test_hf_policy_samples_n_completions_with_logprobs(tiny_policy):
    torch.manual_seed(0)
    (group,) = tiny_policy.generate([PROMPT], None, SamplingParams(n=3, max_new_tokens=12))
    assert len(group) == 3
    for c in group:
        assert 1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.finish_reason in ("stop", "length")
    # the log-probs are the model's, recomputed by a plain forward pass
    c = group[0]
    prompt_ids = tiny_policy.encode_prompts([tiny_policy.render(PROMPT, None)])[0]
    ids = torch.tensor([prompt_ids + c.token_ids])
    with torch.no_grad():
        logits = tiny_policy.model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1]
    expected = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(c.token_ids).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4)


def test_greedy_is_deterministic(tiny_policy):
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=10)
    (a,) = tiny_policy.generate([PROMPT], None, params)
    (b,) = tiny_policy.generate([PROMPT], None, params)
    assert a[0].token_ids == a[1].token_ids == b[0].token_ids


@pytest.fixture(scope="module")
def served(tiny_policy):
    """The tiny model behind `srl-agent serve`'s HTTP server on a free local port; yields its /v1 URL."""
    server = make_server(tiny_policy, "tiny", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_client_against_a_local_server(tiny_policy, served):
    policy = load_policy(served)
    assert isinstance(policy, OpenAIPolicy) and policy.model_name() == "tiny"
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
    out = policy.generate([PROMPT, PROMPT], [tools, tools], SamplingParams(n=2, temperature=0.0, max_new_tokens=8))
    assert [len(g) for g in out] == [2, 2]
    (local,) = tiny_policy.generate([PROMPT], [tools], SamplingParams(n=1, temperature=0.0, max_new_tokens=8))
    assert out[0][0].text == local[0].text  # the server answers with the model's own greedy text
    assert out[0][0].num_tokens == len(local[0].token_ids)  # counted from the server's usage


def test_a_history_call_crosses_the_api_as_a_string_and_renders_as_an_object(tiny_policy, served):
    # The OpenAI API carries tool-call arguments as JSON strings; the server hands the chat template
    # objects again, so the served prompt is the one the model renders locally (arguments encoded once).
    from srl_agent.actions import assistant_message, wire_messages
    from srl_agent.types import ToolCall

    call = ToolCall("bash", {"command": 'grep -n "def f" a.py'})
    history = [*PROMPT, assistant_message("look", call), {"role": "tool", "content": "3:def f():"}]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    (remote,) = OpenAIPolicy(served, model="tiny").generate([history], None, params)
    (local,) = tiny_policy.generate([history], None, params)
    assert remote[0].text == local[0].text
    reply = OpenAIPolicy(served)._request("/chat/completions", {"messages": wire_messages(history, encode=True),
                                                                "max_tokens": 1})
    assert reply["usage"]["prompt_tokens"] == tiny_policy.count_prompt_tokens(history, None)
    wire = wire_messages(history, encode=True)
    assert wire[2]["tool_calls"][0]["function"]["arguments"] == '{"command": "grep -n \\"def f\\" a.py"}'
    assert wire_messages(wire, encode=False) == history
    assert '"arguments": {"command": "grep -n \\"def f\\" a.py"}' in tiny_policy.render(history, None)


def test_a_served_model_refuses_a_prompt_longer_than_its_context(tiny_policy, served):
    too_long = [{"role": "user", "content": "fix " * tiny_policy.context_window}]
    with pytest.raises(ContextWindowExceeded, match="maximum context length is"):
        OpenAIPolicy(served).generate([too_long], None, SamplingParams(max_new_tokens=8))


def test_openai_client_reports_an_unreachable_server():
    from srl_agent.errors import UserError

    with pytest.raises(UserError, match="cannot reach the model server"):
        OpenAIPolicy("http://127.0.0.1:9/v1", model="x", timeout=2, backoff=0.01).generate([PROMPT], None,
                                                                                         SamplingParams())


@pytest.fixture
def busy_server():
    """A server that answers /v1/chat/completions with the given statuses first, then with a completion.

    A busy server cannot be made to answer 503 on cue, so this one speaks just enough of the protocol."""
    servers = []

    def start(statuses: list[int]):
        seen: list[int] = []

        def answer(body: dict) -> tuple[int, str]:
            status = statuses[len(seen)] if len(seen) < len(statuses) else 200
            seen.append(status)
            return status, "done" if status == 200 else f"status {status}"

        servers.append(ChatServer(answer))
        return servers[-1].url, seen

    yield start
    for server in servers:
        server.close()


def test_openai_client_retries_what_a_busy_server_answers_but_not_a_bad_request(busy_server):
    from srl_agent.errors import UserError

    url, seen = busy_server([503, 429, 502])
    (answer,) = OpenAIPolicy(url, model="m", backoff=0.01).generate([PROMPT], None, SamplingParams())
    assert answer[0].text == "done" and seen == [503, 429, 502, 200]
    url, seen = busy_server([503] * 10)
    with pytest.raises(UserError, match="HTTP 503"):
        OpenAIPolicy(url, model="m", retries=3, backoff=0.01).generate([PROMPT], None, SamplingParams())
    assert len(seen) == 3  # then it gives up with the server's last answer
    url, seen = busy_server([400])
    with pytest.raises(UserError, match="HTTP 400"):
        OpenAIPolicy(url, model="m", backoff=0.01).generate([PROMPT], None, SamplingParams())
    assert seen == [400]  # a request the server refuses is not sent again


def test_vllm_is_optional_and_its_settings_map():
    from srl_agent.policy.vllm import import_vllm, vllm_sampling_kwargs

    assert vllm_sampling_kwargs(SamplingParams(n=8, temperature=1.0, top_p=0.9, max_new_tokens=64)) == {
        "n": 8, "temperature": 1.0, "top_p": 0.9, "max_tokens": 64, "logprobs": 0,
        # <think> and <tool_call> are special tokens of some tokenizers: stripping them breaks every answer
        "skip_special_tokens": False}
    assert vllm_sampling_kwargs(SamplingParams(temperature=0.0))["temperature"] == 0.0
    try:
        import vllm  # noqa: F401
    except ImportError:
        from srl_agent.errors import UserError

        with pytest.raises(UserError, match=r"pip install 'srl-agent\[vllm\]'"):
            import_vllm()


@pytest.mark.parametrize("cache", ["dynamic", "static", "paged"])
def test_a_checkpoint_s_generation_defaults_do_not_change_what_the_policy_samples(tiny_policy, cache):
    """Real checkpoints ship sampling defaults in generation_config.json (Qwen2.5-Coder-Instruct: repetition_penalty
    1.1, top_k 20). `generate` would apply them, so rollouts would come from another distribution than the one the
    trainer scores: the policy samples from the model's own, whatever the checkpoint says."""
    policy = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, cache=cache)
    prompts = tiny_policy.encode_prompts([tiny_policy.render(PROMPT, None), "Fix the bug in the parser, please."])
    greedy, sampled = SamplingParams(temperature=0.0, max_new_tokens=24), SamplingParams(n=4, max_new_tokens=24)

    def both() -> tuple[list, list]:
        torch.manual_seed(0)
        return policy.generate_ids(prompts, greedy), policy.generate_ids(prompts, sampled)

    plain = both()
    defaults = policy.model.generation_config
    shipped = defaults.__class__(**defaults.to_dict())
    shipped.update(repetition_penalty=10.0, no_repeat_ngram_size=2, top_k=1, min_p=0.5, typical_p=0.2)
    policy.model.generation_config = shipped
    try:
        assert both() == plain  # greedy: the penalties; sampled under one seed: the filters (top_k 1 would be greedy)
    finally:
        policy.model.generation_config = defaults
    assert any(len(set(c.token_ids)) < len(c.token_ids) for g in plain[0] for c in g)  # a penalty would have bitten
    assert any(c.token_ids != plain[0][i][0].token_ids for i, g in enumerate(plain[1]) for c in g)  # so would top_k


@pytest.mark.parametrize("cache", ["dynamic", "static", "paged"])
def test_every_end_id_the_checkpoint_declares_ends_the_turn(tiny_policy, cache):
    """A checkpoint's generation_config.json may declare end ids beyond the tokenizer's eos (Qwen2.5-Instruct:
    <|im_end|> and <|endoftext|>; Phi-3.5's <|end|>, Gemma's <end_of_turn>); `generate` and vLLM stop at any of
    them. A policy stopping only at the tokenizer's eos ran on past the turn's end to max_new_tokens, and the
    junk after it failed the format check. Here the checkpoint declares a token the tiny model emits mid-answer."""
    prompts = tiny_policy.encode_prompts([tiny_policy.render(PROMPT, None)])
    greedy = SamplingParams(temperature=0.0, max_new_tokens=24)
    (ran_on,) = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, cache=cache).generate_ids(prompts, greedy)[0]
    assert ran_on.finish_reason == "length"
    stop_at = ran_on.token_ids[4]
    defaults = tiny_policy.model.generation_config
    shipped = defaults.__class__(**defaults.to_dict())
    shipped.eos_token_id = [tiny_policy.tokenizer.eos_token_id, stop_at]
    tiny_policy.model.generation_config = shipped
    try:
        (c,) = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, cache=cache).generate_ids(prompts, greedy)[0]
    finally:
        tiny_policy.model.generation_config = defaults
    end = ran_on.token_ids.index(stop_at)
    assert c.finish_reason == "stop" and c.token_ids == ran_on.token_ids[: end + 1]
    assert c.text == tiny_policy.tokenizer.decode(ran_on.token_ids[:end], skip_special_tokens=False)


def test_a_checkpoint_we_write_carries_the_end_ids_but_no_sampling_shaping(tiny_policy, tmp_path):
    """`vllm serve` (and `generate`) apply generation_config.json's sampling defaults to every request that does not
    set them; the OpenAI client sets temperature and top_p only. A checkpoint that kept the base's (Qwen2.5-Coder-
    Instruct: repetition_penalty 1.1, top_k 20) was served from another distribution than the one it was trained on."""
    from transformers import GenerationConfig

    from srl_agent.train.model import save_model

    model, tokenizer = tiny_policy.model, tiny_policy.tokenizer
    defaults = model.generation_config
    shipped = defaults.__class__(**defaults.to_dict())
    shipped.update(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1,
                   eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id])
    model.generation_config = shipped
    try:
        save_model(model, tokenizer, tmp_path)
    finally:
        model.generation_config = defaults
    saved = GenerationConfig.from_pretrained(tmp_path)
    assert saved.eos_token_id == [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert (saved.top_k, saved.repetition_penalty) == (GenerationConfig().top_k, GenerationConfig().repetition_penalty)
    assert shipped.top_k == 20 and shipped.repetition_penalty == 1.1  # the live model's own is left as it was
