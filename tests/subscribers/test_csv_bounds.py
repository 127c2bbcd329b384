"""A file with no line breaks is refused in bounded memory, not read whole."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest

from mailer.errors import InvalidInput
from subscribers.csv_files import MAX_LINE
from subscribers.importer import import_subscribers
from tests.conftest import ROOT

MIB = 1 << 20


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


#: Runs a command and prints its exit status and peak memory (KiB). A small process of its
#: own starts it: a child forked from pytest inherits pytest's memory high-water mark (the
#: kernel keeps it across exec), which would hide the command's own.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _peak_rss_mib(args: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """Run ``mailer ARGS`` and return its exit status, the peak resident memory of it and
    every process it started (wait4 folds in reaped descendants: the importer's reader
    process), in MiB, and its stderr."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "mailer",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    code, kib = done.stdout.split()
    return int(code), int(kib) / 1024, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the reading is the same
def test_a_200_mb_file_without_line_breaks_is_refused_in_bounded_memory(settings, tmp_path):
    """``mailer subscribers import`` of 200 MB with no line break, in a process of its own
    (which, for a file this big, reads it in a second process too): it refuses the file in
    one line, and its peak memory stays within a generous bound over the same command's
    baseline (the CLI loaded, refusing an empty file), far below the file's size."""
    path = tmp_path / "one-line.csv"
    with path.open("wb") as handle:
        handle.write(b"email,name,")
        piece = b"someone@example.org," * (MIB // 20)
        for _ in range(200):
            handle.write(piece)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    env = dict(os.environ)  # the test's settings (MAILER_DATABASE_URL…), set by the fixture
    _, baseline, _ = _peak_rss_mib(["subscribers", "import", str(empty)], env)
    code, peak, stderr = _peak_rss_mib(["subscribers", "import", str(path)], env)
    assert code == 1
    assert stderr.strip().splitlines() == [
        "mailer: error: line 1 is longer than 1,000,000 characters: this is not a list of "
        "subscribers (a file without line breaks?)"]
    assert peak - baseline < 48, (baseline, peak)  # reading it whole would be 190+ MiB more
    assert peak < path.stat().st_size / MIB, (baseline, peak)
