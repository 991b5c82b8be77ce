from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from app.checkins.reply_tokens import reply_address, reply_token, token_from_address, verify_reply_token

SECRET = "s3cret-for-tokens"


def test_a_reply_token_names_its_member_and_day():
    token = reply_token(SECRET, 42, date(2026, 11, 23))
    assert verify_reply_token(SECRET, token) == (42, date(2026, 11, 23))


def test_a_token_survives_mail_systems_that_fold_case():
    token = reply_token(SECRET, 7, date(2026, 1, 2))
    assert verify_reply_token(SECRET, token.upper()) == (7, date(2026, 1, 2))


def test_a_token_signed_with_another_secret_is_refused():
    assert verify_reply_token(SECRET, reply_token("other-secret", 7, date(2026, 1, 2))) is None


def test_changing_the_member_or_the_day_breaks_the_signature():
    token = reply_token(SECRET, 7, date(2026, 1, 2))
    member, day, sig = token.split("-")
    assert verify_reply_token(SECRET, f"8-{day}-{sig}") is None
    assert verify_reply_token(SECRET, f"{member}-20260103-{sig}") is None


def test_the_address_is_only_recognised_on_our_reply_domain():
    addr = reply_address(SECRET, "reply.example.com", 3, date(2026, 5, 6))
    assert token_from_address(addr, "reply.example.com") == reply_token(SECRET, 3, date(2026, 5, 6))
    assert token_from_address(addr, "evil.example.com") is None
    assert token_from_address("bob@reply.example.com", "reply.example.com") is None
    assert token_from_address(addr, "reply.example.com", "unsubscribe") is None
    unsub = "unsubscribe+7.m.00ff@Reply.Example.com"
    assert token_from_address(unsub, "reply.example.com", "unsubscribe") == "7.m.00ff"
    assert token_from_address(unsub, "reply.example.com") is None
    assert token_from_address(unsub, "evil.example.com", "unsubscribe") is None


@given(st.text(max_size=80))
def test_arbitrary_tokens_never_raise_and_never_verify(junk):
    assert verify_reply_token(SECRET, junk) is None


@given(st.text(min_size=1, max_size=40), st.text(max_size=60))
def test_a_signature_is_the_first_characters_of_the_whole_macs_base32(secret, payload):
    """The signature encodes only the MAC's first bytes: the same characters as encoding it whole."""
    import base64
    import hashlib
    import hmac

    from app.checkins.reply_tokens import SIG_CHARS, _sig

    whole = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    assert _sig(secret, payload) == base64.b32encode(whole).decode().lower()[:SIG_CHARS]
