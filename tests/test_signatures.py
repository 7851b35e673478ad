"""Webhook signatures checked by an independent implementation (SPEC §2).

The `standardwebhooks` package (the reference library of the Standard
Webhooks specification, from PyPI) verifies what a real mininq server sent
to a real receiver: the signature over `id.timestamp.body`, the timestamp
tolerance and the header names. Our own test in test_delivery.py recomputes
the HMAC by hand; this one would catch a misreading shared by both.
"""

from __future__ import annotations

import base64

import pytest
from conftest import MakeServer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from support import Receiver

SECRET = "whsec_" + base64.b64encode(b"independent check of signatures!").decode()

PAYLOADS = [
    {},
    {"order": 1234, "total": "19.99", "items": [{"sku": "A-1", "qty": 2}]},
    {"text": "ünïcödé ✓ 漢字 \u2028 emoji 🎉", "quote": "\"'<>&"},
    [1, 2.5, None, True, "x" * 5000],
    "just a string",
]


def test_standardwebhooks_verifies_every_delivery(
    make_server: MakeServer, receiver: Receiver, qname: str
) -> None:
    srv = make_server(f'[webhooks]\nsigning_secret = "{SECRET}"\n')
    path = receiver.new_path()
    with srv.client() as api:
        jobs = [
            api.post("/jobs", json={"callback_url": receiver.url(path), "queue_name": qname,
                                    "payload": payload}).expect(201)
            for payload in PAYLOADS
        ]
    hits = receiver.wait_for(path, len(PAYLOADS), timeout=15)
    by_id = {h.headers["webhook-id"]: h for h in hits}
    assert set(by_id) == {j["id"] for j in jobs}
    verifier = Webhook(SECRET)
    for job in jobs:
        hit = by_id[job["id"]]
        assert verifier.verify(hit.body, hit.headers) == job["payload"], hit.headers

    hit = by_id[jobs[1]["id"]]
    with pytest.raises(WebhookVerificationError):
        verifier.verify(hit.body.replace(b"1234", b"1235"), hit.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"some other secret").decode()).verify(
            hit.body, hit.headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(hit.body, {**hit.headers, "webhook-id": jobs[0]["id"]})
