"""A file with no line breaks is refused in bounded memory, not read whole."""

from __future__ import annotations

import tracemalloc

import pytest

from mailer.errors import InvalidInput
from subscribers.csv_files import MAX_LINE
from subscribers.importer import import_subscribers


def test_a_file_without_line_breaks_is_refused_having_read_one_line_at_most(db, tmp_path):
    path = tmp_path / "one-line.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,")
        for _ in range(30):  # 30 MB of one line
            handle.write("someone@example.org," * 50_000)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="line 1 is longer than 1,000,000 characters"):
            import_subscribers(db, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * MAX_LINE  # a few copies of one bounded line, not 30 MB of text


def test_a_long_but_ordinary_file_still_imports(db, tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("email,name\n" + "".join(f"p{i}@example.org,Person {i}\n"
                                             for i in range(2000)), encoding="utf-8")
    assert import_subscribers(db, path).to_dict()["created"] == 2000


def test_the_cli_answers_in_one_line(cli, tmp_path):
    path = tmp_path / "one-line.csv"
    path.write_text("email," + "x" * (MAX_LINE + 10), encoding="utf-8")
    result = cli("subscribers", "import", path)
    assert result.exit_code != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "longer than" in result.stderr
