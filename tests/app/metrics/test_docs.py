"""docs/metrics.md lists every metric a scrape shows, and the Grafana dashboard asks only for those."""

from __future__ import annotations

import json
import re

from app.metrics.scrape import exposition
from app.models import utcnow
from app.settings import ROOT, get_settings
from jobs.broker import queue_depths
from tests.app.metrics.scraped import families

SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def ours(db) -> set[str]:
    text = exposition(get_settings(), now=utcnow(), queue_depths=queue_depths).decode()
    return {f for f in families(text) if f.startswith("donebox_")}


def family_of(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_metric_a_scrape_shows_is_documented_and_every_documented_one_exists(db):
    shown = ours(db)
    documented = {family_of(n) for n in re.findall(r"^\| `(donebox_[a-z_]+)`", _doc(), re.M)}
    assert len(shown) >= 20
    assert shown == documented


def test_the_grafana_dashboard_is_valid_json_whose_every_expression_names_metrics_that_exist(db):
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert dashboard["title"] and len(dashboard["panels"]) >= 10 and exprs
    shown = ours(db)
    for expr in exprs:
        names = re.findall(r"\b(donebox_[a-z_]+)", expr)
        assert names, expr
        assert {family_of(n) for n in names} <= shown, expr
    # every family is on the dashboard somewhere
    assert {family_of(n) for e in exprs for n in re.findall(r"\b(donebox_[a-z_]+)", e)} == shown


def _doc() -> str:
    return (ROOT / "docs" / "metrics.md").read_text()
