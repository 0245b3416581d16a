"""docs/events.md is the code's own account of its events: regenerated, it must be unchanged.

Needs neither RabbitMQ nor PostgreSQL: the catalogue is read from the declarations, the
projections and the consumers' wiring (``python scripts/event_catalogue.py`` rewrites it).
"""

from __future__ import annotations

import pytest
from e2e_platform import ROOT, load_script

catalogue = load_script("scripts/event_catalogue.py", "event_catalogue")


@pytest.fixture(scope="module")
def entries() -> dict:
    return catalogue.collect()


def test_the_committed_catalogue_is_the_one_the_code_makes(capsys):
    status = catalogue.main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_check_fails_and_shows_the_difference_when_the_file_is_stale(tmp_path, capsys):
    stale = tmp_path / "events.md"
    stale.write_text((ROOT / "docs" / "events.md").read_text().replace("none yet", "the notifier", 1))
    assert catalogue.main(["--check"], path=stale) == 1
    assert "+| [`identity" in capsys.readouterr().err
    assert catalogue.main([], path=stale) == 0 and catalogue.main(["--check"], path=stale) == 0  # rewritten


def test_each_event_has_its_producer_consumers_and_visibility(entries):
    revoked = entries["identity.session_revoked.v1"]
    assert revoked.producer == "identity"
    assert [(c.service, c.handler) for c in revoked.consumers] == [("gateway", "AccessEventsStream")]
    assert [c.service for c in entries["identity.role_permissions_changed.v1"].consumers] == ["gateway"]
    assert entries["identity.session_refreshed.v1"].event.publishes is False
    assert entries["identity.password_reset_requested.v1"].event.secret is False  # ids only: nothing to wipe
    assert entries["identity.user_registered.v1"].read_models == ["identity: `users`"]
    # issue 12: new login, language; issue 14: erased/anonymised/blocked/unblocked subjects, their confirmation
    assert len([t for t in entries if t.startswith("identity.")]) == 27  # issue 15: API keys created, revoked
    erasure = entries["privacy.erasure_requested.v1"]
    assert {c.service for c in erasure.consumers} == {"identity", "integrations", "messaging"}
    assert {c.service for c in entries["identity.subject_erased.v1"].consumers} == {"privacy"}
    assert {c.service for c in entries["messaging.subject_erased.v1"].consumers} == {"privacy"}
    # issue 15: privacy takes integrations' erasure confirmations and keeps the integrations as third parties
    assert {c.service for c in entries["integrations.subject_erased.v1"].consumers} == {"privacy"}
    for announced in ("integrations.integration_registered.v1", "integrations.integration_changed.v1"):
        assert "privacy" in {c.service for c in entries[announced].consumers}
    assert {c.service for c in entries["privacy.breach_notice_requested.v1"].consumers} == {"notifier"}


def test_the_fields_say_what_is_stored_and_what_is_published(entries):
    rows = {row[0]: row for row in catalogue._field_rows(entries["identity.password_reset_requested.v1"].event)}
    assert rows["token_hash"][2:] == ("yes", "no")  # stored, never published
    assert "token" not in rows  # the token never travels on the broker: the notifier fetches it (issue 11)
    assert rows["user_id"][2] == "no" and rows["expires_at"][2:] == ("yes", "yes")
    registered = {row[0]: row for row in catalogue._field_rows(entries["identity.user_registered.v1"].event)}
    assert registered["fields"][3] == "names only"  # sealed values never leave the service


def test_a_consumer_of_an_event_nobody_declares_is_an_error(monkeypatch):
    from upgestao_kernel.events import Subscription

    typo = Subscription(service="gateway", handler="AccessEventsStream", events=("identity.session_revokd.v1",),
                        via="stream `gateway.access-events`")
    monkeypatch.setattr(catalogue, "_subscriptions", lambda package: [typo] if package == "upgestao_gateway" else [])
    with pytest.raises(catalogue.CatalogueError, match="session_revokd"):
        catalogue.collect()
