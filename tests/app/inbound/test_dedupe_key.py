"""dedupe_key: the same mail by two paths is one key, whatever case its recipient arrived in."""

from app.inbound.accept import dedupe_key
from parsers.providers import Keys


def test_the_recipient_part_of_a_message_id_key_ignores_case():
    upper = dedupe_key("sendgrid", Keys(message_id="<a@example.com>", envelope_to=("Team@Reply.Test",)))
    lower = dedupe_key("raw", Keys(message_id="<a@example.com>", envelope_to=("team@reply.test",)))
    assert upper == lower == "msgid:<a@example.com>|team@reply.test"
