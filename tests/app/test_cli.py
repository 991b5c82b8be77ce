import subprocess
import sys

import pytest

from app.cli import main, parser

SUBCOMMANDS = [
    ["run"],
    ["web"],
    ["worker"],
    ["scheduler"],
    ["migrate"],
    ["remind"],
    ["digest"],
    ["inbound", "reprocess"],
    ["replies", "export-cases"],
    ["api-token", "create"],
    ["suppression", "list"],
    ["suppression", "add"],
    ["suppression", "remove"],
    ["suppression", "import"],
    ["suppression", "export"],
    ["redrive"],
    ["webhook", "add"],
    ["webhook", "list"],
    ["webhook", "remove"],
    ["team-chat", "1", "add"],
    ["team-chat", "1", "test"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_command_explains_itself_with_help(words, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args([*words, "--help"])
    assert exit_.value.code == 0
    assert "usage: donebox" in capsys.readouterr().out


def test_the_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "reprocess" in out.stdout or "inbound" in out.stdout


def test_worker_without_an_external_broker_says_what_is_missing(env, capsys):
    assert main(["worker"]) == 2
    assert "REDIS_URL or RABBITMQ_URL" in capsys.readouterr().err


def test_remind_and_digest_need_now(env, capsys):
    assert main(["remind"]) == 2
    assert main(["digest"]) == 2
    assert "--now" in capsys.readouterr().err


def test_digest_with_a_bad_day_is_refused(env, capsys):
    assert main(["digest", "--now", "--day", "yesterday"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_reprocess_of_an_unknown_message_says_so(db, capsys):
    assert main(["inbound", "reprocess", "999"]) == 1
    assert "not found" in capsys.readouterr().err


def test_production_without_a_secret_key_refuses_to_start(env, capsys):
    env.setenv("DONEBOX_ENV", "production")
    env.delenv("SECRET_KEY")
    from tests.conftest import reset_caches

    reset_caches()
    assert main(["migrate"]) == 2
    assert "SECRET_KEY" in capsys.readouterr().err


def test_an_api_token_is_printed_once_and_stored_hashed(db, capsys):
    from sqlalchemy import select

    from app.db import session
    from app.models import ApiToken
    from app.relay.api_tokens import check_token

    assert main(["api-token", "create", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("dbx_")
    with session() as s:
        row = s.execute(select(ApiToken)).scalar_one()
        assert token not in row.token_sha256 and check_token(s, token).name == "ci"
        assert check_token(s, token + "x") is None


def test_an_api_token_gets_the_scopes_asked_for_and_unknown_ones_are_refused(db, capsys):
    from sqlalchemy import select

    from app.db import session
    from app.models import ApiToken

    assert main(["api-token", "create", "reporting", "--scopes", "read"]) == 0
    assert main(["api-token", "create", "mailer", "--scopes", "send,read"]) == 0
    assert main(["api-token", "create", "bad", "--scopes", "send,admin"]) == 2
    assert "--scopes takes one or more of send, read, manage" in capsys.readouterr().err
    with session() as s:
        got = dict(s.execute(select(ApiToken.name, ApiToken.scopes)).all())
    assert got == {"reporting": "read", "mailer": "send read"}


def test_version_prints_the_installed_package_version():
    import importlib.metadata
    import tomllib
    from pathlib import Path

    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, check=True
    )
    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert out.stdout.strip() == f"donebox {importlib.metadata.version('donebox')}"
    assert importlib.metadata.version("donebox") == declared["project"]["version"]


def test_the_suppression_commands_add_list_export_remove_and_import(db, capsys, tmp_path):
    from app.db import session
    from app.relay import suppressions

    assert main(["suppression", "add", "Ada@Example.com", "--reason", "bounce"]) == 0
    assert "ada@example.com: bounce (instance-wide)" in capsys.readouterr().out
    assert main(["suppression", "add", "bob@example.com", "--expires-at", "2999-01-01T00:00:00"]) == 0
    assert main(["suppression", "add", "bob@example.com"]) == 2
    assert main(["suppression", "add", "nobody", "--team", "1"]) == 2
    assert main(["suppression", "add", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "already suppressed" in err and "--team: no team 1" in err and "address: not an email" in err
    assert main(["suppression", "list", "--reason", "manual"]) == 0
    out = capsys.readouterr().out
    assert "bob@example.com: manual (instance-wide)" in out and "until 2999-01-01 00:00" in out
    assert "ada@" not in out
    exported = tmp_path / "out.csv"
    assert main(["suppression", "export", str(exported)]) == 0
    assert exported.read_text().splitlines() == [
        "address,reason,expires_at",
        "ada@example.com,bounce,",
        "bob@example.com,manual,2999-01-01T00:00:00+00:00",
    ]
    assert main(["suppression", "remove", "ada@example.com"]) == 0
    assert main(["suppression", "remove", "bob@example.com"]) == 0
    assert main(["suppression", "remove", "bob@example.com"]) == 1
    exported.write_text(exported.read_text() + "bad line\n")
    assert main(["suppression", "import", str(exported)]) == 1  # a bad line: reported, the rest imported
    captured = capsys.readouterr()
    assert "line 4: address: not an email address" in captured.err
    assert "2 imported, 0 unchanged, 1 bad line(s)" in captured.out
    with session() as s:
        assert suppressions.lookup(s, "ada@example.com").reason == "bounce"
        assert suppressions.lookup(s, "bob@example.com").expires_at is not None
    assert main(["suppression", "export"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "ada@example.com,bounce,",
        "bob@example.com,manual,2999-01-01T00:00:00+00:00",
    ]
    assert main(["suppression", "import", str(tmp_path / "missing.csv")]) == 2


def test_redrive_sends_failed_messages_again_and_says_why_a_sent_one_is_not(db, sent, capsys):
    from app.models import utcnow
    from app.relay.pipeline import deliver_many
    from app.relay.transports.memory import MemoryTransport
    from tests.app.relay.test_redrive import fail, make, states

    failed = make(3, prefix="f") + make(1, prefix="g", domain="other.test")
    fail(failed)
    [done] = make(1, prefix="s")
    deliver_many([done], transport=MemoryTransport(), now=utcnow())
    assert main(["redrive", "--domain", "example.com", "--dry-run"]) == 0
    assert "3 messages would be sent again (dry run), 0 skipped" in capsys.readouterr().out
    assert states(failed) == {"failed": 4}
    assert main(["redrive", "--state", "failed", "--domain", "example.com", "--since", "2000-01-01"]) == 0
    assert "3 messages sent again, 0 skipped" in capsys.readouterr().out
    assert states(failed[:3]) == {"sent": 3} and len(sent) == 3  # the embedded workers sent them
    assert main(["redrive", "--id", str(done)]) == 1
    out = capsys.readouterr()
    assert f"message {done} not sent again: it is sent" in out.err and "0 messages sent again" in out.out
    assert main(["redrive", "--state", "sent"]) == 2
    assert "state must be one of" in capsys.readouterr().err
    assert main(["redrive", "--until", "soon"]) == 2


def test_the_webhook_commands_add_print_the_secret_once_list_and_remove(team, env, capsys):
    from app.settings import get_settings

    env.setenv("WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    url = "http://127.0.0.1:9/hook"
    assert main(["webhook", "add", "--team", str(team.id), url, "delivered", "bounced"]) == 0
    out = capsys.readouterr().out
    assert f"of team {team.id}: {url} (delivered bounced)" in out and "secret (shown this once" in out
    secret = out.split("POST): ")[1].strip()
    assert main(["webhook", "list"]) == 0
    listed = capsys.readouterr().out
    assert url in listed and secret not in listed
    eid = listed.split("\t")[0]
    assert main(["webhook", "add", "--team", str(team.id), url, "teleported"]) == 2
    assert main(["webhook", "add", "--team", "999", url, "sent"]) == 2
    err = capsys.readouterr().err
    assert "kinds: unknown teleported" in err and "--team: no team 999" in err
    assert main(["webhook", "remove", eid]) == 0
    assert main(["webhook", "remove", eid]) == 2
    assert f"no webhook endpoint {eid}" in capsys.readouterr().err
    assert main(["webhook", "list", "--team", str(team.id)]) == 0
    assert capsys.readouterr().out == ""


def test_team_chat_adds_lists_masked_tests_and_removes_a_channel(env, team, sent, capsys):
    from app.settings import get_settings
    from jobs.broker import drain
    from tests.app.relay.transports.webhook_server import WebhookServer

    env.setenv("CHAT_ALLOW_LOCAL", "true")
    get_settings.cache_clear()
    server = WebhookServer().start()
    try:
        assert main(["team-chat", str(team.id), "add", "mattermost", "https://10.1.2.3/hooks/x"]) == 2
        assert "private address" in capsys.readouterr().err
        url = server.url("mattermost")
        assert main(["team-chat", str(team.id), "add", "mattermost", url, "--label", "#ops"]) == 0
        dest = int(capsys.readouterr().out.split()[-1])
        assert main(["team-chat", str(team.id), "list"]) == 0
        listed = capsys.readouterr().out
        assert f"{dest}\tmattermost\t" in listed and "#ops" in listed and url not in listed
        assert main(["team-chat", str(team.id), "test", str(dest)]) == 0
        drain()
        assert "a test post for Rocket" in server.hits[0].json["text"]
        assert main(["team-chat", str(team.id), "remove", str(dest)]) == 0
        assert main(["team-chat", str(team.id), "remove", str(dest)]) == 2
    finally:
        server.stop()


def test_the_worker_gets_two_malloc_arenas_unless_the_operator_set_them_and_its_thread_count():
    from app.cli import worker_environment

    assert worker_environment({"PATH": "/bin"}, 8) == {
        "PATH": "/bin",
        "MALLOC_ARENA_MAX": "2",
        "WORKER_THREADS": "8",
    }
    assert worker_environment({"MALLOC_ARENA_MAX": "8", "WORKER_THREADS": "4"}, 3) == {
        "MALLOC_ARENA_MAX": "8",
        "WORKER_THREADS": "3",  # what its processes run, whatever the environment said
    }
