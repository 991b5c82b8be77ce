"""deploy/systemd and deploy/donebox.env.example: units systemd accepts, running commands donebox has."""

import shutil
import subprocess

import pytest

from app.cli import parser
from app.settings import SettingsError, load
from tests.conftest import need
from tests.deploy.files import (
    SERVICES,
    UNITS,
    env_file,
    exec_start,
    readme_production_names,
    setting_names,
    values,
)

LONG_RUNNING = [u for u in SERVICES if u.name != "donebox-migrate.service"]
BINARY = "/opt/donebox/.venv/bin/donebox"  # where docs/deploy.md installs it


def test_the_units_are_the_five_processes_the_migrate_step_and_a_target():
    assert {u.name for u in UNITS} == {
        f"donebox-{name}.service" for name in ("web", "worker", "scheduler", "smtp", "imap", "migrate")
    } | {"donebox.target"}


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    """Verified in a root of their own, where the installed donebox exists (a stub) and systemd's
    own units are this machine's: any line systemd writes about our units is a failure."""
    if not shutil.which("systemd-analyze"):
        need("systemd-analyze", "not installed (package systemd)")
    system = tmp_path / "etc/systemd/system"
    system.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, system / unit.name)
    stub = tmp_path / BINARY.lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    (tmp_path / "usr/lib/systemd/system").symlink_to("/usr/lib/systemd/system")
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", *(str(system / u.name) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    about_ours = [line for line in (result.stdout + result.stderr).splitlines() if "donebox" in line]
    assert result.returncode == 0 and not about_ours, about_ours or result.stderr


@pytest.mark.parametrize("unit", SERVICES, ids=lambda u: u.name)
def test_each_unit_runs_the_donebox_command_it_is_named_after(unit):
    argv = exec_start(unit)
    assert argv[0] == BINARY
    args = parser().parse_args(argv[1:])  # argparse exits on an unknown command or option
    assert args.command == unit.stem.removeprefix("donebox-")


@pytest.mark.parametrize("unit", SERVICES, ids=lambda u: u.name)
def test_each_unit_runs_hardened_as_the_donebox_user_on_the_env_file(unit):
    def one(key):
        return values(unit, "Service", key)

    assert one("User") == ["donebox"] and one("Group") == ["donebox"]
    assert one("EnvironmentFile") == ["/etc/donebox/donebox.env"]
    assert one("NoNewPrivileges") == ["yes"] and one("PrivateTmp") == ["yes"]
    assert one("ProtectSystem") == ["strict"]
    # the only place a process may write is VAR_DIR (DKIM_DIR and METRICS_DIR live in it)
    var_dir = env_file()[0]["VAR_DIR"]
    assert one("ReadWritePaths") == [var_dir] and one("StateDirectory") == [var_dir.rpartition("/")[2]]


@pytest.mark.parametrize("unit", LONG_RUNNING, ids=lambda u: u.name)
def test_each_process_restarts_on_failure_and_starts_after_the_migration(unit):
    assert values(unit, "Service", "Restart") == ["on-failure"]
    assert "donebox-migrate.service" in values(unit, "Unit", "Requires")
    assert "donebox-migrate.service" in " ".join(values(unit, "Unit", "After"))


def test_the_migration_is_a_oneshot_that_counts_as_started_once_done():
    (migrate,) = (u for u in SERVICES if u.name == "donebox-migrate.service")
    assert values(migrate, "Service", "Type") == ["oneshot"]
    assert values(migrate, "Service", "RemainAfterExit") == ["yes"]
    assert values(migrate, "Service", "Restart") == []


def test_the_env_example_names_only_settings_donebox_reads():
    live, commented = env_file()
    assert (set(live) | commented) - setting_names() == set()


def test_the_env_example_sets_every_setting_production_needs():
    live, _ = env_file()
    assert readme_production_names() <= set(live), readme_production_names() - set(live)
    assert {"VAR_DIR", "METRICS_TOKEN"} <= set(live)
    assert live["DONEBOX_ENV"] == "production"


def test_the_env_example_as_shipped_is_refused_until_a_secret_key_is_put_in():
    live, _ = env_file()
    with pytest.raises(SettingsError, match="production refuses SECRET_KEY: it is blank"):
        load(live)
