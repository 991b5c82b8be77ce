"""app/logs.py: what a log line says (JSON or text, with the ids at hand) and what it never says."""

import io
import json
import logging
import re
import sys
import threading

import pytest

from app import logs
from app.settings import load

SECRET_KEY = "c0ffee-Strong-Key-0123456789-abcdXYZ"
SECRETS = {
    "SECRET_KEY": SECRET_KEY,
    "INBOUND_RAW_TOKEN": "raw-Token-0123456789abcdef",
    "MAILGUN_SIGNING_KEY": "key-Mailgun0123456789abcdef",
    "SENDGRID_INBOUND_AUTH": "sendgrid:Sg-Password-0123456789",
    "POSTMARK_EVENT_AUTH": "postmark:Pm-Password-0123456789",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0123456789",
    "AWS_SECRET_ACCESS_KEY": "aws/Secret+Access0123456789abcdef",
    "IMAP_MAILBOXES": "imaps://inbox%40example.com:Imap-Password-0123@imap.example.com/INBOX",
}


def settings(tmp_path, **extra):
    return load({"VAR_DIR": str(tmp_path), **SECRETS, "LOG_FORMAT": "json", **extra})


def emitted(settings, *records_of, json_lines=True, name="donebox.test_logs") -> list:
    """Lines ``handler(settings)`` writes for the records each callable logs to a fresh logger."""
    out = io.StringIO()
    h = logs.handler(settings)
    h.setStream(out)
    logger = logging.getLogger(name)
    logger.propagate, logger.level = False, logging.DEBUG
    # alone on it: pytest puts its capturing handlers on every logger that does not propagate
    others, logger.handlers = logger.handlers, [h]
    try:
        for log_it in records_of:
            log_it(logger)
    finally:
        logger.handlers = others
    text = out.getvalue()
    if not json_lines:
        return text.splitlines()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ("SECRET_KEY", SECRET_KEY),
        ("INBOUND_RAW_TOKEN", SECRETS["INBOUND_RAW_TOKEN"]),
        ("MAILGUN_SIGNING_KEY", SECRETS["MAILGUN_SIGNING_KEY"]),
        ("SENDGRID_INBOUND_AUTH", "Sg-Password-0123456789"),  # the password alone
        ("POSTMARK_EVENT_AUTH", SECRETS["POSTMARK_EVENT_AUTH"]),
        ("AWS_SECRET_ACCESS_KEY", SECRETS["AWS_SECRET_ACCESS_KEY"]),
        ("IMAP_MAILBOXES", "Imap-Password-0123"),  # the password of a mailbox URL, however it is shown
    ],
)
def test_a_secret_settings_value_never_reaches_a_line(tmp_path, setting, shown):
    (line,) = emitted(settings(tmp_path), lambda log: log.warning("refused %s (was %r)", setting, shown))
    assert shown not in json.dumps(line) and "***" in line["msg"]
    assert line["msg"].startswith(f"refused {setting}")


def test_api_tokens_passwords_and_bearer_credentials_are_masked(tmp_path):
    lines = emitted(
        settings(tmp_path),
        lambda log: log.info("token dbx_AbCdEf0123456789_-xyz checked"),
        lambda log: log.info("sender smtp://user:Pa55word-here@smtp.example.com:587 refused"),
        lambda log: log.info("login failed: password=hunter2hunter2, user=ops"),
        lambda log: log.info('sent {"token": "tok-0123456789"} with Authorization: Bearer abcdef0123456789'),
        lambda log: log.info("redis://:redis-Pass-0123@redis:6379/0 is down"),
    )
    msgs = [line["msg"] for line in lines]
    assert msgs[0] == "token dbx_*** checked"
    assert msgs[1] == "sender smtp://user:***@smtp.example.com:587 refused"
    assert msgs[2] == "login failed: password=***, user=ops"
    assert "tok-0123456789" not in msgs[3] and "abcdef0123456789" not in msgs[3]
    assert msgs[4] == "redis://:***@redis:6379/0 is down"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://discord.com/api/webhooks/123456789012345678/Secret-Token_abcdefABCDEF",
        "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=AIzaSyKey&token=chat-Token-1",
        "https://user:webhook-pass@hooks.example.com/incoming",
        "https://app.example.com/donebox/events?sig=0123456789abcdef",
    ],
)
def test_a_webhook_urls_path_query_and_credentials_are_hidden(tmp_path, url):
    (line,) = emitted(settings(tmp_path), lambda log: log.warning("POST %s failed: timeout", url))
    host = url.split("/")[2].rpartition("@")[2]
    assert line["msg"] == f"POST https://{'***@' if '@' in url else ''}{host}/*** failed: timeout"


