// every_page.mjs: one tour of every page of the privacy centre (pages.mjs) as a visitor, the attendant and the
// DPO, at desktop (1280x800) and phone (390x844) width at once, checking on each:
//  * axe-core: no violation of impact "serious" or "critical" (axe is injected with page.evaluate of
//    axe.min.js's source, evaluated over the DevTools protocol, which the page's CSP does not govern: no
//    bypassCSP context, the page runs under its real policy);
//  * on the phone, the page does not scroll sideways (wide tables scroll inside their .table-wrap);
//  * its security headers: a CSP with script-src 'self' and no 'unsafe-inline'/'unsafe-eval' (style-src
//    likewise), frame-ancestors 'none', a Referrer-Policy, nosniff;
//  * no CSP violation in the console, no uncaught script error (the console and the page's errors are watched).
// Last, the CSP check itself is checked: an inline script added to a page is refused and the refusal is seen.
// The findings are RESULTs (axe, layout, csp, script_errors: lists of strings; checked; csp_self_check) that pytest asserts
// on, one test for accessibility and one for the CSP; the script fails only when a page cannot be shown.
// Env: UPG_ATTENDANT_EMAIL, UPG_ATTENDANT_PASSWORD, UPG_DPO_EMAIL, UPG_DPO_PASSWORD, UPG_IDS (pages.mjs),
// UPG_WHO (optional, pages.mjs).
import { DESKTOP, PHONE, axeViolations, cspViolations, describeViolations, env, eventually, newContext, open, result, run, signInApi, step } from "../lib.mjs";
import { PAGES, ids, personas } from "../pages.mjs";

const PEOPLE = {
  attendant: () => [env("UPG_ATTENDANT_EMAIL"), env("UPG_ATTENDANT_PASSWORD")],
  dpo: () => [env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD")],
};
const IDS = ids();

function directives(header) {
  const map = new Map();
  for (const part of header.split(";")) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) map.set(name.toLowerCase(), values);
  }
  return map;
}

export function headerProblems(name, headers) {
  const csp = headers["content-security-policy"];
  if (!csp) return [`${name}: no Content-Security-Policy header`];
  const problems = [];
  const policy = directives(csp);
  const scripts = policy.get("script-src") || policy.get("default-src") || [];
  const styles = policy.get("style-src") || policy.get("default-src") || [];
  if (!scripts.includes("'self'")) problems.push(`${name}: script-src is not 'self' (${csp})`);
  for (const bad of ["'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"]) {
    if (scripts.includes(bad)) problems.push(`${name}: script-src allows ${bad}`);
    if (styles.includes(bad)) problems.push(`${name}: style-src allows ${bad}`);
  }
  if ((policy.get("frame-ancestors") || []).join(" ") !== "'none'") problems.push(`${name}: frame-ancestors is not 'none' (${csp})`);
  if (!headers["referrer-policy"]) problems.push(`${name}: no Referrer-Policy header`);
  if ((headers["x-content-type-options"] || "").toLowerCase() !== "nosniff") problems.push(`${name}: no X-Content-Type-Options: nosniff`);
  return problems;
}

async function tour(browser, label, viewport, findings) {
  const checked = [];
  for (const who of personas()) {
    const context = await newContext(browser, { viewport });
    if (who) await signInApi(context, ...PEOPLE[who]());
    const page = await context.newPage();
    for (const entry of PAGES.filter((p) => p.who === who)) {
      const path = entry.path(IDS);
      if (!path) { findings.skipped.push(`${entry.name} (no id given)`); continue; }
      const where = `${entry.name} at ${label} (${path})${who ? ` as the ${who}` : ""}`;
      step(where);
      const before = context.problems.length;
      const answer = await open(page, path);
      if (viewport === DESKTOP) findings.csp.push(...headerProblems(entry.name, answer.headers()));
      const violations = await axeViolations(page);
      if (violations.length) findings.axe.push(`${where}:\n${describeViolations(violations)}`);
      if (viewport === PHONE) {
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        if (wide > viewport.width + 1) findings.layout.push(`${where}: the page is ${wide} px wide on a ${viewport.width}-px screen (it scrolls sideways)`);
      }
      for (const violation of cspViolations({ problems: context.problems.slice(before) })) {
        findings.csp.push(`${where}: the console reports a CSP violation: ${violation.text.slice(0, 300)}`);
      }
      for (const error of context.problems.slice(before).filter((p) => p.kind === "pageerror")) {
        findings.script_errors.push(`${where}: an uncaught error: ${error.text.slice(0, 300)}`);
      }
      checked.push(entry.name);
      if (who === null && entry.name === "home") {
        // the cookie banner shows on every page of a visitor who has not chosen; its "Choose" state too
        const banner = page.getByRole("region", { name: /cookies/i });
        await banner.getByRole("button", { name: /^choose$/i }).click();
        await banner.getByRole("checkbox", { name: /usage statistics|analytics/i }).waitFor();
        const expanded = await axeViolations(page);
        if (expanded.length) findings.axe.push(`${where}, the cookie banner's choices open:\n${describeViolations(expanded)}`);
        checked.push("cookie-banner-choices");
      }
    }
    await context.close();
  }
  return checked;
}

async function cspSelfCheck(browser) {
  step("the CSP check sees a violation when there is one: an inline script is refused");
  const context = await newContext(browser);
  const page = await context.newPage();
  await open(page, "/app/");
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.__inlineRan = true";
    document.body.append(script);
  });
  const ran = await page.evaluate(() => window.__inlineRan === true);
  let seen = false;
  try {
    await eventually(page, "the refused inline script in the console", async () => cspViolations(context).length > 0, { timeout: 5000, interval: 100 });
    seen = true;
  } catch { seen = false; }
  await context.close();
  return { inline_script_ran: ran, violation_seen: seen };
}

run(async (browser) => {
  const findings = { axe: [], layout: [], csp: [], script_errors: [], skipped: [] };
  const [desktop, phone] = await Promise.all([tour(browser, "desktop", DESKTOP, findings), tour(browser, "phone", PHONE, findings)]);
  const selfCheck = await cspSelfCheck(browser);
  result({ ...findings, checked: { desktop, phone }, csp_self_check: selfCheck });
});
