"""The e-mail renderer: every kind in both languages, the text saying what the HTML says, escaping, errors."""

from __future__ import annotations

import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import TemplateNotFound
from upgestao_notifier.adapters.templates import (
    FIELD_NAMES,
    REQUEST_TYPE_NAMES,
    TEMPLATES_DIR,
    InvalidData,
    MissingData,
    RenderedMessage,
    Templates,
)
from upgestao_notifier.domain.kinds import COMMON, KINDS, LOCALES, REQUEST_TYPES

COMMON_DATA = {
    "recipient_name": "Ana Lúcia",
    "platform_name": "UpGestão",
    "dpo_contact": "dpo-7731@virtux.example",
    "privacy_url": "https://up.example/privacidade?aba=1&x=2",
    "support_url": "https://up.example/ajuda",
}
# Each date key its own moment, and the form each language must show it in.
DATES = {
    "expires_at": ("2026-12-02T14:05:00Z", "02/12/2026 às 14:05 (UTC)", "2 December 2026, 14:05 UTC"),
    "occurred_at": ("2026-11-28T08:00:00-03:00", "28/11/2026 às 11:00 (UTC)", "28 November 2026, 11:00 UTC"),
    "detected_at": ("2026-11-29T21:17:00+00:00", "29/11/2026 às 21:17 (UTC)", "29 November 2026, 21:17 UTC"),
    "completed_at": ("2026-12-01T09:41:00", "01/12/2026 às 09:41 (UTC)", "1 December 2026, 09:41 UTC"),
    "due_at": ("2026-12-13T23:59:00Z", "13/12/2026 às 23:59 (UTC)", "13 December 2026, 23:59 UTC"),
    "effective_at": ("2027-01-05T03:00:00Z", "05/01/2027 às 03:00 (UTC)", "5 January 2027, 03:00 UTC"),
}
ENUMS = {"request_type": "sharing_info", "outcome": "completed", "decision": "approved"}
# a key whose closed set of values belongs to one kind (another kind's key of the same name is free text)
KIND_ENUMS = {("integration_disabled", "reason"): "gone"}
ART_48_HEADINGS = {
    "pt-BR": (
        "O que aconteceu",
        "Quais dados foram afetados",
        "Quem foi afetado",
        "Como os dados estavam protegidos",
        "Quais são os riscos",
        "Motivos de atraso neste aviso",
        "O que já fizemos e o que ainda vamos fazer",
        "O que você deve fazer agora",
        "Fale com o nosso encarregado de dados (DPO)",
    ),
    "en": (
        "What happened",
        "What data was involved",
        "Who is affected",
        "How the data was protected",
        "What the risks are",
        "Reasons for any delay in this notice",
        "What we have done and will do",
        "What you should do now",
        "Contact our Data Protection Officer (DPO)",
    ),
}


def sample(kind: str, **overrides: object) -> dict[str, object]:
    """The common data plus a distinct, recognisable value for each of the kind's keys (some with HTML in them)."""
    entry = KINDS[kind]
    data: dict[str, object] = dict(COMMON_DATA)
    for key in entry.required:
        if key in DATES:
            data[key] = DATES[key][0]
        elif (kind, key) in KIND_ENUMS:
            data[key] = KIND_ENUMS[(kind, key)]
        elif key in ENUMS:
            data[key] = ENUMS[key]
        elif key == "fields":
            data[key] = ["full_name", "birth_date", "job_title"]
        elif key in entry.lists:
            data[key] = [f"{key} item one", f'{key} item <two> & "three"']
        elif key.endswith("_url"):
            data[key] = f"https://up.example/{key}?t=K7-{key}&n=1"
        else:
            data[key] = f"{key} «v-{len(key)}» <b>&"
    data.update(overrides)
    return data


def facts(kind: str, locale: str, data: dict[str, object]) -> list[str]:
    """What the reader must find in both parts: every value as the reader sees it."""
    out = [str(data[key]) for key in COMMON if data[key] is not None]
    for key in KINDS[kind].required:
        value = data[key]
        if value is None or key in ("outcome", "decision") or (kind, key) in KIND_ENUMS:
            continue
        if key in DATES:
            out.append(DATES[key][1 if locale == "pt-BR" else 2])
        elif key == "request_type":
            out.append(REQUEST_TYPE_NAMES[locale][str(value)])
        elif key == "fields":
            out.extend(FIELD_NAMES[locale][str(f)] for f in value)  # type: ignore[union-attr]
        elif isinstance(value, list):
            out.extend(value)
        else:
            out.append(str(value))
    return out


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_title = tag == "title"
        self.hrefs.extend(value for name, value in attrs if name == "href")

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if not self._in_title:
            self.parts.append(data)


