"""`srl-agent eval --image-template`: instances solved and graded in images named by a template."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERT = ROOT / "trajectories" / "swe-mini.jsonl"
INSTANCE = "swemini__configlite-1"


def test_solving_and_grading_use_the_templated_images(swe_mini_images, tmp_path):
    import docker

    client = docker.from_env()
    tag = f"srl-agent/template-test:{INSTANCE}-{int(time.time())}"
    client.images.get(f"srl-agent/swe-mini:{INSTANCE}").tag(*tag.rsplit(":", 1))
    # watched live: the engine keeps only its last events, and other tests make containers meanwhile
    events = client.events(decode=True, filters={"type": "container", "event": "create", "image": tag})
    made: list[str] = []
    watcher = threading.Thread(target=lambda: made.extend(e["Actor"]["Attributes"]["name"] for e in events),
                               daemon=True)
    watcher.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "srl_agent.cli", "eval", "--bench", "swe-mini", "--model",
                               f"replay:{EXPERT}", "--instances", INSTANCE, "--output-dir", str(tmp_path),
                               "--run-id", "tpl", "--image-template",
                               tag.replace(INSTANCE, "{instance_id}")], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert json.loads((tmp_path / "tpl" / "summary.json").read_text())["resolved"] == 1
        time.sleep(1)
        # the solving sandbox and the grading sandbox were both made from the templated image
        assert [name.split("-")[0] for name in made] == ["srl", "srl"], made
    finally:
        events.close()
        client.images.remove(tag)


def test_a_bad_template_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "srl_agent.cli", "eval", "--bench", "swe-mini", "--model", "gold",
                           "--instances", INSTANCE, "--output-dir", str(tmp_path), "--image-template", "x/{nope}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == ["error: --image-template 'x/{nope}': KeyError: 'nope' (fields: {instance_id}, {id_docker}, "
                      "{repo}, {version})"], proc.stderr
