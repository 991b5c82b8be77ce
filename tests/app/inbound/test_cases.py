"""The cuts people moved as reply-extraction cases: masked, in the shared corpus's format, written by
``donebox replies export-cases``."""

from __future__ import annotations

import json

from app.cli import main
from app.inbound.cases import INSTANCE, Masker
from tests.app.inbound.test_corrections import WRONGLY_CUT, move, replied, user

# the fields of every line of the shared reply corpus (replies-dev.jsonl and its README)
CORPUS_FIELDS = sorted(
    ("id", "source", "repo", "lang", "kind", "input", "expected", "strips", "assertion", "match")
    + ("expected_format", "notes")
)


def test_addresses_become_placeholders_the_same_address_the_same_one():
    m = Masker([])
    out = m.mask(
        "Write to Bob.Smith@Corp.example or bob.smith@corp.example, not reply+12-20261123-ab3f@reply.test"
    )
    assert out == "Write to user1@example.com or user1@example.com, not user2@example.com"


def test_names_of_the_team_and_beside_addresses_become_member_placeholders_in_every_text_of_a_case():
    m = Masker(["Ada Lovelace", "Bob"], teams=["Rocket"])
    m.learn(
        'On Mon, Nov 23, 2026 at 17:00, Carol Danvers <carol@x.example> wrote:\n"Eve, Mallory" <e@x.example>'
    )
    text = m.mask(
        "Paired with Bob and ada on the Rocket launch\nCheers,\nAda\n"
        "On Mon, Nov 23, 2026 at 17:00, Carol Danvers <carol@x.example> wrote:\n> Carol"
    )
    assert "Bob" not in text and "Ada" not in text and "ada" not in text and "Carol" not in text
    assert "Danvers" not in text and "Rocket" not in text and "the Team1 launch" in text
    assert text.startswith("Paired with Member")
    assert "On Mon, Nov 23, 2026 at 17:00, Member" in text and "<user1@example.com> wrote:" in text
    again = m.mask("Thanks Bob")  # the case's expected text: the same placeholder as its input
    assert again == "Thanks " + text.split("Paired with ")[1].split(" ")[0]
    assert "Eve" not in m.mask("Eve wrote it") and "Mallory" not in m.mask("Mallory too")


def test_mentions_and_links_to_this_instance_are_masked_and_html_escaped_addresses_too():
    m = Masker([], "http://donebox.test")
    m.learn("Ada Byron &lt;ada@x.example&gt;")
    out = m.mask(
        "Reviewed @bob.smith's change, see http://donebox.test/teams/1?day=2026-11-23 and "
        '<a href="http://donebox.test/t/c/SIGNED">this</a>; Ada Byron &lt;ada@x.example&gt;'
    )
    assert "@member1's change" in out and "bob" not in out
    assert f"see {INSTANCE} and" in out and f'href="{INSTANCE}"' in out and "SIGNED" not in out
    assert "Ada" not in out and "Byron" not in out and "user1@example.com" in out


def test_the_latest_correction_of_each_reply_is_exported_masked_in_the_corpus_format(team, tmp_path, capsys):
    iid = replied(WRONGLY_CUT + "\nBob\nbob@example.com\n")
    other = replied("Fixed the login bug\n\nThanks,\nAda\n", email="ada@example.com", n=2)
    user("bob@example.com")
    user("ada@example.com")
    move(iid, 3, "bob@example.com")
    move(iid, 4, "bob@example.com")  # the later word on the same reply
    move(other, 4, "ada@example.com")
    out = tmp_path / "cases.jsonl"
    assert main(["replies", "export-cases", "--out", str(out)]) == 0
    assert "2 reply cases written to" in capsys.readouterr().err
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    assert [sorted(c) for c in cases] == [CORPUS_FIELDS, CORPUS_FIELDS]
    bob, ada = cases
    assert bob["id"].startswith("local-") and bob["repo"] == "local" and bob["kind"] == "plain"
    assert (bob["strips"], bob["match"], bob["expected_format"]) == (
        "quotes+signature",
        "ws_normalized",
        "text",
    )
    assert bob["assertion"] == "corrected_by_author" and ada["assertion"] == "corrected_by_author"
    assert bob["expected"] == "Shipped the export\n--\nFixed the flaky test\nReviewed the docs"
    assert bob["notes"].startswith(
        "donebox's extractor ended the reply at line 1 (rule signature:delimiter, confidence low); "
        "the reply's author said it ends at line 4."
    )
    for case in cases:
        blob = json.dumps(case)
        assert "example.com" not in blob.replace("user1@example.com", "")
        assert "Bob" not in blob and "Ada" not in blob and "Rocket" not in blob
    assert "Member1\r\nuser1@example.com" in bob["input"]
    assert ada["expected"] == "Fixed the login bug\n\nThanks,\nMember1"
    # to standard output, one team's only; a file that cannot be written is said so
    assert main(["replies", "export-cases", "--team", str(team.id + 1)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "0 reply cases written" in captured.err
    assert main(["replies", "export-cases", "--out", str(tmp_path / "no" / "such" / "dir.jsonl")]) == 1
    assert "cannot write" in capsys.readouterr().err
