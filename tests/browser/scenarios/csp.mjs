// csp.mjs: every page of the privacy centre is served with its security headers (a CSP with script-src 'self'
// and no 'unsafe-inline' or 'unsafe-eval', frame-ancestors 'none', a Referrer-Policy, nosniff) and runs without
// a single CSP violation in the console. Last, the check itself is checked: an inline script added to a page
// is refused and that refusal is seen in the console.
// Env: UPG_ATTENDANT_EMAIL, UPG_ATTENDANT_PASSWORD, UPG_DPO_EMAIL, UPG_DPO_PASSWORD, UPG_IDS (pages.mjs).
import { cspViolations, env, eventually, expect, fail, newContext, open, result, run, signInApi, step } from "../lib.mjs";
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

function checkHeaders(name, headers) {
  const problems = [];
  const csp = headers["content-security-policy"];
  if (!csp) return [`${name}: no Content-Security-Policy header`];
  const policy = directives(csp);
  const scripts = policy.get("script-src") || policy.get("default-src") || [];
  const styles = policy.get("style-src") || policy.get("default-src") || [];
  if (!scripts.includes("'self'")) problems.push(`${name}: script-src is not 'self' (${csp})`);
  for (const bad of ["'unsafe-inline'", "'unsafe-eval'", "*", "data:"]) {
    if (scripts.includes(bad)) problems.push(`${name}: script-src allows ${bad}`);
    if (styles.includes(bad) && bad !== "data:") problems.push(`${name}: style-src allows ${bad}`);
  }
  if ((policy.get("frame-ancestors") || []).join(" ") !== "'none'") problems.push(`${name}: frame-ancestors is not 'none' (${csp})`);
  if (!headers["referrer-policy"]) problems.push(`${name}: no Referrer-Policy header`);
  if ((headers["x-content-type-options"] || "").toLowerCase() !== "nosniff") problems.push(`${name}: no X-Content-Type-Options: nosniff`);
  return problems;
}

run(async (browser) => {
  const problems = [];
  let csp = null;
  for (const who of personas()) {
    const context = await newContext(browser);
    if (who) await signInApi(context, ...PEOPLE[who]());
    const page = await context.newPage();
    for (const entry of PAGES.filter((p) => p.who === who)) {
      const path = entry.path(IDS);
      if (!path) continue;
      step(`CSP of ${entry.name} (${path})${who ? ` as the ${who}` : ""}`);
      const before = context.problems.length;
      const answer = await open(page, path);
      const headers = answer.headers();
      csp = csp || headers["content-security-policy"];
      problems.push(...checkHeaders(entry.name, headers));
      await page.waitForTimeout(200); // a late violation (a lazily loaded module) has a moment to show
      for (const violation of cspViolations({ problems: context.problems.slice(before) })) {
        problems.push(`${entry.name}: the console reports a CSP violation: ${violation.text.slice(0, 300)}`);
      }
    }
    await context.close();
  }
  if (problems.length) fail(`security headers or CSP violations:\n  ${problems.join("\n  ")}`);

  step("the check sees a violation when there is one: an inline script is refused");
  const context = await newContext(browser);
  const page = await context.newPage();
  await open(page, "/app/");
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.__inlineRan = true";
    document.body.append(script);
  });
  expect(!(await page.evaluate(() => window.__inlineRan === true)), "an inline script ran: the CSP does not block it");
  await eventually(page, "the console reports the refused inline script", async () => cspViolations(context).length > 0,
    { timeout: 5000, interval: 100 });
  await context.close();
  result({ csp });
});
