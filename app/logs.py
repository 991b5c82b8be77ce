"""Logging for every process: one setup, the ids of the work at hand, nothing secret.

``setup_logging(settings)`` is called once by each ``donebox`` command (and, through
``uvicorn_config``, by each uvicorn worker process). In production, or with LOG_FORMAT=json, every
line on stderr is one JSON object::

    {"ts": "2026-03-02T07:00:01.250Z", "level": "info", "logger": "donebox.relay",
     "msg": "message 41: sent", "message_id": 41, "team_id": 3}

In development the same records are readable lines, their ids at the end in brackets.

The ids come from context, not from arguments: ``bound(message_id=...)`` around the work on one
message (the relay's delivery, inbound processing, a web request's ``request_id``) puts them on
every record logged inside it, in this thread or task only.

Every record passes ``Redactor`` on its way out, in both formats: the values of the secret
settings, API tokens, passwords in URLs and ``password=`` pairs, everything after an http(s) URL's
host (webhook URLs carry their token in the path) become ``***``; email addresses keep their first
character and domain (``a***@example.com``); a field that would carry a message's content
(``body``, ``raw``, ``html``, ``text``) is left out. No log call should pass a body in the first
place: the redactor is the net, not the rule.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import fields
from datetime import UTC, datetime

from app.settings import Settings, get_settings

CONTEXT_FIELDS = ("request_id", "message_id", "inbound_id", "team_id")
_context: ContextVar[dict] = ContextVar("donebox_log_context", default={})  # noqa: B039 - never mutated


@contextlib.contextmanager
def bound(**ids) -> Iterator[None]:
    """Put ``ids`` (None values left out) on every record logged inside the block, on top of the
    ids already bound; the earlier ones again afterwards."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**ids) -> None:
    """Put ``ids`` on every record logged from here to the end of the current context: an asyncio
    task's own (a web request's task), never a worker thread's, where it would stay for good."""
    _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


def current() -> dict:
    """The ids bound here and now."""
    return dict(_context.get())


# --- redaction ---------------------------------------------------------------------------------

MAX_MSG_CHARS = 4000  # a longer message is cut: a log line is not where content goes
MIN_SECRET_CHARS = 8  # a shorter "secret" (tests' placeholders) would mask ordinary words
BODY_FIELDS = frozenset({"body", "raw", "html", "text", "content", "reply_text", "payload"})
# the attributes every LogRecord has; any other attribute came from ``extra=`` and is a field
# (uvicorn's color_message is its message again, with terminal colours)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}

# in order: the first rules hide what the later ones would otherwise half show
_URL_HTTP = re.compile(r"\b(https?://)([^/\s?#'\"<>]+)([/?#][^\s'\"<>]*)?", re.I)
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://[^/\s:@'\"<>]*):[^@\s/'\"<>]+@", re.I)
_PAIR = re.compile(
    r"\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|signing[_-]?key|authorization)"
    r"(\s*[=:]\s*|\"\s*:\s*\")(bearer\s+|basic\s+)?[^\s,;&\"']+",
    re.I,
)
_AUTH_HEADER = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.I)
_API_TOKEN = re.compile(r"\bdbx_[A-Za-z0-9_-]+")  # app.relay.api_tokens.PREFIX
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)


