"""The data map (R1.1): every personal field the privacy service itself holds, declared once, and how the
platform's map is put together from each service's own declaration.

Each field says its category, why it is kept (purpose), on which LGPD legal basis (art. 7, art. 11 for
sensitive data), for how long (retention), whether it is sealed in the vault, and whether it may ever be
shared with an integration (R4.1: never, for anything privacy holds). Identity's map
(``upgestao_identity.domain.datamap``) is the model of the item shape; identity and messaging declare their
own fields (``data_map()`` RPCs). Where a service's item does not (yet) say its purpose, legal basis or
retention, privacy completes it from :data:`SERVICE_DEFAULTS` and names the keys it completed
(``completed_by_privacy``), so the DPO sees what each service declared and what privacy added: nothing is
made up silently. A service that does not answer is listed as ``unavailable`` with the reason, never left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CATEGORIES = ("identification", "contact", "demographic", "professional", "image", "credential",
              "communication", "identifier", "network", "preference", "free_text", "mixed")
ITEM_KEYS = ("service", "resource", "field", "category", "description", "purpose", "legal_basis", "retention",
             "encrypted_at_rest", "shareable_with_integrations")

# LGPD art. 7: the bases privacy's own fields rest on
LEGAL_OBLIGATION = "legal obligation (LGPD art. 7 II): the data subject's rights (arts. 18-19), art. 37 records"
LEGAL_OBLIGATION_BREACH = "legal obligation (LGPD art. 7 II; art. 48 and ANPD Resolution 15/2024)"
CONSENT = "consent (LGPD art. 7 I; art. 8 §5 — withdrawal recorded as given)"
LEGITIMATE_INTEREST = "legitimate interest (LGPD art. 7 IX): security and accountability of the processing"
CONTRACT = "performance of a contract (LGPD art. 7 V)"

SERVICE = "privacy"


@dataclass(frozen=True)
class PersonalField:
    resource: str
    name: str
    category: str
    description: str
    purpose: str
    legal_basis: str
    retention: str
    encrypted: bool = True
    shareable: bool = False  # nothing privacy holds ever goes to an integration (R4.1)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown data category {self.category!r}")

    def item(self) -> dict[str, Any]:
        return {"service": SERVICE, "resource": self.resource, "field": self.name, "category": self.category,
                "description": self.description, "purpose": self.purpose, "legal_basis": self.legal_basis,
                "retention": self.retention, "encrypted_at_rest": self.encrypted,
                "shareable_with_integrations": self.shareable}


_REQUEST_RETENTION = "5 years after the request is answered (proof of compliance), then erased"
_INCIDENT_RETENTION = "at least 5 years after the incident is recorded; never deleted before"
_INCIDENT_PURPOSE = "breach procedure: the record of the incident and the notice to the ANPD and the people affected"

PRIVACY_FIELDS: tuple[PersonalField, ...] = (
    # the data-subject requests and the contact channel (issue 14, requests area)
    PersonalField("privacy_request", "subject_id", "identifier", "Who the request is about (a user or customer id)",
                  "answering the data subject's request", LEGAL_OBLIGATION, _REQUEST_RETENTION, encrypted=False),
    PersonalField("privacy_request", "email", "contact", "The address a person wrote from through the privacy "
                  "contact channel (a verification code is sent there)", "verifying and answering the request",
                  LEGAL_OBLIGATION, _REQUEST_RETENTION),
    PersonalField("privacy_request", "message", "free_text", "What the person wrote with their request",
                  "answering the data subject's request", LEGAL_OBLIGATION, _REQUEST_RETENTION),
    PersonalField("privacy_request", "reason", "free_text", "The DPO's reasons (a denial, an extension), which "
                  "may name the person", "answering the data subject's request", LEGAL_OBLIGATION, _REQUEST_RETENTION),
    PersonalField("notice", "code", "credential", "A contact request's 6-digit verification code, kept for its "
                  "e-mail only (its hash checks the answer)", "verifying who filed a request", LEGAL_OBLIGATION,
                  "until it is sent or expires (10 minutes), then dropped"),
    PersonalField("notice", "download_url", "credential", "The single-use link to an access bundle, kept for its "
                  "e-mail only", "delivering an access or portability request", LEGAL_OBLIGATION,
                  "until it is sent or the link expires"),
    # corrections, policy acceptances and consents (corrections/consent area)
    PersonalField("correction", "changes", "mixed", "The new values a person asked for, one sealed value per "
                  "profile field named (full_name, phone, ...)", "reviewing and applying a correction "
                  "(LGPD art. 18 III)", LEGAL_OBLIGATION, _REQUEST_RETENTION),
    PersonalField("correction", "reason", "free_text", "Why the person asks for the correction",
                  "reviewing and applying a correction (LGPD art. 18 III)", LEGAL_OBLIGATION, _REQUEST_RETENTION),
    PersonalField("privacy_policy", "user_id", "identifier", "Who accepted which policy version, and when",
                  "proving the policy in force was made known (LGPD art. 9)", LEGAL_OBLIGATION,
                  "while the account exists, then 5 years", encrypted=False),
    PersonalField("consent", "holder_id", "identifier", "A user's id or an anonymous visitor's random id (kept "
                  "only as a derived id), with each purpose's choice (analytics, personalisation) and its history",
                  "recording consent and its withdrawal per purpose", CONSENT,
                  "while the choice is in force, then 5 years (proof of consent, art. 8 §2)", encrypted=False),
    # access and portability bundles (erasures/exports area)
    PersonalField("subject_bundle", "bundle_part", "mixed", "The JSON bundle of everything held about a person "
                  "(access, portability), sealed in parts under the person", "delivering the data subject's access "
                  "or portability request", LEGAL_OBLIGATION, "until the single-use link is used or expires, then "
                  "erased"),
    # incidents (this area): the texts may name people, so each is sealed under the incident's own key
    PersonalField("incident", "nature_of_data", "free_text", "What data the incident involved (may name people)",
                  _INCIDENT_PURPOSE, LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "people_affected", "free_text", "Who the incident affected, in plain words",
                  _INCIDENT_PURPOSE, LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "risks", "free_text", "The risks to the people affected", _INCIDENT_PURPOSE,
                  LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "technical_measures", "free_text", "The technical and security measures that "
                  "protected the data", _INCIDENT_PURPOSE, LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "measures_taken", "free_text", "The measures taken or planned to reverse or lessen "
                  "the harm", _INCIDENT_PURPOSE, LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "delay_reasons", "free_text", "The reasons for a notice later than 3 business days",
                  _INCIDENT_PURPOSE, LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "what_to_do", "free_text", "What the people affected should do", _INCIDENT_PURPOSE,
                  LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "dpo_contact", "contact", "The DPO's contact given in the notice", _INCIDENT_PURPOSE,
                  LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION),
    PersonalField("incident", "affected_people", "identifier", "The ids of the people an incident affected "
                  "(resolved at confirmation; their addresses stay in identity)", _INCIDENT_PURPOSE,
                  LEGAL_OBLIGATION_BREACH, _INCIDENT_RETENTION, encrypted=False),
    # the audit log (D3): ids and field names only, never a value
    PersonalField("audit_record", "actor_id", "identifier", "Who acted (a user's id)", "accountability of every "
                  "access to personal data (LGPD arts. 37, 46)", LEGITIMATE_INTEREST,
                  "the audit log is append-only and kept; erasing a person shreds their key elsewhere, the log "
                  "holds no value of theirs", encrypted=False),
    PersonalField("audit_record", "subject_id", "identifier", "Whose data was accessed (an id)",
                  "accountability of every access to personal data; the data subject's access summary (R4.2)",
                  LEGITIMATE_INTEREST, "as actor_id", encrypted=False),
    PersonalField("audit_record", "source_ip", "network", "The network a request came from (a /24 or /48, "
                  "never the full address)", "security of the processing (LGPD art. 46)", LEGITIMATE_INTEREST,
                  "as actor_id", encrypted=False),
)


def own_items() -> list[dict[str, Any]]:
    """Privacy's own declaration, in the map's item shape."""
    return [f.item() for f in PRIVACY_FIELDS]


# What privacy says of another service's field when that service's item does not say it (yet), by
# (service, resource); ``"*"`` for every resource of the service.
SERVICE_DEFAULTS: dict[tuple[str, str], dict[str, str]] = {
    ("identity", "user"): {
        "purpose": "the staff member's account: sign-in, access control, contact and the employment relation",
        "legal_basis": CONTRACT,
        "retention": "while the account exists; erased (key shredded) on request or after deactivation, "
                     "except what a legal obligation keeps"},
    ("identity", "customer"): {
        "purpose": "serving the customer: identifying them in conversations and contacting them",
        "legal_basis": CONTRACT,
        "retention": "while the customer relationship lasts; erased (key shredded) on request"},
    ("messaging", "*"): {
        "purpose": "the conversations between the customer and the staff, and the staff's internal chats",
        "legal_basis": CONTRACT,
        "retention": "while the customer relationship lasts; erased (key shredded) on request"},
}
COMPLETABLE = ("purpose", "legal_basis", "retention")
FALLBACK = "not declared by the service"


def normalise(service: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """A service's item in the map's shape: its own values first, what it does not say completed from
    :data:`SERVICE_DEFAULTS` (named in ``completed_by_privacy``), never silently."""
    out: dict[str, Any] = {"service": service, "resource": item.get("resource"), "field": item.get("field"),
                           "category": item.get("category"), "description": item.get("description")}
    defaults = SERVICE_DEFAULTS.get((service, str(item.get("resource")))) or SERVICE_DEFAULTS.get((service, "*"), {})
    completed = []
    for key in COMPLETABLE:
        value = item.get(key)
        if not value:
            value = defaults.get(key, FALLBACK)
            completed.append(key)
        out[key] = value
    out["encrypted_at_rest"] = bool(item.get("encrypted_at_rest", item.get("encrypted", False)))
    shareable = item.get("shareable_with_integrations", item.get("shareable"))
    out["shareable_with_integrations"] = bool(shareable)
    out["completed_by_privacy"] = completed
    return out


def assemble(declarations: Iterable[tuple[str, list[Mapping[str, Any]] | None, str | None]]) -> dict[str, Any]:
    """The platform's map from each service's declaration ``(service, items or None, reason it is missing)``:
    ``items`` every field of every service that answered, ``services`` each service's state
    (``available`` with its field count, or ``unavailable`` with the reason)."""
    items: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for service, declared, reason in declarations:
        if declared is None:
            services.append({"service": service, "status": "unavailable", "fields": 0,
                             "reason": reason or "no answer"})
            continue
        normalised = [normalise(service, item) for item in declared] if service != SERVICE else [
            {**item, "completed_by_privacy": []} for item in declared]
        items.extend(normalised)
        services.append({"service": service, "status": "available", "fields": len(normalised), "reason": None})
    return {"items": items, "services": services, "complete": all(s["status"] == "available" for s in services)}
