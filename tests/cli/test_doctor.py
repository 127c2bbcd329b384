import pytest


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_doctor_flags_the_placeholder_postal_address(cli, monkeypatch):
    from mailer.settings import get_settings

    monkeypatch.delenv("MAILER_POSTAL_ADDRESS")
    get_settings.cache_clear()
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    findings = {f["check"]: f for f in result.json()}
    assert findings["postal_address"]["level"] == "fail"
    assert "MAILER_POSTAL_ADDRESS" in findings["postal_address"]["message"]
    assert findings["database"]["level"] == "ok"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_doctor_wants_a_key_for_sendgrid(cli, monkeypatch):
    from mailer.settings import get_settings

    monkeypatch.setenv("MAILER_TRANSPORT", "sendgrid")
    get_settings.cache_clear()
    result = cli("doctor", "--json")
    findings = {f["check"]: f for f in result.json()}
    assert result.exit_code == 1
    assert findings["transport"]["level"] == "fail"
    assert "MAILER_SENDGRID_API_KEY" in findings["transport"]["message"]
    assert findings["postal_address"]["level"] == "ok"
