"""Reading files and URLs: encodings offices produce, and the input that must be refused."""

from __future__ import annotations

import codecs

import pytest

from mailer.errors import IngestError
from mailer.ingest.sources import decode, read_source, sniff_kind
from mailer.ingest.text import parse_text
from tests.conftest import FEEDS_DIR, SEED_RELEASE

SEED = SEED_RELEASE.read_text(encoding="utf-8")


@pytest.mark.parametrize("encoding, bom", [
    ("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("cp1252", b""),
    ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
])
def test_every_encoding_offices_produce_decodes_to_the_same_release(
        encoding, bom, tmp_path, settings):
    path = tmp_path / "release.txt"
    path.write_bytes(bom + SEED.encode(encoding))
    loaded = read_source(str(path), settings)
    assert loaded.kind == "text"
    assert loaded.text == SEED  # smart quotes and en dashes intact, no BOM left
    release = parse_text(loaded.text, str(path))
    assert release.dateline == "FARGO, N.D."
    assert "’" in release.body and "\ufeff" not in release.title


def test_windows_1252_undefined_bytes_do_not_break_decoding():
    assert decode(b"caf\xe9 \x93quoted\x94 \x81", "x") == "café “quoted” \x81"


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"  \r\n\t\n", "empty"),
    (codecs.BOM_UTF8 + b"\n", "empty"),
    (b"%PDF-1.7\n%\xe2\xe3", "PDF"),
    (b"PK\x03\x04\x14\x00", "Word"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00", "binary"),
    (b"Title\n\nBody \x00\x00\x00 more", "binary"),
])
def test_empty_and_binary_files_are_refused(content, reason, tmp_path, settings):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=reason) as info:
        read_source(str(path), settings)
    assert str(info.value).startswith(str(path))


def test_oversized_file_is_refused_before_reading(tmp_path, settings, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_bytes(SEED.encode())
    monkeypatch.setattr(settings, "max_import_bytes", 100)
    with pytest.raises(IngestError, match="over the import limit of 100 bytes"):
        read_source(str(path), settings)


def test_missing_file_and_folder(settings, tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        read_source("/nonexistent/release.txt", settings)
    with pytest.raises(IngestError, match="is a folder"):
        read_source(str(tmp_path), settings)


@pytest.mark.parametrize("name, head, kind", [
    ("a.txt", b"<?xml version='1.0'?><rss version='2.0'>", "feed"),
    ("a", b"<!-- generator --><feed xmlns='http://www.w3.org/2005/Atom'>", "feed"),
    ("a.txt", b"<!DOCTYPE html><html>", "html"),
    ("a.txt", b"<?xml version='1.0'?><!DOCTYPE html><html>", "html"),
    ("a.txt", b"<?xml version='1.0'?><root/>", "feed"),
    ("a.txt", b"---\ntitle: x\n---\nbody", "markdown"),
    ("a.md", b"# Title\n\nbody", "markdown"),
    ("a.htm", b"Title", "html"),
    ("a.txt", b"Title\n\nbody", "text"),
])
def test_kind_is_sniffed_from_content_then_name(name, head, kind):
    assert sniff_kind(name, head, None) == kind


def test_url_is_fetched_and_decoded_with_its_charset(web, settings):
    url = web.put("/release.txt", SEED.encode("cp1252"),
                  content_type="text/plain; charset=windows-1252")
    loaded = read_source(url, settings)
    assert loaded.text == SEED and loaded.url == url and loaded.kind == "text"


def test_url_kind_comes_from_content_type(web, settings):
    url = web.put("/feed", (FEEDS_DIR / "ruiz_rss.xml").read_bytes(),
                  content_type="application/rss+xml")
    assert read_source(url, settings).kind == "feed"


def test_url_errors_are_one_line(web, settings, monkeypatch):
    with pytest.raises(IngestError, match="HTTP 404"):
        read_source(web.url("/missing"), settings)
    web.put("/slow", b"Title\n\nBody", delay=1.0)
    monkeypatch.setattr(settings, "fetch_timeout", 0.2)
    with pytest.raises(IngestError, match=r"no answer within 0.2 s"):
        read_source(web.url("/slow"), settings)
    with pytest.raises(IngestError, match="cannot fetch"):
        read_source("http://127.0.0.1:9/nothing-listens-here", settings)


def test_a_server_that_drips_is_cut_off(web, settings, monkeypatch):
    # each piece arrives within the timeout, the whole never does
    url = web.put("/drip.txt", SEED.encode(), drip=0.05)
    monkeypatch.setattr(settings, "fetch_timeout", 0.1)
    with pytest.raises(IngestError, match="did not finish in time"):
        read_source(url, settings)


def test_oversized_url_is_refused(web, settings, monkeypatch):
    url = web.put("/big.txt", b"x" * 5000)
    monkeypatch.setattr(settings, "max_import_bytes", 1000)
    with pytest.raises(IngestError, match="over the import limit"):
        read_source(url, settings)
