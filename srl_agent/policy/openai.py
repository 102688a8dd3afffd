"""A policy served behind an OpenAI-compatible chat API (vLLM, SGLang, TGI, `srl-agent serve`, ...).

The transport is one pooled `httpx.Client` (thread-safe: concurrent episodes share its connections), with
timeouts and, through tenacity, retries of what a busy or restarting server answers: connection failures,
dropped connections, HTTP 429 and 5xx. A request that ran past its read timeout is not sent again: the
server is already slow, and another try would double the wait.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import tenacity

from ..actions import assistant_text, wire_messages
from ..errors import UserError
from . import Completion, ContextWindowExceeded, Messages, SamplingParams

# How vLLM, SGLang, TGI and OpenAI word a prompt that is too long (an HTTP 400).
CONTEXT_ERROR = re.compile(r"context length|context_length_exceeded|context window|too many tokens|"
                           r"longer than the model", re.IGNORECASE)
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses after which the same request may well succeed (overload, a restarting server, a proxy)."""


def is_transient(error: BaseException) -> bool:
    """A failure worth another try: no connection, a dropped one, or a retried status; not a read timeout."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in RETRIED_STATUS
    return isinstance(error, httpx.TransportError) and not isinstance(error, (httpx.ReadTimeout, httpx.WriteTimeout))


class OpenAIPolicy:
    max_concurrent = 64
    """Requests one `generate` call has in flight at once."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str = "none", timeout: float = 600,
                 retries: int = 4, backoff: float = 1.0):
        """`timeout`: seconds a request may take (connecting: at most 30); `retries`: tries per request in all;
        `backoff`: seconds before the first retry, doubled each time (plus up to as much again at random)."""
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
                                   headers={"Authorization": f"Bearer {api_key}"},
                                   limits=httpx.Limits(max_keepalive_connections=self.max_concurrent))
        # shared by the calling threads: tenacity keeps each call's state apart (per call and thread-local)
        self.retry = tenacity.Retrying(stop=tenacity.stop_after_attempt(retries),
                                       wait=tenacity.wait_exponential(multiplier=backoff, max=60)
                                       + tenacity.wait_random(0, backoff),
                                       retry=tenacity.retry_if_exception(is_transient), reraise=True)

    def _send(self, url: str, body: dict | None) -> dict:
        response = self.client.post(url, json=body) if body is not None else self.client.get(url)
        response.raise_for_status()
        return response.json()

    def _request(self, path: str, body: dict | None = None) -> dict:
        """POST `body` (GET without one) to base_url + `path`; the reply's JSON. Errors are one line."""
        url = f"{self.base_url}{path}"
        try:
            return self.retry(self._send, url, body)
        except httpx.HTTPStatusError as e:
            text = e.response.text[:2000]
            if e.response.status_code == 400 and CONTEXT_ERROR.search(text):
                raise ContextWindowExceeded(f"{url}: the prompt exceeds the model's context: {text[:300]}") from None
            raise UserError(f"{url}: HTTP {e.response.status_code}: {text[:300]!r}") from None
        except httpx.TransportError as e:
            raise UserError(f"{self.base_url}: cannot reach the model server ({type(e).__name__}: {e})") from None
        except ValueError as e:  # a reply that is not JSON
            raise UserError(f"{url}: the reply is not JSON ({e})") from None

    def model_name(self) -> str:
        """The served model: as given, else the first one the server lists."""
        if self.model is None:
            self.model = self._request("/models")["data"][0]["id"]
        return self.model

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        """One request per prompt, all in flight at once (`max_concurrent` at most): the server batches them."""
        self.model_name()  # asked once, before the requests go out together
        if len(prompts) == 1:
            return [self._generate_one(prompts[0], tools[0] if tools else None, params)]
        with ThreadPoolExecutor(min(len(prompts), self.max_concurrent), thread_name_prefix="openai") as pool:
            return list(pool.map(self._generate_one, prompts, tools or [None] * len(prompts),
                                 [params] * len(prompts)))

    def _generate_one(self, messages: Messages, tools: list[dict] | None, params: SamplingParams) -> list[Completion]:
        body = {"model": self.model_name(), "messages": wire_messages(messages, encode=True), "n": params.n,
                "temperature": max(params.temperature, 0.0), "top_p": params.top_p,
                "max_tokens": params.max_new_tokens}
        if tools:
            body["tools"] = tools
        reply = self._request("/chat/completions", body)
        choices = reply["choices"]
        # usage counts all n choices together: an even share each (exact for n=1, the agent's case)
        used = (reply.get("usage") or {}).get("completion_tokens")
        share = round(used / len(choices)) if isinstance(used, int) and choices else None
        return [_completion(choice, share) for choice in choices]


def _completion(choice: dict, tokens: int | None) -> Completion:
    """A chat choice as text in our answer format (tool calls a server parsed out are put back)."""
    return Completion(assistant_text(choice.get("message") or {}), [], None, choice.get("finish_reason") or "stop",
                      served_tokens=tokens)
