import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.settings import SettingsError, load, weakness
from parsers.providers import PROVIDERS


def test_development_generates_a_secret_once_and_keeps_it(tmp_path):
    env = {"VAR_DIR": str(tmp_path)}
    first = load(env)
    assert len(first.secret_key) >= 32
    assert load(env).secret_key == first.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_processes_starting_at_once_agree_on_one_development_secret(tmp_path):
    # two pytest-xdist workers (or `donebox web` and `donebox worker`) loading the settings at the
    # same moment on a fresh var/: one must not fail on the other's file or read it half written
    def together(var_dir, n=8):
        start = threading.Barrier(n)

        def one():
            start.wait()
            return load({"VAR_DIR": str(var_dir)}).secret_key

        with ThreadPoolExecutor(n) as pool:
            return [f.result() for f in [pool.submit(one) for _ in range(n)]]

    for i in range(40):
        keys = together(tmp_path / str(i))
        assert len(set(keys)) == 1 and len(keys[0]) >= 32, keys
        assert sorted(p.name for p in (tmp_path / str(i)).iterdir()) == ["inbound_raw_token", "secret_key"]


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load({"DONEBOX_ENV": "production", "VAR_DIR": str(tmp_path)})


def test_production_does_not_invent_an_inbound_token(tmp_path):
    s = load({"DONEBOX_ENV": "production", "SECRET_KEY": PROD["SECRET_KEY"], "VAR_DIR": str(tmp_path)})
    assert s.inbound_raw_token == ""
    assert not (tmp_path / "secret_key").exists()


def test_secrets_never_appear_in_the_repr(tmp_path):
    s = load(
        {"SECRET_KEY": "very-secret-value-123", "INBOUND_RAW_TOKEN": "tok-abc", "VAR_DIR": str(tmp_path)}
    )
    assert "very-secret-value-123" not in repr(s)
    assert "tok-abc" not in repr(s)


def test_defaults_are_the_embedded_ones(tmp_path):
    s = load({"VAR_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'donebox.db'}"
    assert s.redis_url == "" and s.mail_transport == "maildir"
    assert s.max_inbound_bytes == 30 * 1024 * 1024
    assert s.reply_window_days == 30 and s.authserv_ids == ()  # no Authentication-Results believed
    assert (s.soft_bounce_limit, s.soft_bounce_window_days, s.soft_bounce_suppress_days) == (3, 7, 7)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DONEBOX_ENV": "staging"}, "DONEBOX_ENV"),
        ({"MAIL_TRANSPORT": "pigeon"}, "MAIL_TRANSPORT"),
        ({"MAX_INBOUND_BYTES": "lots"}, "not a number"),
        ({"REPLY_WINDOW_DAYS": "0"}, "REPLY_WINDOW_DAYS"),
        ({"REPLY_WINDOW_DAYS": "-3"}, "REPLY_WINDOW_DAYS"),
        ({"REPLY_WINDOW_DAYS": "a month"}, "REPLY_WINDOW_DAYS"),
        ({"SOFT_BOUNCE_LIMIT": "0"}, "SOFT_BOUNCE_LIMIT"),
        ({"SOFT_BOUNCE_LIMIT": "three"}, "SOFT_BOUNCE_LIMIT"),
        ({"MAX_MESSAGE_BYTES": "10"}, "MAX_MESSAGE_BYTES must be a whole number from 1024"),
        ({"SOFT_BOUNCE_WINDOW_DAYS": "-1"}, "SOFT_BOUNCE_WINDOW_DAYS"),
        ({"SOFT_BOUNCE_SUPPRESS_DAYS": "0"}, "SOFT_BOUNCE_SUPPRESS_DAYS"),
        ({"SOFT_BOUNCE_SUPPRESS_DAYS": "99999"}, "SOFT_BOUNCE_SUPPRESS_DAYS"),
        ({"PASS_THROUGH_AFTER_S": "five minutes"}, "PASS_THROUGH_AFTER_S must be a whole number"),
        ({"PASS_THROUGH_AFTER_S": "-1"}, "PASS_THROUGH_AFTER_S"),
    ],
)
def test_unusable_settings_are_refused_with_the_reason(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message):
        load({"VAR_DIR": str(tmp_path), **env})


def test_authserv_ids_are_a_lower_case_list(tmp_path):
    s = load({"VAR_DIR": str(tmp_path), "AUTHSERV_IDS": " MX.Example.com, ,mx2.example.com "})
    assert s.authserv_ids == ("mx.example.com", "mx2.example.com")


