"""The base of privacy's events (published on ``privacy.events``).

Each area declares its own events next to its aggregate (``domain/requests.py``,
``domain/corrections.py``, ``domain/policies.py``, ``domain/consents.py``, ``domain/incidents.py``,
``domain/erasures.py``, ``domain/exports.py``): ids, states and field *names* in what is published,
personal values only sealed (vault ciphertext) in what is stored. ``docs/events.md`` is generated.
"""

from __future__ import annotations

from upgestao_kernel.events import DomainEvent


class PrivacyEvent(DomainEvent, abstract=True, service="privacy"):
    """An event of privacy (published on ``privacy.events``)."""