def test_email_addresses_are_masked_in_the_message_the_fields_and_a_traceback(tmp_path):
    def failing(log):
        try:
            raise ValueError("550 no such user <bob.smith@example.org>")
        except ValueError:
            log.exception(
                "delivery to %s failed", "ada@example.com", extra={"to": "carol+x@team.example.net"}
            )

    (line,) = emitted(settings(tmp_path), failing)
    assert line["msg"] == "delivery to a***@example.com failed"
    assert line["to"] == "c***@team.example.net"
    assert "ValueError: 550 no such user <b***@example.org>" in line["exc"]
    assert "bob.smith" not in json.dumps(line) and line["exc"].startswith("Traceback")


def test_a_body_field_is_left_out_and_a_long_message_is_cut(tmp_path):
    lines = emitted(
        settings(tmp_path),
        lambda log: log.info("stored", extra={"body": "Dear team, ...", "raw": b"From: x", "html": "<p>"}),
        lambda log: log.info("x" * 10_000),
    )
    assert set(lines[0]) == {"ts", "level", "logger", "msg"}
    assert len(lines[1]["msg"]) < logs.MAX_MSG_CHARS + 100 and lines[1]["msg"].endswith("characters cut)")


def test_a_json_line_has_the_time_level_logger_message_and_the_ids_bound_around_it(tmp_path):
    def nested(log):
        with logs.bound(team_id=3):
            with logs.bound(message_id=41, inbound_id=None):
                log.info("message %s: %s", 41, "sent")
            log.warning("after")
        log.info("outside")

    first, second, third = emitted(settings(tmp_path), nested)
    assert first["ts"].endswith("Z") and first["ts"][10] == "T"
    assert first == {
        "ts": first["ts"],
        "level": "info",
        "logger": "donebox.test_logs",
        "msg": "message 41: sent",
        "message_id": 41,
        "team_id": 3,
    }
    assert second["level"] == "warning" and second["team_id"] == 3 and "message_id" not in second
    assert "team_id" not in third and logs.current() == {}


def test_development_lines_are_text_with_the_ids_in_brackets(tmp_path):
    def one(log):
        with logs.bound(inbound_id=7):
            log.info("inbound %s: processed (from ada@example.com)", 7)

    (line,) = emitted(settings(tmp_path, LOG_FORMAT="auto"), one, json_lines=False)
    assert line.endswith(
        "INFO donebox.test_logs: inbound 7: processed (from a***@example.com) [inbound_id=7]"
    )
    assert not line.startswith("{")


def test_the_handler_writes_to_stderr_as_it_is_when_a_record_comes(tmp_path, monkeypatch):
    """A process's stderr replaced (and the old one closed, as a test runner does) is followed:
    no "I/O operation on closed file" and no line lost."""
    h = logs.handler(settings(tmp_path, LOG_FORMAT="text"))
    log = logging.getLogger("donebox.test_logs.stderr")
    log.addHandler(h)
    log.propagate = False
    try:
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        log.warning("one")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        log.warning("two")
    finally:
        log.removeHandler(h)
    assert second.getvalue().rstrip().endswith("two")


@pytest.mark.parametrize(
    ("env", "is_json"),
    [
        ({}, False),
        ({"DONEBOX_ENV": "production"}, True),
        ({"DONEBOX_ENV": "production", "LOG_FORMAT": "text"}, False),
        ({"LOG_FORMAT": "json"}, True),
    ],
)
def test_log_format_auto_is_json_in_production_only(tmp_path, env, is_json):
    assert settings(tmp_path, **{"LOG_FORMAT": "auto", **env}).log_json is is_json


@pytest.mark.parametrize(("name", "value"), [("LOG_FORMAT", "yaml"), ("LOG_LEVEL", "loud")])
def test_an_unknown_log_format_or_level_is_refused_by_name(tmp_path, name, value):
    from app.settings import SettingsError

    with pytest.raises(SettingsError, match=name):
        settings(tmp_path, **{name: value})


@pytest.fixture
def restored():
    """The root logger's level and handlers, and Python's hooks, as they were before the test."""
    root = logging.getLogger()
    level, hooks = root.level, (sys.excepthook, threading.excepthook)
    yield root
    for h in [h for h in root.handlers if isinstance(h, logs.Handler)]:
        root.removeHandler(h)
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def test_other_handlers_see_the_record_as_it_was_logged(tmp_path, caplog, restored):
    logs.setup_logging(settings(tmp_path, LOG_LEVEL="DEBUG"))
    logs.setup_logging(settings(tmp_path))  # again: still one handler of ours
    assert sum(isinstance(h, logs.Handler) for h in restored.handlers) == 1
    assert restored.level == logging.INFO
    logging.getLogger("donebox.test_logs").warning("to %s", "ada@example.com")
    assert caplog.records[-1].getMessage() == "to ada@example.com"


def test_an_exception_no_thread_caught_is_a_line_too(tmp_path, capsys, restored):
    logs.setup_logging(settings(tmp_path))

    def doomed():
        raise ZeroDivisionError("for ada@example.com")

    t = threading.Thread(target=doomed, name="doomed")
    t.start()
    t.join()
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["level"] == "critical" and line["msg"] == "uncaught ZeroDivisionError in thread doomed"
    assert "ZeroDivisionError: for a***@example.com" in line["exc"]


