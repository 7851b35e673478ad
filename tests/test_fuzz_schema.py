"""Property-based fuzzing of every operation of /openapi.json against a live server.

Schemathesis generates requests from the server's own OpenAPI document, ones
that fit it and ones that break it, with a fixed seed and a bounded number of
examples per operation. A case fails on a 5xx, a stack trace in a body, an
answer that doesn't match what the document says (status code, content type,
body schema), input the document forbids that the server takes anyway, and any
server log line at error level.

The server delivers nothing (see support/fuzz.py): no generated callback URL
is ever requested.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from support import MininqServer
from support.fuzz import LogWatch, assert_nothing_delivered, no_delivery_server, summary_lines

from mininq.api.openapi import build_document

SEED = 20261205
MAX_EXAMPLES = 100  # per operation, for each of valid and invalid input
TOKEN_EXAMPLES = 25  # the same with server.api_token set
TOKEN = "fuzz-token-not-secret"
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
SENT: Counter[str] = Counter()  # requests per operation, printed at the end
SENT_WITH_TOKEN: Counter[str] = Counter()


def _schema(token: bool, examples: int, checks: list[str]) -> schemathesis.BaseSchema:
    """The document is built in-process, at collection time, before any server runs;
    test_the_live_document_is_the_fuzzed_one checks the server serves the same."""
    config = {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": examples, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
    }
    return schemathesis.openapi.from_dict(
        build_document(token=token), config=schemathesis.Config.from_dict(config)
    )


schema = _schema(False, MAX_EXAMPLES, CHECKS)
# With a token, requests without it (or with a wrong one) must be refused too.
schema_with_token = _schema(True, TOKEN_EXAMPLES, [*CHECKS, "ignored_auth"])
DOCUMENT = build_document(token=False)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    with no_delivery_server(tmp_path_factory.mktemp("fuzz-schema")) as server:
        log = LogWatch(server)
        yield server, log
        _report(request, server)
        assert not log.new_errors(), server.log_tail()
        assert_nothing_delivered(server)


@pytest.fixture(scope="module")
def fuzzed_with_token(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    with no_delivery_server(tmp_path_factory.mktemp("fuzz-token"), token=TOKEN) as server:
        log = LogWatch(server)
        yield server, log
        summary_lines(request.config).append(
            f"schemathesis fuzz with api_token set: seed {SEED}, at most {TOKEN_EXAMPLES} "
            f"examples per operation and mode, {len(SENT_WITH_TOKEN)} operations, "
            f"{sum(SENT_WITH_TOKEN.values())} requests sent"
        )
        assert not log.new_errors(), server.log_tail()
        assert_nothing_delivered(server)


def _report(request: pytest.FixtureRequest, server: MininqServer) -> None:
    """Print what was sent. When every operation's test was selected, check each one
    sent requests: a run that sent nothing (a schema that failed to load) is no pass."""
    total = sum(SENT.values())
    line = (
        f"schemathesis fuzz: seed {SEED}, at most {MAX_EXAMPLES} examples per operation "
        f"and mode (valid, invalid), {len(SENT)} operations, {total} requests sent"
    )
    summary_lines(request.config).append(line)
    selected = [
        item for item in request.session.items
        if getattr(item, "originalname", "") == test_every_operation_against_its_schema.__name__
    ]  # fmt: skip
    document = server.client().get("/openapi.json").expect(200)
    operations = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    if len(selected) == len(operations) and not request.session.testsfailed:
        assert operations - set(SENT) == set(), f"operations the fuzz never called; sent {SENT}"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_against_its_schema(case: schemathesis.Case, fuzzed) -> None:
    server, log = fuzzed
    SENT[case.operation.label] += 1
    _call(case, server, log)


@schema_with_token.parametrize()
@settings(
    max_examples=TOKEN_EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_with_a_token(case: schemathesis.Case, fuzzed_with_token) -> None:
    server, log = fuzzed_with_token
    SENT_WITH_TOKEN[case.operation.label] += 1
    _call(case, server, log, headers={"Authorization": f"Bearer {TOKEN}"})


def _call(case: schemathesis.Case, server: MininqServer, log: LogWatch, **kwargs) -> None:
    response = case.call_and_validate(base_url=server.url, timeout=30, **kwargs)
    assert "Traceback" not in response.text, response.text[:2000]
    errors = log.new_errors()
    assert not errors, f"server logged errors on {case.method} {case.formatted_path}: {errors}"


def test_the_live_document_is_the_fuzzed_one(fuzzed) -> None:
    server, _ = fuzzed
    assert server.client().get("/openapi.json").expect(200) == DOCUMENT


def test_the_live_document_with_a_token_is_the_fuzzed_one(fuzzed_with_token) -> None:
    server, _ = fuzzed_with_token
    with server.client(token=TOKEN) as client:
        assert client.get("/openapi.json").expect(200) == build_document(token=True)
