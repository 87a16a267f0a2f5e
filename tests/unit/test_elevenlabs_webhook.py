"""The post-call webhook: signature checks and event parsing."""

from __future__ import annotations

import json

import pytest

from callflow.providers.elevenlabs.client import (
    WebhookPayloadError,
    WebhookSignatureError,
    parse_post_call,
    sign_webhook,
    verify_delivery,
    verify_webhook,
)
from tests.unit.elevenlabs_fixtures import conversation, post_call

SECRET = "wsec_test_secret"
NOW = 1_790_000_100


def _signed(body: dict[str, object], *, at: int = NOW, secret: str = SECRET) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, sign_webhook(raw, secret, at)


def test_valid_signature_returns_the_parsed_body() -> None:
    raw, header = _signed(post_call())
    assert verify_webhook(raw, header, SECRET, now=NOW) == json.loads(raw)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Independent computation with the documented recipe, not through sign_webhook.
    import hashlib
    import hmac

    raw = b'{"type":"post_call_transcription"}'
    digest = hmac.new(SECRET.encode(), b"1790000000." + raw, hashlib.sha256).hexdigest()
    assert sign_webhook(raw, SECRET, 1790000000) == f"t=1790000000,v0={digest}"


def test_tampered_body_is_rejected() -> None:
    raw, header = _signed(post_call())
    tampered = raw.replace(b"Maria", b"Mario")
    with pytest.raises(WebhookSignatureError, match="mismatch"):
        verify_webhook(tampered, header, SECRET, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    raw, header = _signed(post_call(), secret="another_secret")
    with pytest.raises(WebhookSignatureError, match="mismatch"):
        verify_webhook(raw, header, SECRET, now=NOW)


def test_timestamp_older_than_max_age_is_rejected() -> None:
    raw, header = _signed(post_call(), at=NOW - 1801)
    with pytest.raises(WebhookSignatureError, match="too old"):
        verify_webhook(raw, header, SECRET, now=NOW)


def test_timestamp_just_inside_max_age_is_accepted() -> None:
    raw, header = _signed(post_call(), at=NOW - 60)
    assert verify_webhook(raw, header, SECRET, max_age_s=61, now=NOW)["type"] == (
        "post_call_transcription"
    )


def test_timestamp_far_in_the_future_is_rejected() -> None:
    raw, header = _signed(post_call(), at=NOW + 3600)
    with pytest.raises(WebhookSignatureError, match="future"):
        verify_webhook(raw, header, SECRET, now=NOW)


def test_replayed_signature_with_a_fresh_timestamp_is_rejected() -> None:
    raw, header = _signed(post_call(), at=NOW - 5000)
    digest = header.partition(",v0=")[2]
    with pytest.raises(WebhookSignatureError, match="mismatch"):
        verify_webhook(raw, f"t={NOW},v0={digest}", SECRET, now=NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        (f"t=abc,v0={'0' * 64}", "malformed"),
        (f"v0={'0' * 64}", "lacks"),
        (f"t={NOW}", "lacks"),
    ],
)
def test_missing_or_malformed_header_is_rejected(header: str | None, reason: str) -> None:
    raw = json.dumps(post_call()).encode()
    with pytest.raises(WebhookSignatureError, match=reason) as caught:
        verify_webhook(raw, header, SECRET, now=NOW)
    assert reason in caught.value.reason


def test_any_matching_v0_among_several_is_accepted() -> None:
    raw, header = _signed(post_call())
    digest = header.partition(",v0=")[2]
    assert verify_webhook(raw, f"t={NOW},v0={'f' * 64},v0={digest}", SECRET, now=NOW)


def test_a_verified_delivery_is_named_by_the_signature_that_matched() -> None:
    """The replay cache keys on it: the same for every resend of a delivery, whatever other
    ``v0`` values the header carries, and different for another timestamp."""
    raw, header = _signed(post_call())
    digest = header.partition(",v0=")[2]
    delivery = verify_delivery(raw, f"t={NOW},v0={'f' * 64},v0={digest}", SECRET, now=NOW)
    assert (delivery.timestamp, delivery.signature) == (NOW, digest)
    assert delivery.payload == json.loads(raw)
    later = verify_delivery(raw, sign_webhook(raw, SECRET, NOW + 1), SECRET, now=NOW)
    assert later.signature != digest


def test_empty_secret_refuses_everything() -> None:
    raw, header = _signed(post_call(), secret="")
    with pytest.raises(WebhookSignatureError, match="secret"):
        verify_webhook(raw, header, "", now=NOW)


def test_signed_body_that_is_not_a_json_object_is_a_payload_error() -> None:
    raw = b"[1, 2]"
    with pytest.raises(WebhookPayloadError, match="JSON object"):
        verify_webhook(raw, sign_webhook(raw, SECRET, NOW), SECRET, now=NOW)


def test_transcription_event_exposes_the_conversation_and_its_variables() -> None:
    event = parse_post_call(post_call())
    assert event.type == "post_call_transcription"
    assert event.event_timestamp == 1790000020
    assert event.conversation_id == "conv_0101k0example"
    assert event.conversation.dynamic_variables == {
        "first_name": "Maria",
        "company": "Acme",
        "score": 7,
    }
    assert event.conversation.results()["data_collection"]["monthly_bill"] == 150


def test_initiation_failure_event_is_parsed_without_a_conversation() -> None:
    event = parse_post_call(
        post_call(
            "call_initiation_failure",
            agent_id="agent_7101k0example",
            conversation_id="conv_x",
            failure_reason="busy",
            metadata={"type": "twilio", "body": {}},
        )
    )
    assert (event.type, event.conversation_id) == ("call_initiation_failure", "conv_x")
    with pytest.raises(ValueError, match="no conversation"):
        _ = event.conversation


def test_an_event_type_added_later_is_accepted_as_it_is() -> None:
    event = parse_post_call(post_call("post_call_something_else", anything="goes"))
    assert event.type == "post_call_something_else"


def test_a_transcription_with_new_role_and_verdict_values_is_accepted() -> None:
    body = conversation()
    body["transcript"][1]["role"] = "supervisor"
    body["analysis"]["call_successful"] = "partial"
    body["analysis"]["evaluation_criteria_results"]["qualified"]["result"] = "inconclusive"
    results = parse_post_call(post_call(**body)).conversation.results()
    assert results["transcript"][1]["role"] == "supervisor"
    assert results["call_successful"] == "partial"
    assert results["evaluation"] == {"qualified": "inconclusive"}


def test_transcription_event_with_a_broken_conversation_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        parse_post_call(post_call(**conversation(status=None)))
