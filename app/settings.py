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

from parsers.providers import PROVIDERS
from parsers.providers.sendgrid import ecdsa_public_key

ROOT = Path(__file__).resolve().parent.parent  # the checkout: templates/ lives here


SNS_CERT_HOSTS = ("sns.*.amazonaws.com", "sns.*.amazonaws.com.cn")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _flag(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _whole(name: str, value: str, low: int, high: int) -> int:
    """``value`` as a whole number from ``low`` to ``high``; SettingsError naming ``name`` otherwise."""
    if not (value.strip().isdigit() and low <= int(value) <= high):
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return int(value)


def _nameservers(value: str) -> tuple[tuple[str, int], ...]:
    """DNS_NAMESERVERS: host[:port] or [v6]:port items, comma-separated; SettingsError naming the item."""
    out = []
    for item in _csv(value):
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        if not host or not (port.isdigit() and 1 <= int(port) <= 65535):
            raise SettingsError(f"DNS_NAMESERVERS: {item!r} is not host:port")
        out.append((host, int(port)))
    return tuple(out)


class SettingsError(RuntimeError):
    """Raised when the environment describes a configuration donebox refuses to run with."""


@dataclass(frozen=True)
class Settings:
    """donebox's configuration; secrets never appear in the repr."""

    env: str = "development"  # DONEBOX_ENV: development | production
    log_format: str = "auto"  # LOG_FORMAT: auto (json in production, text otherwise) | json | text
    log_level: str = "INFO"  # LOG_LEVEL: DEBUG | INFO | WARNING | ERROR
    var_dir: Path = ROOT / "var"  # VAR_DIR: SQLite file, dev secrets and the dev maildir
    database_url: str = ""  # DATABASE_URL: default sqlite:///var/donebox.db
    redis_url: str = ""  # REDIS_URL: Dramatiq on Redis; unset: in-memory broker, in-process workers
    rabbitmq_url: str = ""  # RABBITMQ_URL: Dramatiq on RabbitMQ (when REDIS_URL is unset)
    secret_key: str = field(default="", repr=False)  # SECRET_KEY: signs reply addresses and links
    base_url: str = "http://127.0.0.1:8000"  # BASE_URL: where users reach the web app
    reply_domain: str = "reply.localhost"  # REPLY_DOMAIN: domain of reply+<token>@ addresses
    # INBOUND_DOMAINS: further domains whose reply+ mail reaches the inbound path; teams may pick one
    inbound_domains: tuple[str, ...] = ()
    reply_window_days: int = 30  # REPLY_WINDOW_DAYS: a reply address works this many days after its day
    authserv_ids: tuple[str, ...] = ()  # AUTHSERV_IDS: hosts whose Authentication-Results are believed
    mail_from: str = "donebox@localhost"  # MAIL_FROM: sender address of reminders and digests
    mail_transport: str = "maildir"  # MAIL_TRANSPORT: maildir | memory | none (production's default)
    inbound_raw_token: str = field(default="", repr=False)  # INBOUND_RAW_TOKEN: bearer for /inbound/raw
    max_inbound_bytes: int = 30 * 1024 * 1024  # MAX_INBOUND_BYTES: larger inbound requests get 413
    lease_s: int = 300  # LEASE_S: how long a claimed message or job may run before it is swept
    tick_s: float = 5.0  # TICK_S: seconds between scheduler ticks
    inbound_job_time_limit_s: int = (
        60  # INBOUND_JOB_TIME_LIMIT_S: an inbound job running longer is interrupted
    )
    inbound_max_attempts: int = 3  # INBOUND_MAX_ATTEMPTS: unfinished processing attempts before quarantine
    reminder_late_s: int = 3 * 3600  # REMINDER_LATE_S: a reminder later than this (downtime) is skipped
    api_max_bytes: int = 1024 * 1024  # API_MAX_BYTES: larger /api/ JSON bodies get 413
    # MAX_MESSAGE_BYTES: text, html and decoded attachments of one API message; larger get 413
    max_message_bytes: int = 10 * 1024 * 1024
    form_max_bytes: int = 1024 * 1024  # FORM_MAX_BYTES: larger web form bodies get 413
    api_max_schedule_s: int = 366 * 86400  # API_MAX_SCHEDULE_S: how far ahead send_at may be
    soft_bounce_limit: int = 3  # SOFT_BOUNCE_LIMIT: this many soft bounces of an address within ...
    soft_bounce_window_days: int = 7  # SOFT_BOUNCE_WINDOW_DAYS: ... this many days suppress it ...
    soft_bounce_suppress_days: int = 7  # SOFT_BOUNCE_SUPPRESS_DAYS: ... for this many days
    schedule_batch: int = 2000  # SCHEDULE_BATCH: due members per scheduler transaction (and per INSERT)
    schedule_workers: int = 2  # SCHEDULE_WORKERS: batches at once, split among schedulers ticking (PG)
    worker_threads: int = 4  # WORKER_THREADS: in-process worker threads (embedded) or per process
    # (`donebox worker` sets it to its --threads); an SMTP sender's pool unless its URL names one
    sendgrid_inbound_auth: str = field(default="", repr=False)  # SENDGRID_INBOUND_AUTH: user:password (Basic)
    postmark_inbound_auth: str = field(default="", repr=False)  # POSTMARK_INBOUND_AUTH: user:password (Basic)
    mailgun_signing_key: str = field(default="", repr=False)  # MAILGUN_SIGNING_KEY: HTTP webhook signing key
    mailgun_max_age_s: int = (
        300  # MAILGUN_MAX_AGE_S: older (or that far future) signed timestamps are refused
    )
    ses_topic_arns: tuple[str, ...] = ()  # SES_TOPIC_ARNS: comma-separated SNS topics allowed to post
    sendgrid_event_public_key: str = field(
        default="", repr=False
    )  # SENDGRID_EVENT_PUBLIC_KEY: Signed Event Webhook verification key (base64 DER)
    sendgrid_event_max_age_s: int = (
        300  # SENDGRID_EVENT_MAX_AGE_S: older (or further ahead) timestamps are refused
    )
    ses_event_topic_arns: tuple[str, ...] = ()  # SES_EVENT_TOPIC_ARNS: SNS topics allowed to post /events/ses
    postmark_event_auth: str = field(default="", repr=False)  # POSTMARK_EVENT_AUTH: user:password (Basic)
    ses_verify_signatures: bool = (
        True  # SES_VERIFY_SIGNATURES: verify SNS signatures (never off in production)
    )
    sns_cert_hosts: tuple[str, ...] = SNS_CERT_HOSTS  # SNS_CERT_HOSTS: host[:port] patterns, * = one label
    sns_ca_file: str = ""  # SNS_CA_FILE: CA bundle for fetching SNS certificates (default: the system's)
    ses_s3_region: str = ""  # SES_S3_REGION: region of the bucket SES S3 actions write to; unset: not fetched
    ses_s3_endpoint_url: str = ""  # SES_S3_ENDPOINT_URL: another S3 endpoint (default: AWS's for the region)
    aws_access_key_id: str = field(default="", repr=False)  # AWS_ACCESS_KEY_ID: unset: boto3's default chain
    aws_secret_access_key: str = field(default="", repr=False)  # AWS_SECRET_ACCESS_KEY: with the key id
    aws_session_token: str = field(default="", repr=False)  # AWS_SESSION_TOKEN: with temporary credentials
    imap_mailboxes: tuple[str, ...] = field(default=(), repr=False)  # IMAP_MAILBOXES: comma-separated URLs
    imap_poll_s: float = 60.0  # IMAP_POLL_S: seconds between polls when the server has no IDLE
    imap_idle_s: float = 300.0  # IMAP_IDLE_S: an IDLE is renewed after this many seconds
    imap_backoff_max_s: float = 60.0  # IMAP_BACKOFF_MAX_S: longest wait between reconnection attempts
    imap_timeout_s: float = 30.0  # IMAP_TIMEOUT_S: socket timeout talking to the IMAP server
    imap_ca_file: str = ""  # IMAP_CA_FILE: CA bundle for the IMAP server's certificate (default: system's)
    dkim_dir: Path = ROOT / "var" / "dkim"  # DKIM_DIR: <domain>/<selector>.pem signing keys (donebox dkim)
    relay_config_ttl_s: float = (
        10.0  # RELAY_CONFIG_TTL_S: senders/routes/team relay settings cache, per process
    )
    # DNS_NAMESERVERS: host:port resolvers `donebox domain verify` asks (comma-separated); unset: the system's
    dns_nameservers: tuple[tuple[str, int], ...] = ()
    spf_include: str = ""  # SPF_INCLUDE: what sending domains' SPF includes; unset: _spf.<MAIL_FROM's domain>
    # RETURN_PATH_DOMAIN: the domain of MAIL_FROM's bounces+<token>@ envelope sender; unset: REPLY_DOMAIN
    return_path_domain: str = ""
    breaker_failures: int = 3  # BREAKER_FAILURES: consecutive sender failures (or domain blocks) that open it
    breaker_cooldown_s: float = 60.0  # BREAKER_COOLDOWN_S: how long an open circuit waits before one probe
    retention_days: int = 45  # RETENTION_DAYS: message content and provider responses are purged after this
    rate_max_wait_s: float = 5.0  # RATE_MAX_WAIT_S: a sender's rate-limit slot further off defers the message
    submission_host: str = "127.0.0.1"  # SUBMISSION_HOST: where `donebox smtp` listens
    submission_port: int = 2525  # SUBMISSION_PORT: its port (587 needs root or a capability)
    submission_tls_cert: str = (
        ""  # SUBMISSION_TLS_CERT: PEM certificate chain; with the key: STARTTLS required
    )
    submission_tls_key: str = field(default="", repr=False)  # SUBMISSION_TLS_KEY: PEM private key
    submission_max_bytes: int = 10 * 1024 * 1024  # SUBMISSION_MAX_BYTES: larger messages get 552
    submission_tls_port: int = 0  # SUBMISSION_TLS_PORT: implicit TLS (465 style) too, same cert; 0: none
    send_slots: int = 20  # SEND_SLOTS: messages a worker process may have sent and not yet recorded
    max_entries_per_reply: int = (
        50  # MAX_ENTRIES_PER_REPLY: entries one reply (or one form) makes; more are cut
    )
    max_entry_chars: int = 2000  # MAX_ENTRY_CHARS: a longer entry from a reply is cut, marked "… (cut)"
    digest_entries_per_member: int = (
        30  # DIGEST_ENTRIES_PER_MEMBER: a digest lists this many, then "and N more"
    )
    invites_per_hour_per_admin: int = 20  # INVITES_PER_HOUR_PER_ADMIN: invitations one user sends an hour
    mails_per_hour_per_recipient: int = (
        5  # MAILS_PER_HOUR_PER_RECIPIENT: invitations and sign-in links an hour
    )
    team_quota_hour: int = (
        0  # TEAM_QUOTA_HOUR: application mail (API, SMTP) a team submits an hour; 0 = no limit
    )
    team_quota_day: int = 0  # TEAM_QUOTA_DAY: the same in 24 hours; 0 = no limit
    # PASS_THROUGH_AFTER_S: bulk mail goes out untracked once the oldest due message waited this long
    pass_through_after_s: int = 300  # (0 = never by itself; app.relay.passthrough)
    webhook_timeout_s: float = (
        10.0  # WEBHOOK_TIMEOUT_S: an outgoing webhook POST waits this long for an answer
    )
    webhook_retry_hours: int = 24  # WEBHOOK_RETRY_HOURS: a delivery not accepted within this is given up
    # WEBHOOK_ALLOW_PRIVATE: endpoints on loopback or private addresses (and http:// in production)
    webhook_allow_private: bool = False
    chat_allow_local: bool = (
        False  # CHAT_ALLOW_LOCAL: chat webhooks may be http:// on loopback (tests; never production)
    )
    metrics_token: str = field(default="", repr=False)  # METRICS_TOKEN: bearer for GET /metrics (production)
    metrics_dir: Path = ROOT / "var" / "metrics"  # METRICS_DIR: every process's metric files (one host)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def log_json(self) -> bool:
        """Whether log lines are JSON objects (LOG_FORMAT=json, or auto in production)."""
        return self.log_format == "json" or (self.log_format == "auto" and self.production)

    @property
    def mail_domain(self) -> str:
        """The domain of MAIL_FROM: the right-hand side of our Message-IDs."""
        return self.mail_from.rsplit("@", 1)[-1]

    @property
    def api_message_max_bytes(self) -> int:
        """The body limit of POST /api/messages (and /batch): a MAX_MESSAGE_BYTES message in base64
        (4/3 of it) with room for the rest of the JSON (API_MAX_BYTES)."""
        return -(-self.max_message_bytes * 4 // 3) + self.api_max_bytes

    @property
    def reply_domains(self) -> tuple[str, ...]:
        """The domains whose reply+ addresses inbound accepts: REPLY_DOMAIN, then INBOUND_DOMAINS."""
        return (self.reply_domain.lower(), *self.inbound_domains)

    @property
    def return_path(self) -> str:
        """The host of MAIL_FROM's VERP envelope senders (RETURN_PATH_DOMAIN, else REPLY_DOMAIN)."""
        return (self.return_path_domain or self.reply_domain).lower()

    @property
    def spf_host(self) -> str:
        """The host a sending domain's SPF record includes (SPF_INCLUDE, else _spf.<MAIL_FROM's domain>)."""
        return (self.spf_include or "_spf." + self.mail_from.rpartition("@")[2]).lower()

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"

    def secret_for(self, provider: str) -> str | tuple[str, ...]:
        """The secret authenticating ``provider``'s inbound webhook (its ``setting``); empty when unset."""
        return self._named(PROVIDERS[provider].setting, "")

    def event_secret_for(self, provider: str) -> str | tuple[str, ...]:
        """The secret authenticating ``provider``'s event webhook (``event_setting``); empty when unset."""
        return self._named(PROVIDERS[provider].event_setting, "")

    def max_age_for(self, provider: str, *, events: bool = False) -> int:
        """How old (or how far ahead) ``provider``'s signed timestamps may be; 0 when it signs none."""
        p = PROVIDERS[provider]
        return self._named(p.event_max_age_setting if events else p.max_age_setting, 0)

    def _named(self, setting: str, unset):
        # a setting's field is its name in lower case (SES_TOPIC_ARNS -> ses_topic_arns)
        return getattr(self, setting.lower()) if setting else unset


def _dev_secret(var_dir: Path, name: str) -> str:
    """A random secret generated once and kept in ``var/`` (development only). Processes starting
    at once agree on one: each writes its own file and links it into place (atomic, the first wins),
    so none reads a half-written file or fails on the other's."""
    path = var_dir / name
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    mine = var_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32))
    try:
        os.link(mine, path)
    except FileExistsError:
        pass  # another process made it first: theirs is the secret
    finally:
        mine.unlink()
    return path.read_text().strip()


LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# the settings holding HTTP Basic credentials, user:password
BASIC_AUTH_SETTINGS = ("SENDGRID_INBOUND_AUTH", "POSTMARK_INBOUND_AUTH", "POSTMARK_EVENT_AUTH")
SECRET_MIN_CHARS = 32  # SECRET_KEY in production
TOKEN_MIN_CHARS = 16  # every other shared secret in production (tokens, Basic-auth passwords)


def weakness(value: str, *, min_chars: int) -> str | None:
    """Why ``value`` is too weak to be a production secret, or None.

    It must be at least ``min_chars`` long with no blank space at either end, use at least two
    classes of character (lower case, upper case, digits, others) and at least ``min_chars // 4``
    distinct characters (``openssl rand -hex 32`` and ``secrets.token_urlsafe(32)`` both pass;
    16 spaces, ``x`` or one letter repeated do not).
    """
    if not value.strip():
        return "is blank"
    if value != value.strip():
        return "starts or ends with blank space"
    if len(value) < min_chars:
        return f"is {len(value)} characters, needs at least {min_chars}"
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )
    if classes < 2:
        return "uses one class of character (mix letters, digits or symbols)"
    if len(set(value)) < min_chars // 4:
        return f"has {len(set(value))} distinct characters, needs at least {min_chars // 4}"
    return None


