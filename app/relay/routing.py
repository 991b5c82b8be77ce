"""Routing: which sender carries a message, and which senders are healthy.

Candidates for a message: the senders of the most specific recipient-domain
Route (the team's own routes before global ones; an exact domain before a
wildcard, a longer wildcard before a shorter), else the team's sender list,
else every enabled sender. Within the candidates the team's strategy picks:
``failover`` takes the first healthy one in order, ``spread`` a weighted random
healthy one. So a route for ``hotmail.com`` and spreading for everyone else
work together.

The circuit breaker opens for a sender after BREAKER_FAILURES consecutive
connection failures, and for a (sender, recipient domain) pair after as many
blocks (x.7.x) for that domain; after BREAKER_COOLDOWN_S one probe message is
let through, and its success closes the circuit. Its state is per process.

Configuration (Sender, TeamRelay, Route rows) is read at most every
RELAY_CONFIG_TTL_S seconds per process, never per message.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from app.db import session
from app.metrics import families as metrics
from app.models import OutboundMessage, Route, Sender, TeamRelay

STRATEGIES = ("spread", "failover")
NO_SENDER = (
    "no sender is configured, so no mail would leave this server; add one with "
    "`donebox sender add NAME smtp://USER:PASSWORD@HOST:587` and try it with `donebox sender test ADDRESS` "
    "(or set MAIL_TRANSPORT=maildir to keep mail in VAR_DIR/mail on purpose)"
)
NO_HEALTHY = "no healthy sender for "  # then the recipient's domain: every candidate's circuit was open


def waiting_for_a_sender():
    """Which messages (a condition on OutboundMessage) were deferred for want of a sender: none was
    configured, or none was healthy. A sender added, or back, can take them at once."""
    M = OutboundMessage
    return or_(M.error == NO_SENDER, M.error.startswith(NO_HEALTHY, autoescape=True))


@dataclass(frozen=True)
class SenderInfo:
    """A Sender row, frozen for the cache."""

    name: str
    url: str = field(repr=False)
    weight: int = 1
    enabled: bool = True
    rate_per_s: float = 0.0


@dataclass(frozen=True)
class TeamPlan:
    """A TeamRelay row, frozen: the team's senders in order and strategy."""

    senders: tuple[str, ...] = ()
    strategy: str = "spread"


@dataclass(frozen=True)
class RelayConfig:
    """Everything routing needs, read in one go."""

    senders: dict[str, SenderInfo]
    teams: dict[int, TeamPlan]
    routes: tuple[tuple[int | None, str, tuple[str, ...]], ...]  # (team_id, domain pattern, senders)

    def team(self, team_id: int | None) -> TeamPlan:
        return self.teams.get(team_id or 0, TeamPlan())


