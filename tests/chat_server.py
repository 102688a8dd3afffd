"""A local server speaking just enough of the OpenAI chat protocol (/v1/chat/completions) for the tests: a served
model, a busy one or a statement writer, where a real one cannot run here."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    """Each POST's JSON body goes to `answer(body)`, whose (HTTP status, text) comes back: the assistant's message
    for 200, else the error's message. `requests` records each request's path and body."""

    def __init__(self, answer: Callable[[dict], tuple[int, str]]):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                status, text = answer(body)
                reply = {"choices": [{"message": {"role": "assistant", "content": text}}]} if status == 200 \
                    else {"error": {"message": text}}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ChatServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def replying(text: str) -> ChatServer:
    """A server that answers every request with `text`."""
    return ChatServer(lambda body: (200, text))
