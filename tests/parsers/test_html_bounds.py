"""HTML budgets: hostile nesting is flattened before lexbor builds a tree, ordinary markup is untouched."""

from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from parsers import limits
from parsers.html_bounds import bound_html
from parsers.html_reply import html_lines
from parsers.message import html_to_text
from parsers.reply import extract_reply

TWO_MB = 2_000_000


def tree_depth(html: str) -> int:
    """The depth of the tree lexbor builds: what its tree building pays for on every tag."""
    tree = LexborHTMLParser(html)
    depth = {}
    deepest = 0
    for node in tree.root.traverse(include_text=False):
        parent = node.parent
        d = depth.get(parent.mem_id, 0) + 1 if parent is not None else 1
        depth[node.mem_id] = d
        deepest = max(deepest, d)
    return deepest


def repeat(unit: str, size: int = TWO_MB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def test_two_megabytes_of_nested_divs_are_flattened_to_the_depth_budget_and_noted():
    html = repeat("<div>") + "the reply"
    notes: list[str] = []
    assert html_to_text(html, notes).endswith("the reply")
    assert any(f"deeper than {limits.MAX_HTML_DEPTH}" in n for n in notes)
    bounded = bound_html(html)
    assert bounded.tags <= limits.MAX_HTML_NODES + 1 and tree_depth(bounded.html) <= limits.MAX_HTML_DEPTH + 3


def test_interleaved_unclosed_formatting_tags_stay_within_the_budgets():
    for unit in ("<b><i>", "<span><div></span>", "<li><blockquote>", "<td><div>", "<li><ul></li>"):
        bounded = bound_html(repeat(unit, 400_000) + "x")
        assert bounded.max_depth <= limits.MAX_HTML_DEPTH, unit
        assert tree_depth(bounded.html) <= 3 * limits.MAX_HTML_DEPTH, unit


def test_formatting_elements_reopened_after_each_misnested_close_count_as_nodes():
    html = "".join(f"<div><b id={i}></div>x" for i in range(60_000))
    bounded = bound_html(html)
    assert bounded.nodes <= limits.MAX_HTML_NODES + limits.MAX_HTML_DEPTH
    assert any("tags past them were stripped" in n for n in bounded.notes)


def test_a_tag_with_thousands_of_attributes_keeps_the_first_ones_and_notes_it():
    html = "<div " + " ".join(f"a{i}=1" for i in range(50_000)) + ">kept</div>"
    bounded = bound_html(html)
    assert bounded.html.count("=1") == limits.MAX_HTML_ATTRIBUTES and "kept" in bounded.html
    assert any("attributes" in n for n in bounded.notes)


def test_thousands_of_select_options_are_dropped_past_the_budget():
    bounded = bound_html("<select>" + "<option>x</option>" * 5000 + "</select>after")
    kept = bounded.html.count("<option>") + bounded.html.count("</option>") + 1  # and the <select>
    assert kept == limits.MAX_HTML_OPTIONS and bounded.html.endswith("after")


def test_reply_extraction_from_deeply_nested_html_keeps_the_text_and_the_note():
    html = "<p>Shipped the importer</p>" + repeat('<blockquote type="cite">', 500_000) + "old"
    lines, kinds, notes = html_lines(html)
    assert lines[0] == "Shipped the importer" and any("deeper than" in n for n in notes)
    assert extract_reply(html).text == "Shipped the importer"


def test_unterminated_comments_quotes_and_brackets_are_read_once():
    for html in (repeat("<!--"), repeat('<a x="'), repeat("<"), repeat("</ x")):
        bound_html(html)  # linear: each token consumes what it reads


def test_ordinary_markup_within_the_budgets_is_returned_unchanged():
    html = (
        '<html><head><style>p{}</style></head><body><table><tr><td><font color="red">a</td><td>b</table>'
        "<ul><li>one<li>two</ul><p>x<p>y<!-- c --><div><b>bold <i>both</b> italic</i></div></body></html>"
    ) * 300
    bounded = bound_html(html)
    assert bounded.html == html and bounded.notes == ()


TAGS = ("div", "b", "i", "span", "p", "li", "ul", "td", "table", "blockquote", "font", "a", "option", "dd")
TOKEN = st.one_of(
    st.sampled_from(TAGS).map(lambda t: f"<{t}>"),
    st.sampled_from(TAGS).map(lambda t: f"</{t}>"),
    st.sampled_from(("x", " ", "<br>", "<!--c-->")),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(TOKEN, min_size=1, max_size=40), st.integers(min_value=1, max_value=4000))
def test_random_nesting_of_any_size_is_bounded_in_work_depth_and_nodes(pattern, times):
    """The pass reads each tag once, and the tree lexbor then builds stays within the budgets."""
    html = "".join(pattern) * times
    bounded = bound_html(html)
    assert bounded.tags <= html.count("<") and bounded.tags <= limits.MAX_HTML_NODES + 1
    assert bounded.max_depth <= limits.MAX_HTML_DEPTH
    assert bounded.nodes <= limits.MAX_HTML_NODES + limits.MAX_HTML_DEPTH
    assert tree_depth(bounded.html) <= 3 * limits.MAX_HTML_DEPTH + 3
