// screens.mjs: every page of the privacy centre (pages.mjs) at desktop (1280x800) and phone (390x844) width,
// whole page, into UPG_SCREENS_DIR/<page>-desktop.png and -phone.png; RESULT {taken: [...], missing: [...]}
// (a page that renders only an error is missing, with what it said). Run by tests/browser/screens.py
// (`make screens`), which starts and seeds a platform; the env is the scenarios' (lib.mjs, pages.mjs) plus
// UPG_SCREENS_DIR and UPG_SCREENS_LANG (pt-BR, the default language, unless told).
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DESKTOP, PHONE, env, newContext, result, run, settled, signInApi, step, WAIT_MS } from "./lib.mjs";
import { PAGES, ids, personas } from "./pages.mjs";

const OUT = env("UPG_SCREENS_DIR");
const LANG = process.env.UPG_SCREENS_LANG || "pt-BR";
const IDS = ids();
const PEOPLE = {
  attendant: () => [env("UPG_ATTENDANT_EMAIL"), env("UPG_ATTENDANT_PASSWORD")],
  dpo: () => [env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD")],
};

async function quiet(page) {
  // what moves (a focus ring on the heading the router focused, the caret) stays out of the picture
  await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
  await page.waitForTimeout(300);
}

// what a page shows once used, where that is the point of it (before the picture is taken)
const PREPARE = {
  "dpo-audit": async (page) => {  // the log verified in the browser
    await page.locator("#verify-button").click();
    await page.locator(".verify-valid, .verify-invalid").first().waitFor({ timeout: WAIT_MS * 2 });
  },
};

async function dismissBanner(page) {
  const banner = page.locator(".cookie-banner");
  if (await banner.isVisible()) {
    await banner.locator("button").nth(1).click();  // "Recusar opcionais" / "Reject optional"
    await banner.waitFor({ state: "hidden", timeout: WAIT_MS }).catch(() => {});
  }
}

run(async (browser) => {
  mkdirSync(OUT, { recursive: true });
  const taken = [];
  const missing = [];
  for (const [label, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    for (const who of personas()) {
      const context = await newContext(browser, { viewport, lang: LANG === "pt-BR" ? null : LANG });
      if (who) await signInApi(context, ...PEOPLE[who]());
      const page = await context.newPage();
      let first = true;
      for (const entry of PAGES.filter((p) => p.who === who)) {
        const target = entry.path(IDS);
        if (!target) { if (label === "desktop") missing.push({ page: entry.name, why: "no id to show it with" }); continue; }
        step(`${entry.name} (${target}) at ${label}`);
        await page.goto(target, { waitUntil: "domcontentloaded" });
        try {
          await settled(page);
        } catch {
          if (label === "desktop") missing.push({ page: entry.name, why: "it never finished loading" });
          continue;
        }
        await page.waitForTimeout(400); // the banner decides after the page rendered
        // the visitor's first page keeps the cookie banner in the picture; then it is answered
        if (!(who === null && first)) await dismissBanner(page);
        first = false;
        if (!(await page.locator("main h1").count())) {
          const said = await page.locator("main").innerText().catch(() => "");
          if (label === "desktop") missing.push({ page: entry.name, why: said.replace(/\s+/g, " ").slice(0, 200) });
          continue;
        }
        if (PREPARE[entry.name]) await PREPARE[entry.name](page).catch((error) => step(`(${entry.name}: ${error.message.split("\n")[0]})`));
        await quiet(page);
        const file = path.join(OUT, `${entry.name}-${label}.png`);
        await page.screenshot({ path: file, fullPage: true, animations: "disabled", timeout: WAIT_MS * 2 });
        taken.push({ page: entry.name, viewport: label, file: path.basename(file), path: target, who: who || "visitor" });
      }
      await context.close();
    }
  }
  result({ taken, missing });
});
