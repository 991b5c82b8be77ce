import pytest

from app.relay import tracking
from app.relay.tracking import _rewrite, add_tracking, make_token, verify_token

SECRET = "test-secret-key-0123456789-abcdefXYZ"
BASE = "https://donebox.test"

PAGES = [
    "<html><body><p>Hi</p></body></html>",
    "<p>no html or body tags, <a href='https://example.org/a?x=1&amp;y=2'>one</a></p>",
    "<body>"
    + "".join(f'<a href="https://example.org/t/{i}" class="l">{i}</a>' for i in range(30))
    + "</body>",
    '<body><a href="mailto:a@example.org">m</a><a href=" HTTP://Example.org/up ">u</a><a>none</a></body>',
    '<body><a href="https://example.org/é">ü</a><img src="https://example.org/i.png"></body>',
]


@pytest.mark.parametrize("html", PAGES)
def test_tracking_from_a_kept_plan_is_what_rewriting_the_page_gives(html):
    for message_id in (1, 42, 987654321):  # the first call makes the plan, the others reuse it
        expected = _rewrite(
            html, base_url=BASE, token=lambda kind, i, mid=message_id: make_token(SECRET, mid, kind, i)
        )
        assert add_tracking(html, base_url=BASE, secret=SECRET, message_id=message_id) == expected


def test_each_message_gets_its_own_signed_tokens():
    html = PAGES[2]
    a, links = add_tracking(html, base_url=BASE, secret=SECRET, message_id=7)
    b, _ = add_tracking(html, base_url=BASE, secret=SECRET, message_id=8)
    assert links == [f"https://example.org/t/{i}" for i in range(30)]
    token = a.split("/t/c/")[5].split('"')[0]
    assert verify_token(SECRET, token, "c") == tracking.Token(7, "c", 4)
    assert "/t/o/8." in b and "/t/o/7." not in b


@pytest.mark.parametrize(
    "html", PAGES + ["<body>" + "é ✓ 🙂 " * 500 + "<a href='https://e.org/x'>x</a></body>"]
)
def test_a_packed_plan_unpacks_to_the_plan_and_is_smaller_than_its_text_when_long(html):
    plan = tracking.plan_of(html, BASE)
    packed = plan.packed()
    assert packed.plan() == plan
    if len(html) > 2000:
        assert len(packed.texts_packed) < len("".join(plan.texts)) / 10


# ---------------------------------------------------------------- a page without links, unparsed

INLINED = [  # as css_inline writes the relay's renders (app.relay.render.render_parts)
    "<!doctype html><html><head><style>p{color:red}</style></head>"
    "<body><p>Hi Ñandú &amp; co</p></body></html>",
    "<p>no html or body tags</p>",
    "<html><body><abbr title='x'>a</abbr><area href='https://example.org/m'><p>é ✓ 🙂</p></body></html>",
    "<html><body><!-- a comment --><table><tr><td>cell</td></tr></table></body></html> ",
]


@pytest.mark.parametrize("page", INLINED)
def test_a_page_without_links_is_tracked_unparsed_as_a_parse_tracks_it(page):
    from selectolax.lexbor import LexborHTMLParser

    from app.relay.render import _inliner

    html = _inliner().inline(page)
    plan = tracking.linkless_plan(html, BASE)
    assert plan is not None
    token = lambda kind, i: make_token(SECRET, 5, kind, i)  # noqa: E731
    got, links = add_tracking(html, base_url=BASE, secret=SECRET, message_id=5, plan=plan)
    expected, _ = _rewrite(html, base_url=BASE, token=token)
    assert links == []
    assert LexborHTMLParser(got).html == LexborHTMLParser(expected).html  # the same document
    assert LexborHTMLParser(got).body.last_child.attributes["src"] == f"{BASE}/t/o/{token('o', None)}"


def test_a_rendered_reminder_is_tracked_unparsed(reminder_context):
    from app.relay.render import render_parts

    _, html = render_parts("reminder", reminder_context)
    assert tracking.linkless_plan(html, BASE) is not None


@pytest.mark.parametrize(
    "page",
    [
        "<html><body><p><a href='https://example.org/'>a link</a></p></body></html>",
        "<html><body><A HREF='https://example.org/'>a link</A></body></html>",
        "<html><body><script>var s = '</body>';</script><p>x</p></body></html>",
    ],
)
def test_a_page_with_a_link_or_a_second_body_end_is_parsed(page):
    from app.relay.render import _inliner

    assert tracking.linkless_plan(_inliner().inline(page), BASE) is None
    assert tracking.linkless_plan("<p>no end tag</p>", BASE) is None
