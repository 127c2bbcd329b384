"""CSV export: spreadsheet-safe cells and a lossless round trip through the importer."""

from __future__ import annotations

import csv

import pytest

from subscribers import service
from subscribers.export import COLUMNS, export_subscribers, neutralize
from subscribers.importer import import_subscribers


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1 555", "'+1 555"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\tcmd"),
    ("\rcmd", "'\rcmd"),
    ("  =1+1", "'  =1+1"),
    ("＝1+1", "'＝1+1"),
    ("Ole Hanson", "Ole Hanson"),
    ("O'Brien", "O'Brien"),
    ("58102-1234", "58102-1234"),
    (None, ""),
])
def test_neutralize(value, cell):
    assert neutralize(value) == cell


def test_export_is_safe_and_imports_back_unchanged(db, topics, tmp_path):
    with db.session() as session:
        service.add_subscriber(session, email="evil@example.org", name="=cmd|' /C calc'!A0",
                               county="@Cass", zip="58102", topics=["veterans", "agriculture"])
        service.add_subscriber(session, email="zoe@example.org", name="Zoë, the \"Great\"",
                               state="ND")
        gone, _ = service.add_subscriber(session, email="gone@example.org")
        service.unsubscribe(session, gone, cause="test")
    path = tmp_path / "out.csv"
    assert export_subscribers(db, path) == 3
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == COLUMNS
    evil = dict(zip(COLUMNS, rows[1], strict=True))
    assert evil["name"] == "'=cmd|' /C calc'!A0" and evil["county"] == "'@Cass"
    assert evil["topics"] == "agriculture;veterans"
    assert dict(zip(COLUMNS, rows[2], strict=True))["name"] == 'Zoë, the "Great"'
    assert dict(zip(COLUMNS, rows[3], strict=True))["status"] == "unsubscribed"
    report = import_subscribers(db, path).to_dict()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 3)
    assert report["errors"] == []
    with db.session() as session:
        assert service.find_by_email(session, "evil@example.org").county == "@Cass"


def test_export_with_query(db, topics, tmp_path):
    with db.session() as session:
        for i in range(7):
            service.add_subscriber(session, email=f"p{i}@example.org",
                                   county="Cass" if i % 2 else "Ward")
    assert export_subscribers(db, tmp_path / "cass.csv", query='county = "Cass"') == 3
