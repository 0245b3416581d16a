// lib.mjs: what every browser scenario shares. playwright-core drives Debian's Chromium (/usr/bin/chromium,
// installed by `make browser-deps`); axe-core checks accessibility. A scenario is a node script run by
// tests/test_privacy_centre_browser_e2e.py with its inputs in the environment:
//   UPG_BASE_URL      the gateway (http://127.0.0.1:<port>)
//   UPG_ARTIFACTS     a folder for a failure's screenshot and page text (optional)
//   UPG_TIMEOUT_MS    the whole scenario's bound (default 60 s); every single wait is bounded too (UPG_WAIT_MS, 15 s)
//   ...               the scenario's own (credentials, ids), named in its header
// It prints `step: ...` lines as it goes (stderr), `RESULT <json>` lines for pytest to check (stdout), and exits
// 0, or 1 with the failing step, the page's URL and what the page said.

import { chromium } from "playwright-core";
import { readFileSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export const BASE = (process.env.UPG_BASE_URL || "http://127.0.0.1:8000").replace(/\/$/, "");
export const CHROMIUM = process.env.UPG_CHROMIUM || "/usr/bin/chromium";
export const WAIT_MS = Number(process.env.UPG_WAIT_MS || 15000);
const TOTAL_MS = Number(process.env.UPG_TIMEOUT_MS || 60000);
const ARTIFACTS = process.env.UPG_ARTIFACTS || "";

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

let currentStep = "starting";
const pages = new Set();   // every page opened through newContext, for the failure report
const contexts = new Set();

export function step(text) {
  currentStep = text;
  process.stderr.write(`step: ${text}\n`);
}

export function result(value) {
  process.stdout.write(`RESULT ${JSON.stringify(value)}\n`);
}

export class ScenarioFailure extends Error {}

/** Fail the scenario with `message` (the step and page are added by run()). */
export function fail(message) {
  throw new ScenarioFailure(message);
}

export function expect(condition, message) {
  if (!condition) fail(message);
}

export function env(name) {
  const value = process.env[name];
  if (value === undefined || value === "") fail(`the environment variable ${name} is not set`);
  return value;
}

export async function launch() {
  if (!existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: run \`make browser-deps\` (installs Debian's chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: WAIT_MS * 3 });
}

/** A context on the gateway, in English (the `upg_lang=en` cookie) unless `lang` says otherwise. Records the
 * console's errors and the page errors of every page it opens in `context.problems`. */
export async function newContext(browser, { viewport = DESKTOP, lang = "en", ...options } = {}) {
  const context = await browser.newContext({ baseURL: BASE, viewport, locale: lang === "en" ? "en-US" : "pt-BR", ...options });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const host = new URL(BASE).hostname;
  if (lang) await context.addCookies([{ name: "upg_lang", value: lang, domain: host, path: "/", sameSite: "Strict" }]);
  context.problems = [];
  contexts.add(context);
  context.on("close", () => contexts.delete(context));
  context.on("page", (page) => watch(context, page));
  return context;
}

function watch(context, page) {
  pages.add(page);
  page.on("close", () => pages.delete(page));
  page.on("console", (message) => {
    if (message.type() === "error") context.problems.push({ kind: "console", url: page.url(), text: message.text() });
  });
  page.on("pageerror", (error) => context.problems.push({ kind: "pageerror", url: page.url(), text: String(error) }));
}

/** The console errors and page errors that are CSP violations. */
export function cspViolations(context) {
  return context.problems.filter((p) => /Content Security Policy|Content-Security-Policy|violates the following/i.test(p.text));
}

/** Sign in through the API's web session (POST /app/session): the context's cookie jar keeps the HttpOnly
 * session cookie, as the login form would. */
export async function signInApi(context, email, password) {
  const answer = await context.request.post("/app/session", { data: { email, password }, timeout: WAIT_MS * 2 });
  expect(answer.ok(), `POST /app/session for ${email.replace(/@.*/, "@…")} answered ${answer.status()}: ${(await answer.text()).slice(0, 300)}`);
  return answer.json();
}

/** What the browser holds of the web session: the session cookies' flags (never their values), whether a
 * script can read them (document.cookie), and any token-looking value (a JWT) in localStorage/sessionStorage. */
export async function sessionFacts(context, page) {
  const cookies = (await context.cookies()).filter((c) => /upg_(session|refresh)/.test(c.name))
    .map((c) => ({ name: c.name, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path }));
  const seen = await page.evaluate(() => {
    const values = (storage) => Array.from({ length: storage.length }, (_, i) => storage.getItem(storage.key(i)) || "");
    const all = [...values(localStorage), ...values(sessionStorage)];
    return {
      script_reads_session_cookie: /upg_(session|refresh)/.test(document.cookie),
      storage_items: localStorage.length + sessionStorage.length,
      token_in_storage: all.some((v) => /eyJ[\w-]+\.[\w-]+\./.test(v)),
    };
  });
  return { cookies, ...seen };
}

/** Sign in through the login page, as a person does. */
export async function signInUi(page, email, password, next = "/app/") {
  await page.goto(`/app/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel(/e-?mail/i).fill(email);
  await page.getByLabel(/password/i).fill(password);
  await page.getByRole("button", { name: /sign in/i }).click();
  await page.waitForURL((url) => !url.pathname.startsWith("/app/login"), { timeout: WAIT_MS * 2 });
}

/** Open `path` and wait until the page rendered its heading (the router replaced "Loading…"); a page that
 * shows only an error (its module missing, the API refusing) fails unless `allowError`. */
export async function open(page, path, { allowError = false } = {}) {
  const answer = await page.goto(path, { waitUntil: "domcontentloaded" });
  expect(answer && answer.ok(), `GET ${path} answered ${answer ? answer.status() : "nothing"}`);
  await settled(page);
  if (!allowError) {
    const heading = await page.locator("main h1").count();
    const error = heading ? "" : await page.locator("main [role=alert]").first().innerText().catch(() => "");
    expect(heading > 0, `${path} shows no page, only an error: ${error.slice(0, 300)}`);
  }
  return answer;
}

/** Wait for the router to finish: one h1 in main, no "Loading…" paragraph. */
export async function settled(page) {
  await page.waitForFunction(() => {
    const main = document.getElementById("main");
    return main && main.querySelector("h1, [role=alert]") && !main.querySelector(".loading");
  }, null, { timeout: WAIT_MS });
}

/** Poll `check` (async, returns a truthy value when done) until it does, reloading the page between tries
 * when `reload` is set; fails with `what` after `timeout` ms. */
export async function eventually(page, what, check, { timeout = WAIT_MS * 2, interval = 500, reload = false } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) fail(`${what}: not within ${timeout} ms (last: ${last instanceof Error ? last.message.split("\n")[0] : JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, interval));
    if (reload) {
      await page.reload({ waitUntil: "domcontentloaded" });
      await settled(page);
    }
  }
}

// -- axe-core ---------------------------------------------------------------------------------------

const require = createRequire(import.meta.url);
let axeSource = null;

/** axe-core's violations of impact serious or critical on the page as it is now. axe is injected with
 * page.evaluate of axe.min.js's source (evaluated by the DevTools protocol, which the page's CSP does not
 * govern, so no bypassCSP context is needed and the page runs under its real policy). */
export async function axeViolations(page) {
  if (axeSource === null) axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  const loaded = await page.evaluate(() => typeof window.axe === "object");
  if (!loaded) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const answer = await window.axe.run(document, { resultTypes: ["violations"] });
    return answer.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(" "), summary: (n.failureSummary || "").slice(0, 300) })) }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

export function describeViolations(violations) {
  return violations.map((v) => `  [${v.impact}] ${v.id}: ${v.help}\n` +
    v.nodes.map((n) => `      at ${n.target}: ${n.summary.replace(/\n/g, " ")}`).join("\n")).join("\n");
}

// -- running a scenario -----------------------------------------------------------------------------

async function report(error) {
  const lines = [`FAILED at step "${currentStep}": ${error instanceof ScenarioFailure ? error.message : error.stack || error}`];
  let n = 0;
  for (const page of pages) {
    n += 1;
    try {
      lines.push(`page ${n}: ${page.url()}`);
      const text = await page.evaluate(() => (document.getElementById("main") || document.body).innerText).catch(() => "");
      lines.push(`  main says: ${text.replace(/\s+/g, " ").slice(0, 600)}`);
      if (ARTIFACTS) {
        mkdirSync(ARTIFACTS, { recursive: true });
        const file = path.join(ARTIFACTS, `failure-${process.pid}-${n}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
        lines.push(`  screenshot: ${file}`);
      }
    } catch { /* the page may be gone */ }
  }
  for (const context of contexts) {
    for (const problem of context.problems.slice(-10)) lines.push(`console ${problem.kind} on ${problem.url}: ${problem.text.slice(0, 300)}`);
  }
  return lines.join("\n");
}