def test_uvicorns_log_config_makes_the_same_handler(tmp_path):
    import logging.config

    config = logs.uvicorn_config(settings(tmp_path, LOG_LEVEL="WARNING"))
    assert config["root"]["level"] == "WARNING" and not config["disable_existing_loggers"]
    assert config["handlers"]["donebox"]["()"] == "app.logs.handler"
    made = logging.config.DictConfigurator({}).resolve(config["handlers"]["donebox"]["()"])
    assert made is logs.handler


def test_a_line_writer_writes_each_line_whole_and_a_long_one_to_its_fallback():
    import os
    import select

    from app.logs import LineWriter

    r, w = os.pipe()
    fallback = io.StringIO()
    try:
        out = LineWriter(w, fallback=lambda: fallback)
        out.write("é short line\n")
        long_line = "x" * (select.PIPE_BUF + 1) + "\n"
        out.write(long_line)
        out.flush()
        os.close(w)
        w = -1
        assert os.read(r, 1 << 16) == "é short line\n".encode()
        assert fallback.getvalue() == long_line
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


def test_processes_writing_through_line_writers_on_one_pipe_never_cut_into_each_others_lines():
    import multiprocessing
    import os
    import select

    from app.logs import LineWriter

    r, w = os.pipe()

    def child(n: int) -> None:
        out = LineWriter(w)
        for i in range(300):
            out.write(f"{n}:{i}:" + chr(ord("a") + n) * (select.PIPE_BUF - 40) + "\n")

    ctx = multiprocessing.get_context("fork")
    kids = [ctx.Process(target=child, args=(n,)) for n in range(4)]
    for k in kids:
        k.start()
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    for k in kids:
        k.join(30)
    lines = data.decode().splitlines()
    seen = set()
    for line in lines:
        n, i, body = line.split(":")
        assert body == chr(ord("a") + int(n)) * (select.PIPE_BUF - 40)  # whole, and one process's
        seen.add((int(n), int(i)))
    assert len(lines) == 1200 and seen == {(n, i) for n in range(4) for i in range(300)}


ALONE = "donebox.test_logs_alone"  # a logger no test runner's handler is put on
LINE_CASES = [
    ("message %s: %s%s", (41, "sent", ""), {"kind": "digest"}),
    ("inbound %s: %s", (7, "failed (from ada@example.com)"), {}),
    ("%s %s %s", ("POST", "/inbound/{provider}", 202), {"status": 202, "duration_ms": 3.2, "team_id": 5}),
    (
        "token=%s body follows",
        ("abcdefghijklmnop",),
        {"body": "the mail's text", "url": "https://h.example/x?t=1"},
    ),
]


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize(("msg", "args", "extra"), LINE_CASES)
def test_a_line_is_written_as_logger_log_writes_it(tmp_path, monkeypatch, log_format, msg, args, extra):
    s = settings(tmp_path, LOG_FORMAT=log_format)
    with logs.bound(request_id="r-1", message_id=41):
        usual = emitted(s, lambda log: log.info(msg, *args, extra=extra), json_lines=False, name=ALONE)
        with monkeypatch.context() as m:  # the handler is the only one: no LogRecord is made
            m.setattr(logging.Logger, "makeRecord", lambda *a, **k: pytest.fail("a LogRecord was made"))
            fast = emitted(
                s, lambda log: logs.line(log, logging.INFO, msg, *args, **extra), json_lines=False, name=ALONE
            )
    stamp = r'^\{"ts": "[^"]+"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}'
    assert [re.sub(stamp, "TS", x) for x in fast] == [re.sub(stamp, "TS", x) for x in usual]
    assert len(fast) == 1 and "ada@example.com" not in fast[0] and "the mail's text" not in fast[0]


def test_a_line_goes_the_usual_way_when_another_handler_would_see_it(caplog):
    logger = logging.getLogger("donebox.test_logs.line")
    with caplog.at_level(logging.INFO):
        logs.line(logger, logging.INFO, "message %s: %s", 3, "sent", kind="reminder")
    (record,) = [r for r in caplog.records if r.name == "donebox.test_logs.line"]
    assert record.getMessage() == "message 3: sent" and record.kind == "reminder"


def test_a_line_below_its_loggers_level_is_not_written_and_a_standard_name_is_refused(tmp_path):
    s = settings(tmp_path)

    def quiet(log):
        log.setLevel(logging.WARNING)
        logs.line(log, logging.INFO, "not written")
        log.setLevel(logging.DEBUG)

    assert emitted(s, quiet, name=ALONE) == []
    with pytest.raises(KeyError):
        emitted(s, lambda log: logs.line(log, logging.INFO, "x", name="shadow"), name=ALONE)
