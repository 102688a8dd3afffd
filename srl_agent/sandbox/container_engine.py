"""Container engines the docker SDK talks to: the local Docker, a remote one, or Podman's Docker-compatible API.

An engine is named by a URL the docker SDK accepts: `unix:///var/run/docker.sock`, `tcp://host:2376` (TLS from
DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, as the docker CLI reads them), `ssh://user@host`. None means DOCKER_HOST
or the local default. Podman serves the same API from `podman system service`; its socket is found the way
podman's own clients find it (CONTAINER_HOST, then the rootless socket under XDG_RUNTIME_DIR, then the rootful one).

Engines under load answer with time-outs, HTTP 500s and dropped connections. `retrying` repeats the calls
that are safe to repeat (they have no effect, or the same effect twice) with exponential backoff and jitter
(tenacity), and `START_SLOTS` lets only a few containers start at once, whatever the number of sandboxes asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import UserError

T = TypeVar("T")



def _start_slot_count() -> int:
    value = os.environ.get("SRL_SANDBOX_START_SLOTS", "8")
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"SRL_SANDBOX_START_SLOTS must be a whole number of at least 1, not {value!r}")
    return int(value)


START_SLOT_COUNT = _start_slot_count()
"""Containers being created and probed at once, per process (SRL_SANDBOX_START_SLOTS, default 8)."""
START_SLOTS = threading.BoundedSemaphore(START_SLOT_COUNT)
RETRIES = 5
BACKOFF = 0.5  # seconds before the first retry; doubled each time, plus up to as much again at random
RETRIED = [0]  # engine calls repeated so far in this process (the load benchmark reports it)


def describe(url: str | None) -> str:
    return url or os.environ.get("DOCKER_HOST") or "the local Docker engine"


def engine_client(url: str | None = None, timeout: int = 120, hint: str | None = None):
    """A docker SDK client of the engine at `url` that has answered a ping; else one clear UserError."""
    import docker

    hint = hint or ("check that an engine runs there and the URL is right" if url or os.environ.get("DOCKER_HOST")
                    else "start dockerd, or use --sandbox bwrap")

    environment = dict(os.environ)
    if url:
        environment["DOCKER_HOST"] = url
    try:
        client = docker.from_env(timeout=timeout, environment=environment, use_ssh_client=True)
        retrying(client.ping, tries=2)
    except Exception as e:  # DockerException, requests errors, PermissionError, ssh failures...
        detail = str(e).splitlines()[0][:160] if str(e) else ""
        raise UserError(f"cannot reach the container engine at {describe(url)} ({type(e).__name__}: {detail}); "
                        f"{hint}") from None
    return client


def podman_url(url: str | None = None) -> str:
    """The Podman API socket: `url`, else CONTAINER_HOST, else the rootless socket, else the rootful one."""
    url = url or os.environ.get("CONTAINER_HOST")
    if not url:
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        rootless = Path(runtime) / "podman" / "podman.sock"
        url = f"unix://{rootless}" if rootless.exists() or os.getuid() != 0 else "unix:///run/podman/podman.sock"
    if url.startswith("unix://") and not Path(url.removeprefix("unix://")).exists():
        raise UserError(f"no Podman socket at {url.removeprefix('unix://')}: start it with `podman system service "
                        f"--time=0 {url}` as the user the sandboxes run as, or pass --engine unix://PATH")
    return url


def podman_client(url: str | None = None, timeout: int = 120):
    url = podman_url(url)
    return engine_client(url, timeout, hint=f"start it with `podman system service --time=0 {url}`")


def is_transient(error: BaseException) -> bool:
    """Errors an overloaded or restarting engine gives, after which the same call may well succeed."""
    import docker
    import requests

    if isinstance(error, docker.errors.APIError) and not isinstance(error, docker.errors.NotFound):
        return error.status_code is None or error.status_code >= 500 or error.status_code == 429
    return isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError))


def _count_retry(state) -> None:
    RETRIED[0] += 1


def retrying(call: Callable[[], T], tries: int = RETRIES, backoff: float = BACKOFF) -> T:
    """`call()`, repeated after transient engine errors with exponential backoff. Only for calls safe to repeat.

    At most `tries` calls; the n-th wait is backoff * 2**(n-1) seconds plus up to `backoff` at random (so that
    many sandboxes that failed together do not retry together). The last error is raised as it was."""
    import tenacity

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(tries),
        wait=tenacity.wait_exponential(multiplier=backoff, max=60) + tenacity.wait_random(0, backoff),
        retry=tenacity.retry_if_exception(is_transient), before_sleep=_count_retry, reraise=True)(call)


def copy_images(tags: list[str], source, target, log=print) -> list[str]:
    """Copy images between engines (`docker save | podman load`, through the SDKs); returns those copied.

    Images the target already has (same id) are skipped. Labels, and so the content hash that tells a stale
    image from a current one, travel with them.
    """
    import docker

    copied = []
    for tag in tags:
        try:
            image = source.images.get(tag)
        except docker.errors.ImageNotFound:
            raise UserError(f"image {tag!r} is not on {describe(source.api.base_url)}; build it first") from None
        try:
            if target.images.get(tag).id == image.id:
                continue
        except docker.errors.ImageNotFound:
            pass
        log(f"copying {tag} ({image.attrs.get('Size', 0) / 1e6:.0f} MB)...")
        loaded = target.images.load(image.save(named=True))  # streamed: the archive is never held whole
        if not any(tag in (i.tags or []) or f"localhost/{tag}" in (i.tags or []) for i in loaded):
            target.images.get(loaded[0].id).tag(*docker.utils.parse_repository_tag(tag))  # host:5000/img too
        copied.append(tag)
    return copied
