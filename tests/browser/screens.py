"""``make screens``: every page of the privacy centre at 1280x800 and 390x844, into ``docs/screens/``.

Starts a platform of its own on the machine's RabbitMQ and PostgreSQL (as the end-to-end tests do: a fresh
vhost and databases, removed after), seeds it through the API (an attendant with a correction, requests and a
consent; a DPO; an incident confirmed for three customers; a contact request), runs ``screens.mjs`` (Debian's
Chromium through playwright-core) and writes ``docs/screens/README.md`` listing the pictures and the pages it
could not show. ``SCREENS_LANG=en`` takes them in English (default: pt-BR, the centre's default language).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT / "tests")]

import upgestao_kernel.green  # noqa: E402,F401,I001  (first: eventlet monkey-patching, as in the tests)

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, E2E_IDENTITY_ENV, PASSWORD, Api  # noqa: E402
from e2e_identity import create_dpo  # noqa: E402
from e2e_platform import load_script, own_platform  # noqa: E402
from upgestao_kernel.testing import wait_for  # noqa: E402

OUT = ROOT / "docs" / "screens"
LANG = os.environ.get("SCREENS_LANG", "pt-BR")
TITLES = {
    "home": "Privacy centre (home), with the cookie banner of a first visit",
    "policy": "The privacy policy in effect, with its effective date and earlier versions",
    "policy-version": "One version of the policy",
    "cookies": "Cookie preferences: per purpose, with the history of choices",
    "contact": "The privacy contact form (no account)",
    "contact-status": "A contact request: the one-time-code step and its status",
    "login": "Sign in",
    "me": "Meus dados: my data as the platform holds it, edit or ask for a correction",
    "me-requests": "Meus dados: my requests, their status and due date",
    "me-access": "Meus dados: my export, who accessed my data and with whom it was shared",
    "me-consents": "Meus dados: my consent history",
    "me-policy": "Meus dados: accept a new policy version",
    "dpo-requests": "DPO console: the request queue (filters, overdue first, days left)",
    "dpo-request": "DPO console: a request's detail, history and actions",
    "dpo-corrections": "DPO console: correction reviews",
    "dpo-incidents": "DPO console: incidents (record one with every art. 48 item)",
    "dpo-incident": "DPO console: an incident, its 3-business-day clock and the campaign's progress",
    "dpo-audit": "DPO console: audit log search and verification",
}


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, \
        f"{response.request.method} {response.url}: {response.status_code} {response.text}"
    return response.json() if response.content else {}


def seed(platform) -> dict:
    """People and data for every page to show something; the env of screens.mjs."""
    api = Api(platform.url)
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    attendant, tokens = api.create_staff(admin, "attendant", full_name="Beatriz Carvalho")
    token = tokens["access_token"]
    dpo, dpo_tokens = create_dpo(platform, api, admin, full_name="Daniel Prado Oliveira")
    dpo_token = dpo_tokens["access_token"]
    first = ok(api.get("/v1/privacy/policies/current"))
    # a second version in effect: the policy page lists two, the earlier one has a page of its own, and the
    # attendant is asked to accept the new one ("Meus dados")
    version = datetime.now(UTC).date().isoformat()
    if version != first["version"]:
        ok(api.post("/v1/privacy/policies", dpo_token, json={
            "version": version, "effective_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "text": first["text"] + "\n\nCookies de personalização: só com a sua permissão, que você pode retirar "
                                    "a qualquer momento em Preferências de cookies.",
            "summary": "Explicamos melhor os cookies de personalização."}), 201)

    ok(api.put("/v1/privacy/consents", token, json={"purposes": {"essential": True, "analytics": True,
                                                                  "personalisation": False},
                                                     "policy_version": version}))
    ok(api.post("/v1/privacy/corrections", token, json={"changes": {"job_title": "Supervisora de atendimento"},
                                                         "reason": "Fui promovida em novembro."}), 201)
    access = ok(api.post("/v1/privacy/requests", token, json={"type": "access"}), 201)
    ok(api.post("/v1/privacy/requests", token, json={"type": "sharing_info"}), 201)
    answered = ok(api.post("/v1/privacy/requests", token, json={"type": "confirmation"}), 201)
    ok(api.post(f"/v1/privacy/requests/{answered['id']}/start", dpo_token))
    ok(api.post(f"/v1/privacy/requests/{access['id']}/start", dpo_token))  # the export: a link by e-mail

    customers = [ok(api.post("/v1/customers", admin, json={"full_name": f"Cliente Exemplo {n}",
                                                            "email": f"cliente.{uuid.uuid4().hex[:8]}@example.com.br"}),
                    201)["id"] for n in range(3)]
    now = datetime.now(UTC)
    incident = ok(api.post("/v1/privacy/incidents", dpo_token, json={
        "nature_of_data": ["Nomes", "Endereços de e-mail"], "categories": ["identification", "contact"],
        "affected": {"kind": "ids", "ids": customers},
        "people_affected": "Clientes que escreveram pelo formulário do site em novembro.",
        "technical_measures": "Cada campo pessoal é cifrado com uma chave própria por pessoa.",
        "risks": "Alguém de fora pode ter lido o seu nome e o seu e-mail.",
        "measures_taken": "Fechamos a exportação exposta e trocamos todas as credenciais que ela usava.",
        "what_to_do": ["Desconfie de e-mails pedindo a sua senha", "Nunca compartilhe os códigos que enviamos"],
        "dpo_contact": "dpo@upgestao.example",
        "occurred_at": (now - timedelta(days=1)).isoformat(), "detected_at": (now - timedelta(hours=2)).isoformat(),
    }), 201)
    ok(api.post(f"/v1/privacy/incidents/{incident['id']}/confirm", dpo_token, json={}))
    wait_for(lambda: ok(api.get(f"/v1/privacy/incidents/{incident['id']}", dpo_token))["progress"]["counts"]
             .get("sent") == len(customers), timeout=60, interval=0.5)
    ok(api.post("/v1/privacy/incidents", dpo_token, json={  # a draft, not yet confirmed
        "nature_of_data": ["Telefones"], "categories": ["contact"], "affected": {"kind": "ids", "ids": customers[:1]},
        "people_affected": "Um cliente.", "technical_measures": "Cifrado.", "risks": "Ligações indesejadas.",
        "measures_taken": "Senha trocada.", "what_to_do": ["Nada a fazer"], "dpo_contact": "dpo@upgestao.example",
        "occurred_at": (now - timedelta(hours=5)).isoformat(), "detected_at": (now - timedelta(hours=1)).isoformat(),
    }), 201)
    contact = ok(api.post("/v1/privacy/contact", json={"email": f"visitante.{uuid.uuid4().hex[:6]}@example.com",
                                                         "type": "access", "message": "Quero uma cópia."}), 202)
    return {
        "UPG_ATTENDANT_EMAIL": attendant["email"], "UPG_ATTENDANT_PASSWORD": PASSWORD,
        "UPG_DPO_EMAIL": dpo["email"], "UPG_DPO_PASSWORD": PASSWORD,
        "UPG_IDS": json.dumps({"policyVersion": first["version"], "contactRequestId": contact["id"],
                               "requestId": access["id"], "incidentId": incident["id"]}),
    }


def take(platform, seeded: dict) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "UPG_BASE_URL": platform.url, "UPG_SCREENS_DIR": str(OUT), "UPG_SCREENS_LANG": LANG,
           "UPG_TIMEOUT_MS": "300000", **seeded}
    done = subprocess.run(["node", str(HERE / "screens.mjs")], cwd=HERE, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=330)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"screens.mjs failed (exit {done.returncode})")
    found: dict = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            found.update(json.loads(line[len("RESULT "):]))
    return found


def readme(found: dict) -> str:
    pictures: dict[str, dict[str, str]] = {}
    for shot in found["taken"]:
        pictures.setdefault(shot["page"], {"path": shot["path"], "who": shot["who"]})[shot["viewport"]] = shot["file"]
    lines = ["# The privacy centre, page by page", "",
             "Every page of the privacy centre (`/app/`, issue 17) at desktop (1280×800) and phone (390×844) "
             f"width, whole page, in {'Portuguese (pt-BR, the default language)' if LANG == 'pt-BR' else LANG}. "
             "Made by `make screens` (`tests/browser/screens.py`: a platform of its own, seeded through the API, "
             "photographed by Debian's Chromium through playwright-core); run it again after changing a page.", "",
             "| Page | Path | Seen as | Desktop | Phone |", "|---|---|---|---|---|"]
    for name, title in TITLES.items():
        if name in pictures:
            shot = pictures[name]
            cells = [f"[{shot[key]}]({shot[key]})" if key in shot else "—" for key in ("desktop", "phone")]
            lines.append(f"| {title} | `{shot['path']}` | {shot['who']} | {cells[0]} | {cells[1]} |")
    missing = [m for m in found["missing"] if m["page"] not in pictures]
    if missing:
        lines += ["", "## Missing", "", "Pages that could not be photographed when these were taken:", ""]
        lines += [f"- {TITLES.get(m['page'], m['page'])} (`{m['page']}`): {m['why']}" for m in missing]
    return "\n".join(lines) + "\n"


def main() -> None:
    platform_module = load_script("scripts/upgestao_platform.py", "upgestao_platform")
    with tempfile.TemporaryDirectory(prefix="upgestao-screens-") as data, \
            own_platform(platform_module, Path(data), "screens", E2E_IDENTITY_ENV) as platform:
        print(f"platform at {platform.url}; seeding through the API", file=sys.stderr)
        seeded = seed(platform)
        OUT.mkdir(parents=True, exist_ok=True)
        found = take(platform, seeded)
    taken = {shot["file"] for shot in found["taken"]}
    for old in OUT.glob("*.png"):  # a page no longer photographed leaves no stale picture
        if old.name not in taken:
            old.unlink()
    (OUT / "README.md").write_text(readme(found), encoding="utf-8")
    print(f"{len(found['taken'])} screenshots in {OUT.relative_to(ROOT)}; missing: "
          f"{', '.join(m['page'] for m in found['missing']) or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()
