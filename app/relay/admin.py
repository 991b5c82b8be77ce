"""Operator commands for the relay: ``donebox sender|route|team-relay|domain|pass-through``; registered
by app.cli."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, select

from app.db import session
from app.errors import PermanentSendError, RenderError, RequestError, TransientSendError
from app.models import Route, Sender, SendingDomain, Team, TeamRelay, utcnow
from app.relay import domains, passthrough
from app.relay.dkim import key_store, sign_raw
from app.relay.outbox import new_message_id, wake_deferred
from app.relay.render import ascii_address, build_message
from app.relay.routing import NO_SENDER, STRATEGIES, candidates, load_config, names, waiting_for_a_sender
from app.relay.transports import Outgoing, close_all, get_transport, transport_for
from app.settings import Settings, get_settings


def masked(url: str) -> str:
    """``url`` with its password (or API key) replaced by ***."""
    u = urlsplit(url)
    if "@" not in u.netloc:
        return url
    creds, _, host = u.netloc.rpartition("@")
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return urlunsplit(u._replace(netloc=(f"{user}:***" if user else "***") + "@" + host))


def check_url(url: str) -> str:
    """'' when a transport can be built from ``url``, else the reason."""
    try:
        transport_for(url, get_settings())
    except ValueError as e:
        return str(e)
    return ""


def _fail(msg: str) -> int:
    print(f"donebox: {msg}", file=sys.stderr)
    return 1


def cmd_sender_add(args) -> int:
    why = check_url(args.url)
    if why:
        return _fail(f"unusable transport URL: {why}")
    with session() as s:
        row = s.execute(select(Sender).where(Sender.name == args.name)).scalar() or Sender(name=args.name)
        row.url, row.weight, row.rate_per_s, row.enabled = args.url, args.weight, args.rate, not args.disabled
        s.add(row)
        # mail deferred for want of a sender waits out a backoff that grew with each attempt: due now
        woken = wake_deferred(s, waiting_for_a_sender(), now=utcnow()) if row.enabled else 0
    print(f"sender {args.name}: {masked(args.url)} weight={args.weight} rate={args.rate or 'unlimited'}/s")
    if woken:
        print(f"{woken} deferred messages that waited for a sender are due now (the next tick queues them)")
    return 0


def cmd_sender_list(args) -> int:
    with session() as s:
        for r in s.execute(select(Sender).order_by(Sender.name)).scalars():
            state = "enabled" if r.enabled else "disabled"
            print(f"{r.name}\t{masked(r.url)}\tweight={r.weight}\trate={r.rate_per_s or '-'}\t{state}")
    return 0


def cmd_sender_remove(args) -> int:
    with session() as s:
        gone = s.execute(delete(Sender).where(Sender.name == args.name)).rowcount
    return 0 if gone else _fail(f"no sender named {args.name!r}")


def sample_message(settings: Settings, to: str, now: datetime) -> Outgoing:
    """A short message to ``to`` from MAIL_FROM, built and DKIM-signed as the pipeline builds mail."""
    domain = ascii_address(settings.mail_from).rpartition("@")[2]
    text = f"This is a test message from donebox at {settings.base_url}, sent by `donebox sender test`."
    raw, parts = build_message(
        from_addr=settings.mail_from,
        from_name="donebox",
        to=to,
        subject="donebox sender test",
        text=text,
        html=f"<p>{text}</p>",
        message_id=new_message_id(domain),
        date=now,
    )
    raw = sign_raw(raw, key_store(settings.dkim_dir).keys(domain), now=int(now.timestamp()))
    return Outgoing(ascii_address(settings.mail_from), ascii_address(to), raw, parts)


def cmd_sender_test(args) -> int:
    """Send one message through a sender now, bypassing the outbox, and print the server's answer."""
    settings = get_settings()
    config = load_config()
    if args.sender:
        if args.sender not in config.senders:
            return _fail(f"no sender named {args.sender!r}")
        name = args.sender
    else:  # the one routing would pick first for this address, for a message of no team
        listed, _ = candidates(config, None, args.address.rpartition("@")[2])
        name = listed[0] if listed else ""
    try:
        transport = transport_for(config.senders[name].url, settings) if name else get_transport(settings)
        message = sample_message(settings, args.address, utcnow())
    except (ValueError, RenderError) as e:
        return _fail(str(e))
    if transport is None:
        return _fail(NO_SENDER)
    label = f"sender {name}" if name else f"MAIL_TRANSPORT={settings.mail_transport} (no sender configured)"
    try:
        result = transport.send(message)
    except (TransientSendError, PermanentSendError) as e:
        return _fail(f"{label} refused the message: {e}")
    finally:
        close_all()
    answer = result.detail or "accepted"
    print(f"{label}: {answer}" + (f" (id {result.provider_id})" if result.provider_id else ""))
    return 0


