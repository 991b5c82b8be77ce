"""The only reader of the environment: every setting typed, defaulted and explained once.

``get_settings()`` reads the environment the first time it is called and keeps
the result; tests build their own ``Settings`` with ``load(environ)``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: templates/ lives here


class SettingsError(RuntimeError):
    """Raised when the environment describes a configuration donebox refuses to run with."""


@dataclass(frozen=True)
class Settings:
    """donebox's configuration; secrets never appear in the repr."""

    env: str = "development"  # DONEBOX_ENV: development | production
    var_dir: Path = ROOT / "var"  # VAR_DIR: SQLite file, dev secrets and the dev maildir
    database_url: str = ""  # DATABASE_URL: default sqlite:///var/donebox.db
    redis_url: str = ""  # REDIS_URL: Dramatiq on Redis; unset: in-memory broker, in-process workers
    rabbitmq_url: str = ""  # RABBITMQ_URL: Dramatiq on RabbitMQ (when REDIS_URL is unset)
    secret_key: str = field(default="", repr=False)  # SECRET_KEY: signs reply addresses and links
    base_url: str = "http://127.0.0.1:8000"  # BASE_URL: where users reach the web app
    reply_domain: str = "reply.localhost"  # REPLY_DOMAIN: domain of reply+<token>@ addresses
    mail_from: str = "donebox@localhost"  # MAIL_FROM: sender address of reminders and digests
    mail_transport: str = "maildir"  # MAIL_TRANSPORT: maildir | memory
    inbound_raw_token: str = field(default="", repr=False)  # INBOUND_RAW_TOKEN: bearer for /inbound/raw
    max_inbound_bytes: int = 30 * 1024 * 1024  # MAX_INBOUND_BYTES: larger inbound requests get 413
    lease_s: int = 300  # LEASE_S: how long a claimed message or job may run before it is swept
    tick_s: float = 5.0  # TICK_S: seconds between scheduler ticks
    reminder_late_s: int = 3 * 3600  # REMINDER_LATE_S: a reminder later than this (downtime) is skipped
    worker_threads: int = 4  # WORKER_THREADS: in-process worker threads (embedded) or per process
    dkim_dir: Path = ROOT / "var" / "dkim"  # DKIM_DIR: <domain>/<selector>.pem signing keys (donebox dkim)
    relay_config_ttl_s: float = (
        10.0  # RELAY_CONFIG_TTL_S: senders/routes/team relay settings cache, per process
    )
    breaker_failures: int = 3  # BREAKER_FAILURES: consecutive sender failures (or domain blocks) that open it
    breaker_cooldown_s: float = 60.0  # BREAKER_COOLDOWN_S: how long an open circuit waits before one probe
    retention_days: int = 45  # RETENTION_DAYS: message content and provider responses are purged after this
    rate_max_wait_s: float = 5.0  # RATE_MAX_WAIT_S: a sender's rate-limit slot further off defers the message

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"


def _dev_secret(var_dir: Path, name: str) -> str:
    """A random secret generated once and kept in ``var/`` (development only)."""
    path = var_dir / name
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def load(environ: dict | os._Environ = os.environ) -> Settings:
    """Build Settings from an environment mapping; raises SettingsError when unusable."""
    e = environ.get
    env = e("DONEBOX_ENV", "development")
    if env not in ("development", "production"):
        raise SettingsError(f"DONEBOX_ENV must be development or production, not {env!r}")
    var_dir = Path(e("VAR_DIR", str(ROOT / "var"))).resolve()
    secret = e("SECRET_KEY", "")
    raw_token = e("INBOUND_RAW_TOKEN", "")
    if env == "production":
        if len(secret) < 16:
            raise SettingsError("production needs SECRET_KEY (at least 16 characters)")
    else:
        secret = secret or _dev_secret(var_dir, "secret_key")
        raw_token = raw_token or _dev_secret(var_dir, "inbound_raw_token")
    transport = e("MAIL_TRANSPORT", "maildir")
    if transport not in ("maildir", "memory"):
        raise SettingsError(f"MAIL_TRANSPORT must be maildir or memory, not {transport!r}")
    try:
        return Settings(
            env=env,
            var_dir=var_dir,
            database_url=e("DATABASE_URL", "") or f"sqlite:///{var_dir / 'donebox.db'}",
            redis_url=e("REDIS_URL", ""),
            rabbitmq_url=e("RABBITMQ_URL", ""),
            secret_key=secret,
            base_url=e("BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            reply_domain=e("REPLY_DOMAIN", "reply.localhost"),
            mail_from=e("MAIL_FROM", "donebox@localhost"),
            mail_transport=transport,
            inbound_raw_token=raw_token,
            max_inbound_bytes=int(e("MAX_INBOUND_BYTES", str(30 * 1024 * 1024))),
            lease_s=int(e("LEASE_S", "300")),
            tick_s=float(e("TICK_S", "5")),
            reminder_late_s=int(e("REMINDER_LATE_S", str(3 * 3600))),
            worker_threads=int(e("WORKER_THREADS", "4")),
            dkim_dir=Path(e("DKIM_DIR", str(var_dir / "dkim"))).resolve(),
            relay_config_ttl_s=float(e("RELAY_CONFIG_TTL_S", "10")),
            breaker_failures=int(e("BREAKER_FAILURES", "3")),
            breaker_cooldown_s=float(e("BREAKER_COOLDOWN_S", "60")),
            rate_max_wait_s=float(e("RATE_MAX_WAIT_S", "5")),
            retention_days=int(e("RETENTION_DAYS", "45")),
        )
    except ValueError as exc:
        raise SettingsError(f"a numeric setting is not a number: {exc}") from exc


@cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return load()
