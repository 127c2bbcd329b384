import pytest

from mailer.errors import ConfigError
from mailer.settings import get_settings


def test_batch_size_over_1000_is_refused_in_one_line(cli, monkeypatch):
    monkeypatch.setenv("MAILER_BATCH_SIZE", "5000")
    get_settings.cache_clear()
    result = cli("init")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "mailer: error: invalid setting MAILER_BATCH_SIZE: must be between 1 and 1000 "
        "(SendGrid takes at most 1000 per request)"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name, value, fragment", [
    ("MAILER_TRANSPORT", "pigeon", "MAILER_TRANSPORT"),
    ("MAILER_TIMEZONE", "Mars/Olympus", "unknown time zone"),
    ("MAILER_QUIET_HOURS", "late", "21:00-07:00"),
    ("MAILER_ELECTION_DATES", "2026-11-03,not-a-date", "MAILER_ELECTION_DATES"),
])
def test_bad_settings_name_the_variable(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=fragment):
        get_settings()
    get_settings.cache_clear()


def test_election_dates_parse_from_comma_list(monkeypatch):
    monkeypatch.setenv("MAILER_ELECTION_DATES", "2026-11-03, 2028-11-07")
    get_settings.cache_clear()
    assert [d.isoformat() for d in get_settings().election_dates] == ["2026-11-03", "2028-11-07"]
    get_settings.cache_clear()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_init_creates_then_reports_up_to_date(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MAILER_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    get_settings.cache_clear()
    first = cli("init")
    assert first.exit_code == 0, first.stderr
    assert "upgraded" in first.stdout
    assert (tmp_path / "fresh.db").exists()
    assert "already up to date" in cli("init").stdout
