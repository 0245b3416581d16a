"""Standard Webhooks signatures, checked by the reference verifier from PyPI (``standardwebhooks``), not by
our own code: a fresh secret's shape, single and rotated (two signature) headers, and tampering refused."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from upgestao_integrations.domain.signing import (
    new_secret,
    secret_bytes,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

BODY = '{"data":{"body":"olá, tudo bem? ✓","customer_id":"c1"},"timestamp":"2026-01-01T00:00:00.000Z","type":"m"}'


def _now() -> int:
    return int(time.time())


def test_a_new_secret_is_whsec_and_32_random_bytes():
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert secret_bytes(first) == base64.b64decode(first[6:])


@pytest.mark.parametrize("bad", ["", "abc", "whsec_", "whsec_!!!notbase64",
                                 "whsec_" + base64.b64encode(b"x" * 8).decode(),
                                 "sk_" + base64.b64encode(b"y" * 32).decode()])
def test_a_bad_secret_is_refused_without_quoting_it(bad):
    with pytest.raises(ValueError) as refused:
        secret_bytes(bad)
    assert all(part not in str(refused.value) for part in ("notbase64", "eHh4", "eXl5"))


def test_the_reference_verifier_accepts_our_signature():
    secret, stamp, body = new_secret(), _now(), BODY.encode()
    headers = webhook_headers("msg_2f1c", stamp, body, [secret])
    assert headers["webhook-id"] == "msg_2f1c"
    assert headers["webhook-timestamp"] == str(stamp)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "UpGestao-Webhooks/1"
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(body, headers) == __import__("json").loads(BODY)


def test_the_signature_is_the_spec_example():
    # the example of the Standard Webhooks specification (and of the reference libraries' tests)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_during_a_rotation_either_secret_verifies_and_a_stranger_does_not():
    old, new, stranger = new_secret(), new_secret(), new_secret()
    stamp, body = _now(), BODY.encode()
    headers = webhook_headers("msg_rot", stamp, body, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert signatures[0] == sign(new, "msg_rot", stamp, body)
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)


@pytest.mark.parametrize("tamper", ["body", "timestamp", "id", "signature"])
def test_tampering_fails_the_reference_verifier(tamper):
    secret, stamp, body = new_secret(), _now(), BODY.encode()
    headers = webhook_headers("msg_t", stamp, body, [secret])
    if tamper == "body":
        body = body.replace(b"c1", b"c2")
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(stamp - 1)
    elif tamper == "id":
        headers["webhook-id"] = "msg_u"
    else:
        raw = bytearray(base64.b64decode(headers["webhook-signature"][3:]))
        raw[0] ^= 1
        headers["webhook-signature"] = "v1," + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_a_stale_timestamp_fails_the_reference_verifier():
    secret, body = new_secret(), BODY.encode()
    stamp = _now() - 3600
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, webhook_headers("msg_old", stamp, body, [secret]))


def test_our_verify_matches_sign():
    secret, other = new_secret(), new_secret()
    header = signature_header([other, secret], "msg_v", 10, b"{}")
    assert verify(secret, "msg_v", 10, b"{}", header)
    assert not verify(secret, "msg_v", 11, b"{}", header)
    assert not verify(new_secret(), "msg_v", 10, b"{}", header)


def test_one_signature_per_distinct_secret():
    secret = new_secret()
    assert len(signature_header([secret, secret], "msg_d", 1, b"").split(" ")) == 1
    with pytest.raises(ValueError):
        signature_header([], "msg_d", 1, b"")
    with pytest.raises(ValueError):
        signature_header(secret, "msg_d", 1, b"")  # a bare string is not a list of secrets


@pytest.mark.parametrize(("msg_id", "stamp"), [("", 1), ("msg.1", 1), ("msg 1", 1), ("msg_1", -1), ("msg_1", True),
                                               ("msg_1", 1.5)])
def test_ids_and_timestamps_that_would_make_the_signed_string_ambiguous_are_refused(msg_id, stamp):
    with pytest.raises(ValueError):
        sign(new_secret(), msg_id, stamp, b"{}")