def names(csv: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ("a", "b", "c")."""
    return tuple(n.strip() for n in csv.split(",") if n.strip())


def load_config() -> RelayConfig:
    """Read Sender, TeamRelay and Route rows."""
    with session() as s:
        senders = {
            r.name: SenderInfo(r.name, r.url, max(0, r.weight), r.enabled, r.rate_per_s)
            for r in s.execute(select(Sender)).scalars()
        }
        teams = {
            r.team_id: TeamPlan(names(r.senders), r.strategy) for r in s.execute(select(TeamRelay)).scalars()
        }
        routes = tuple(
            (r.team_id, r.domain.strip().lower(), names(r.senders))
            for r in s.execute(select(Route).order_by(Route.id)).scalars()
        )
    return RelayConfig(senders, teams, routes)


def missing_sender(settings) -> str:
    """Why no mail could leave this server, or '' when it can.

    It can when MAIL_TRANSPORT carries mail (maildir or memory, set on purpose in production) or
    an enabled Sender row exists; with MAIL_TRANSPORT ``none`` (production's default) and no enabled
    sender, the answer is NO_SENDER: `donebox web|worker|run` refuse to start on it.
    """
    if settings.mail_transport != "none":
        return ""
    try:
        config = load_config()
    except SQLAlchemyError as e:
        return f"cannot read the senders ({type(e).__name__}): run `donebox migrate` first"
    if any(s.enabled for s in config.senders.values()):
        return ""
    if config.senders:
        return "every sender is disabled: " + NO_SENDER.replace("no sender is configured, so ", "")
    return NO_SENDER


class ConfigCache:
    """The process's RelayConfig, reloaded when older than ``ttl_s``."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._value: RelayConfig | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self) -> RelayConfig:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self.ttl_s:
                self._value, self._at = load_config(), time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


def _specificity(pattern: str, domain: str) -> int:
    """How well ``pattern`` matches ``domain``: 0 not at all, higher is more specific."""
    if pattern == domain:
        return 10_000
    if pattern.startswith("*.") and domain.endswith(pattern[1:]):
        return len(pattern)
    return 0


def candidates(config: RelayConfig, team_id: int | None, domain: str) -> tuple[tuple[str, ...], str]:
    """(sender names in order, strategy) for a message of ``team_id`` to ``domain``; names may be empty."""
    plan = config.team(team_id)
    best, best_score = None, 0
    for route_team, pattern, route_senders in config.routes:
        if route_team not in (None, team_id):
            continue
        score = _specificity(pattern, domain.lower())
        score += 1 if score and route_team is not None else 0  # the team's own route wins a tie
        if score > best_score:
            best, best_score = route_senders, score
    if best is not None:
        chosen = best
    elif plan.senders:
        chosen = plan.senders
    else:
        chosen = tuple(sorted(n for n, s in config.senders.items() if s.enabled))
    return tuple(n for n in chosen if n in config.senders and config.senders[n].enabled), plan.strategy


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0  # monotonic; 0 = closed


class Breaker:
    """Consecutive-failure circuit breaker per sender and per (sender, recipient domain)."""

    def __init__(self, failures: int, cooldown_s: float):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._circuits: dict[tuple[str, str], _Circuit] = {}
        self._lock = threading.Lock()
        self.closings = 0  # circuits closed so far: one read before an attempt tells if one closed since

    def allow(self, sender: str, domain: str, now: float | None = None) -> bool:
        """True when ``sender`` may carry mail to ``domain`` now (closed, or half-open: the caller probes)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in ((sender, ""), (sender, domain)):
                c = self._circuits.get(key)
                if c is None or not c.open_until:
                    continue
                if now < c.open_until:
                    return False
                c.open_until = now + self.cooldown_s  # half-open: this caller probes, others wait
            return True

    def healthy(self, sender: str, domain: str, now: float | None = None) -> bool:
        """Like allow() but without taking the probe: for reports."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return all(
                not (c := self._circuits.get(key)) or not c.open_until or now >= c.open_until
                for key in ((sender, ""), (sender, domain))
            )

    def open_circuits(self, now: float | None = None) -> list[tuple[str, str, float]]:
        """(sender, recipient domain or '' for the whole sender, seconds until a probe) of every open
        circuit of this process, for the operator's health page."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return sorted(
                (sender, domain, max(0.0, c.open_until - now))
                for (sender, domain), c in self._circuits.items()
                if c.open_until
            )

    def success(self, sender: str, domain: str) -> str | None:
        """Close the sender's circuits for ``domain``; which one was open, if any: '' (the whole
        sender's, closing it wakes every message an outage of the sender deferred) or ``domain``."""
        closed = None
        with self._lock:
            for key in ((sender, domain), (sender, "")):
                c = self._circuits.pop(key, None)
                if c is not None and c.open_until:
                    metrics.circuit(sender, _scope(key), opened=False)
                    closed = key[1]
            if closed is not None:
                self.closings += 1
        return closed

    def failure(self, sender: str, domain: str, *, connection: bool, now: float | None = None) -> None:
        """Count a connection failure (the whole sender) or a block (only ``domain``)."""
        now = time.monotonic() if now is None else now
        key = (sender, "" if connection else domain)
        with self._lock:
            c = self._circuits.setdefault(key, _Circuit())
            c.failures += 1
            if c.failures >= self.threshold:
                if not c.open_until:
                    metrics.circuit(sender, _scope(key), opened=True)
                c.open_until = now + self.cooldown_s

    def close_all(self) -> None:
        """Forget every circuit (the gauge of open ones goes back down)."""
        with self._lock:
            for key, c in self._circuits.items():
                if c.open_until:
                    metrics.circuit(key[0], _scope(key), opened=False)
            self._circuits.clear()


def _scope(key: tuple[str, str]) -> str:
    """The ``scope`` label of a circuit: the whole sender, or one recipient domain (never named)."""
    return "domain" if key[1] else "sender"


def pick(
    config: RelayConfig,
    breaker: Breaker,
    team_id: int | None,
    domain: str,
    *,
    exclude: frozenset[str] = frozenset(),
    rng: random.Random | None = None,
) -> SenderInfo | None:
    """The sender for one attempt, or None when no candidate is healthy (or none is configured)."""
    names_, strategy = candidates(config, team_id, domain)
    rng = rng or random
    pool = [config.senders[n] for n in names_ if n not in exclude]
    if strategy == "failover":
        for s in pool:
            if breaker.allow(s.name, domain):
                return s
        return None
    pool = [s for s in pool if s.weight > 0 and breaker.healthy(s.name, domain)]
    while pool:
        s = rng.choices(pool, weights=[p.weight for p in pool])[0]
        if breaker.allow(s.name, domain):
            return s
        pool.remove(s)
    return None


_lock = threading.Lock()
_caches: dict[float, ConfigCache] = {}
_breakers: dict[tuple[int, float], Breaker] = {}


def config_cache(settings) -> ConfigCache:
    """The process's ConfigCache (one per TTL setting)."""
    with _lock:
        return _caches.setdefault(settings.relay_config_ttl_s, ConfigCache(settings.relay_config_ttl_s))


def breaker(settings) -> Breaker:
    """The process's Breaker."""
    key = (settings.breaker_failures, settings.breaker_cooldown_s)
    with _lock:
        return _breakers.setdefault(key, Breaker(*key))


def reset() -> None:
    """Forget cached configuration and circuit state (tests, and after editing senders in-process)."""
    with _lock:
        _caches.clear()
        for b in _breakers.values():
            b.close_all()
        _breakers.clear()