def _unknown(s, listed: tuple[str, ...]) -> list[str]:
    known = set(s.execute(select(Sender.name)).scalars())
    return [n for n in listed if n not in known]


def cmd_route_add(args) -> int:
    domain = args.domain.strip().lower()
    if not re.fullmatch(r"(\*\.)?[a-z0-9.-]+\.?[a-z0-9-]*", domain):
        return _fail(f"a route domain looks like hotmail.com or *.gov, not {args.domain!r}")
    listed = names(args.senders)
    with session() as s:
        if not listed or (missing := _unknown(s, listed)):
            return _fail(f"unknown senders: {', '.join(missing) if listed else '(none given)'}")
        s.add(Route(team_id=args.team, domain=domain, senders=",".join(listed)))
    print(f"route {domain} -> {', '.join(listed)}" + (f" (team {args.team})" if args.team else ""))
    return 0


def cmd_route_list(args) -> int:
    with session() as s:
        for r in s.execute(select(Route).order_by(Route.id)).scalars():
            print(f"{r.id}\t{r.domain}\t{r.senders}\tteam={r.team_id or 'all'}")
    return 0


def cmd_route_remove(args) -> int:
    with session() as s:
        gone = s.execute(delete(Route).where(Route.id == args.id)).rowcount
    return 0 if gone else _fail(f"no route {args.id}")


def cmd_team_relay(args) -> int:
    with session() as s:
        if s.get(Team, args.team) is None:
            return _fail(f"no team {args.team}")
        row = s.get(TeamRelay, args.team) or TeamRelay(team_id=args.team)
        if args.senders is not None:
            listed = names(args.senders)
            if missing := _unknown(s, listed):
                return _fail(f"unknown senders: {', '.join(missing)}")
            row.senders = ",".join(listed)
        if args.strategy:
            row.strategy = args.strategy
        if args.quota_hour is not _UNSET:
            row.quota_hour = args.quota_hour
        if args.quota_day is not _UNSET:
            row.quota_day = args.quota_day
        s.add(row)
        hour, day = (_quota(q) for q in (row.quota_hour, row.quota_day))
        print(
            f"team {args.team}: senders={row.senders or '(all)'} strategy={row.strategy} "
            f"quota-hour={hour} quota-day={day}"
        )
    return 0


_UNSET = object()  # an option not given (None is 'default')


def cmd_pass_through(args) -> int:
    """Show pass-through's state, or set its mode (on, off, auto) and show the state it gives."""
    settings = get_settings()
    with session() as s:
        if args.mode == "status":
            row = passthrough.current(s)
        else:
            row = passthrough.set_mode(
                s, args.mode, by="donebox pass-through", now=utcnow(), settings=settings
            )
        print("\n".join(passthrough.describe(row, settings)))
    return 0


def _quota(value: int | None) -> str:
    return "default" if value is None else str(value or "unlimited")


def quota_arg(text: str) -> int | None:
    """A --quota-* value: a count (0 = no limit) or 'default' (the TEAM_QUOTA_* setting) as None."""
    if text.strip().lower() == "default":
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > 10**9:
        raise argparse.ArgumentTypeError(f"a number of messages (0 = no limit) or 'default', not {text!r}")
    return int(text)


def print_records(s, row: SendingDomain, settings: Settings) -> None:
    """The records ``row`` must publish, as zone file lines, with the last verdict of each."""
    checks = domains.checks_of(row)
    for r in domains.records(s, row, settings):
        verdict = checks.get(r.key, {})
        status = verdict.get("status", "not checked")
        why = f": {verdict['detail']}" if verdict.get("detail") else ""
        print(f"{r.key} [{status}{why}]\n  {r.zone_line()}")


def _domain(s, name: str) -> SendingDomain:
    d = domains.normalized(name)
    row = domains.named(s, d)
    if row is None:
        raise RequestError(f"domain: {d} is not a sending domain (donebox domain add {d})", status=404)
    return row


def cmd_domain(args) -> int:
    settings, now, cmd = get_settings(), utcnow(), args.domain_command
    try:
        with session() as s:
            if cmd == "list":
                for row in domains.listed(s, args.team):
                    owner = f"team {row.team_id}" if row.team_id else "every team"
                    state = f"verified {row.verified_at:%Y-%m-%d}" if row.verified_at else "not verified"
                    missing = ", ".join(domains.missing(row)) if row.checked_at else "never checked"
                    print(f"{row.domain} ({owner}): {state}" + (f"; missing: {missing}" if missing else ""))
                return 0
            if cmd == "add":
                if args.team is not None and s.get(Team, args.team) is None:
                    raise RequestError(f"--team: no team {args.team}")
                row = domains.add(s, args.domain, args.team, settings, now=now)
                print(
                    f"sending domain {row.domain} added; publish these DNS records, then: "
                    f"donebox domain verify {row.domain}"
                )
                print_records(s, row, settings)
                return 0
            row = _domain(s, args.domain)
            if cmd == "remove":
                domains.remove(s, row)
                print(f"sending domain {row.domain} removed, with its keys")
                return 0
            if cmd == "verify":
                domains.verify(s, row, settings, now=now)
            print_records(s, row, settings)
            verified = row.verified_at is not None
            print(
                f"{row.domain}: "
                + ("verified" if verified else "not verified: " + ", ".join(domains.missing(row)))
            )
            return 0 if verified or cmd == "records" else 1
    except RequestError as e:
        return _fail(f"domain {cmd}: {e}")


