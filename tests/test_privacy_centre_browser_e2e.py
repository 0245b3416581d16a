"""The privacy centre in a real browser (issue 17's "Must show"): Debian's Chromium driven by playwright-core.

Each test sets up its people and data through the API here, then runs one node scenario of
``tests/browser/scenarios/`` (playwright-core, ``/usr/bin/chromium`` headless, the ``upg_lang=en`` cookie) with
its inputs in the environment; the script exits non-zero naming the step that failed, the page and what it
said. Where the issue says the API records exactly what the person did, the API's state is checked from here
too. ``make browser-deps`` (a prerequisite of ``make test``) installs Chromium and the node packages.

* a visitor accepts only analytics ("Choose", the preferences) and the API records exactly that; then withdraws;
* a visitor files a request through the contact form, the code is read from the SMTP sink, verified, status shown;
* a signed-in attendant asks for a correction, the DPO approves it in the console, the attendant sees the change;
* the attendant downloads their export and sees who accessed their data;
* the DPO records and confirms an incident and sees 100 % delivered;
* the DPO finds a request in the queue, extends its due date and denies it, each with a reason;
* the DPO's verify button reports a valid log, and tampering when the served checkpoint is altered
  (``page.route`` on ``GET /v1/audit/checkpoint``: the test double at the HTTP boundary);
* axe-core on every page, desktop and phone width: no serious or critical violation (nor sideways scrolling on
  the phone); the skip link, the cookie banner and the contact form work from the keyboard alone; Portuguese
  by default, English on request (remembered);
* every page carries its CSP and the console shows no CSP violation.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Api, wait_for_audit
from e2e_identity import create_dpo
from e2e_mail import mail_to, text_and_html
from upgestao_kernel.testing import wait_for

pytestmark = pytest.mark.e2e

BROWSER = Path(__file__).resolve().parent / "browser"
CHROMIUM = "/usr/bin/chromium"
SCENARIO_TIMEOUT_S = 90  # the subprocess's bound; each script bounds itself tighter (UPG_TIMEOUT_MS)
EVERY_PAGE_TIMEOUT_S = 300  # from the module's first test to its end, beside the other scenarios
CODE = re.compile(r"^\s*([0-9]{6})\s*$", re.MULTILINE)
EXPORT_LINK = re.compile(r"https?://[^\s<>\"]+/v1/privacy/exports/[A-Za-z0-9_-]{20,128}")


def browser_ready() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing"
    if shutil.which("node") is None:
        return "node is not installed"
    if not all((BROWSER / "node_modules" / name).is_dir() for name in ("playwright-core", "axe-core")):
        return f"{BROWSER}/node_modules lacks playwright-core or axe-core"
    return None


@pytest.fixture(scope="module", autouse=True)
def _browser_installed():
    missing = browser_ready()
    if missing:
        pytest.fail(f"{missing}: run `make browser-deps` (make test does it first)", pytrace=False)


def scenario_env(platform, tmp_path: Path, **values) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "UPG_BASE_URL": platform.url, "UPG_ARTIFACTS": str(tmp_path / "browser-artifacts"),
           "UPG_TIMEOUT_MS": str((SCENARIO_TIMEOUT_S - 10) * 1000)}
    env.update({key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()})
    return env


def results_of(stdout: str) -> dict:
    """The scenario's ``RESULT <json>`` lines, merged."""
    merged: dict = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            merged.update(json.loads(line[len("RESULT "):]))
    return merged


def explain(name: str, code: int | None, stdout: str, stderr: str) -> str:
    return (f"browser scenario {name} failed (exit {code}):\n{stderr.strip()[-6000:]}\n"
            f"--- its stdout ---\n{stdout.strip()[-2000:]}")


