"""Approving a campaign runs the template check (on both database backends)."""

from __future__ import annotations

import pytest

from mailer.errors import TemplateError
from mailer.settings import get_settings


def test_approving_a_campaign_runs_the_check(folder, db, seed_campaign_id):
    from mailer.campaigns.models import Campaign
    from mailer.campaigns.service import approve_campaign

    path = folder / "press_release.txt"
    path.write_text(path.read_text().replace("{{ release.contact", "{{ release.press_contact"))
    with pytest.raises(TemplateError, match=r"press_release\.txt:\d+: undefined attribute "
                                            r"'press_contact'"):
        with db.session() as session:
            campaign = session.get(Campaign, seed_campaign_id)
            approve_campaign(session, campaign, by="approver", settings=get_settings())
    with db.session() as session:
        assert session.get(Campaign, seed_campaign_id).status == "draft"