def add_parsers(sub) -> None:
    """Add the relay's subcommands to the ``donebox`` parser."""
    sp = sub.add_parser("sender", help="senders: the ways out (SMTP, SendGrid, maildir)")
    ss = sp.add_subparsers(dest="sender_command", required=True)
    p = ss.add_parser("add", help="add or change a sender")
    p.add_argument("name")
    p.add_argument(
        "url", help="smtp://user:pass@host:587?tls=starttls, sendgrid://KEY@api.sendgrid.com, maildir:"
    )
    p.add_argument("--weight", type=int, default=1, help="share of traffic under spread (default 1)")
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second, all workers (default: no limit)"
    )
    p.add_argument("--disabled", action="store_true")
    p.set_defaults(fn=cmd_sender_add)
    ss.add_parser("list", help="list senders (secrets masked)").set_defaults(fn=cmd_sender_list)
    p = ss.add_parser(
        "test", help="send a test message to ADDRESS now, not through the outbox; print the server's answer"
    )
    p.add_argument("address")
    p.add_argument("--sender", help="the sender to use (default: the one routing picks for ADDRESS)")
    p.set_defaults(fn=cmd_sender_test)
    p = ss.add_parser("remove")
    p.add_argument("name")
    p.set_defaults(fn=cmd_sender_remove)

    sp = sub.add_parser("route", help="recipient-domain routes")
    rs = sp.add_subparsers(dest="route_command", required=True)
    p = rs.add_parser("add", help="send mail for DOMAIN (hotmail.com, *.gov) through SENDERS")
    p.add_argument("domain")
    p.add_argument("senders", help="sender names, comma-separated, in order")
    p.add_argument("--team", type=int, help="only for this team (default: every team)")
    p.set_defaults(fn=cmd_route_add)
    rs.add_parser("list").set_defaults(fn=cmd_route_list)
    p = rs.add_parser("remove")
    p.add_argument("id", type=int)
    p.set_defaults(fn=cmd_route_remove)

    # tracking is a team setting (donebox team-settings --tracking), not the relay's
    p = sub.add_parser("team-relay", help="a team's senders and strategy")
    p.add_argument("team", type=int)
    p.add_argument("--senders", help="sender names, comma-separated, in order ('' = every sender)")
    p.add_argument("--strategy", choices=STRATEGIES)
    for window, setting in (("hour", "TEAM_QUOTA_HOUR"), ("day", "TEAM_QUOTA_DAY")):
        p.add_argument(
            f"--quota-{window}",
            type=quota_arg,
            default=_UNSET,
            help=f"application mail (API, SMTP) the team may submit per {window}: N, 0 = no limit, "
            f"'default' = {setting}",
        )
    p.set_defaults(fn=cmd_team_relay)

    sp = sub.add_parser("domain", help="sending domains: their DKIM keys and DNS records")
    ds = sp.add_subparsers(dest="domain_command", required=True)
    p = ds.add_parser(
        "add", help="make DOMAIN a sending domain (RSA and Ed25519 keys); print its DNS records"
    )
    p.add_argument("domain")
    p.add_argument("--team", type=int, help="only this team may send from it (default: every team)")
    p.set_defaults(fn=cmd_domain)
    p = ds.add_parser("verify", help="look up DOMAIN's records (DNS_NAMESERVERS) and record the verdicts")
    p.add_argument("domain")
    p.set_defaults(fn=cmd_domain)
    p = ds.add_parser("records", help="print DOMAIN's records and their last verdicts")
    p.add_argument("domain")
    p.set_defaults(fn=cmd_domain)
    p = ds.add_parser("list", help="sending domains and what they miss")
    p.add_argument("--team", type=int, help="those this team may use")
    p.set_defaults(fn=cmd_domain)
    p = ds.add_parser("remove", help="delete DOMAIN and its keys")
    p.add_argument("domain")
    p.set_defaults(fn=cmd_domain)
    p = sub.add_parser(
        "pass-through", help="bulk mail untracked while the queue is behind: on, off, auto or status"
    )
    p.add_argument(
        "mode",
        choices=("on", "off", "auto", "status"),
        help="on/off: the operator decides; auto: by the oldest waiting message (PASS_THROUGH_AFTER_S)",
    )
    p.set_defaults(fn=cmd_pass_through)