def parse(html: str) -> _Html:
    parser = _Html()
    parser.feed(html)
    parser.close()
    return parser


def html_text(html: str) -> str:
    return " ".join(parse(html).parts)  # a tag separates words (a <br> is not glue)


def words(text: str) -> set[str]:
    return set(re.findall(r"\w[\w'@./:?&=-]*\w|\w", text))


VARIANTS = [
    ("password_reset", {}),
    ("new_login", {}),
    ("email_changed", {}),
    ("privacy_request_verification", {}),
    ("privacy_request_completed", {}),
    ("privacy_request_completed", {"reason": None, "download_url": None}),
    ("privacy_request_completed", {"outcome": "denied", "download_url": None}),
    ("privacy_request_completed", {"outcome": "denied", "reason": None, "download_url": None}),
    ("correction_decided", {}),
    ("correction_decided", {"reason": None}),
    ("correction_decided", {"decision": "denied"}),
    ("breach_notice", {}),
    ("breach_notice", {"delay_reasons": None}),
    ("policy_published", {}),
    ("integration_disabled", {}),
    ("integration_disabled", {"reason": "failing"}),
]


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("kind", "overrides"), VARIANTS)
def test_every_kind_renders_and_its_text_carries_the_facts_of_its_html(templates, kind, overrides, locale):
    data = sample(kind, **overrides)
    message = templates.render(kind, locale, data)
    assert isinstance(message, RenderedMessage)
    shown = html_text(message.html)
    for fact in facts(kind, locale, data):
        assert fact in message.text, fact
        assert fact in shown, fact
    # the same sentences in both parts: no word in one that the other lacks (bar list numbering)
    assert not (words(message.text) ^ words(shown)) - {"1", "2"}, words(message.text) ^ words(shown)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_html_is_a_plain_document_in_the_recipients_language(templates, kind, locale):
    message = templates.render(kind, locale, sample(kind))
    assert message.html.startswith("<!doctype html>\n")
    assert f'<html lang="{locale}">' in message.html
    assert '<meta charset="utf-8">' in message.html
    assert f"<title>{message.subject}</title>" in message.html
    tags = set(parse(message.html).tags)
    assert not tags & {"script", "img", "iframe", "object", "link", "style", "form"}
    assert "src=" not in message.html and "javascript" not in message.html.lower()
    assert message.text.endswith("\n") and "\n\n\n" not in message.text
    assert "<" not in message.text.replace("<b>", "").replace("<two>", "")  # no markup leaks into the text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_subjects_are_one_short_line_that_differs_per_language(templates, kind, locale):
    subject = templates.render(kind, locale, sample(kind)).subject
    other = templates.render(kind, "en" if locale == "pt-BR" else "pt-BR", sample(kind)).subject
    assert subject and "\n" not in subject and subject == subject.strip()
    assert len(subject) < 120
    assert subject != other
    assert "UpGestão" in subject


@pytest.mark.parametrize("locale", LOCALES)
def test_codes_and_tokens_stay_out_of_subjects(templates, locale):
    reset = templates.render("password_reset", locale, sample("password_reset"))
    code = templates.render("privacy_request_verification", locale, sample("privacy_request_verification"))
    assert "reset_token" not in reset.subject and "code" not in code.subject.lower().replace("confirm", "")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("delay", [None, "Esperamos a perícia confirmar o alcance."])
def test_the_breach_notice_has_every_art_48_heading_in_both_parts(templates, locale, delay):
    message = templates.render("breach_notice", locale, sample("breach_notice", delay_reasons=delay))
    shown = html_text(message.html)
    h2 = re.findall(r"<h2[^>]*>(.*?)</h2>", message.html)
    assert tuple(h2) == ART_48_HEADINGS[locale]
    for heading in ART_48_HEADINGS[locale]:
        assert f"\n{heading}\n" in message.text
        assert heading in shown
    no_delay = "Não houve atraso" if locale == "pt-BR" else "There was no delay"
    assert (no_delay in message.text) == (delay is None) == (no_delay in shown)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", ["<script>alert(1)</script>", 'Ana & "Bia"'])
def test_values_are_escaped_in_the_html_and_verbatim_in_the_text(templates, locale, name):
    message = templates.render("new_login", locale, sample("new_login", recipient_name=name))
    assert name in message.text
    assert name not in message.html
    assert "<script" not in message.html
    assert name in html_text(message.html)