def _check_production_secrets(e) -> None:
    """Refuse weak shared secrets in production, naming the setting and the reason in one line."""
    checks = [("SECRET_KEY", e("SECRET_KEY", ""), SECRET_MIN_CHARS)]
    for name in ("INBOUND_RAW_TOKEN", "MAILGUN_SIGNING_KEY", "METRICS_TOKEN"):
        if e(name, ""):
            checks.append((name, e(name), TOKEN_MIN_CHARS))
    for name in BASIC_AUTH_SETTINGS:
        if e(name, ""):
            user, _, password = e(name).partition(":")
            if not user.strip():
                raise SettingsError(f"{name}: the user part is blank (user:password)")
            checks.append((f"{name} password", password, TOKEN_MIN_CHARS))
    for name, value, min_chars in checks:
        why = weakness(value, min_chars=min_chars)
        if why:
            hint = " (try: openssl rand -hex 32)" if name == "SECRET_KEY" else ""
            raise SettingsError(f"production refuses {name}: it {why}{hint}")


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
        _check_production_secrets(e)
    else:
        secret = secret or _dev_secret(var_dir, "secret_key")
        raw_token = raw_token or _dev_secret(var_dir, "inbound_raw_token")
    for name in BASIC_AUTH_SETTINGS:
        if e(name) and ":" not in e(name):
            raise SettingsError(f"{name} must be user:password")
    verify_sns = _flag("SES_VERIFY_SIGNATURES", e("SES_VERIFY_SIGNATURES", "true"))
    if env == "production" and not verify_sns:
        raise SettingsError("SES_VERIFY_SIGNATURES cannot be off in production")
    sg_key = e("SENDGRID_EVENT_PUBLIC_KEY", "").strip()
    if sg_key:
        try:
            ecdsa_public_key(sg_key)
        except ValueError as exc:
            raise SettingsError(f"SENDGRID_EVENT_PUBLIC_KEY: {exc}") from None
    window = e("REPLY_WINDOW_DAYS", "30").strip()
    if not window.isdigit() or not 1 <= int(window) <= 3660:
        raise SettingsError(
            f"REPLY_WINDOW_DAYS must be a whole number of days from 1 to 3660, not {window!r}"
        )
    window = int(window)
    chat_local = _flag("CHAT_ALLOW_LOCAL", e("CHAT_ALLOW_LOCAL", "false"))
    if env == "production" and chat_local:
        raise SettingsError("CHAT_ALLOW_LOCAL cannot be on in production: chat webhooks are https only there")
    if bool(e("AWS_ACCESS_KEY_ID")) != bool(e("AWS_SECRET_ACCESS_KEY")):
        raise SettingsError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both or neither")
    log_format = e("LOG_FORMAT", "auto").strip().lower() or "auto"
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"LOG_FORMAT must be auto, json or text, not {e('LOG_FORMAT')!r}")
    log_level = e("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {e('LOG_LEVEL')!r}")
    # what carries mail while no sender is configured; production has nothing unless asked for, so
    # mail never lands on the server's disk marked "sent" by default
    transport = e("MAIL_TRANSPORT", "none" if env == "production" else "maildir")
    if transport not in ("maildir", "memory", "none"):
        raise SettingsError(f"MAIL_TRANSPORT must be maildir, memory or none, not {transport!r}")
    try:
        return Settings(
            env=env,
            log_format=log_format,
            log_level=log_level,
            var_dir=var_dir,
            database_url=e("DATABASE_URL", "") or f"sqlite:///{var_dir / 'donebox.db'}",
            redis_url=e("REDIS_URL", ""),
            rabbitmq_url=e("RABBITMQ_URL", ""),
            secret_key=secret,
            base_url=e("BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            reply_domain=e("REPLY_DOMAIN", "reply.localhost"),
            inbound_domains=tuple(d.lower() for d in _csv(e("INBOUND_DOMAINS", ""))),
            reply_window_days=window,
            authserv_ids=tuple(a.lower() for a in _csv(e("AUTHSERV_IDS", ""))),
            mail_from=e("MAIL_FROM", "donebox@localhost"),
            mail_transport=transport,
            inbound_raw_token=raw_token,
            max_inbound_bytes=int(e("MAX_INBOUND_BYTES", str(30 * 1024 * 1024))),
            lease_s=int(e("LEASE_S", "300")),
            tick_s=float(e("TICK_S", "5")),
            inbound_job_time_limit_s=max(1, int(e("INBOUND_JOB_TIME_LIMIT_S", "60"))),
            inbound_max_attempts=max(1, int(e("INBOUND_MAX_ATTEMPTS", "3"))),
            reminder_late_s=int(e("REMINDER_LATE_S", str(3 * 3600))),
            api_max_bytes=int(e("API_MAX_BYTES", str(1024 * 1024))),
            max_message_bytes=_whole(
                "MAX_MESSAGE_BYTES", e("MAX_MESSAGE_BYTES", str(10 * 1024 * 1024)), 1024, 2**31
            ),
            form_max_bytes=int(e("FORM_MAX_BYTES", str(1024 * 1024))),
            api_max_schedule_s=int(e("API_MAX_SCHEDULE_S", str(366 * 86400))),
            soft_bounce_limit=_whole("SOFT_BOUNCE_LIMIT", e("SOFT_BOUNCE_LIMIT", "3"), 1, 1000),
            soft_bounce_window_days=_whole(
                "SOFT_BOUNCE_WINDOW_DAYS", e("SOFT_BOUNCE_WINDOW_DAYS", "7"), 1, 3660
            ),
            soft_bounce_suppress_days=_whole(
                "SOFT_BOUNCE_SUPPRESS_DAYS", e("SOFT_BOUNCE_SUPPRESS_DAYS", "7"), 1, 3660
            ),
            schedule_batch=max(1, int(e("SCHEDULE_BATCH", "2000"))),
            schedule_workers=max(1, int(e("SCHEDULE_WORKERS", "2"))),
            worker_threads=int(e("WORKER_THREADS", "4")),
            sendgrid_inbound_auth=e("SENDGRID_INBOUND_AUTH", ""),
            postmark_inbound_auth=e("POSTMARK_INBOUND_AUTH", ""),
            mailgun_signing_key=e("MAILGUN_SIGNING_KEY", ""),
            mailgun_max_age_s=int(e("MAILGUN_MAX_AGE_S", "300")),
            ses_topic_arns=_csv(e("SES_TOPIC_ARNS", "")),
            sendgrid_event_public_key=sg_key,
            sendgrid_event_max_age_s=int(e("SENDGRID_EVENT_MAX_AGE_S", "300")),
            ses_event_topic_arns=_csv(e("SES_EVENT_TOPIC_ARNS", "")),
            postmark_event_auth=e("POSTMARK_EVENT_AUTH", ""),
            ses_verify_signatures=verify_sns,
            sns_cert_hosts=_csv(e("SNS_CERT_HOSTS", "")) or SNS_CERT_HOSTS,
            sns_ca_file=e("SNS_CA_FILE", ""),
            ses_s3_region=e("SES_S3_REGION", "").strip(),
            ses_s3_endpoint_url=e("SES_S3_ENDPOINT_URL", "").strip(),
            aws_access_key_id=e("AWS_ACCESS_KEY_ID", ""),
            aws_secret_access_key=e("AWS_SECRET_ACCESS_KEY", ""),
            aws_session_token=e("AWS_SESSION_TOKEN", ""),
            imap_mailboxes=_csv(e("IMAP_MAILBOXES", "")),
            imap_poll_s=float(e("IMAP_POLL_S", "60")),
            imap_idle_s=float(e("IMAP_IDLE_S", "300")),
            imap_backoff_max_s=float(e("IMAP_BACKOFF_MAX_S", "60")),
            imap_timeout_s=float(e("IMAP_TIMEOUT_S", "30")),
            imap_ca_file=e("IMAP_CA_FILE", ""),
            dkim_dir=Path(e("DKIM_DIR", str(var_dir / "dkim"))).resolve(),
            relay_config_ttl_s=float(e("RELAY_CONFIG_TTL_S", "10")),
            dns_nameservers=_nameservers(e("DNS_NAMESERVERS", "")),
            spf_include=e("SPF_INCLUDE", "").strip(),
            return_path_domain=e("RETURN_PATH_DOMAIN", "").strip(),
            breaker_failures=int(e("BREAKER_FAILURES", "3")),
            breaker_cooldown_s=float(e("BREAKER_COOLDOWN_S", "60")),
            rate_max_wait_s=float(e("RATE_MAX_WAIT_S", "5")),
            send_slots=max(1, int(e("SEND_SLOTS", "20"))),
            retention_days=int(e("RETENTION_DAYS", "45")),
            submission_host=e("SUBMISSION_HOST", "127.0.0.1"),
            submission_port=int(e("SUBMISSION_PORT", "2525")),
            submission_tls_cert=e("SUBMISSION_TLS_CERT", ""),
            submission_tls_key=e("SUBMISSION_TLS_KEY", ""),
            submission_max_bytes=int(e("SUBMISSION_MAX_BYTES", str(10 * 1024 * 1024))),
            submission_tls_port=int(e("SUBMISSION_TLS_PORT", "0")),
            max_entries_per_reply=max(1, int(e("MAX_ENTRIES_PER_REPLY", "50"))),
            max_entry_chars=max(100, int(e("MAX_ENTRY_CHARS", "2000"))),
            digest_entries_per_member=max(1, int(e("DIGEST_ENTRIES_PER_MEMBER", "30"))),
            invites_per_hour_per_admin=max(1, int(e("INVITES_PER_HOUR_PER_ADMIN", "20"))),
            mails_per_hour_per_recipient=max(1, int(e("MAILS_PER_HOUR_PER_RECIPIENT", "5"))),
            team_quota_hour=max(0, int(e("TEAM_QUOTA_HOUR", "0"))),
            team_quota_day=max(0, int(e("TEAM_QUOTA_DAY", "0"))),
            pass_through_after_s=_whole(
                "PASS_THROUGH_AFTER_S", e("PASS_THROUGH_AFTER_S", "300"), 0, 7 * 86400
            ),
            webhook_timeout_s=max(0.5, float(e("WEBHOOK_TIMEOUT_S", "10"))),
            webhook_retry_hours=_whole("WEBHOOK_RETRY_HOURS", e("WEBHOOK_RETRY_HOURS", "24"), 1, 720),
            webhook_allow_private=_flag("WEBHOOK_ALLOW_PRIVATE", e("WEBHOOK_ALLOW_PRIVATE", "false")),
            chat_allow_local=chat_local,
            metrics_token=e("METRICS_TOKEN", ""),
            metrics_dir=Path(e("METRICS_DIR", str(var_dir / "metrics"))).resolve(),
        )
    except ValueError as exc:
        raise SettingsError(f"a numeric setting is not a number: {exc}") from exc


@cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return load()
