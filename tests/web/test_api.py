"""The JSON API: bearer tokens (made by the CLI), releases, campaigns, subscribers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailer.web.models import ApiToken
from tests.conftest import FEEDS_DIR
from tests.web.conftest import add_subscriber, add_user, outbox_messages


@pytest.fixture
def tokens(cli, db):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")
    made = {}
    for user in ("alice", "bob"):
        result = cli("tokens", "create", f"{user}-script", "--user", user)
        assert result.exit_code == 0, result.stderr
        made[user] = result.stdout.strip()
    return made


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("method, path", [
    ("get", "/api/releases"), ("get", "/api/campaigns"), ("post", "/api/campaigns"),
    ("get", "/api/campaigns/1/status"), ("post", "/api/campaigns/1/approve"),
    ("get", "/api/subscribers"), ("post", "/api/subscribers"),
])
def test_api_refuses_without_a_valid_token(client, tokens, method, path):
    for headers in ({}, auth("mlr_forged"), {"Authorization": "Basic YWxpY2U6eA=="},
                    auth(tokens["alice"] + "x")):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_only_the_tokens_hash_is_stored(db, tokens):
    with db.session() as session:
        stored = list(session.scalars(select(ApiToken.token_hash)))
    assert len(stored) == 2
    assert not set(stored) & set(tokens.values())
    assert all(len(h) == 64 for h in stored)


def test_releases(client, tokens, release_id):
    [release] = client.get("/api/releases", headers=auth(tokens["alice"])).json()
    assert set(release) >= {"id", "title", "subtitle", "date", "dateline", "body", "topics",
                            "source", "link"}
    assert release["date"] == "2014-05-09"
    one = client.get(f"/api/releases/{release_id}", headers=auth(tokens["alice"]))
    assert one.json() == release
    assert client.get("/api/releases/999", headers=auth(tokens["alice"])).status_code == 404


def test_releases_are_listed_searched_and_filtered_as_the_cli_lists_them(cli, client, tokens,
                                                                          topics):
    imported = cli("releases", "import", str(FEEDS_DIR / "ruiz_rss.xml"), "--json")
    assert imported.exit_code == 0, imported.stderr
    tagged = imported.json()[-1]["id"]
    assert cli("releases", "tag", str(tagged), "agriculture").exit_code == 0

    def listed(**params) -> list[int]:
        answer = client.get("/api/releases", params={"limit": 500, **params},
                            headers=auth(tokens["alice"]))
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()]

    # Newest first by release date (then id), as the CLI and the dashboard list them.
    assert listed() == [r["id"] for r in cli("releases", "list", "--json").json()]
    assert listed() != sorted(listed(), reverse=True)
    word = imported.json()[0]["title"].split()[-1]
    found = [r["id"] for r in cli("releases", "list", "--search", word, "--json").json()]
    assert listed(search=word.upper()) == found and 0 < len(found) < len(listed())
    assert listed(search="nosuchwordanywhere") == []
    assert tagged in listed(topic="agriculture")
    assert listed(topic="agriculture") == [
        r["id"] for r in cli("releases", "list", "--topic", "agriculture", "--json").json()]
    unknown = client.get("/api/releases", params={"topic": "nope"},
                         headers=auth(tokens["alice"]))
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]


def test_campaign_create_approve_schedule(client, db, tokens, topics, release_id):
    add_subscriber(db, "farmer@example.org", topics=["agriculture"])
    created = client.post("/api/campaigns", headers=auth(tokens["alice"]), json={
        "release_id": release_id, "query": 'topic = "agriculture"'})
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft" and campaign["created_by"] == "alice"
    cid = campaign["id"]

    own = client.post(f"/api/campaigns/{cid}/approve", headers=auth(tokens["alice"]))
    assert own.status_code == 403
    approved = client.post(f"/api/campaigns/{cid}/approve", headers=auth(tokens["bob"]))
    assert approved.status_code == 200 and approved.json()["approved_by"] == "bob"

    again = client.post(f"/api/campaigns/{cid}/approve", headers=auth(tokens["bob"]))
    assert again.status_code == 409

    past = client.post(f"/api/campaigns/{cid}/schedule", headers=auth(tokens["bob"]),
                       json={"at": "2001-01-01T09:00:00"})
    assert past.status_code == 400
    later = client.post(f"/api/campaigns/{cid}/schedule", headers=auth(tokens["bob"]),
                        json={"at": "2099-01-05T09:00:00"})
    assert later.status_code == 200, later.text
    assert later.json()["status"] == "scheduled"
    when = datetime.fromisoformat(later.json()["scheduled_at"])
    assert when == datetime(2099, 1, 5, 15, 0, tzinfo=UTC)  # 09:00 in Chicago

    status = client.get(f"/api/campaigns/{cid}/status", headers=auth(tokens["alice"])).json()
    assert status["id"] == cid and status["status"] == "scheduled"
    assert "recipients" in status["counts"]

    cancelled = client.post(f"/api/campaigns/{cid}/cancel", headers=auth(tokens["bob"]))
    assert cancelled.json()["status"] == "cancelled"


def test_campaign_errors_are_one_line_json(client, tokens, release_id):
    bad = client.post("/api/campaigns", headers=auth(tokens["alice"]),
                      json={"release_id": release_id, "query": "zip ="})
    assert bad.status_code == 400 and "position" in bad.json()["detail"]
    missing = client.post("/api/campaigns", headers=auth(tokens["alice"]), json={})
    assert missing.status_code == 422 and "release_id" in missing.json()["detail"]
    assert client.get("/api/campaigns/404", headers=auth(tokens["alice"])).status_code == 404


def test_authors_cannot_schedule_through_the_api(client, tokens, release_id):
    cid = client.post("/api/campaigns", headers=auth(tokens["alice"]), json={
        "release_id": release_id, "query": 'status = "active"'}).json()["id"]
    response = client.post(f"/api/campaigns/{cid}/schedule", headers=auth(tokens["alice"]),
                           json={"now": True})
    assert response.status_code == 403


def test_subscribers_add_is_double_opt_in(client, db, settings, tokens, topics):
    added = client.post("/api/subscribers", headers=auth(tokens["bob"]), json={
        "email": "New@Example.org", "topics": ["agriculture"]})
    assert added.status_code == 201, added.text
    assert added.json()["status"] == "pending" and added.json()["email"] == "new@example.org"
    [mail] = outbox_messages(settings)
    assert "confirm" in mail["Subject"].lower()

    found = client.get("/api/subscribers/new@example.org", headers=auth(tokens["alice"]))
    assert found.json()["topics"] == ["agriculture"] and "history" in found.json()
    listed = client.get("/api/subscribers", params={"q": "new@"},
                        headers=auth(tokens["alice"])).json()
    assert [s["email"] for s in listed] == ["new@example.org"]
    assert client.get("/api/subscribers/nobody@example.org",
                      headers=auth(tokens["alice"])).status_code == 404


def test_openapi_documents_the_api(client):
    spec = client.get("/api/openapi.json").json()
    assert "/api/campaigns/{campaign_id}/approve" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert not any(path.startswith("/admin") for path in spec["paths"])


def test_unsubscribe_through_the_api(client, db, tokens):
    add_subscriber(db, "phone@example.org")
    refused = client.post("/api/subscribers/phone@example.org/unsubscribe",
                          headers=auth(tokens["alice"]))
    assert refused.status_code == 403  # an author may not change the list
    done = client.post("/api/subscribers/phone@example.org/unsubscribe",
                       headers=auth(tokens["bob"]))
    assert done.status_code == 200
    assert done.json()["status"] == "unsubscribed" and done.json()["suppressed"] is True
    history = client.get("/api/subscribers/phone@example.org",
                         headers=auth(tokens["alice"])).json()["history"]
    assert history[-1]["cause"] == "staff: bob (api)"


def test_api_reference_is_served_without_cdn_or_inline_script(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "POST /api/campaigns/{campaign_id}/approve" in page.text
    assert "<code>release_id</code>" in page.text
    # Each operation's answers: the statuses, what they mean, the body's shape.
    assert "<td>409</td><td>The campaign&#39;s state does not allow this</td>" in page.text
    assert "<code>list of ReleaseOut</code>" in page.text and "<code>ErrorOut</code>" in page.text
    assert "cdn" not in page.text.lower() and "<script" not in page.text
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]


def test_a_campaign_carries_its_preheader_and_intro(client, tokens, release_id):
    headers = auth(tokens["alice"])
    created = client.post("/api/campaigns", headers=headers, json={
        "release_id": release_id, "query": 'topic = "agriculture"',
        "preheader": "Out this Friday", "intro": "A note.\n\nTwo paragraphs."})
    assert created.status_code == 201, created.text
    assert created.json()["preheader"] == "Out this Friday"
    assert created.json()["intro"] == "A note.\n\nTwo paragraphs."
    shown = client.get(f"/api/campaigns/{created.json()['id']}", headers=headers).json()
    assert (shown["preheader"], shown["intro"]) == ("Out this Friday", "A note.\n\nTwo paragraphs.")
    long = client.post("/api/campaigns", headers=headers, json={
        "release_id": release_id, "query": 'topic = "agriculture"', "preheader": "x" * 151})
    assert long.status_code == 400
    assert "at most 150" in long.json()["detail"]


def test_options_and_405_name_every_method_the_path_takes(client, tokens):
    # GET and POST /api/campaigns are two routes; the router used to name the first only.
    for method in ("OPTIONS", "PUT", "DELETE"):
        response = client.request(method, "/api/campaigns")
        assert response.headers["allow"] == "GET, OPTIONS, POST", method
        assert response.status_code == (204 if method == "OPTIONS" else 405)
    wrong = client.delete("/api/campaigns/1", headers=auth(tokens["bob"]))
    assert wrong.json() == {"detail": "This address does not take that method."}
    assert client.options("/api/campaigns/1/approve").headers["allow"] == "OPTIONS, POST"
    assert client.options("/api/no-such-thing").status_code == 404


def test_the_document_lists_each_error_with_the_body_the_api_sends(client, tokens):
    spec = client.get("/api/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorOut"}
    approve = spec["paths"]["/api/campaigns/{campaign_id}/approve"]["post"]["responses"]
    assert set(approve) == {"200", "400", "401", "403", "404", "409", "422"}
    for code in ("400", "401", "403", "404", "409", "422"):
        assert approve[code]["content"]["application/json"]["schema"] == error, code
    assert "WWW-Authenticate" in approve["401"]["headers"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["ErrorOut"]["required"] == ["detail"]
    # What the API sends for a 422 is that shape: one line under "detail".
    bad = client.get("/api/campaigns", params={"status": "nonsense"},
                     headers=auth(tokens["alice"]))
    assert bad.status_code == 422 and set(bad.json()) == {"detail"}
    assert isinstance(bad.json()["detail"], str) and "status" in bad.json()["detail"]
    assert spec["paths"]["/api/campaigns"]["get"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize("path, body", [
    ("/api/subscribers", {"email": "a@example.org", "double_opt_in": 0}),
    ("/api/subscribers", {"email": "a@example.org", "frequency": "hourly"}),
    ("/api/campaigns", {"release_id": "1", "query": 'topic = "x"'}),
    ("/api/campaigns/1/schedule", {"now": 1}),
])
def test_a_body_the_document_refuses_is_a_422(client, tokens, release_id, path, body):
    """The types taken are the document's: no "1" for an id, no 0 for a boolean."""
    response = client.post(path, json=body, headers=auth(tokens["bob"]))
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("content, status, detail", [
    (b"{", 422, "body: not JSON (Expecting property name enclosed in double quotes at "
                "character 1)"),
    (b"", 422, "body: Field required"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "There was an error parsing the body"),
])
def test_a_body_that_is_no_json_gets_a_one_line_answer(client, tokens, content, status,
                                                        detail):
    response = client.post("/api/subscribers", content=content, headers={
        **auth(tokens["bob"]), "Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (status, {"detail": detail})
