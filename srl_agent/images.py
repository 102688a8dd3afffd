"""Sandbox images, built without a registry when there is none.

`srl-agent env build swe` builds `envs/swe/Dockerfile` FROM a configurable base (default an official
python slim image). With `--offline`, or automatically when the base cannot be pulled, the base is
made locally: `debootstrap --variant=minbase` of Debian with python3, git and pytest from the Debian
mirror apt is configured with, then `docker import`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .errors import UserError
from .paths import project_dir

DEFAULT_BASE = "python:3.11-slim"
OFFLINE_BASE = "srl-agent/base:{suite}"
SWE_IMAGE = "srl-agent/swe:latest"
TASK_IMAGE_REPO = "srl-agent/tasks"  # the task factory's images, one per instance (tasks/instances.py)
OFFLINE_PACKAGES = ["python3", "python3-venv", "git", "python3-pytest", "procps"]
CONTEXT_LABEL = "org.srl-agent.context"
PACKAGES_LABEL = "org.srl-agent.packages"
# What the offline base leaves out of debootstrap's tree (about 180 MB): apt's downloaded packages and
# lists (the image never runs apt offline), documentation, manuals and message translations.
# Part of the base's packages label, so a base made before the diet is made again.
BASE_DIET = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "usr/share/doc/*", "usr/share/man/*",
             "usr/share/info/*", "usr/share/locale/*")


def how_to_get(image: str, engine: str | None) -> str:
    """What to do about a missing image: build ours (then copy it to a remote `engine`), pull anyone else's."""
    if engine and image.startswith("srl-agent/"):
        return f"build it on the local engine, then `srl-agent env copy {image} --to {engine}`"
    if image.startswith("srl-agent/swe-mini:"):
        return "build the swe-mini images with `srl-agent env build swe-mini`"
    if image.startswith(f"{TASK_IMAGE_REPO}:"):
        return "build the task images with `srl-agent env build --instances FILE` (the tasks' instances.jsonl)"
    if image.startswith("srl-agent/"):
        return "build it with `srl-agent env build swe`"
    return "pull it where a registry is reachable (`docker pull`, then `docker save`/`docker load` to bring it here)"


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 `URIs:` or a sources.list `deb` line)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*(\S+)|deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+)", text, re.MULTILINE):
            uri = m[1] or m[2]
            if "security" not in uri:
                return uri
    raise UserError("no Debian mirror found in /etc/apt; pass --mirror URL")


def debian_suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1]:
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "bookworm"


def image_exists(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def can_pull(client, name: str) -> bool:
    import docker

    try:
        client.images.pull(name)
        return True
    except docker.errors.APIError:
        return False


def build_offline_base(client, suite: str | None = None, mirror: str | None = None, rebuild: bool = False,
                       log=print) -> str:
    """debootstrap + docker import; reuses the image when it exists."""
    suite = suite or debian_suite()
    tag = OFFLINE_BASE.format(suite=suite)
    packages = ",".join(OFFLINE_PACKAGES) + ";slim"
    if not rebuild and image_exists(client, tag) and client.images.get(tag).labels.get(PACKAGES_LABEL) == packages:
        return tag
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap is not installed (apt-get install debootstrap)")
    mirror = mirror or apt_mirror()
    with tempfile.TemporaryDirectory(prefix="srl-rootfs-") as root:
        log(f"debootstrap {suite} from {mirror} (about a minute)...")
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(OFFLINE_PACKAGES)}",
                               suite, root, mirror], capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"debootstrap failed: {proc.stderr.strip()[-800:] or proc.stdout.strip()[-800:]}")
        for pattern in BASE_DIET:
            for path in Path(root).glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        log(f"importing the root filesystem as {tag}...")
        tar_path = Path(root).with_suffix(".tar")
        try:
            with tarfile.open(tar_path, mode="w") as tar:
                tar.add(root, arcname=".")
            repository, _, version = tag.partition(":")
            client.api.import_image_from_file(str(tar_path), repository=repository, tag=version,
                                              changes=[f'LABEL {PACKAGES_LABEL}="{packages}"'])
        finally:
            tar_path.unlink(missing_ok=True)
    return tag


def collect_tool_executables(bin_dir: Path) -> None:
    """Copy every tool executable (tools/*/bin/*, tools/legacy/*/bin/*) into one folder."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tools = project_dir("tools")
    for exe in sorted([*tools.glob("*/bin/*"), *tools.glob("legacy/*/bin/*")]):
        target = bin_dir / exe.name
        shutil.copy2(exe, target)
        os.chmod(target, 0o755)


def build_context(env_name: str, dest: Path) -> None:
    """The environment's folder (its Dockerfile) plus the tool executables under bin/."""
    env_dir = project_dir("envs") / env_name
    if not (env_dir / "Dockerfile").exists():
        raise UserError(f"unknown environment {env_name!r}: no {env_dir}/Dockerfile")
    shutil.copytree(env_dir, dest, dirs_exist_ok=True)
    collect_tool_executables(dest / "bin")


def context_hash(env_name: str = "swe") -> str:
    """A hash of the environment's build context: images record it, so stale ones are noticed."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="srl-ctx-") as ctx:
        build_context(env_name, Path(ctx))
        for path in sorted(Path(ctx).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(ctx)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def image_is_current(client, tag: str = SWE_IMAGE, env_name: str = "swe") -> bool:
    """True when `tag` exists and was built from the current Dockerfile and tools."""
    import docker

    try:
        labels = client.images.get(tag).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get(CONTEXT_LABEL) == context_hash(env_name)


def build_swe_image(client, base: str = DEFAULT_BASE, tag: str = SWE_IMAGE, offline: bool = False,
                    mirror: str | None = None, log=print) -> str:
    """Build the agent sandbox image; returns its tag."""
    if not offline and not image_exists(client, base) and not can_pull(client, base):
        log(f"cannot pull {base}: building an offline base instead")
        offline = True
    if offline:
        base = build_offline_base(client, mirror=mirror, log=log)
    with tempfile.TemporaryDirectory(prefix="srl-ctx-") as ctx:
        build_context("swe", Path(ctx))
        log(f"building {tag} FROM {base}...")
        import docker

        try:
            _, logs = client.images.build(path=ctx, tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True,
                                          network_mode="host",
                                          labels={"org.srl-agent.base": base, CONTEXT_LABEL: context_hash("swe")})
        except docker.errors.BuildError as e:
            tail = "".join(str(x.get("stream", x.get("error", ""))) for x in list(e.build_log)[-15:])
            raise UserError(f"docker build of {tag} failed: {e.msg}\n{tail}") from None
        for line in logs:
            if "stream" in line and line["stream"].strip().startswith("Step"):
                log(line["stream"].strip())
    return tag
