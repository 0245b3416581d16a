"""Privacy's view of the third parties data is shared with (issue 15, mixed into the service): the
integrations' names and privacy-policy URLs, from ``integrations.events``, for sharing reports (R9.1).

Handlers (reliable: retried, then parked; each event handled once, ``self.db.handling``), taking events only
from the integrations service's broker user (``reliable_handler`` checks the sender RabbitMQ stamped: a
forged one, published by another service straight into privacy's queue, is parked unread):

* ``integrations.integration_registered.v1``, ``integrations.integration_changed.v1`` -> the ``third_parties``
  read model (name, privacy-policy URL, status of ``integration:<id>``).

(Integrations' erasure confirmation, ``integrations.subject_erased.v1``, is the erasures area's:
:class:`~.erasures_rpc.ErasureRpc`.)
"""

from __future__ import annotations

from upgestao_kernel.events import EventEnvelope
from upgestao_kernel.logging import get_logger
from upgestao_kernel.nameko_ext import reliable_handler

from ..service_layer import third_parties

log = get_logger(__name__)


class ThirdPartiesRpc:
    """Mixed into :class:`~upgestao_privacy.service.PrivacyService`."""

    @reliable_handler("integrations", [third_parties.REGISTERED, third_parties.CHANGED])
    def third_party_on_integration(self, event: EventEnvelope) -> None:
        with self.db.handling(event) as uow:  # type: ignore[attr-defined]
            if uow is None:
                return
            kept = third_parties.record_integration(uow, event.data, event.occurred_at)
        log.info("privacy.third_party_recorded", event_type=event.type, kept=kept)
