"""Dockerfile and compose.yaml: the services run donebox commands on settings donebox reads. Building
the image and starting the stack needs a Docker engine, which CI has not: that is
``python -m tests.deploy.docker_stack``, run by hand where one answers."""

import re

import pytest
import yaml

from app.cli import parser
from tests.deploy.files import ROOT, setting_names

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DONEBOX_SERVICES = ("migrate", "web", "worker", "scheduler")


def dockerfile(instruction: str) -> list[str]:
    """The arguments of every ``instruction`` line of the Dockerfile (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(instruction + " ")]


def test_the_image_is_python_3_11_slim_running_donebox_as_its_own_user():
    assert dockerfile("FROM") == ["python:3.11-slim"]
    assert dockerfile("USER") == ["donebox"]
    assert dockerfile("ENTRYPOINT") == ['["donebox"]']
    (cmd,) = dockerfile("CMD")
    assert parser().parse_args(yaml.safe_load(cmd)).command == "web"


def test_the_image_holds_what_donebox_reads_from_its_source_tree():
    copied = {c.split()[0] for c in dockerfile("COPY")}
    # templates/ sits beside the packages (app.settings.ROOT): a wheel leaves it out
    assert {"app", "parsers", "jobs", "templates", "pyproject.toml"} <= copied
    assert any("pip install --no-cache-dir -e ." in r for r in dockerfile("RUN"))


def test_the_image_sets_only_settings_donebox_reads():
    names = set(re.findall(r"([A-Z][A-Z0-9_]*)=", " ".join(dockerfile("ENV"))))
    assert {"VAR_DIR", "METRICS_DIR"} <= names
    assert names - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_DISABLE_PIP_VERSION_CHECK"} <= (
        setting_names()
    )


@pytest.mark.parametrize("name", DONEBOX_SERVICES)
def test_each_compose_service_runs_the_donebox_command_it_is_named_after(name):
    service = COMPOSE["services"][name]
    assert service["image"] == "donebox:latest" and service["build"] == "."
    assert parser().parse_args(service["command"]).command == name
    assert set(service["environment"]) <= setting_names()
    assert service["env_file"] == "${DONEBOX_ENV_FILE:-donebox.env}"


def test_compose_points_donebox_at_its_postgres_and_redis_and_migrates_first():
    services = COMPOSE["services"]
    env = services["web"]["environment"]
    assert "@postgres:5432/" in env["DATABASE_URL"] and env["REDIS_URL"].startswith("redis://redis:")
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # metric files are named by pid, and pids repeat across containers: never a shared directory
    assert not env["METRICS_DIR"].startswith(env["VAR_DIR"])