def run_scenario(name: str, env: dict[str, str], timeout: float = SCENARIO_TIMEOUT_S) -> dict:
    """Run ``tests/browser/scenarios/<name>.mjs``; fails with its report unless it exits 0; its RESULTs."""
    try:
        done = subprocess.run(["node", str(BROWSER / "scenarios" / f"{name}.mjs")], cwd=BROWSER, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(explain(name, None, _text(exc.stdout), _text(exc.stderr))) from None
    assert done.returncode == 0, explain(name, done.returncode, done.stdout, done.stderr)
    return results_of(done.stdout)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


class Running:
    """A scenario that needs something from here halfway (a code or a link from the SMTP sink): its RESULT
    lines are read as they come (:meth:`wait_for`), and :meth:`hand` writes ``UPG_HANDOFF_DIR/<name>``, which
    the script waits for (lib.mjs ``handoff``)."""

    def __init__(self, name: str, env: dict[str, str], tmp_path: Path, timeout: float = SCENARIO_TIMEOUT_S) -> None:
        self.name = name
        self.timeout = timeout
        self.folder = tmp_path / f"handoff-{name}"
        self.folder.mkdir()
        self.stderr_path = tmp_path / f"{name}.stderr"
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.found: dict = {}
        self.deadline = time.monotonic() + timeout
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(["node", str(BROWSER / "scenarios" / f"{name}.mjs")], cwd=BROWSER,
                                            env={**env, "UPG_HANDOFF_DIR": str(self.folder)},
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _take(self, line: str) -> None:
        self.stdout.append(line)
        if line.startswith("RESULT "):
            self.found.update(json.loads(line[len("RESULT "):]))

    def report(self) -> str:
        return explain(self.name, self.process.poll(), "".join(self.stdout), self.stderr_path.read_text())

    def wait_for(self, key: str, timeout: float = 45):
        """The value of ``key`` in the script's RESULTs, once it printed it."""
        deadline = min(self.deadline, time.monotonic() + timeout)
        while key not in self.found:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None if time.monotonic() >= deadline else ""
            if line is None:
                self.stop()
                raise AssertionError(f"the scenario gave no {key}\n{self.report()}")
            if line:
                self._take(line)
        return self.found[key]

    def hand(self, name: str, value: str) -> None:
        (self.folder / f"{name}.part").write_text(value)
        (self.folder / f"{name}.part").rename(self.folder / name)  # whole or nothing

    def finish(self) -> dict:
        """Wait for the script's end; fails with its report unless it exits 0; its RESULTs."""
        try:
            self.process.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the scenario took more than {self.timeout} s\n{self.report()}") from None
        while (line := self.lines.get(timeout=10)) is not None:
            self._take(line)
        assert self.process.returncode == 0, self.report()
        return self.found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


# -- the people and data the scenarios need -----------------------------------------------------------------


@pytest.fixture(scope="module")
def api(platform):
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin(api):
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


@pytest.fixture(scope="module")
def dpo(platform, api, admin):
    """(the DPO user, its access token); its password is PASSWORD."""
    user, tokens = create_dpo(platform, api, admin)
    return user, tokens["access_token"]


def new_attendant(api: Api, admin: str) -> tuple[dict, str]:
    """(a new attendant, its access token); its password is PASSWORD."""
    user, tokens = api.create_staff(admin, "attendant")
    return user, tokens["access_token"]


def people_env(attendant: dict | None, dpo_user: dict) -> dict[str, str]:
    """The scenarios' credentials (every staff user here has the password PASSWORD)."""
    env = {"UPG_DPO_EMAIL": dpo_user["email"], "UPG_DPO_PASSWORD": PASSWORD}
    if attendant is not None:
        env.update({"UPG_ATTENDANT_EMAIL": attendant["email"], "UPG_ATTENDANT_PASSWORD": PASSWORD})
    return env


def code_for(platform, address: str, timeout: float = 30) -> str:
    """The one-time code the contact channel e-mailed to ``address`` (the newest)."""
    codes: list[str] = []

    def arrived() -> bool:
        codes[:] = [m.group(1) for _, message in mail_to(platform, address)
                    if (m := CODE.search(text_and_html(message)[0]))]
        return bool(codes)

    wait_for(arrived, timeout=timeout, interval=0.2)
    return codes[-1]


def incident_body(ids: list[str], now: datetime, **over) -> dict:
    """An incident with every LGPD art. 48 §1 item, affecting the customers ``ids``."""
    return {"nature_of_data": ["E-mail addresses"], "categories": ["contact"], "affected": {"kind": "ids", "ids": ids},
            "people_affected": "Customers who wrote through the site's form", "technical_measures": "Encrypted at rest",
            "risks": "Phishing", "measures_taken": "Link revoked", "what_to_do": ["Ignore e-mails asking for codes"],
            "dpo_contact": "dpo@upgestao.example", "occurred_at": (now - timedelta(hours=2)).isoformat(),
            "detected_at": (now - timedelta(hours=1)).isoformat(), **over}


def export_link_for(platform, address: str, timeout: float = 45) -> str:
    """The download link of the access bundle e-mailed to ``address`` (its only one)."""
    def link() -> str | None:
        for _, message in mail_to(platform, address):
            if found := EXPORT_LINK.search(text_and_html(message)[0]):
                return found.group(0)
        return None

    return wait_for(link, timeout=timeout, interval=0.2)


# -- the scenarios -------------------------------------------------------------------------------------------


def test_a_visitor_accepts_only_analytics_then_withdraws_it(platform, api, tmp_path):
    found = run_scenario("cookie_consent", scenario_env(platform, tmp_path))
    visitor = found["visitor_id"]
    current = api.get("/v1/privacy/policies/current").json()["version"]
    saved = [put for put in found["puts"] if put["status"] == 200]
    assert len(saved) == 2, found["puts"]
    assert all(put["policy_version"] == current for put in saved), "the choice is sent with the policy in effect"

    state = api.get("/v1/privacy/consents/visitor", headers={"Visitor-Id": visitor})
    assert state.status_code == 200, state.text
    state = state.json()
    assert state["holder_kind"] == "visitor"
    # newest first: the withdrawal, then the choice of analytics alone
    withdrawn, chosen = state["history"][0], state["history"][1]
    assert len(state["history"]) == 2, state["history"]
    assert {k: chosen["purposes"].get(k) for k in ("analytics", "personalisation")} == {
        "analytics": True, "personalisation": False}, chosen
    assert chosen["purposes"].get("essential", True) is True
    assert chosen["source"] == "choice" and chosen["policy_version"] == current
    assert {k: withdrawn["purposes"].get(k) for k in ("analytics", "personalisation")} == {
        "analytics": False, "personalisation": False}, withdrawn
    assert state["purposes"]["analytics"] is False and state["purposes"]["personalisation"] is False


def test_a_visitor_files_a_request_through_the_contact_form_with_the_emailed_code(platform, api, dpo, tmp_path):
    address = f"contato-web-{uuid.uuid4().hex[:8]}@example.com"
    scenario = Running("contact", scenario_env(platform, tmp_path, UPG_CONTACT_EMAIL=address), tmp_path)
    try:
        request_id = scenario.wait_for("request_id")
        scenario.hand("code", code_for(platform, address))
        scenario.finish()
    finally:
        scenario.stop()
    request = api.get(f"/v1/privacy/requests/{request_id}", dpo[1])
    assert request.status_code == 200, request.text
    request = request.json()
    assert (request["channel"], request["type"]) == ("contact", "confirmation"), request
    assert request["state"] != "identity_unverified", "the code verified the request"
    assert request["contact"]["email"] == address


def test_an_attendant_asks_for_a_correction_the_dpo_approves_it_and_the_attendant_sees_it(platform, api, admin,
                                                                                          dpo, tmp_path):
    attendant, token = new_attendant(api, admin)
    title = f"Supervisora {uuid.uuid4().hex[:6]}"
    found = run_scenario("correction", scenario_env(platform, tmp_path, **people_env(attendant, dpo[0]),
                                                    UPG_NEW_JOB_TITLE=title))
    correction = api.get(f"/v1/privacy/corrections/{found['correction_id']}", dpo[1])
    assert correction.status_code == 200, correction.text
    correction = correction.json()
    assert correction["status"] == "approved" and correction["requester_id"] == attendant["id"], correction
    me = api.get("/v1/me", token)
    assert me.status_code == 200, me.text
    assert me.json()["job_title"] == title
    # signed in through the login page: the tokens live in HttpOnly, Secure, SameSite=Strict cookies only
    session = found["session"]
    assert {cookie["name"] for cookie in session["cookies"]} == {"__Host-upg_session", "__Secure-upg_refresh"}
    assert all(c["httpOnly"] and c["secure"] and c["sameSite"] == "Strict" for c in session["cookies"]), session
    assert not session["script_reads_session_cookie"] and not session["token_in_storage"], session
    # the page's own fetch of a state change without the CSRF token, or with a wrong one: refused, nothing filed
    assert (found["without_csrf"], found["wrong_csrf"]) == (403, 403)
    filed = api.get("/v1/privacy/corrections", token).json()["items"]
    assert [c["id"] for c in filed] == [found["correction_id"]], filed


def test_the_attendant_downloads_their_export_and_sees_who_accessed_their_data(platform, api, admin, dpo,
                                                                              tmp_path):
    attendant, _ = new_attendant(api, admin)
    (dpo_user, dpo_token) = dpo
    env = scenario_env(platform, tmp_path, **people_env(attendant, dpo_user), UPG_DPO_ID=dpo_user["id"])
    scenario = Running("export_access", env, tmp_path)
    try:
        request_id = scenario.wait_for("request_id")
        # the DPO reads the request (an access to the attendant's data) and that reaches the log before the
        # bundle is gathered: the page must show it
        assert api.get(f"/v1/privacy/requests/{request_id}", dpo_token).status_code == 200
        wait_for_audit(api, dpo_token, {"actor_id": dpo_user["id"], "subject_id": attendant["id"]},
                       what="the DPO's reading of the request", subject_id=attendant["id"])
        started = api.post(f"/v1/privacy/requests/{request_id}/start", dpo_token)
        assert started.status_code == 200, started.text
        scenario.hand("link", export_link_for(platform, attendant["email"]))
        found = scenario.finish()
    finally:
        scenario.stop()
    assert found["accesses"] >= 1 and "audit" in found["sections"], found
    request = api.get(f"/v1/privacy/requests/{request_id}", dpo_token).json()
    assert (request["type"], request["state"], request["requester_id"]) == ("access", "completed", attendant["id"])



def test_the_dpo_records_and_confirms_an_incident_and_sees_100_percent_delivered(platform, api, admin, dpo,
                                                                                 tmp_path):
    addresses = {}
    for n in range(3):
        address = f"brecha-web.{uuid.uuid4().hex[:8]}.{n}@example.com.br"
        created = api.post("/v1/customers", admin, json={"full_name": f"Cliente Web {n}", "email": address})
        assert created.status_code == 201, created.text
        addresses[created.json()["id"]] = address
    risks = f"Someone outside the company may have read your e-mail address ({uuid.uuid4().hex[:6]})."
    found = run_scenario("incident", scenario_env(platform, tmp_path, **people_env(None, dpo[0]),
                                                  UPG_CUSTOMER_IDS=list(addresses), UPG_RISKS=risks))
    incident = api.get(f"/v1/privacy/incidents/{found['incident_id']}", dpo[1])
    assert incident.status_code == 200, incident.text
    incident = incident.json()
    assert incident["state"] == "confirmed" and incident["risks"] == risks, incident
    assert incident["progress"]["counts"]["sent"] == len(addresses)
    for address in addresses.values():  # one individual e-mail each, holding the risks the DPO typed
        (only,) = mail_to(platform, address)
        assert risks in text_and_html(only[1])[0]


def test_the_dpos_verify_button_reports_a_valid_log_and_tampering_when_the_checkpoint_is_altered(platform, dpo,
                                                                                                 tmp_path):
    found = run_scenario("audit_verify", scenario_env(platform, tmp_path, **people_env(None, dpo[0])))
    assert found["altered"] == ["root_hash", "signature"]
    assert "signature invalid" in found["tampered_root_hash"] and "signature invalid" in found["tampered_signature"]



def test_the_dpo_finds_a_request_in_the_queue_extends_it_and_denies_it_with_reasons(platform, api, admin, dpo,
                                                                                    tmp_path):
    _, token = new_attendant(api, admin)
    filed = api.post("/v1/privacy/requests", token, json={"type": "portability"})
    assert filed.status_code == 201, filed.text
    filed = filed.json()
    reason = uuid.uuid4().hex[:10]
    run_scenario("dpo_request", scenario_env(platform, tmp_path, **people_env(None, dpo[0]),
                                             UPG_REQUEST_ID=filed["id"], UPG_REASON=reason))
    request = api.get(f"/v1/privacy/requests/{filed['id']}", dpo[1]).json()
    assert request["state"] == "denied", request
    assert datetime.fromisoformat(request["due_at"]) > datetime.fromisoformat(filed["due_at"]), "not extended"
    events = {step.get("event"): step for step in request["history"]}
    assert events["extended"]["reason"] == f"Extension: {reason}", request["history"]
    assert events["denied"]["reason"] == f"Denial: {reason}", request["history"]



def test_the_skip_link_the_cookie_banner_and_the_contact_form_work_from_the_keyboard_alone(platform, dpo, tmp_path):
    address = f"teclado-{uuid.uuid4().hex[:8]}@example.com"
    found = run_scenario("keyboard", scenario_env(platform, tmp_path, UPG_CONTACT_EMAIL=address))
    request = Api(platform.url).get(f"/v1/privacy/requests/{found['contact_request']}", dpo[1])
    assert request.status_code == 200, request.text
    assert (request.json()["channel"], request.json()["type"]) == ("contact", found["type"])



def test_the_centre_is_in_portuguese_by_default_and_in_english_on_request(platform, tmp_path):
    run_scenario("language", scenario_env(platform, tmp_path))


# -- every page: accessibility (axe-core) and the CSP, from one tour -------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def every_page_tour(_browser_installed, platform, api, admin, dpo, tmp_path_factory):
    """One tour of every page (scenarios/every_page.mjs) as a visitor, an attendant and the DPO, desktop and
    phone width, with a request, an incident, a contact request and the policy version to show. The longest
    scenario (37 page views with axe-core): started with the module's first test, it runs beside the others
    (which mostly wait on the platform: e-mail, deliveries) and is read by the last two tests."""
    attendant, token = new_attendant(api, admin)
    filed = api.post("/v1/privacy/requests", token, json={"type": "access"})
    assert filed.status_code == 201, filed.text
    assert api.post("/v1/privacy/corrections", token, json={"changes": {"job_title": "Cargo novo"}}).status_code == 201
    customer = api.post("/v1/customers", admin, json={"full_name": "Cliente Tour",
                                                       "email": f"tour.{uuid.uuid4().hex[:8]}@example.com.br"})
    assert customer.status_code == 201, customer.text
    now = datetime.now(UTC)
    incident = api.post("/v1/privacy/incidents", dpo[1], json=incident_body([customer.json()["id"]], now))
    assert incident.status_code == 201, incident.text
    contact = api.post("/v1/privacy/contact", json={"email": f"tour.{uuid.uuid4().hex[:8]}@example.com",
                                                    "type": "access"})
    assert contact.status_code == 202, contact.text
    ids = {"policyVersion": api.get("/v1/privacy/policies/current").json()["version"],
           "contactRequestId": contact.json()["id"], "requestId": filed.json()["id"],
           "incidentId": incident.json()["id"]}
    tmp = tmp_path_factory.mktemp("every-page")
    env = scenario_env(platform, tmp, **people_env(attendant, dpo[0]), UPG_IDS=ids,
                       UPG_TIMEOUT_MS=str((EVERY_PAGE_TIMEOUT_S - 10) * 1000))
    tour = Running("every_page", env, tmp, timeout=EVERY_PAGE_TIMEOUT_S)
    yield tour
    tour.stop()


@pytest.fixture(scope="module")
def every_page(every_page_tour) -> dict:
    """The tour's findings, once it ended."""
    return every_page_tour.finish()


# every page of pages.mjs in its order; "cookie-banner-choices": the visitor's banner with its choices open
PAGES = ["home", "cookie-banner-choices", "policy", "policy-version", "cookies", "contact", "contact-status", "login",
         "me", "me-requests", "me-access", "me-consents", "me-policy", "dpo-requests", "dpo-request", "dpo-corrections",
         "dpo-incidents", "dpo-incident", "dpo-audit"]


def test_axe_core_finds_no_serious_violation_on_any_page_at_desktop_or_phone_width(every_page):
    assert every_page["checked"] == {"desktop": PAGES, "phone": PAGES}, every_page["skipped"]
    assert not every_page["axe"], "axe-core (serious or critical):\n" + "\n".join(every_page["axe"])
    assert not every_page["layout"], "\n".join(every_page["layout"])


def test_every_page_carries_its_csp_and_runs_without_a_csp_violation_or_a_script_error(every_page):
    assert every_page["checked"]["desktop"] == PAGES, every_page["skipped"]
    assert not every_page["csp"], "\n".join(every_page["csp"])
    assert not every_page["script_errors"], "\n".join(every_page["script_errors"])
    # the check can fail: an inline script added to a page was refused, and the console said so
    assert every_page["csp_self_check"] == {"inline_script_ran": False, "violation_seen": True}