@pytest.mark.parametrize("locale", LOCALES)
def test_without_a_name_the_greeting_is_neutral(templates, locale):
    message = templates.render("password_reset", locale, sample("password_reset", recipient_name=None))
    hello = "Olá," if locale == "pt-BR" else "Hello,"
    assert message.text.startswith(hello + "\n")
    assert f"<p>{hello}</p>" in message.html
    assert "None" not in message.text and "None" not in message.html


@pytest.mark.parametrize("locale", LOCALES)
def test_only_http_urls_become_links(templates, locale):
    data = sample(
        "policy_published",
        policy_url="javascript:alert(1)",
        support_url='data:text/html,<script>"x"</script>',
        privacy_url="HTTP://up.example/p?a=1&b=2",
    )
    message = templates.render("policy_published", locale, data)
    assert parse(message.html).hrefs == ["HTTP://up.example/p?a=1&b=2"]
    shown = html_text(message.html)
    assert "javascript:alert(1)" in shown and "javascript:alert(1)" in message.text
    assert 'data:text/html,<script>"x"</script>' in shown


@pytest.mark.parametrize("request_type", REQUEST_TYPES)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_privacy_request_type_has_a_plain_name(templates, locale, request_type):
    name = REQUEST_TYPE_NAMES[locale][request_type]
    assert "_" not in name
    message = templates.render(
        "privacy_request_verification", locale, sample("privacy_request_verification", request_type=request_type)
    )
    assert name in message.text and name in html_text(message.html)
    assert set(REQUEST_TYPE_NAMES[locale]) == set(REQUEST_TYPES)


@pytest.mark.parametrize("locale", LOCALES)
def test_identitys_personal_fields_have_plain_names_and_an_unknown_one_is_still_readable(templates, locale):
    assert set(FIELD_NAMES[locale]) == {
        "full_name", "email", "phone", "birth_date", "address", "job_title", "gender", "photo",
    }  # fmt: skip
    message = templates.render("correction_decided", locale, sample("correction_decided", fields=["nick_name"]))
    assert "nick name" in message.text and "nick_name" not in message.text


@pytest.mark.parametrize(("kind", "key"), [(k, key) for k in KINDS for key in (*COMMON[1:], *KINDS[k].required)])
def test_a_missing_key_raises_missing_data_naming_the_key_not_a_value(templates, kind, key):
    data = sample(kind)
    del data[key]
    with pytest.raises(MissingData) as raised:
        templates.render(kind, "pt-BR", data)
    assert str(raised.value) == f"{kind}: missing {key!r}"


@pytest.mark.parametrize(("kind", "key"), [("password_reset", "reset_token"), ("breach_notice", "risks")])
def test_none_where_a_value_is_needed_is_missing_data(templates, kind, key):
    with pytest.raises(MissingData, match=key):
        templates.render(kind, "en", sample(kind, **{key: None}))


def test_the_recipients_name_is_the_only_common_key_that_may_be_absent_only_as_none(templates):
    data = sample("new_login")
    del data["recipient_name"]
    with pytest.raises(MissingData, match="recipient_name"):
        templates.render("new_login", "en", data)


@pytest.mark.parametrize(
    ("kind", "overrides", "key"),
    [
        ("privacy_request_completed", {"outcome": "maybe"}, "outcome"),
        ("correction_decided", {"decision": "Approved"}, "decision"),
        ("privacy_request_verification", {"request_type": "everything"}, "request_type"),
        ("correction_decided", {"fields": "full_name"}, "fields"),
        ("breach_notice", {"what_to_do": ["ok", 3]}, "what_to_do"),
    ],
)
def test_a_value_outside_its_shape_raises_invalid_data_naming_the_key(templates, kind, overrides, key):
    with pytest.raises(InvalidData, match=key):
        templates.render(kind, "en", sample(kind, **overrides))


@pytest.mark.parametrize("bad", ["amanhã", "2026-13-01T00:00:00Z", 1733140000])
def test_a_date_that_is_not_iso_8601_is_invalid_data(templates, bad):
    with pytest.raises(InvalidData):
        templates.render("email_changed", "pt-BR", sample("email_changed", occurred_at=bad))


def test_an_unknown_kind_is_refused(templates):
    with pytest.raises(KeyError):
        templates.render("newsletter", "pt-BR", dict(COMMON_DATA))


