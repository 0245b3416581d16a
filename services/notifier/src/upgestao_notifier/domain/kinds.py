"""The catalogue of message kinds: which event asks for which e-mail, and what its template needs.

One :class:`Kind` per message. The event carries ids only; the notifier asks the service that owns
the event (``source``, its ``notice`` RPC) for the data, and the renderer checks that data against
``required`` before any template runs, so a message is never sent with a hole in it. ``security``
marks mail about the account's or the person's safety (a password reset, a breach notice): it
carries no List-Unsubscribe and is attempted even to a suppressed address.

Pure data: the wording lives in the templates (``templates/<locale>/<kind>.j2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

IDENTITY = "identity"
PRIVACY = "privacy"
INTEGRATIONS = "integrations"

LOCALES = ("pt-BR", "en")
DEFAULT_LOCALE = "pt-BR"

# The data every template gets besides its kind's own keys (the notifier always passes them).
COMMON = ("recipient_name", "platform_name", "dpo_contact", "privacy_url", "support_url")
COMMON_NULLABLE = ("recipient_name",)  # no name: a neutral greeting

# LGPD art. 18 rights a privacy request may be about (their plain names are in the renderer).
REQUEST_TYPES = (
    "confirmation",
    "access",
    "correction",
    "anonymisation",
    "blocking",
    "deletion",
    "portability",
    "sharing_info",
    "consent_info",
    "consent_revocation",
)


@dataclass(frozen=True)
class Kind:
    name: str  # "password_reset", ...: also the template's file name
    event_type: str  # the event that asks for it
    source: str  # the service that owns the event and answers `notice`
    security: bool  # no List-Unsubscribe; sent even to a suppressed address
    required: tuple[str, ...]  # the data keys the template needs (besides COMMON)
    nullable: tuple[str, ...] = ()  # required keys whose value may be None (the template says so plainly)
    lists: tuple[str, ...] = ()  # required keys whose value is a list of strings
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # required keys with a closed set of values


PASSWORD_RESET = Kind(
    "password_reset",
    "identity.password_reset_requested.v1",
    IDENTITY,
    security=True,
    required=("reset_url", "reset_token", "expires_at"),
)
NEW_LOGIN = Kind(
    "new_login",
    "identity.new_login_detected.v1",
    IDENTITY,
    security=True,
    required=("occurred_at", "network", "sessions_url"),
)
EMAIL_CHANGED = Kind(  # sent to the OLD address
    "email_changed",
    "identity.user_email_changed.v1",
    IDENTITY,
    security=True,
    required=("occurred_at",),
)
PRIVACY_REQUEST_VERIFICATION = Kind(
    "privacy_request_verification",
    "privacy.request_verification_requested.v1",
    PRIVACY,
    security=True,
    required=("code", "request_type", "expires_at"),
    choices=(("request_type", REQUEST_TYPES),),
)
PRIVACY_REQUEST_COMPLETED = Kind(
    "privacy_request_completed",
    "privacy.request_completed.v1",
    PRIVACY,
    security=False,
    required=("request_id", "request_type", "outcome", "reason", "download_url", "completed_at", "due_at"),
    nullable=("reason", "download_url"),
    choices=(("request_type", REQUEST_TYPES), ("outcome", ("completed", "denied"))),
)
CORRECTION_DECIDED = Kind(
    "correction_decided",
    "privacy.correction_decided.v1",
    PRIVACY,
    security=False,
    required=("correction_id", "fields", "decision", "reason"),
    nullable=("reason",),  # a denial always has one (R5.1); an approval may not
    lists=("fields",),
    choices=(("decision", ("approved", "denied")),),
)
BREACH_NOTICE = Kind(  # LGPD art. 48 §1: every item, in plain language
    "breach_notice",
    "privacy.breach_notice_requested.v1",
    PRIVACY,
    security=True,
    required=(
        "incident_id",
        "occurred_at",
        "detected_at",
        "nature_of_data",
        "people_affected",
        "technical_measures",
        "risks",
        "delay_reasons",
        "measures_taken",
        "what_to_do",
    ),
    nullable=("delay_reasons",),  # None: there was no delay
    lists=("nature_of_data", "what_to_do"),
)
POLICY_PUBLISHED = Kind(
    "policy_published",
    "privacy.policy_published.v1",
    PRIVACY,
    security=False,
    required=("version", "effective_at", "summary", "policy_url"),
)

# Why an integration (a webhook endpoint) was disabled: ``gone`` (it answered 410 Gone), ``failing`` (every
# delivery failed for 5 days), ``manual`` (an admin disabled it: nobody is mailed about their own act).
INTEGRATION_DISABLED_REASONS = ("gone", "failing")
INTEGRATION_DISABLED = Kind(  # to every holder of integrations.manage (the integrations service's notice)
    "integration_disabled",
    "integrations.integration_disabled.v1",
    INTEGRATIONS,
    security=False,
    required=("integration_id", "integration_name", "reason"),
    choices=(("reason", INTEGRATION_DISABLED_REASONS),),
)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        PASSWORD_RESET,
        NEW_LOGIN,
        EMAIL_CHANGED,
        PRIVACY_REQUEST_VERIFICATION,
        PRIVACY_REQUEST_COMPLETED,
        CORRECTION_DECIDED,
        BREACH_NOTICE,
        POLICY_PUBLISHED,
        INTEGRATION_DISABLED,
    )
}
BY_EVENT_TYPE: dict[str, Kind] = {k.event_type: k for k in KINDS.values()}


def asks_for_mail(event_type: str, data: Mapping[str, object]) -> bool:
    """Whether an event of a kind's type asks for mail at all: an integration disabled by hand does not (the
    admin who did it knows; the others see it in the list). Read from the event's published ``reason``."""
    if event_type == INTEGRATION_DISABLED.event_type:
        return data.get("reason") in INTEGRATION_DISABLED_REASONS
    return event_type in BY_EVENT_TYPE


def locale_of(preference: object) -> str:
    """The template language for a recipient's preference: English for any ``en`` tag, else pt-BR.

    The preference is whatever the owning service stored ("en-US", "EN_gb", None, junk); only the
    primary language subtag counts, and anything not offered falls back to the default.
    """
    if not isinstance(preference, str):
        return DEFAULT_LOCALE
    primary = preference.strip().replace("_", "-").split("-", 1)[0].lower()
    return "en" if primary == "en" else DEFAULT_LOCALE
