"""The API answers what its own OpenAPI document says, checked by schemathesis in-process.

The document is loaded from the app (``/api/openapi.json``) and every operation is called
through the ASGI app with generated input, authenticated with a real API token, with a fixed
seed and a bounded number of examples. A run fails on any 5xx, on a status code or content
type the document does not list for the operation, on a body that does not match the listed
schema (the error shape included), on an undocumented method answered without 405 and
``Allow``, on ``OPTIONS`` advertising other methods than the document, on a call without
the token that is not refused, on input outside the document that is taken, and on input
inside it refused as invalid (422).

Runs on SQLite and, with ``MAILER_TEST_POSTGRES_URL``, on PostgreSQL (the ``app`` fixture).
Sending goes to the test settings' outbox transport, so nothing leaves the machine.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from mailer.campaigns.models import Campaign
from tests.web.conftest import add_subscriber, add_user

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import engine  # noqa: E402  (after the importorskip)
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.engine import events  # noqa: E402

#: What a failure is. Besides these, ``positive_data_acceptance`` with ``ACCEPTABLE``: input
#: the document allows is never refused as invalid (422). It may be refused by a rule the
#: document cannot state (a release that does not exist, a time in the past), with the
#: documented 400/403/404/409.
CHECKS = (
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance", "unsupported_method",
    "allow_header_conformance", "ignored_auth", "negative_data_rejection",
    "missing_required_header", "use_after_free", "ensure_resource_availability",
)
ACCEPTABLE = ["2xx", 400, 401, 403, 404, 409]
#: Operations that succeed only from a state generated calls rarely reach (a paused or
#: approved campaign); each one's success is tested in test_api.py.
STATE_BOUND = {f"POST /api/campaigns/{{campaign_id}}/{action}"
               for action in ("pause", "resume", "schedule", "retry")}
SEED = 17
#: Generated cases per operation in the fuzzing phase; with the coverage phase's cases the
#: whole run stays around a minute per database on a small machine.
MAX_EXAMPLES = 12
#: The author's run covers fewer operations with fewer cases: it is there for the refusals.
AUTHOR_EXAMPLES = 4


def conformance_config(token: str, max_examples: int) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": max_examples, "deterministic": True},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS},
                   "positive_data_acceptance": {"enabled": True,
                                                "expected-statuses": ACCEPTABLE}},
    })


@pytest.fixture
def api_app(app, settings, db, release_id, topics):
    """The app, with rows for generated ids to find: a release, a subscriber, and a draft
    by a user other than the callers (so an approver may approve it)."""
    # Generated calls send campaigns and confirmation emails: into files, never out.
    assert settings.transport == "outbox"
    add_user(db, "alice", "author")
    add_user(db, "root", "admin")
    add_subscriber(db, "someone@example.org")
    with db.session() as session:
        session.add(Campaign(release_id=release_id, query='status = "active"',
                             subject="A release", created_by="someone else"))
    return app


def schema_for(app, cli, user: str, max_examples: int):
    """The app's own document, calls authenticated with a new token of ``user``."""
    made = cli("tokens", "create", f"conformance-{user}", "--user", user)
    assert made.exit_code == 0, made.stderr
    return schemathesis.openapi.from_asgi(
        "/api/openapi.json", app, config=conformance_config(made.stdout.strip(), max_examples))


@pytest.mark.slow
def test_api_answers_what_its_document_says(api_app, cli):
    schema = schema_for(api_app, cli, "root", MAX_EXAMPLES)
    failures, answers = run_checks(schema)
    assert not failures, "\n\n".join(failures)
    operations = {op.ok().label for op in schema.get_all_operations()}
    # Not a vacuous pass: every operation was called, and answered with success at least once.
    assert set(answers) == operations
    unanswered = {label for label, statuses in answers.items()
                  if not any(200 <= code < 300 for code in statuses)}
    assert unanswered <= STATE_BOUND, answers


@pytest.mark.slow
def test_an_authors_refusals_are_documented_too(api_app, cli):
    """The operations an author may not call answer 403, which the document lists."""
    schema = schema_for(api_app, cli, "alice", AUTHOR_EXAMPLES).include(
        method="POST", path_regex="^/api/campaigns/")
    failures, answers = run_checks(schema)
    assert not failures, "\n\n".join(failures)
    assert 403 in answers["POST /api/campaigns/{campaign_id}/approve"]


def run_checks(schema) -> tuple[list[str], dict[str, set[int]]]:
    """Every failed check and engine error of one schemathesis run, as readable text, and
    the statuses each operation answered.

    The run goes through schemathesis's engine (what its command line runs: the examples,
    coverage and fuzzing phases) rather than its pytest plugin, whose lazy per-operation
    tests do not run under this pytest, and which could not see the per-database ``app``.
    """
    found, answers = [], defaultdict(set)
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                found += [f"{event.label}: {check.name}: {_describe(check.failure_info)}"
                          for check in checks if check.failure_info is not None]
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None and interaction.request.method != "OPTIONS":
                    answers[event.label].add(interaction.response.status_code)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"{getattr(event, 'label', 'run')}: error: {event.info.format()}")
    return sorted(set(found)), dict(answers)


def _describe(info) -> str:
    failure = info.failure
    return f"{failure.title}: {failure.message}\n{info.code_sample}"
