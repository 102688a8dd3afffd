"""`srl-agent serve`: a checkpoint behind an OpenAI-compatible chat API (the work: srl_agent.policy.server)."""

from __future__ import annotations

import argparse

from .common import console


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve a checkpoint behind an OpenAI-compatible chat API")
    serve.add_argument("--model", required=True, help="checkpoint folder or hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..policy.hf import HFPolicy
    from ..policy.server import make_server

    server = make_server(HFPolicy.from_pretrained(args.model), args.model, args.host, args.port)
    console.print(f"serving {args.model} at http://{args.host}:{server.server_address[1]}/v1 (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
