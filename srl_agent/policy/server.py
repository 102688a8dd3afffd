"""A small OpenAI-compatible chat server backed by an HFPolicy (`srl-agent serve`).

It speaks `GET /v1/models` and `POST /v1/chat/completions` (messages, tools, n, temperature,
top_p, max_tokens; tool-call arguments come as JSON strings, as the API has them, and reach the chat
template as objects, as in vLLM); answers carry the raw assistant text, as vLLM does without a tool parser, and a
prompt too long for the model is refused with vLLM's HTTP 400.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..actions import wire_messages
from . import SamplingParams
from .hf import HFPolicy


def make_server(policy: HFPolicy, model_name: str, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    lock = threading.Lock()  # one generation at a time: the model is not thread-safe

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self._reply(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            else:
                self._reply(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._reply(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                params = SamplingParams(n=int(request.get("n", 1)), temperature=float(request.get("temperature", 1.0)),
                                        top_p=float(request.get("top_p", 1.0)),
                                        max_new_tokens=int(request.get("max_tokens") or 256))
                messages = wire_messages(request["messages"], encode=False)  # tool-call arguments as objects
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                self._reply(400, {"error": {"message": f"bad request: {e}"}})
                return
            tools = request.get("tools") or []
            with lock:
                prompt_tokens = policy.count_prompt_tokens(messages, tools)
                window = policy.context_window
                if window and prompt_tokens + params.max_new_tokens > window:
                    self._reply(400, {"error": {"type": "BadRequestError", "code": 400, "message": (
                        f"This model's maximum context length is {window} tokens. However, you "
                        f"requested {prompt_tokens + params.max_new_tokens} tokens ({prompt_tokens} in the "
                        f"messages, {params.max_new_tokens} in the completion).")}})
                    return
                (completions,) = policy.generate([messages], [tools], params)
            self._reply(200, {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                "model": model_name,
                "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                             "finish_reason": c.finish_reason} for i, c in enumerate(completions)],
                "usage": {"prompt_tokens": prompt_tokens,
                          "completion_tokens": sum(len(c.token_ids) for c in completions)}})

        def log_message(self, *args):  # quiet: the CLI prints its own lines
            pass

    return ThreadingHTTPServer((host, port), Handler)