def test_every_setting_is_in_the_readme_configuration_tables():
    from app.settings import ROOT

    source = (ROOT / "app" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()
    names = set(re.findall(r"# ([A-Z][A-Z0-9_]{2,}):", source))
    assert len(names) > 40
    assert {n for n in names if f"| `{n}` |" not in readme} == set()


def test_each_provider_secret_is_the_setting_its_class_names(tmp_path):
    s = load(
        {
            "VAR_DIR": str(tmp_path),
            "SENDGRID_INBOUND_AUTH": "sg:pw",
            "POSTMARK_INBOUND_AUTH": "pm:pw",
            "MAILGUN_SIGNING_KEY": "key-1",
            "MAILGUN_MAX_AGE_S": "120",
            "SES_TOPIC_ARNS": "arn:a,arn:b",
            "SES_EVENT_TOPIC_ARNS": "arn:e",
            "INBOUND_RAW_TOKEN": "tok",
            "SENDGRID_EVENT_MAX_AGE_S": "60",
        }
    )
    assert {n: s.secret_for(n) for n in PROVIDERS} == {
        "sendgrid": "sg:pw",
        "postmark": "pm:pw",
        "mailgun": "key-1",
        "ses": ("arn:a", "arn:b"),
        "raw": "tok",
        "imap": "",
    }
    assert s.event_secret_for("ses") == ("arn:e",) and s.event_secret_for("postmark") == ""
    assert s.max_age_for("mailgun") == 120 and s.max_age_for("sendgrid", events=True) == 60
    assert s.max_age_for("postmark") == 0


PROD = {"DONEBOX_ENV": "production", "SECRET_KEY": "c0ffee-Strong-Key-0123456789-abcdXYZ"}


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("SECRET_KEY", " " * 16, "is blank"),
        ("SECRET_KEY", " " * 40, "is blank"),
        ("SECRET_KEY", "x" * 40, "one class"),
        ("SECRET_KEY", "ab12" * 10, "distinct"),
        ("SECRET_KEY", "short-Key-1", "needs at least 32"),
        ("SECRET_KEY", " " + "0123456789abcdef" * 2, "blank space"),
        ("INBOUND_RAW_TOKEN", "x", "needs at least 16"),
        ("METRICS_TOKEN", "metrics", "needs at least 16"),
        ("MAILGUN_SIGNING_KEY", "aaaaaaaaaaaaaaaaaaaa", "one class"),
        ("SENDGRID_INBOUND_AUTH", ":", "user part is blank"),
        ("SENDGRID_INBOUND_AUTH", "user:", "password"),
        ("POSTMARK_INBOUND_AUTH", "user:hunter2", "needs at least 16"),
        ("POSTMARK_INBOUND_AUTH", "   :0123456789abcdef", "user part is blank"),
        ("POSTMARK_EVENT_AUTH", "events:short", "needs at least 16"),
    ],
)
def test_production_refuses_a_weak_secret_with_a_one_line_reason(tmp_path, name, value, reason):
    with pytest.raises(SettingsError, match=reason) as raised:
        load({**PROD, name: value, "VAR_DIR": str(tmp_path)})
    message = str(raised.value)
    assert name in message and "\n" not in message
    secret = value.partition(":")[2] if name.endswith("_AUTH") else value
    assert len(secret.strip()) < 4 or secret not in message  # the secret is not echoed


@pytest.mark.parametrize(
    "value",
    [
        secrets.token_hex(32),
        secrets.token_urlsafe(32),
        "correct-Horse-battery-staple-2026-x",
    ],
    ids=["token_hex", "token_urlsafe", "passphrase"],  # the same ids in every xdist worker
)
def test_production_accepts_generated_secrets(tmp_path, value):
    s = load(
        {
            **PROD,
            "SECRET_KEY": value,
            "INBOUND_RAW_TOKEN": secrets.token_hex(16),
            "SENDGRID_INBOUND_AUTH": "sendgrid:" + secrets.token_urlsafe(18),
            "VAR_DIR": str(tmp_path),
        }
    )
    assert s.secret_key == value


def test_every_hex_key_of_openssl_rand_hex_32_passes():
    # 64 hex digits often miss one of the 16: the distinct-character rule must not refuse them
    assert all(weakness(secrets.token_hex(32), min_chars=32) is None for _ in range(2000))
    assert weakness("0123456789abcdef" * 2, min_chars=32) is None


def test_development_keeps_accepting_any_secret(tmp_path):
    assert (
        load({"SECRET_KEY": "x", "INBOUND_RAW_TOKEN": "y", "VAR_DIR": str(tmp_path)}).inbound_raw_token == "y"
    )


def test_dns_nameservers_are_host_port_pairs_and_a_bad_one_is_named(tmp_path):
    s = load({"VAR_DIR": str(tmp_path), "DNS_NAMESERVERS": "127.0.0.1:5353, 10.0.0.2,[::1]:53"})
    assert s.dns_nameservers == (("127.0.0.1", 5353), ("10.0.0.2", 53), ("::1", 53))
    assert load({"VAR_DIR": str(tmp_path)}).dns_nameservers == ()
    with pytest.raises(SettingsError, match="DNS_NAMESERVERS: '127.0.0.1:99999' is not host:port"):
        load({"VAR_DIR": str(tmp_path), "DNS_NAMESERVERS": "127.0.0.1:99999"})


def test_the_return_path_domain_and_spf_include_default_from_other_settings(tmp_path):
    s = load({"VAR_DIR": str(tmp_path), "REPLY_DOMAIN": "Reply.Example.com", "MAIL_FROM": "d@example.com"})
    assert (s.return_path, s.spf_host) == ("reply.example.com", "_spf.example.com")
    s = load(
        {"VAR_DIR": str(tmp_path), "RETURN_PATH_DOMAIN": "rp.example.com", "SPF_INCLUDE": "spf.mx.example"}
    )
    assert (s.return_path, s.spf_host) == ("rp.example.com", "spf.mx.example")