def _http(m: re.Match) -> str:
    scheme, netloc, rest = m.group(1), m.group(2), m.group(3) or ""
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}{netloc}/***" if len(rest) > 1 else f"{scheme}{netloc}{rest}"


def secret_values(settings: Settings) -> tuple[str, ...]:
    """The values of the settings kept out of Settings' repr (secrets, tokens, passwords), and the
    password part of each ``user:password`` and of each URL's user information among them."""
    out: set[str] = set()
    for f in fields(settings):
        if f.repr:
            continue
        value = getattr(settings, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if not isinstance(v, str):
                continue
            out.add(v)
            userinfo = v.split("://", 1)[1].rpartition("@")[0] if "://" in v else v
            out.add(userinfo.partition(":")[2])
    return tuple(sorted((v for v in out if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True))


class Redactor(logging.Filter):
    """Makes every record it passes safe to write: its message (arguments merged in), its
    exception and stack text and its extra fields, cleaned by ``clean``; body fields dropped."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = tuple(
            sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        )

    def clean(self, text: str) -> str:
        """``text`` with secrets, tokens, URL paths and passwords replaced by ``***`` and email
        addresses masked to their first character and domain."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        # a rule whose pattern needs text the line lacks is not run (most lines have no URL, token
        # or address): each line of every process passes here
        if "://" in text:
            text = _URL_HTTP.sub(_http, text)
            text = _URL_USERINFO.sub(r"\1:***@", text)
        text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}***", text)
        text = _AUTH_HEADER.sub(r"\1 ***", text)
        if "dbx_" in text:
            text = _API_TOKEN.sub("dbx_***", text)
        return _EMAIL.sub(r"\1***@\2", text) if "@" in text else text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logged, not raised
            message = f"{record.msg!r} {record.args!r}"
        if len(message) > MAX_MSG_CHARS:
            message = message[:MAX_MSG_CHARS] + f"… ({len(message) - MAX_MSG_CHARS} more characters cut)"
        record.msg, record.args = self.clean(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        record.exc_info = None  # the cleaned text is what gets written
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        for key in [k for k in record.__dict__ if k not in _STANDARD]:
            value = record.__dict__[key]
            if key.lower() in BODY_FIELDS:
                del record.__dict__[key]
            elif isinstance(value, str):
                record.__dict__[key] = self.clean(value)
            elif not isinstance(value, (int, float, bool, type(None))):
                record.__dict__[key] = self.clean(str(value))
        for key, value in _context.get().items():
            record.__dict__.setdefault(key, value)
        return True


# --- formats -----------------------------------------------------------------------------------


def _fields(record: logging.LogRecord) -> dict:
    """The record's context ids and extra fields, the ids first."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
    return {**{k: extra.pop(k) for k in CONTEXT_FIELDS if k in extra}, **extra}


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ts (ISO 8601 UTC), level, logger, msg, the context ids and
    extra fields that apply, exc (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Development's readable line: time, level, logger, message, then [the ids that apply]."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _fields(record)
        if not ids:
            return text
        first, sep, rest = text.partition("\n")
        return f"{first} [{' '.join(f'{k}={v}' for k, v in ids.items())}]{sep}{rest}"


class Handler(logging.StreamHandler):
    """donebox's handler: stderr, the Redactor as its filter, working on a copy of each record
    (other handlers, a test runner's, see the record as it was logged). Unless given a stream, it
    writes to whatever ``sys.stderr`` is when a record comes (as logging's last-resort handler
    does), never to a stream that was replaced and closed since it was made."""

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)
        self._stream = None  # None: sys.stderr as it is now; setStream (tests) fixes one

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        self._stream = value

    def handle(self, record: logging.LogRecord) -> bool:
        # a copy without LogRecord.__init__, whose every field the update sets again: makeLogRecord
        # ran it (the caller's file name, the time, the thread), a third of a line's cost
        twin = type(record).__new__(type(record))
        twin.__dict__.update(record.__dict__)
        return super().handle(twin)


class _Line:
    """What ``line`` hands to the Handler instead of a LogRecord: the attributes its filter and
    formatters read (all in _STANDARD), and the extra fields."""

    def __init__(self, name: str, level: int, msg: str, args: tuple, extra: dict):
        self.__dict__.update(extra)
        self.name, self.msg, self.args = name, msg, args
        self.levelno, self.levelname = level, logging.getLevelName(level)
        self.created = now = time.time()
        self.msecs = int((now - int(now)) * 1000) + 0.0  # as LogRecord computes them
        self.exc_info = self.exc_text = self.stack_info = None

    getMessage = logging.LogRecord.getMessage  # noqa: N815 - LogRecord's name


def _only_handler(logger: logging.Logger, level: int) -> Handler | None:
    """The one donebox Handler a record of ``logger`` at ``level`` would reach, when it would reach
    no other handler and pass no logger's filter; else None."""
    found = None
    c: logging.Logger | None = logger
    while c is not None:
        if c.filters:
            return None
        for h in c.handlers:
            if found is not None or type(h) is not Handler:
                return None
            found = h
        if not c.propagate:
            break
        c = c.parent
    return found if found is not None and level >= found.level else None


def line(logger: logging.Logger, level: int, msg: str, *args, **extra) -> None:
    """``logger.log(level, msg, *args, extra=extra)`` for the lines logged once a request or a
    message, written the same. When this process's Handler is the only one the record would reach
    (no test runner's beside it), the Handler gets a ``_Line`` instead of a LogRecord: no caller
    lookup, no thread and process names, no copy (the usual way costs half as much again of a
    loaded web process's time per request line)."""
    if not logger.isEnabledFor(level):
        return
    if extra.keys() & _STANDARD:  # as Logger.makeRecord refuses them
        raise KeyError(f"Attempt to overwrite {sorted(extra.keys() & _STANDARD)} in LogRecord")
    h = _only_handler(logger, level)
    if h is None:
        logger.log(level, msg, *args, extra=extra or None, stacklevel=2)
        return
    # logging.Handler's own handle (the Redactor, the lock, emit), without Handler's copy
    logging.Handler.handle(h, _Line(logger.name, level, msg, args, extra))


class LineWriter:
    """A stream for ``Handler`` that writes each line to a file descriptor itself, in one
    ``os.write``; a line longer than PIPE_BUF (4,096 bytes) goes to ``fallback()`` instead.

    Dramatiq points a worker process's ``sys.stderr`` at a pipe to its main process, which reads
    each line and writes it out again: a process and four system calls a line, for every line the
    relay and inbound processing log. One ``write`` of at most PIPE_BUF bytes to a pipe is atomic,
    and to a file each ``write`` takes its place whole, so the processes sharing the descriptor
    never cut into each other's lines; longer ones (tracebacks) still go the way that serializes
    them.
    """

    def __init__(self, fd: int, fallback=lambda: sys.stderr):
        self.fd = fd
        self.fallback = fallback

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        if len(data) > select.PIPE_BUF:
            stream = self.fallback()
            stream.write(text)
            stream.flush()
            return
        view = memoryview(data)
        while view:  # a file may take less than all (a full disk raises instead)
            view = view[os.write(self.fd, view) :]

    def flush(self) -> None:
        pass


def write_lines_directly() -> None:
    """This process's ``Handler`` writes its lines to stderr's descriptor itself (``LineWriter``),
    whatever ``sys.stderr`` becomes later (`donebox worker`: Dramatiq's pipe)."""
    fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
    for h in logging.getLogger().handlers:
        if isinstance(h, Handler):
            h.setStream(LineWriter(fd))


def handler(settings: Settings | None = None) -> logging.Handler:
    """The one handler every donebox process logs through: stderr, JSON or text as LOG_FORMAT and
    DONEBOX_ENV say, the Redactor on it (uvicorn's worker processes call it with no argument)."""
    settings = settings or get_settings()
    h = Handler()
    h.setFormatter(JSONFormatter() if settings.log_json else TextFormatter())
    h.addFilter(Redactor(secret_values(settings)))
    return h


def setup_logging(settings: Settings) -> None:
    """Send every logger's records (ours, uvicorn's, Dramatiq's, the libraries') through one
    ``handler`` on the root logger at LOG_LEVEL. Called again, it replaces its own handler and
    leaves any other (a test runner's) alone."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, Handler)]:
        root.removeHandler(h)
    root.addHandler(handler(settings))
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # what Python itself would print on stderr goes through the handler too: warnings, and the
    # traceback of an exception no code caught (in the main thread or another)
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = lambda a: _uncaught(a.exc_type, a.exc_value, a.exc_traceback, a.thread)


def _uncaught(exc_type, exc, tb, thread=None) -> None:
    if issubclass(exc_type, SystemExit):  # as Python's own hooks: a thread's exit is no error
        return None
    if issubclass(exc_type, KeyboardInterrupt):
        return sys.__excepthook__(exc_type, exc, tb)
    where = f" in thread {thread.name}" if thread is not None else ""
    logging.getLogger("donebox").critical(
        "uncaught %s%s", exc_type.__name__, where, exc_info=(exc_type, exc, tb)
    )


def uvicorn_config(settings: Settings) -> dict:
    """uvicorn's ``log_config``: uvicorn applies it in its own process and in each worker process
    it starts, so every one of them logs through ``handler``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"donebox": {"()": "app.logs.handler"}},
        "root": {"handlers": ["donebox"], "level": settings.log_level},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