@pytest.mark.parametrize(("asked", "used"), [("fr-FR", "pt-BR"), ("", "pt-BR"), ("en-US", "en"), ("EN_gb", "en")])
def test_a_locale_is_read_like_a_preference_and_an_unknown_one_falls_back_to_pt_br(templates, asked, used):
    data = sample("policy_published")
    assert templates.render("policy_published", asked, data) == templates.render("policy_published", used, data)


def test_every_kind_has_both_template_files_and_every_message_file_has_a_kind():
    for locale in LOCALES:
        folder = TEMPLATES_DIR / locale
        messages = {p.stem for p in folder.glob("*.j2") if not p.name.startswith("_")}
        assert messages == set(KINDS), locale
        assert {p.name for p in folder.glob("_*.j2")} == {"_layout.j2", "_text.j2"}
    everything = {p.relative_to(TEMPLATES_DIR).as_posix() for p in TEMPLATES_DIR.rglob("*") if p.is_file()}
    expected = {f"{locale}/{name}.j2" for locale in LOCALES for name in (*KINDS, "_layout", "_text")}
    assert everything == expected


def test_each_message_template_extends_its_languages_layout():
    for locale in LOCALES:
        for kind in KINDS:
            source = (TEMPLATES_DIR / locale / f"{kind}.j2").read_text(encoding="utf-8")
            assert '{% extends "_layout.j2" %}' in source
            for block in ("subject", "text", "html"):
                assert f"{{% block {block} %}}" in source, (locale, kind, block)


def test_templates_are_compiled_once_when_the_renderer_is_built(tmp_path: Path):
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy)
    renderer = Templates(copy)
    shutil.rmtree(copy)  # no file is read after construction
    for locale in LOCALES:
        for kind in KINDS:
            assert renderer.render(kind, locale, sample(kind)).subject


def test_a_missing_template_stops_the_renderer_at_construction(tmp_path: Path):
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy)
    (copy / "en" / "new_login.j2").unlink()
    with pytest.raises(TemplateNotFound):
        Templates(copy)


def test_rendering_is_fast_enough_for_thousands_of_mails_a_minute(templates):
    data = sample("breach_notice")
    started = time.perf_counter()
    for _ in range(200):
        templates.render("breach_notice", "pt-BR", data)
    assert time.perf_counter() - started < 1.0  # ≥ 200 breach notices a second, the longest message


# -- integration_disabled (issue 15) -----------------------------------------------------------

INTEGRATION_WHY = {
    ("pt-BR", "gone"): "respondeu 410 (Gone)",
    ("pt-BR", "failing"): "falharam durante 5 dias",
    ("en", "gone"): "answered 410 (Gone)",
    ("en", "failing"): "failed for 5 days",
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("reason", ["gone", "failing"])
def test_an_integration_disabled_says_which_why_and_how_to_enable_it_again(templates, locale, reason):
    data = sample("integration_disabled", reason=reason, integration_id="int_a1b2c3d4e5f60718293a4b5c6d",
                  integration_name="CRM Vendas")
    message = templates.render("integration_disabled", locale, data)
    shown = html_text(message.html)
    other = "failing" if reason == "gone" else "gone"
    for part in (message.text, shown):
        assert "CRM Vendas" in part and "int_a1b2c3d4e5f60718293a4b5c6d" in part
        assert INTEGRATION_WHY[(locale, reason)] in part and INTEGRATION_WHY[(locale, other)] not in part
        assert 'PATCH /v1/integrations/int_a1b2c3d4e5f60718293a4b5c6d' in part and '{"status": "enabled"}' in part
        assert "POST /v1/integrations/int_a1b2c3d4e5f60718293a4b5c6d/recover" in part
        assert part.count("dpo-7731@virtux.example") == 2  # the DPO named in the body, and in the footer


@pytest.mark.parametrize("locale", LOCALES)
def test_an_integrations_name_is_escaped_in_the_html_and_verbatim_in_the_text(templates, locale):
    name = '<img src=x onerror=alert(1)> "CRM" & Co'
    message = templates.render("integration_disabled", locale, sample("integration_disabled", integration_name=name))
    assert name in message.text and name not in message.html
    assert "<img" not in message.html and "&lt;img src=x onerror=alert(1)&gt;" in message.html
    assert name in html_text(message.html)
    assert name not in message.subject  # a tool's name is the admin's free text: never in a header


@pytest.mark.parametrize("reason", ["manual", "Gone", None])
def test_an_integration_disabled_for_another_reason_is_not_a_message(templates, reason):
    with pytest.raises((InvalidData, MissingData), match="reason"):
        templates.render("integration_disabled", "en", sample("integration_disabled", reason=reason))
