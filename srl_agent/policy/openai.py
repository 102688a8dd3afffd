"""A policy served behind an OpenAI-compatible chat API (vLLM, SGLang, TGI, `srl-agent serve`, ...)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from ..actions import assistant_text, wire_messages
from ..errors import UserError
from . import Completion, ContextWindowExceeded, Messages, SamplingParams

# How vLLM, SGLang, TGI and OpenAI word a prompt that is too long (an HTTP 400).
CONTEXT_ERROR = re.compile(r"context length|context_length_exceeded|context window|too many tokens|"
                           r"longer than the model", re.IGNORECASE)


class OpenAIPolicy:
    def __init__(self, base_url: str, model: str | None = None, api_key: str = "none", timeout: float = 600):
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key, self.timeout = model, api_key, timeout

    def _request(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            body = e.read()[:2000].decode(errors="replace")
            if e.code == 400 and CONTEXT_ERROR.search(body):
                raise ContextWindowExceeded(f"{self.base_url}{path}: the prompt exceeds the model's context: "
                                            f"{body[:300]}") from None
            raise UserError(f"{self.base_url}{path}: HTTP {e.code}: {body[:300]!r}") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise UserError(f"{self.base_url}: cannot reach the model server ({e})") from None

    def model_name(self) -> str:
        """The served model: as given, else the first one the server lists."""
        if self.model is None:
            self.model = self._request("/models")["data"][0]["id"]
        return self.model

    def generate(self, prompts: list[Messages], tools: list[list[dict]] | None,
                 params: SamplingParams) -> list[list[Completion]]:
        out = []
        for i, messages in enumerate(prompts):
            body = {"model": self.model_name(), "messages": wire_messages(messages, encode=True), "n": params.n,
                    "temperature": max(params.temperature, 0.0), "top_p": params.top_p,
                    "max_tokens": params.max_new_tokens}
            if tools and tools[i]:
                body["tools"] = tools[i]
            reply = self._request("/chat/completions", body)
            choices = reply["choices"]
            # usage counts all n choices together: an even share each (exact for n=1, the agent's case)
            used = (reply.get("usage") or {}).get("completion_tokens")
            share = round(used / len(choices)) if isinstance(used, int) and choices else None
            out.append([_completion(choice, share) for choice in choices])
        return out


def _completion(choice: dict, tokens: int | None) -> Completion:
    """A chat choice as text in our answer format (tool calls a server parsed out are put back)."""
    return Completion(assistant_text(choice.get("message") or {}), [], None, choice.get("finish_reason") or "stop",
                      served_tokens=tokens)