/** Run `body(browser)` with a browser, bounded by UPG_TIMEOUT_MS; exit 0 or 1 with a clear report. */
export async function run(body) {
  let browser = null;
  const timer = setTimeout(async () => {
    process.stderr.write(await report(new ScenarioFailure(`the scenario took more than ${TOTAL_MS} ms`)) + "\n");
    process.exit(1);
  }, TOTAL_MS);
  let code = 0;
  try {
    browser = await launch();
    await body(browser);
    step("done");
  } catch (error) {
    process.stderr.write(await report(error) + "\n");
    code = 1;
  } finally {
    clearTimeout(timer);
    if (browser) await browser.close().catch(() => {});
  }
  process.exit(code);
}

/** What pytest hands over mid-scenario (a code from the SMTP sink, a link): the file UPG_HANDOFF_DIR/<name>,
 * waited for (bounded). pytest knows when by the RESULT lines printed before. */
export async function handoff(name, { timeout = WAIT_MS * 4, valid = (text) => text.length > 0 } = {}) {
  const file = path.join(env("UPG_HANDOFF_DIR"), name);
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (existsSync(file)) {
      const text = readFileSync(file, "utf8").trim();
      if (valid(text)) return text;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  fail(`nothing handed over as ${name} within ${timeout} ms (pytest writes ${file})`);
}

/** Write `data` (for debugging a scenario by hand). */
export function dump(name, data) {
  if (!ARTIFACTS) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(path.join(ARTIFACTS, name), typeof data === "string" ? data : JSON.stringify(data, null, 2));
}
