"""The e-mail renderer: one Jinja2 template per message kind and language, plain text and HTML.

Each ``templates/<locale>/<kind>.j2`` extends that language's ``_layout.j2`` (the HTML frame,
greeting and footer) and defines three blocks: ``subject``, ``text`` (inside ``{% autoescape
false %}``: plain text is not HTML) and ``html``. The subject and the text are rendered as lone
blocks; the HTML is the whole template, the layout around the ``html`` block. The text part pulls
its greeting and footer from ``_text.j2``, so both parts say the same things.

Every value is escaped in HTML (``autoescape=True``), a missing variable is an error
(``StrictUndefined``) and the data is checked against the kind's catalogue entry before any
template runs: a message with a hole in it is never sent. Templates are compiled once, when the
renderer is built, so a missing or broken template stops the service at start, not at the first
mail; rendering is then on the hot path and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup, escape

from upgestao_notifier.domain.kinds import COMMON, COMMON_NULLABLE, KINDS, LOCALES, Kind, locale_of

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
LAYOUT = "_layout.j2"  # files starting with "_" are shared by a language's templates, not messages

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# Plain names for the values a person should not have to decode (an unknown field is shown with spaces).
REQUEST_TYPE_NAMES = {
    "pt-BR": {
        "confirmation": "confirmação de que tratamos os seus dados",
        "access": "acesso aos seus dados",
        "correction": "correção dos seus dados",
        "anonymisation": "anonimização dos seus dados",
        "blocking": "bloqueio dos seus dados",
        "deletion": "eliminação dos seus dados",
        "portability": "portabilidade dos seus dados (cópia em formato aberto)",
        "sharing_info": "informação sobre com quem compartilhamos os seus dados",
        "consent_info": "informação sobre o seu consentimento",
        "consent_revocation": "revogação do seu consentimento",
    },
    "en": {
        "confirmation": "confirmation that we process your data",
        "access": "access to your data",
        "correction": "correction of your data",
        "anonymisation": "anonymisation of your data",
        "blocking": "blocking of your data",
        "deletion": "deletion of your data",
        "portability": "a portable copy of your data",
        "sharing_info": "information on whom we share your data with",
        "consent_info": "information on your consent",
        "consent_revocation": "withdrawal of your consent",
    },
}
FIELD_NAMES = {
    "pt-BR": {
        "full_name": "nome completo",
        "email": "e-mail",
        "phone": "telefone",
        "birth_date": "data de nascimento",
        "address": "endereço",
        "job_title": "cargo",
        "gender": "gênero",
        "photo": "foto de perfil",
    },
    "en": {
        "full_name": "full name",
        "email": "e-mail address",
        "phone": "phone number",
        "birth_date": "date of birth",
        "address": "postal address",
        "job_title": "job title",
        "gender": "gender",
        "photo": "profile photo",
    },
}


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


class MissingData(ValueError):
    """A key the template needs is absent (or None where a value is needed); names the key, never a value."""


class InvalidData(ValueError):
    """A value is not of the expected shape (not a list of strings, not one of the known choices); names the key."""


def _utc(value: object) -> datetime:
    """An ISO 8601 string (or a datetime) as an aware UTC datetime; a naive one is taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidData("a date is not in ISO 8601 form") from None
    else:
        raise InvalidData("a date is not in ISO 8601 form")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _datetime_pt(value: object) -> str:
    m = _utc(value)
    return f"{m:%d/%m/%Y} às {m:%H:%M} (UTC)"


def _datetime_en(value: object) -> str:
    m = _utc(value)
    return f"{m.day} {_MONTHS_EN[m.month - 1]} {m.year}, {m:%H:%M} UTC"


def _is_web_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


def _link(value: object, label: object = None) -> Markup:
    """``value`` as a link when it is an http(s) URL, else as text: no ``javascript:`` or ``data:`` in an href."""
    shown = value if label is None else label
    if _is_web_url(value):
        return Markup('<a href="{}">{}</a>').format(value, shown)
    return escape(shown)


def _named(names: Mapping[str, str]) -> Callable[[object], str]:
    def name(value: object) -> str:
        return names.get(str(value), str(value).replace("_", " "))

    return name


def _environment(directory: Path, locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory / locale),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # compiled once; no stat() per render
        cache_size=-1,  # a few dozen templates, none ever evicted (an eviction would read the disk again)
    )
    env.filters["datetime"] = _datetime_en if locale == "en" else _datetime_pt
    env.filters["link"] = _link
    env.filters["request_type"] = _named(REQUEST_TYPE_NAMES[locale])
    env.filters["field_name"] = _named(FIELD_NAMES[locale])
    env.tests["web_url"] = _is_web_url
    return env


def _check(kind: Kind, data: Mapping[str, object]) -> None:
    """The data against the catalogue: the error names the first bad key, never its value."""
    nullable = set(COMMON_NULLABLE) | set(kind.nullable)
    for key in (*COMMON, *kind.required):
        if key not in data or (data[key] is None and key not in nullable):
            raise MissingData(f"{kind.name}: missing {key!r}")
    for key in kind.lists:
        value = data[key]
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise InvalidData(f"{kind.name}: {key!r} is not a list of strings")
    for key, allowed in kind.choices:
        if data[key] not in allowed:
            raise InvalidData(f"{kind.name}: {key!r} is not one of {', '.join(allowed)}")


class Templates:
    """Renders a kind's message in a language; built once per service (it compiles every template)."""

    def __init__(self, directory: Path | None = None) -> None:
        root = TEMPLATES_DIR if directory is None else Path(directory)
        self._compiled: dict[tuple[str, str], Template] = {}
        for locale in LOCALES:
            env = _environment(root, locale)
            for shared in env.list_templates(filter_func=lambda name: name.startswith("_")):
                env.get_template(shared)  # _text.j2 is imported at render time: from the cache, not the disk
            for name in KINDS:
                self._compiled[(locale, name)] = env.get_template(f"{name}.j2")

    def render(self, kind: str, locale: str, data: Mapping[str, object]) -> RenderedMessage:
        """``kind``'s message in ``locale`` (any tag; an unknown one falls back to pt-BR).

        Raises KeyError for an unknown kind, :class:`MissingData` / :class:`InvalidData` for data
        the template cannot say plainly.
        """
        entry = KINDS.get(kind)
        if entry is None:
            raise KeyError(f"unknown message kind {kind!r}")
        _check(entry, data)
        template = self._compiled[(locale_of(locale), kind)]
        variables = dict(data)
        subject = " ".join(_block(template, "subject", variables).split())
        variables["subject"] = subject  # the HTML <title>, escaped there like any value
        text = _block(template, "text", variables).strip() + "\n"
        html = template.render(variables)
        return RenderedMessage(subject=subject, text=text, html=html)


def _block(template: Template, name: str, variables: Mapping[str, object]) -> str:
    return "".join(template.blocks[name](template.new_context(dict(variables))))
