"""Retries of engine calls after transient errors, against an engine that answers HTTP 500 a few times.

An overloaded engine cannot be made to fail on cue, so this is a local server speaking the engine's
HTTP protocol on a unix socket; the docker SDK talks to it as to dockerd.
"""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from srl_agent.sandbox import container_engine


class FlakyEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers /_ping and /version; the first `failures` requests to /containers/... get HTTP 500."""

    daemon_threads = True

    def __init__(self, path: str, failures: int, status: int = 500):
        self.failures, self.status, self.seen = failures, status, []

        server = self

        class Handler(BaseHTTPRequestHandler):
            def address_string(self):
                return "unix"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.seen.append(self.path)
                if "/containers/" in self.path and server.failures > 0:
                    server.failures -= 1
                    return self.reply(server.status, {"message": "engine overloaded"})
                if self.path.endswith("/_ping"):
                    return self.reply(200, "OK")
                if self.path.endswith("/version"):
                    return self.reply(200, {"ApiVersion": "1.41", "Version": "flaky"})
                return self.reply(200, {"Id": "c1", "State": {"Running": True}})

            def reply(self, code: int, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(path, Handler)


@pytest.fixture
def flaky(tmp_path):
    servers = []

    def start(failures: int, status: int = 500) -> tuple[FlakyEngine, str]:
        path = str(tmp_path / f"engine{len(servers)}.sock")
        server = FlakyEngine(path, failures, status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"unix://{path}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_transient_errors_are_retried_with_backoff(flaky):
    server, url = flaky(failures=3)
    client = container_engine.engine_client(url)
    before = container_engine.RETRIED[0]
    assert container_engine.retrying(lambda: client.api.inspect_container("c1"), backoff=0.01)["Id"] == "c1"
    assert container_engine.RETRIED[0] - before == 3
    assert server.seen.count("/v1.41/containers/c1/json") == 4


def test_an_engine_that_keeps_failing_gives_up_after_the_last_try(flaky):
    import docker

    server, url = flaky(failures=100)
    client = container_engine.engine_client(url)
    with pytest.raises(docker.errors.APIError, match="engine overloaded"):
        container_engine.retrying(lambda: client.api.inspect_container("c1"), tries=3, backoff=0.01)
    assert server.seen.count("/v1.41/containers/c1/json") == 3


def test_client_errors_are_not_retried(flaky):
    import docker

    server, url = flaky(failures=1, status=404)
    client = container_engine.engine_client(url)
    with pytest.raises(docker.errors.NotFound):
        container_engine.retrying(lambda: client.api.inspect_container("c1"), backoff=0.01)
    assert server.seen.count("/v1.41/containers/c1/json") == 1
