"""Where a Docker engine answers: build the image and start the compose stack from a filled-in env
file, check that the web answers and web, worker and scheduler run, and take it down again.

    python -m tests.deploy.docker_stack

Not part of the suite: CI has no Docker engine (tests/deploy/test_containers.py checks the files).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tests.deploy.files import ROOT, fill
from tests.e2e.conftest import free_port, http, wait_until


def _docker_engine() -> str:
    """Why no Docker engine can be used here, or ''."""
    if not shutil.which("docker"):
        return "no docker command"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    return "" if info.returncode == 0 else "the docker command answers, but no engine runs"


def build_and_serve(tmp_path: Path) -> None:
    """Build the image, start the compose stack, wait for /healthz and the three services; take it
    down again whatever happened."""
    env_file = tmp_path / "donebox.env"
    filled = fill(
        SECRET_KEY="4f1c0b9e7a2d5c8e3b6a1f0d9c8b7a6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a",
        MAIL_TRANSPORT="maildir",  # kept on the server on purpose: no sender needed to start
    )
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled.items()))
    port = free_port()
    project = f"donebox-test-{uuid.uuid4().hex[:8]}"
    compose = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml")]
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": uuid.uuid4().hex,
        "DONEBOX_ENV_FILE": str(env_file),
        "DONEBOX_WEB_PORT": str(port),
    }
    try:
        built = subprocess.run([*compose, "build"], env=env, capture_output=True, text=True, timeout=1200)
        assert built.returncode == 0, built.stderr[-3000:]
        up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        wait_until(
            lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, 120, "the web container"
        )
        ps = subprocess.run(
            [*compose, "ps", "--format", "{{.Service}} {{.State}}"], env=env, capture_output=True, text=True
        )
        assert {"web running", "worker running", "scheduler running"} <= set(ps.stdout.splitlines()), (
            ps.stdout
        )
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, capture_output=True, timeout=300)


def main() -> int:
    if why := _docker_engine():
        print(f"docker_stack: no Docker engine: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        build_and_serve(Path(tmp))
    print("docker_stack: the image built and the compose stack served /healthz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
