"""Usage errors are one line on stderr and exit status 2, from the real console script — the
same ``mailer`` a press officer types, installed from the lock file."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("mailer")

USAGE_ERRORS = [
    (["campaings", "list"], "No such command 'campaings'. Did you mean 'campaigns'?"),
    (["campaigns", "approve", "1"], "Missing option '--by'."),
    (["campaigns", "list", "--bogus"], "No such option: --bogus"),
    (["campaigns", "approve", "abc", "--by", "bob"], "Invalid value for 'ID'"),
    (["campaigns", "approve"], "Missing argument 'ID'."),
    (["--nope"], "No such option: --nope"),
]


def run_mailer(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env["MAILER_DATABASE_URL"] = f"sqlite:///{cwd / 'usage.db'}"
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, message", USAGE_ERRORS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else None)
def test_usage_error_is_one_line_and_exit_2(args, message, tmp_path):
    result = run_mailer(CONSOLE_SCRIPT, args, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mailer: error: ") and message in lines[0]
    assert result.stdout == ""


def test_help_still_prints_usage_and_exits_0(tmp_path):
    result = run_mailer(CONSOLE_SCRIPT, ["campaigns", "--help"], tmp_path)
    assert result.returncode == 0
    assert "Usage: mailer campaigns" in result.stdout


@pytest.mark.slow
def test_fresh_venv_from_the_lock_file_gives_one_line_usage_errors(tmp_path):
    """What a new machine gets: a venv built only from requirements.lock (hash-checked) plus
    the project without dependencies. Fails if the lock lets in a version whose errors the
    CLI does not turn into one line."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")],
                   check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True, timeout=600, cwd=tmp_path)
    result = run_mailer(env_dir / "bin" / "mailer", ["campaings", "list"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "mailer: error: No such command 'campaings'. Did you mean 'campaigns'?"]
