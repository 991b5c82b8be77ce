import dataclasses

import pytest

from app.errors import PermanentSendError, TransientSendError
from app.relay.transports.sendgrid import SendGridTransport
from tests.app.relay.transports import sendgrid_server
from tests.app.relay.transports.smtp_server import free_port
from tests.app.relay.transports.test_smtp import outgoing


@pytest.fixture
def v3():
    srv = sendgrid_server.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def transport(srv, key=sendgrid_server.API_KEY):
    return SendGridTransport(f"sendgrid+http://{key}@127.0.0.1:{srv.server_address[1]}")


def test_a_message_is_accepted_with_its_provider_id_and_our_id_in_custom_args(v3):
    o = outgoing(to="zoe@example.com", text="Grüße")
    r = transport(v3).send(o)
    ((msg_id, mail),) = v3.accepted
    assert r.provider_id == msg_id and r.transport == "sendgrid" and msg_id in r.response
    p = mail["personalizations"][0]
    assert p["to"] == [{"email": "zoe@example.com"}] and p["custom_args"] == {"donebox_id": "1"}
    assert mail["from"] == {"email": "donebox@mail.test", "name": "donebox"} and mail["subject"] == "Hi"
    assert [c["type"] for c in mail["content"]] == ["text/plain", "text/html"]
    assert "Grüße" in mail["content"][0]["value"]
    assert mail["headers"]["Message-ID"] == "<m1@mail.test>" and "To" not in mail["headers"]


def test_429_is_transient_and_honours_retry_after(v3):
    v3.script.append((429, {"Retry-After": "17"}))
    with pytest.raises(TransientSendError) as e:
        transport(v3).send(outgoing())
    assert e.value.retry_in_s == 17 and not e.value.connection


def test_5xx_is_transient(v3):
    v3.script.append((503, {}))
    with pytest.raises(TransientSendError) as e:
        transport(v3).send(outgoing())
    assert "503" in str(e.value)


def test_400_is_permanent_with_the_reason(v3):
    v3.script.append((400, {}))
    with pytest.raises(PermanentSendError) as e:
        transport(v3).send(outgoing())
    assert "400" in str(e.value) and "scripted 400" in str(e.value) and not e.value.block


def test_a_refused_key_is_a_failure_of_the_sender(v3):
    with pytest.raises(PermanentSendError) as e:
        transport(v3, key="SG.wrong").send(outgoing())
    assert e.value.connection and "401" in str(e.value)


def test_an_unreachable_api_is_a_connection_failure():
    t = SendGridTransport(f"sendgrid+http://key@127.0.0.1:{free_port()}")
    with pytest.raises(TransientSendError) as e:
        t.send(outgoing())
    assert e.value.connection


def test_a_url_without_a_key_is_refused():
    with pytest.raises(ValueError, match="api key"):
        SendGridTransport("sendgrid://api.sendgrid.com")


def test_the_pipeline_stores_the_provider_id_and_sends_our_id(team, v3):
    from app.relay.pipeline import deliver
    from app.relay.transports.memory import MemoryTransport
    from tests.app.relay.test_routing import add_senders, message_to, row
    from tests.conftest import FIXED_NOW

    add_senders(team, [("sg", f"sendgrid+http://{sendgrid_server.API_KEY}@127.0.0.1:{v3.server_address[1]}")])
    mid = message_to(team, "ada@example.com")
    assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    ((msg_id, mail),) = v3.accepted
    r = row(mid)
    assert (r.sender, r.provider_id) == ("sg", msg_id) and msg_id in r.provider_response
    assert mail["personalizations"][0]["custom_args"] == {"donebox_id": str(mid)}


def test_a_composed_message_is_refused_for_good_rather_than_sent_without_its_parts(v3):
    o = outgoing()
    composed = dataclasses.replace(o, parts=dataclasses.replace(o.parts, composed=True))
    with pytest.raises(PermanentSendError, match="route it through an SMTP sender"):
        transport(v3).send(composed)
    assert v3.accepted == []
