"""An instance's testbed image (the sandbox image plus the repository at /testbed) and a sandbox made from it."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY --chown=agent:agent testbed/ /testbed/
WORKDIR /testbed
# The harness keeps its containers alive with `tail -f /dev/null`, which ignores SIGTERM as PID 1:
# without this every `docker stop` waits out its 15 s grace period.
STOPSIGNAL SIGKILL
"""


def _image_hash(instance: dict, base_id: str, dockerfile: str) -> str:
    return hashlib.sha256(f"{base_id}\0{instance['base_commit']}\0{dockerfile}".encode()).hexdigest()[:16]


def build_images(client, instances: list[dict], base: str, rebuild: bool = False,
                 progress: Callable[[str], None] = print, *, materialize: Callable[[dict, Path], str],
                 dockerfile: Callable[[dict], str] = lambda instance: DOCKERFILE, kind: str) -> list[str]:
    """One image per task: `base` (the sandbox image) plus the repository at /testbed. Current ones are kept.

    `materialize(instance, dest)` makes the task's repository at `dest` and returns its commit, which must
    be the instance's base commit; images record a hash of base image, commit and Dockerfile.
    """
    import docker

    from ..images import CONTEXT_LABEL, image_exists

    base_id = client.images.get(base).id
    built = []
    for instance in instances:
        recipe = dockerfile(instance)
        tag, want = instance["image"], _image_hash(instance, base_id, recipe)
        if not rebuild and image_exists(client, tag) and client.images.get(tag).labels.get(CONTEXT_LABEL) == want:
            progress(f"{tag}: up to date")
            continue
        with tempfile.TemporaryDirectory(prefix="srl-testbed-ctx-") as ctx:
            commit = materialize(instance, Path(ctx) / "testbed")
            if commit != instance["base_commit"]:
                raise UserError(f"{instance['instance_id']}: its repository is at {commit[:12]}, the instance "
                                f"expects {instance['base_commit'][:12]}; regenerate the instances")
            (Path(ctx) / "Dockerfile").write_text(recipe)
            try:
                labels = {CONTEXT_LABEL: want, "org.srl-agent.image": kind}
                client.images.build(path=ctx, tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True,
                                    network_mode="none", labels=labels)
            except docker.errors.BuildError as e:
                raise UserError(f"docker build of {tag} failed: {e.msg}") from None
        built.append(tag)
        progress(f"{tag}: built")
    return built


def instance_sandbox(instance: dict, step_timeout: float = 120.0, kind: str = "docker", engine: str | None = None,
                     disk_mb: int | None = None):
    """A container sandbox made from the instance's image (which holds the repository at its base commit);
    `disk_mb`: its disk budget (None: the sandboxes' default)."""
    from ..sandbox import DEFAULT_DISK_MB, SandboxConfig, open_sandbox

    config = SandboxConfig(image=instance["image"], default_timeout=step_timeout, engine=engine,
                           disk_mb=disk_mb or DEFAULT_DISK_MB)
    return open_sandbox(config, kind=kind, base_commit=instance.get("base_commit"))
