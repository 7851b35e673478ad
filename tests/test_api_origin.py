"""Requests from another site's page can't change anything; same-site and
non-browser clients can."""

from __future__ import annotations


def test_cross_site_post_is_refused(api, receiver, qname):
    body = {"callback_url": receiver.url(receiver.new_path()), "queue_name": qname}
    r = api.post("/jobs", json=body, headers={"Origin": "https://evil.example"})
    assert r.status == 403, r.text
    assert r.json["error"].startswith("origin:")
    assert api.get("/jobs", queue=qname).json == []


def test_cross_site_pause_is_refused(api, receiver, qname):
    api.post("/queues", json={"name": qname}).expect(201)
    r = api.post(f"/queues/{qname}/pause", headers={"Origin": "null"})
    assert r.status == 403, r.text
    assert api.get(f"/queues/{qname}").json["paused"] is False


def test_same_origin_and_no_origin_pass(server, api, receiver, qname):
    body = {"callback_url": receiver.url(receiver.new_path()), "queue_name": qname}
    same = f"http://127.0.0.1:{server.port}"
    assert api.post("/jobs", json=body, headers={"Origin": same}).status == 201
    assert api.post("/jobs", json=body).status == 201
    assert len(api.get("/jobs", queue=qname).json) == 2
