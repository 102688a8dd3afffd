"""`srl-agent env build|copy`: sandbox images (the work: srl_agent.images, srl_agent.sandbox.container_engine)."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .common import console, log, progress_bar


def add_parser(sub) -> None:
    env = sub.add_parser("env", help="sandbox images")
    env_sub = env.add_subparsers(dest="env_command", required=True)
    build = env_sub.add_parser("build", help="build a sandbox image (offline when no registry answers)")
    build.add_argument("name", choices=["swe", "swe-mini"], nargs="?",
                       help="swe: the agent sandbox; swe-mini: one image per swe-mini task (built on swe); "
                            "none with --instances FILE: one image per instance of FILE (built on swe)")
    build.add_argument("--base", default=None,
                       help="base image of the swe image (default python:3.11-slim); swe-mini builds on swe")
    build.add_argument("--offline", action="store_true", help="build the base with debootstrap, no registry")
    build.add_argument("--mirror", help="Debian mirror for the offline base (default: the one apt uses)")
    build.add_argument("--tag", default=None, help="swe: image tag (default srl-agent/swe:latest)")
    build.add_argument("--instances", nargs="+", metavar="ID|FILE",
                       help="swe-mini: only these tasks; without a name: an instances file whose rows have a "
                            "`source` (git repository, folder or sdist) and a `bug_patch`, then optionally IDs")
    build.add_argument("--rebuild", action="store_true", help="swe-mini: rebuild images that are up to date")
    build.set_defaults(handler=cmd_env_build)

    copy = env_sub.add_parser("copy", help="copy images from the local Docker engine to another engine (offline)")
    copy.add_argument("images", nargs="+", metavar="IMAGE",
                      help="image tags; `swe` and `swe-mini` name the agent image and every swe-mini task image")
    copy.add_argument("--to", required=True, metavar="podman|URL",
                      help="`podman` (its rootless socket) or an engine URL (unix://…, tcp://…, ssh://…)")
    copy.set_defaults(handler=cmd_env_copy)


def cmd_env_build(args: argparse.Namespace) -> int:
    from ..images import DEFAULT_BASE, SWE_IMAGE, build_swe_image, image_is_current
    from ..sandbox.docker import docker_client

    client = docker_client(timeout=600)

    def build_swe(tag: str = SWE_IMAGE) -> str:
        return build_swe_image(client, base=args.base or DEFAULT_BASE, tag=tag, offline=args.offline,
                               mirror=args.mirror, log=log)

    if args.name == "swe":
        console.print(f"built {build_swe(args.tag or SWE_IMAGE)}")
        return 0
    # Task images build on the swe image: (re)build it first when it is missing or stale.
    if args.name is None:
        from ..tasks.instances import build_images, load_task_instances

        if not args.instances:
            raise UserError("env build: name an image (swe, swe-mini) or pass --instances FILE")
        instances = load_task_instances(args.instances[0], args.instances[1:])
        if not image_is_current(client, SWE_IMAGE):
            build_swe()
        with progress_bar("task images", len(instances)) as tick:
            built = build_images(client, args.instances[0], instances, SWE_IMAGE, rebuild=args.rebuild,
                                 progress=tick)
    else:  # swe-mini
        from ..testbed.swe_mini import build_images, load_instances

        if not image_is_current(client, SWE_IMAGE):
            build_swe()
        instances = load_instances(args.instances)
        with progress_bar("swe-mini images", len(instances)) as tick:
            built = build_images(client, instances, SWE_IMAGE, rebuild=args.rebuild, progress=tick)
    console.print(f"{len(built)} built, {len(instances) - len(built)} up to date")
    return 0


def expand_image_names(names: list[str]) -> list[str]:
    """`swe` and `swe-mini` stand for the agent image and the swe-mini task images."""
    from ..images import SWE_IMAGE
    from ..testbed.swe_mini import load_instances

    tags = []
    for name in names:
        if name == "swe-mini":
            tags += [i["image"] for i in load_instances()]
        else:
            tags.append(SWE_IMAGE if name == "swe" else name)
    return tags


def cmd_env_copy(args: argparse.Namespace) -> int:
    from ..sandbox.container_engine import copy_images, engine_client, podman_client
    from ..sandbox.docker import docker_client

    target = podman_client() if args.to == "podman" else engine_client(args.to)
    copied = copy_images(expand_image_names(args.images), docker_client(), target,
                         log=log)
    console.print(f"{len(copied)} copied to {args.to}")
    return 0
