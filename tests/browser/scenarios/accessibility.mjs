// accessibility.mjs: axe-core on every page of the privacy centre (pages.mjs) as a visitor, the attendant and
// the DPO, at desktop (1280x800) and phone (390x844) width: no violation of impact "serious" or "critical".
// On the phone, the page must not scroll sideways either (wide tables scroll inside their .table-wrap).
// axe is injected with page.evaluate of axe.min.js's source (lib.mjs: the page keeps its real CSP).
// Env: UPG_ATTENDANT_EMAIL, UPG_ATTENDANT_PASSWORD, UPG_DPO_EMAIL, UPG_DPO_PASSWORD, UPG_IDS (pages.mjs).
import { DESKTOP, PHONE, axeViolations, describeViolations, env, fail, newContext, open, result, run, signInApi, step } from "../lib.mjs";
import { PAGES, ids, personas } from "../pages.mjs";

const PEOPLE = {
  attendant: () => [env("UPG_ATTENDANT_EMAIL"), env("UPG_ATTENDANT_PASSWORD")],
  dpo: () => [env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD")],
};
const IDS = ids();

async function checkAll(browser, label, viewport) {
  const found = [];
  const checked = [];
  for (const who of personas()) {
    const context = await newContext(browser, { viewport });
    if (who) await signInApi(context, ...PEOPLE[who]());
    const page = await context.newPage();
    for (const entry of PAGES.filter((p) => p.who === who)) {
      const path = entry.path(IDS);
      if (!path) { step(`${label}: ${entry.name} skipped (no id given)`); continue; }
      step(`${label}: axe on ${entry.name} (${path})${who ? ` as the ${who}` : ""}`);
      await open(page, path);
      const violations = await axeViolations(page);
      if (violations.length) found.push(`${entry.name} at ${label} (${path}):\n${describeViolations(violations)}`);
      if (viewport === PHONE) {
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        if (wide > viewport.width + 1) found.push(`${entry.name} at ${label} (${path}): the page is ${wide} px wide, wider than the ${viewport.width}-px screen (horizontal scrolling)`);
      }
      checked.push(entry.name);
    }
    await context.close();
  }
  return { found, checked };
}

run(async (browser) => {
  const [desktop, phone] = await Promise.all([checkAll(browser, "desktop", DESKTOP), checkAll(browser, "phone", PHONE)]);
  const found = [...desktop.found, ...phone.found];
  result({ checked: { desktop: desktop.checked, phone: phone.checked } });
  if (found.length) fail(`axe-core found serious or critical violations (or the phone layout overflows):\n${found.join("\n")}`);
});
