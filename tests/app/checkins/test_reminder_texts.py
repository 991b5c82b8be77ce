"""ReminderTexts: a batch's reminders rendered once per team and day, each member's text exactly
reminder_text's, whatever the member's name and address; a template that reads more of a member
gets a render per member and still the same text."""

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment, StrictUndefined

from app.checkins import outgoing
from app.checkins.outgoing import ReminderTexts, reminder_text
from app.models import Member, Team
from app.relay import render
from app.settings import get_settings

DAY = date(2026, 11, 23)
QUESTIONS = ((), ("What did you ship?",), ("What did you ship?", "What is next?", "Anything blocking?"))
names = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=40),
    st.sampled_from(["{{ team.name }}", "\\1 $& %s", "Ana\nRuiz", "member.name", "Zoë Ødegård"]),
)
emails = st.one_of(st.emails(), st.sampled_from(["a{{b}}@x.example", "m\x00@x.example"]))


def _members(pairs) -> list[Member]:
    return [Member(id=i + 1, team_id=7, name=n, email=e) for i, (n, e) in enumerate(pairs)]


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(names, emails), min_size=1, max_size=6), questions=st.sampled_from(QUESTIONS))
def test_each_members_text_is_reminder_texts(pairs, questions):
    s = get_settings()
    team = Team(id=7, name="Core {{ x }}", timezone="UTC")
    texts = ReminderTexts(s)
    for m in _members(pairs):
        assert texts(m, team, DAY, questions=questions) == reminder_text(m, team, DAY, s, questions=questions)


def test_the_template_renders_once_per_team_day_and_kind_of_member(monkeypatch):
    s = get_settings()
    renders = []
    real = outgoing.reminder_text
    monkeypatch.setattr(outgoing, "reminder_text", lambda *a, **k: renders.append(a[0]) or real(*a, **k))
    texts = ReminderTexts(s)
    a, b = Team(id=1, name="A", timezone="UTC"), Team(id=2, name="B", timezone="UTC")
    members = _members([(f"Ana {i}", f"ana{i}@x.example") for i in range(10)] + [("", "nameless@x.example")])
    for team in (a, b):
        for m in members:
            assert f"Hi {m.name or m.email}," in texts(m, team, DAY)
    # two teams, each: one render for the named members, one for the member without a name
    assert len(renders) == 4


def test_a_template_reading_more_of_a_member_is_rendered_for_each(monkeypatch):
    template = "Hi {{ member.name|upper }} ({{ member.timezone }}) of {{ team.name }} on {{ day }}"
    env = Environment(loader=DictLoader({"email/reminder.txt": template}), undefined=StrictUndefined)
    monkeypatch.setattr(render, "environment", lambda: env)
    texts = ReminderTexts(get_settings())
    team = Team(id=1, name="A", timezone="UTC")
    ana, bo = _members([("Ana", "ana@x.example"), ("Bo", "bo@x.example")])
    ana.timezone, bo.timezone = "Europe/Berlin", "Asia/Tokyo"
    assert texts(ana, team, DAY) == "Hi ANA (Europe/Berlin) of A on 2026-11-23"
    assert texts(bo, team, DAY) == "Hi BO (Asia/Tokyo) of A on 2026-11-23"


def test_a_template_changing_the_name_is_rendered_for_each(monkeypatch):
    template = "Hi {{ member.name|upper }} <{{ member.email }}>"
    env = Environment(loader=DictLoader({"email/reminder.txt": template}))
    monkeypatch.setattr(render, "environment", lambda: env)
    texts = ReminderTexts(get_settings())
    team = Team(id=1, name="A", timezone="UTC")
    ana, bo = _members([("Ana", "ana@x.example"), ("Bo", "bo@x.example")])
    assert texts(ana, team, DAY) == "Hi ANA <ana@x.example>"
    assert texts(bo, team, DAY) == "Hi BO <bo@x.example>"
