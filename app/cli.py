"""The ``donebox`` command: one subcommand per process kind and a few operator tools."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from app.logs import setup_logging, uvicorn_config
from app.metrics import prepare as prepare_metrics
from app.settings import SettingsError, get_settings

log = logging.getLogger("donebox")
# the commands whose processes (and their children) write metrics into METRICS_DIR for /metrics
METERED = ("run", "web", "worker", "scheduler", "smtp", "imap")


def _migrate(_args=None) -> None:
    from app.migrate import upgrade

    upgrade(get_settings().database_url)


def cmd_migrate(args) -> int:
    _migrate()
    print("database is at the newest schema")
    return 0


def cmd_doctor(args) -> int:
    """Check the configuration and what it depends on, one line a check; 1 when any fails."""
    from app.health import failed, run

    checks = run(get_settings())
    for c in checks:
        print(c.line())
    return 1 if failed(checks) else 0


def _refuse_without_sender() -> int:
    """2, with one line on stderr, when no mail could leave this server (production with no sender)."""
    from app.relay.routing import missing_sender

    why = missing_sender(get_settings())
    if why:
        print(f"donebox: {why}", file=sys.stderr)
        return 2
    return 0


def _serve(host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    uvicorn.run(
        "app.web.factory:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=uvicorn_config(get_settings()),  # each worker process logs as this one
        log_level=get_settings().log_level.lower(),
        access_log=False,  # app.web.request_ids logs each request, its path's tokens left out
    )


def cmd_run(args) -> int:
    from app.checkins.demo import ensure_demo
    from app.db import session
    from app.models import utcnow
    from jobs.broker import start_embedded_workers
    from jobs.scheduler import run_forever

    settings = get_settings()
    _migrate()
    if refused := _refuse_without_sender():
        return refused
    if not args.no_demo:
        with session() as s:
            if ensure_demo(s, now=utcnow()):
                print("created the demo team (3 members); their first reminders are due now")
    import jobs.actors  # noqa: F401

    start_embedded_workers(any_broker=True)
    threading.Thread(target=run_forever, args=(settings,), name="scheduler", daemon=True).start()
    url = f"http://{args.host}:{args.port}/"
    print(f"donebox is running: open {url}  (dev inbox: {url}dev/inbox)", flush=True)
    if settings.mail_transport == "maildir" and not settings.production:
        print(
            "sign in as ada@example.com (the demo team's admin): the link arrives in the dev inbox",
            flush=True,
        )
    _serve(args.host, args.port)
    return 0


def cmd_web(args) -> int:
    if refused := _refuse_without_sender():
        return refused
    _serve(args.host, args.port, args.workers)
    return 0


def cmd_worker(args) -> int:
    settings = get_settings()
    if not (settings.redis_url or settings.rabbitmq_url):
        print(
            "donebox worker needs REDIS_URL or RABBITMQ_URL; on the embedded default the workers "
            "run inside `donebox run`",
            file=sys.stderr,
        )
        return 2
    if refused := _refuse_without_sender():
        return refused
    argv = [
        sys.executable,
        "-m",
        "jobs.worker",  # Dramatiq's command line, logging as every donebox command
        "jobs.actors",
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
    ]
    os.execve(sys.executable, argv, worker_environment(os.environ, args.threads))


# glibc's malloc gives threads that allocate at once arenas of their own, up to eight a core, and a
# worker's threads then spread its heap over many of them: more resident memory, and more CPU in
# page faults and in giving memory back. Two arenas a worker process (its Dramatiq processes
# inherit the variable; malloc reads it at start) unless the operator set it: bench/outbound.py's
# e2e and e2e_deploy runs measure the workers' CPU and peak RSS with it.
WORKER_MALLOC_ARENAS = "2"


def worker_environment(environ: Mapping[str, str], threads: int) -> dict[str, str]:
    """The environment ``donebox worker`` starts Dramatiq in: ``environ``, with MALLOC_ARENA_MAX
    set to WORKER_MALLOC_ARENAS when it is not set, and WORKER_THREADS to the ``threads`` each of
    its processes runs (what an SMTP sender's pool is sized by, app.relay.transports.smtp)."""
    return {"MALLOC_ARENA_MAX": WORKER_MALLOC_ARENAS, **environ, "WORKER_THREADS": str(threads)}


def cmd_scheduler(args) -> int:
    from datetime import UTC, datetime

    import jobs.actors  # noqa: F401
    from app.models import utcnow
    from jobs.broker import start_embedded_workers
    from jobs.scheduler import run_forever, tick

    if args.now and not args.once:
        print("--now needs --once (the loop always runs on the real clock)", file=sys.stderr)
        return 2
    if args.once:
        try:
            now = datetime.fromisoformat(args.now) if args.now else utcnow()
        except ValueError:
            print(f"--now must be an ISO 8601 instant, not {args.now!r}", file=sys.stderr)
            return 2
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        result = tick(now=now, settings=get_settings())
        print(" ".join(f"{k}={len(v)}" for k, v in result.items()), flush=True)
        return 0
    start_embedded_workers()
    run_forever(get_settings())
    return 0


def _enqueue_and_wait(ids: list[int], what: str) -> None:
    from jobs.broker import drain, is_embedded
    from jobs.enqueue import enqueue_deliveries

    enqueue_deliveries(ids)
    if is_embedded():
        drain()
        print(f"{len(ids)} {what} delivered")
    else:
        print(f"{len(ids)} {what} enqueued")


def cmd_remind(args) -> int:
    from app.checkins.outgoing import remind_now
    from app.db import session
    from app.models import utcnow

    if not args.now:
        print("remind runs on the scheduler; use --now to send today's reminders at once", file=sys.stderr)
        return 2
    with session() as s:
        ids = remind_now(s, now=utcnow(), settings=get_settings())
    _enqueue_and_wait(ids, "reminders")
    return 0


def cmd_digest(args) -> int:
    from datetime import date

    from app.checkins.outgoing import digest_now
    from app.db import session
    from app.models import utcnow

    if not args.now:
        print("digest runs on the scheduler; use --now to send digests at once", file=sys.stderr)
        return 2
    try:
        day = date.fromisoformat(args.day) if args.day else None
    except ValueError:
        print(f"--day must be YYYY-MM-DD, not {args.day!r}", file=sys.stderr)
        return 2
    with session() as s:
        ids = digest_now(s, now=utcnow(), settings=get_settings(), day=day)
    _enqueue_and_wait(ids, "digests")
    return 0


def cmd_inbound(args) -> int:
    from sqlalchemy import select

    from app.db import session
    from app.inbound.process import reset_for_reprocess
    from app.models import InboundMessage
    from jobs.broker import drain, is_embedded
    from jobs.enqueue import enqueue_processing

    wanted = [state for state, on in (("failed", args.failed), ("quarantined", args.quarantined)) if on]
    if args.id is None and not wanted:
        print("give an inbound message ID, --failed or --quarantined", file=sys.stderr)
        return 2
    with session() as s:
        if wanted:
            ids = list(s.execute(select(InboundMessage.id).where(InboundMessage.state.in_(wanted))).scalars())
        else:
            ids = [args.id]
        moved = reset_for_reprocess(s, ids)
    if args.id is not None and not moved:
        print(
            f"inbound message {args.id} not found, or not in a state that can be reprocessed", file=sys.stderr
        )
        return 1
    enqueue_processing(moved)
    if is_embedded():
        drain()
    print(f"{len(moved)} inbound messages reprocessed")
    return 0


def cmd_replies(args) -> int:
    """Write the cuts people moved as reply-extraction cases (the corpus's JSONL, masked)."""
    from app.db import session
    from app.inbound.cases import export

    out = sys.stdout
    try:
        if args.out and args.out != "-":
            out = open(args.out, "w", encoding="utf-8")  # closed below
    except OSError as e:
        print(f"donebox: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        with session() as s:
            n = export(s, out, base_url=get_settings().base_url, team_id=args.team)
    finally:
        if out is not sys.stdout:
            out.close()
    where = "" if out is sys.stdout else f" to {args.out}"
    print(
        f"{n} reply cases written{where} (addresses and names masked: read them before sharing)",
        file=sys.stderr,
    )
    return 0


def _instant(value: str | None, name: str, *, end: bool = False):
    """A --since/--until value: YYYY-MM-DD (a UTC day; --until includes it) or an ISO date-time
    (UTC when it has no offset). ValueError with the reason."""
    from datetime import UTC, date, datetime, time, timedelta

    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(0), tzinfo=UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be YYYY-MM-DD or an ISO date-time, not {value!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def cmd_redrive(args) -> int:
    from app.db import session
    from app.errors import RequestError
    from app.models import utcnow
    from app.relay.redrive import REDRIVABLE, Filter, redrive
    from jobs.broker import drain, is_embedded
    from jobs.enqueue import enqueue_deliveries

    try:
        flt = Filter(
            ids=tuple(args.id or ()),
            team_id=args.team,
            sender=args.sender or "",
            states=tuple(args.state or REDRIVABLE),
            domain=args.domain or "",
            since=_instant(args.since, "--since"),
            until=_instant(args.until, "--until", end=True),
            time_field="updated" if args.updated else "created",
        )
    except (RequestError, ValueError) as e:
        print(f"donebox: {e}", file=sys.stderr)
        return 2
    with session() as s:
        result = redrive(
            s,
            flt,
            actor="the command line (donebox redrive)",
            now=utcnow(),
            lease_s=get_settings().lease_s,
            dry_run=args.dry_run,
            after_batch=enqueue_deliveries,
        )
    if result.redriven and not args.dry_run and is_embedded():
        drain()
    for mid in result.not_found:
        print(f"message {mid}: not found", file=sys.stderr)
    shown = sorted(result.skipped.items())
    for mid, why in shown if args.id else shown[:20]:
        print(f"message {mid} not sent again: {why}", file=sys.stderr)
    if len(shown) > 20 and not args.id:
        print(f"... and {len(shown) - 20} more skipped", file=sys.stderr)
    verb = "would be sent again (dry run)" if args.dry_run else "sent again"
    print(f"{len(result.redriven)} messages {verb}, {len(result.skipped)} skipped")
    return 1 if args.id and (result.not_found or result.skipped) else 0


def cmd_imap(args) -> int:
    import signal

    from app.inbound.imap import mailboxes, run_mailbox
    from jobs.broker import start_embedded_workers
    from jobs.enqueue import enqueue_processing

    settings = get_settings()
    try:
        boxes = mailboxes(settings)
    except SettingsError as e:
        print(f"donebox: {e}", file=sys.stderr)
        return 2
    if not boxes:
        print("donebox imap needs IMAP_MAILBOXES (imaps://user:password@host/INBOX,...)", file=sys.stderr)
        return 2
    start_embedded_workers()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [
        threading.Thread(
            target=run_mailbox,
            args=(b, settings, stop, enqueue_processing),
            name=f"imap {b.key}",
            daemon=True,
        )
        for b in boxes
    ]
    for t in threads:
        t.start()
    print(f"reading {len(boxes)} IMAP mailbox(es)", flush=True)
    try:
        while any(t.is_alive() for t in threads):
            stop.wait(1.0)
    except KeyboardInterrupt:
        stop.set()
    for t in threads:
        t.join(timeout=10)
    return 0


def cmd_smtp(args) -> int:
    import asyncio

    from app.relay.submission import serve
    from jobs.broker import start_embedded_workers
    from jobs.enqueue import enqueue_deliveries

    settings = get_settings()
    start_embedded_workers()
    try:
        asyncio.run(serve(settings, enqueue_deliveries))
    except SettingsError as e:
        print(f"donebox: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"donebox smtp cannot listen on {settings.submission_host}:{settings.submission_port}"
            + (f" and :{settings.submission_tls_port}" if settings.submission_tls_port else "")
            + f": {e}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def cmd_api_token(args) -> int:
    from app.db import session
    from app.models import utcnow
    from app.relay.api_tokens import SCOPES, create_token, scopes_of, unknown_scopes

    if unknown_scopes(args.scopes) or not scopes_of(args.scopes):
        print(
            f"donebox: --scopes takes one or more of {', '.join(SCOPES)}, not {args.scopes!r}",
            file=sys.stderr,
        )
        return 2
    with session() as s:
        token = create_token(s, args.name, now=utcnow(), team_id=args.team, scopes=scopes_of(args.scopes))
    print(token)
    return 0


# --option -> update_team's keyword; on/off options become booleans
TEAM_OPTIONS = {
    "name": "name",
    "timezone": "timezone",
    "reminder_time": "reminder_time",
    "digest_time": "digest_time",
    "workdays": "workdays",
    "digest_days": "digest_workdays",
    "digest": "digest_enabled",
    "digest_include_quiet": "digest_include_quiet",
    "skip_empty": "skip_empty",
    "weekly_day": "weekly_day",
    "tracking": "tracking",
    "reply_domain": "reply_domain",
    "nudge_hours": "nudge_hours",
    "nudge_cutoff": "nudge_cutoff",
    "participation_summary": "participation_summary",
    "blocker_owner": "blocker_owner",
}


def cmd_team_settings(args) -> int:
    from app.checkins import teams
    from app.checkins.times import ScheduleError
    from app.db import session
    from app.models import Team, utcnow

    changes = {}
    for option, keyword in TEAM_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            changes[keyword] = {"on": True, "off": False}.get(value, value)
    if args.question is not None and args.preset is not None:
        print("not saved: give --question or --preset, not both", file=sys.stderr)
        return 2
    if args.question is not None or args.preset is not None:
        changes["questions"] = args.question if args.question is not None else args.preset
    try:
        with session() as s:
            if s.get(Team, args.team) is None:
                print(f"no team {args.team}", file=sys.stderr)
                return 2
            if changes:
                teams.update_team(s, args.team, now=utcnow(), settings=get_settings(), **changes)
            current = teams.current(s, args.team)
    except (teams.TeamError, ScheduleError) as e:
        print(f"not saved: {e}", file=sys.stderr)
        return 2
    for key, value in current.items():
        if isinstance(value, list):  # the questions, one a line, numbered
            for i, item in enumerate(value, 1):
                print(f"{key}.{i}={item}")
            continue
        shown = ("on" if value else "off") if isinstance(value, bool) else "" if value is None else value
        print(f"{key}={shown}")
    return 0


def cmd_team_chat(args) -> int:
    from app.checkins import chat
    from app.checkins.teams import TeamError
    from app.db import session
    from app.models import Team, utcnow
    from jobs.enqueue import enqueue_deliveries

    settings = get_settings()
    queued = []
    try:
        with session() as s:
            team = s.get(Team, args.team)
            if team is None:
                print(f"no team {args.team}", file=sys.stderr)
                return 2
            if args.chat_command == "add":
                dest = chat.add_destination(
                    s,
                    team.id,
                    args.service,
                    args.url,
                    label=args.label,
                    blockers=args.blockers,
                    now=utcnow(),
                    settings=settings,
                )
                print(f"added {dest.id}")
            elif args.chat_command == "remove":
                chat.remove_destination(s, team.id, args.id)
                print(f"removed {args.id}")
            elif args.chat_command == "test":
                queued.append(chat.send_test_post(s, team, args.id, now=utcnow(), settings=settings))
                print(
                    f"test post queued: message {queued[0]} ({settings.base_url}/mail/outbound/{queued[0]})"
                )
            else:
                for d in map(chat.describe, chat.destinations(s, team.id)):
                    blockers = "blockers" if d["blockers"] else "digest"
                    print(f"{d['id']}\t{d['service']}\t{d['url']}\t{blockers}\t{d['label']}")
    except TeamError as e:
        print(f"not saved: {e}", file=sys.stderr)
        return 2
    if queued:
        enqueue_deliveries(queued)
    return 0


def cmd_admin(args) -> int:
    from app.accounts.users import make_operator, normalize_email
    from app.db import session
    from app.models import utcnow

    email = normalize_email(args.email)
    if not email:
        print(f"not an email address: {args.email!r}", file=sys.stderr)
        return 2
    with session() as s:
        make_operator(s, email, now=utcnow())
    print(f"{email} is an instance operator; sign in at {get_settings().base_url}/signin")


def cmd_suppression(args) -> int:
    from app.db import session
    from app.errors import RequestError
    from app.models import Team, utcnow
    from app.relay import suppressions

    now, cmd = utcnow(), args.suppression_command
    try:
        if cmd == "import":
            text = Path(args.file).read_text(encoding="utf-8-sig")
        with session() as s:
            if getattr(args, "team", None) is not None and s.get(Team, args.team) is None:
                raise RequestError(f"--team: no team {args.team}")
            if cmd == "show":
                entry = suppressions.lookup(s, args.email)
                if entry is None:
                    print(f"{args.email} is not suppressed")
                    return 1
                print(_suppression_line(entry, now))
                return 0
            if cmd == "list":
                rows = suppressions.page(
                    s, team_ids=None, team_id=args.team, reason=args.reason, q=args.q or "", limit=args.limit
                )
                for entry in rows:
                    print(_suppression_line(entry, now))
                return 0
            if cmd == "add":
                expires_at = (
                    suppressions.parse_time(args.expires_at, "--expires-at") if args.expires_at else None
                )
                entry = suppressions.add_checked(
                    s,
                    args.email,
                    args.reason,
                    admin_team_ids=None,
                    team_id=args.team,
                    expires_at=expires_at,
                    detail=args.detail or "added by an operator (donebox suppression add)",
                    now=now,
                )
                print(f"suppressed: {_suppression_line(entry, now)}")
                return 0
            if cmd == "import":
                result = suppressions.import_csv(
                    s,
                    text,
                    admin_team_ids=None,
                    team_id=args.team,
                    detail=f"imported from {args.file}",
                    now=now,
                )
                for error in result.errors:
                    print(error, file=sys.stderr)
                more = f", {result.more_errors} more bad line(s)" if result.more_errors else ""
                print(
                    f"{result.imported} imported, {result.unchanged} unchanged, "
                    f"{len(result.errors)} bad line(s){more}"
                )
                return 1 if result.errors else 0
            if cmd == "export":
                text = suppressions.export_csv(
                    s, team_ids=None if args.team is None else [args.team], now=now
                )
                if args.file and args.file != "-":
                    Path(args.file).write_text(text, encoding="utf-8")
                else:
                    sys.stdout.write(text)
                return 0
            reason = suppressions.remove(s, args.email)  # the operator's lift: any reason, any team
    except (RequestError, OSError, UnicodeDecodeError) as e:
        print(f"donebox suppression {cmd}: {e}", file=sys.stderr)
        return 2
    if reason is None:
        print(f"{args.email} is not suppressed", file=sys.stderr)
        return 1
    print(f"{args.email} is no longer suppressed (it was: {reason})")
    return 0


def cmd_webhook(args) -> int:
    from sqlalchemy import select

    from app.db import session
    from app.errors import RequestError
    from app.models import Team, WebhookEndpoint, utcnow
    from app.relay import webhooks

    cmd = args.webhook_command
    try:
        with session() as s:
            if getattr(args, "team", None) is not None and s.get(Team, args.team) is None:
                raise RequestError(f"--team: no team {args.team}")
            if cmd == "add":
                e = webhooks.add(
                    s,
                    args.team,
                    args.url,
                    args.kinds,
                    now=utcnow(),
                    settings=get_settings(),
                    description=args.description or "",
                )
                print(f"webhook {e.id} of team {e.team_id}: {e.url} ({e.kinds})")
                print(f"secret (shown this once; it signs every POST): {e.secret}")
                return 0
            if cmd == "list":
                rows = (
                    webhooks.endpoints(s, args.team)
                    if args.team is not None
                    else list(s.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars())
                )
                for e in rows:
                    print(f"{e.id}\tteam {e.team_id}\t{e.url}\t{e.kinds}\t{e.description}")
                return 0
            e = s.get(WebhookEndpoint, args.id) if 0 < args.id < 2**31 else None
            if e is None:
                raise RequestError(f"no webhook endpoint {args.id}")
            webhooks.remove(s, e.team_id, e.id, now=utcnow())
            print(f"webhook {e.id} removed (its pending deliveries fail; the log stays)")
            return 0
    except RequestError as err:
        print(f"donebox webhook {cmd}: {err}", file=sys.stderr)
        return 2


def _suppression_line(entry, now) -> str:
    owner = f"team {entry.team_id}" if entry.team_id else "instance-wide"
    until = ""
    if entry.expires_at is not None:
        until = f" until {entry.expires_at:%Y-%m-%d %H:%M}" + ("" if entry.expires_at > now else " (expired)")
    return f"{entry.email}: {entry.reason} ({owner}) since {entry.created_at:%Y-%m-%d}{until}: {entry.detail}"


def cmd_dkim_keygen(args) -> int:
    from app.relay.dkim import generate
    from app.relay.render import ascii_address

    domain = ascii_address(f"x@{args.domain}").rpartition("@")[2]
    selector = args.selector or f"donebox-{args.type}"
    try:
        path, txt = generate(get_settings().dkim_dir, domain, selector, args.type)
    except FileExistsError as e:
        print(f"donebox: {e}", file=sys.stderr)
        return 1
    chunks = " ".join(f'"{txt[i : i + 255]}"' for i in range(0, len(txt), 255))  # TXT strings hold 255
    print(f"wrote {path}\npublish this DNS TXT record:\n{selector}._domainkey.{domain}. IN TXT {chunks}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="donebox", description="Team check-ins by email, with a relay core.")
    p.add_argument("--version", action="version", version=f"donebox {importlib.metadata.version('donebox')}")
    sub = p.add_subparsers(dest="command", required=True)

    def web_opts(sp):
        sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        sp.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")

    sp = sub.add_parser("run", help="everything in one process on the embedded default")
    web_opts(sp)
    sp.add_argument("--no-demo", action="store_true", help="do not create the demo team on first start")
    sp.set_defaults(fn=cmd_run)
    sp = sub.add_parser("web", help="the web app on uvicorn")
    web_opts(sp)
    sp.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    sp.set_defaults(fn=cmd_web)
    sp = sub.add_parser("worker", help="Dramatiq worker processes (needs REDIS_URL or RABBITMQ_URL)")
    sp.add_argument("--processes", type=int, default=2)
    sp.add_argument("--threads", type=int, default=8)
    sp.set_defaults(fn=cmd_worker)
    sp = sub.add_parser("scheduler", help="the tick loop: due reminders and digests, lease sweeper")
    sp.add_argument("--once", action="store_true", help="one tick, print what it did, exit")
    sp.add_argument("--now", help="with --once: tick as if it were this instant (ISO 8601, default UTC)")
    sp.set_defaults(fn=cmd_scheduler)
    sp = sub.add_parser("imap", help="read the IMAP mailboxes of IMAP_MAILBOXES into inbound mail")
    sp.set_defaults(fn=cmd_imap)
    sp = sub.add_parser("smtp", help="SMTP submission listener: applications send through the relay by SMTP")
    sp.set_defaults(fn=cmd_smtp)
    sp = sub.add_parser("migrate", help="bring the database to the newest schema")
    sp.set_defaults(fn=cmd_migrate)
    sp = sub.add_parser("remind", help="send reminders")
    sp.add_argument("--now", action="store_true", help="send every member's reminder for today now")
    sp.set_defaults(fn=cmd_remind)
    sp = sub.add_parser("digest", help="send digests")
    sp.add_argument("--now", action="store_true", help="send every member's digest now")
    sp.add_argument("--day", help="the day the digest covers, YYYY-MM-DD (default: today)")
    sp.set_defaults(fn=cmd_digest)
    sp = sub.add_parser("inbound", help="inbound mail tools")
    isub = sp.add_subparsers(dest="inbound_command", required=True)
    rp = isub.add_parser("reprocess", help="process stored inbound messages again")
    rp.add_argument("id", nargs="?", type=int, help="an inbound message id")
    rp.add_argument("--failed", action="store_true", help="every message whose processing failed")
    rp.add_argument(
        "--quarantined", action="store_true", help="every message quarantined (its processing never finished)"
    )
    rp.set_defaults(fn=cmd_inbound)
    sp = sub.add_parser("replies", help="reply extraction: the cuts people moved")
    rsub = sp.add_subparsers(dest="replies_command", required=True)
    rp = rsub.add_parser(
        "export-cases",
        help="write each reply's latest corrected cut as a case in the reply corpus's JSONL format, masked",
    )
    rp.add_argument("--out", help="the file to write (default: standard output)")
    rp.add_argument("--team", type=int, help="only this team's cases")
    rp.set_defaults(fn=cmd_replies)
    sp = sub.add_parser("redrive", help="send failed, deferred or suppressed messages again")
    sp.add_argument("--id", type=int, action="append", help="a message id (repeatable)")
    sp.add_argument("--team", type=int, help="only this team's messages")
    sp.add_argument(
        "--state", action="append", help="failed, deferred or suppressed (repeatable; default: all)"
    )
    sp.add_argument("--domain", help="only recipients in this domain")
    sp.add_argument("--sender", help="only messages whose last attempt went through this sender")
    sp.add_argument("--since", help="created on or after (YYYY-MM-DD or an ISO date-time, UTC)")
    sp.add_argument("--until", help="created before (a YYYY-MM-DD day is included)")
    sp.add_argument(
        "--updated", action="store_true", help="--since/--until bound the last change, not creation"
    )
    sp.add_argument("--dry-run", action="store_true", help="count only; nothing is sent")
    sp.set_defaults(fn=cmd_redrive)
    sp = sub.add_parser("api-token", help="API tokens")
    tsub = sp.add_subparsers(dest="token_command", required=True)
    cp = tsub.add_parser("create", help="create a token and print it (shown once)")
    cp.add_argument("name", help="what the token is for")
    cp.add_argument("--team", type=int, help="limit the token to one team id")
    cp.add_argument(
        "--scopes",
        default="send,read,manage",
        help="what it may do, comma-separated: send (mail), read (GETs), manage (settings, entries); "
        "default: all three",
    )
    cp.set_defaults(fn=cmd_api_token)
    sp = sub.add_parser("team-settings", help="show or change a team's settings (as its settings page does)")
    sp.add_argument("team", type=int)
    for option in ("name", "timezone", "reminder_time", "digest_time"):
        sp.add_argument(f"--{option.replace('_', '-')}")
    sp.add_argument("--workdays", help="ISO weekdays asked on, e.g. 12345 (1 = Monday)")
    sp.add_argument("--digest-days", help="ISO weekdays the digest goes out on")
    onoff = ("on", "off")
    sp.add_argument("--digest", choices=onoff, help="send the daily digest at all")
    sp.add_argument("--digest-include-quiet", choices=onoff, help="list the members who wrote nothing")
    sp.add_argument("--skip-empty", choices=onoff, help="no digest for a day (or week) nobody wrote in")
    sp.add_argument("--weekly-day", type=int, help="ISO weekday of the weekly digest (a digest day); 0: none")
    sp.add_argument(
        "--tracking", choices=onoff, help="open pixel and rewritten links in reminders and digests"
    )
    sp.add_argument("--reply-domain", help="REPLY_DOMAIN ('') or one of INBOUND_DOMAINS")
    sp.add_argument(
        "--question",
        action="append",
        help="a question the reminder asks (repeat it for each, 1 to 5, in order; they replace the team's)",
    )
    sp.add_argument(
        "--preset",
        choices=("default", "standup", "weekly"),
        help="questions of a preset: default (What did you get done today?), standup (Done / Next / "
        "Blocked), weekly (weekly snippets)",
    )
    sp.add_argument(
        "--nudge-hours", type=int, help="nudge who has not replied this many hours before the digest; 0: off"
    )
    sp.add_argument("--nudge-cutoff", help="local HH:MM: no nudge at or after it (default 21:00)")
    sp.add_argument(
        "--participation-summary",
        choices=onoff,
        help="each admin gets a weekly email of the team's participation (default off)",
    )
    sp.add_argument(
        "--blocker-owner",
        type=int,
        metavar="MEMBER_ID",
        help="the member whom blockers notify instead of the admins (who may resolve them); 0: the admins",
    )
    sp.set_defaults(fn=cmd_team_settings)
    sp = sub.add_parser("team-chat", help="the chat channels a team's digest is posted to (as its chat page)")
    sp.add_argument("team", type=int)
    csub = sp.add_subparsers(dest="chat_command", required=True)
    csub.add_parser("list", help="the team's channels: id, service, masked webhook URL, label")
    cp = csub.add_parser("add", help="post the team's digest to a channel's incoming webhook too")
    cp.add_argument("service", help="slack, teams, googlechat, mattermost or discord")
    cp.add_argument("url", help="the incoming webhook URL the service made (https)")
    cp.add_argument("--label", default="", help="what the team calls the channel, e.g. #standup")
    cp.add_argument("--blockers", action="store_true", help="also post each new blocker as it is written")
    cp = csub.add_parser("remove", help="no more posts to channel ID")
    cp.add_argument("id", type=int)
    cp = csub.add_parser("test", help="a test post to channel ID, through the outbox")
    cp.add_argument("id", type=int)
    sp.set_defaults(fn=cmd_team_chat)
    sp = sub.add_parser("admin", help="instance operators")
    asub = sp.add_subparsers(dest="admin_command", required=True)
    ap = asub.add_parser("create", help="make EMAIL an instance operator (creates the user)")
    ap.add_argument("email")
    ap.set_defaults(fn=cmd_admin)
    sp = sub.add_parser("webhook", help="a team's signed outgoing webhooks (docs/relay.md)")
    wsub = sp.add_subparsers(dest="webhook_command", required=True)
    xp = wsub.add_parser("add", help="POST the team's events of KINDS to URL; prints the secret once")
    xp.add_argument("--team", type=int, required=True)
    xp.add_argument("url")
    xp.add_argument(
        "kinds",
        nargs="+",
        help="sent delivered deferred bounced complained opened clicked "
        "unsubscribed inbound_received entry_created",
    )
    xp.add_argument("--description", help="a note for people")
    xp.set_defaults(fn=cmd_webhook)
    xp = wsub.add_parser("list", help="the endpoints (every team's unless --team)")
    xp.add_argument("--team", type=int)
    xp.set_defaults(fn=cmd_webhook)
    xp = wsub.add_parser("remove", help="remove endpoint ID")
    xp.add_argument("id", type=int)
    xp.set_defaults(fn=cmd_webhook)
    sp = sub.add_parser("suppression", help="the suppression list (operators lift any entry here)")
    ssub = sp.add_subparsers(dest="suppression_command", required=True)
    for name, text in (("show", "show why EMAIL is suppressed"), ("remove", "send to EMAIL again")):
        xp = ssub.add_parser(name, help=text)
        xp.add_argument("email")
        xp.set_defaults(fn=cmd_suppression)
    reasons = (
        "manual",
        "complaint",
        "bounce",
        "unsubscribe",
        "soft_bounce",
    )  # app.relay.suppressions.REASONS
    xp = ssub.add_parser("list", help="entries, newest first")
    xp.add_argument("--team", type=int, help="only this team's entries")
    xp.add_argument("--reason", choices=reasons)
    xp.add_argument("--q", help="only addresses containing this")
    xp.add_argument("--limit", type=int, default=100)
    xp.set_defaults(fn=cmd_suppression)
    xp = ssub.add_parser("add", help="suppress EMAIL (an operator's entry: instance-wide unless --team)")
    xp.add_argument("email")
    xp.add_argument("--reason", choices=reasons, default="manual")
    xp.add_argument("--expires-at", help="ISO 8601 date-time (no offset: UTC); default: never")
    xp.add_argument("--team", type=int, help="whose entry it is")
    xp.add_argument("--detail", help="a note for people")
    xp.set_defaults(fn=cmd_suppression)
    xp = ssub.add_parser("import", help="add CSV lines address[,reason[,expires_at]] from FILE")
    xp.add_argument("file")
    xp.add_argument("--team", type=int, help="whose entries they are (default: instance-wide)")
    xp.set_defaults(fn=cmd_suppression)
    xp = ssub.add_parser(
        "export", help="write the entries that suppress now as CSV to FILE (default: stdout)"
    )
    xp.add_argument("file", nargs="?")
    xp.add_argument("--team", type=int, help="only this team's entries")
    xp.set_defaults(fn=cmd_suppression)
    sp = sub.add_parser(
        "doctor",
        help="check the database, broker, senders, DNS, inbound secrets and clock; exit 1 on a failure",
    )
    sp.set_defaults(fn=cmd_doctor)
    sp = sub.add_parser("dkim", help="DKIM signing keys")
    dsub = sp.add_subparsers(dest="dkim_command", required=True)
    kp = dsub.add_parser("keygen", help="write a signing key for DOMAIN and print its DNS TXT record")
    kp.add_argument("domain", help="the From domain to sign for")
    kp.add_argument("--type", choices=("rsa", "ed25519"), default="rsa", help="rsa (2048 bits) or ed25519")
    kp.add_argument("--selector", help="DNS selector (default donebox-<type>)")
    kp.set_defaults(fn=cmd_dkim_keygen)
    from app.relay.admin import add_parsers

    add_parsers(sub)
    return p


def _prepare_metrics(argv: list[str]) -> None:
    """A METERED command's processes write metrics into METRICS_DIR: set up before anything imports
    prometheus_client (building the parser does, through the relay's commands)."""
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        if command in METERED:
            prepare_metrics(get_settings().metrics_dir)
    except SettingsError:
        pass  # main reports it


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``donebox`` console script."""
    _prepare_metrics(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as e:
        print(f"donebox: {e}", file=sys.stderr)
        return 2
    setup_logging(settings)
    return args.fn(args) or 0


if __name__ == "__main__":
    sys.exit(main())
