// export_access.mjs: the attendant asks for access to their data in "My requests"; once the DPO handled it
// (pytest: the API, then the link from the SMTP sink handed over as "link"), pastes the e-mailed single-use
// link, downloads the file (a real download: saved and read back), and sees who accessed their data: the DPO
// among the accessors. Using the link a second time is refused.
// Env: UPG_ATTENDANT_EMAIL, UPG_ATTENDANT_PASSWORD, UPG_DPO_ID (whose access must show), UPG_HANDOFF_DIR,
// UPG_ARTIFACTS (where the download is saved).
import { readFileSync } from "node:fs";
import path from "node:path";
import { env, eventually, expect, handoff, newContext, open, result, run, signInApi, step, WAIT_MS } from "../lib.mjs";

const DPO_ID = env("UPG_DPO_ID");

run(async (browser) => {
  const context = await newContext(browser);
  await signInApi(context, env("UPG_ATTENDANT_EMAIL"), env("UPG_ATTENDANT_PASSWORD"));
  const page = await context.newPage();

  step("the attendant files an access request in My requests");
  let filed = null;
  page.on("response", async (response) => {
    if (response.request().method() === "POST" && new URL(response.url()).pathname === "/v1/privacy/requests") {
      filed = { status: response.status(), answer: await response.json().catch(() => null) };
    }
  });
  await open(page, "/app/me/requests");
  await page.getByLabel(/request type/i).selectOption("access");
  await page.getByRole("button", { name: /file request/i }).click();
  await eventually(page, "the request filed (201) and said so", async () =>
    filed && filed.status === 201 && (await page.getByRole("status").filter({ hasText: /request filed/i }).count()) > 0);
  result({ request_id: filed.answer.id });

  step("the DPO handles it; the link arrives by e-mail (handed over by pytest)");
  const link = await handoff("link", { timeout: 60000, valid: (text) => text.includes("/v1/privacy/exports/") });

  step("paste the link and download the file");
  await open(page, "/app/me/requests");
  await page.getByLabel(/download link/i).fill(link);
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: WAIT_MS * 2 }),
    page.getByRole("button", { name: /^download my data$/i }).click(),
  ]);
  const saved = path.join(env("UPG_ARTIFACTS"), download.suggestedFilename() || "export.json");
  await download.saveAs(saved);
  const bundle = JSON.parse(readFileSync(saved, "utf8"));
  expect(bundle.sections && bundle.sections.identity && bundle.sections.audit,
    `the downloaded file is not the data bundle: ${JSON.stringify(Object.keys(bundle))}`);
  await eventually(page, "the page says the file was downloaded", async () =>
    (await page.getByRole("status").filter({ hasText: /file downloaded/i }).count()) > 0);

  step("see who accessed my data");
  await page.getByRole("link", { name: /see who accessed my data/i }).click();
  await page.waitForURL((url) => url.pathname === "/app/me/access");
  const table = page.locator("#access-list");
  await table.waitFor();
  const accessors = await table.innerText();
  expect(accessors.includes(`(${DPO_ID.slice(0, 8)})`), `the DPO (${DPO_ID.slice(0, 8)}) is not among who accessed the data:\n${accessors.slice(0, 800)}`);

  step("the link is single-use: a second download is refused");
  await open(page, "/app/me/requests");
  await page.getByLabel(/download link/i).fill(link);
  await page.getByRole("button", { name: /^download my data$/i }).click();
  await eventually(page, "the page says the link was used already", async () =>
    (await page.getByRole("alert").filter({ hasText: /used already|expired/i }).count()) > 0);
  result({ downloaded: path.basename(saved), sections: Object.keys(bundle.sections), accesses: bundle.sections.audit.accesses.length });
  await context.close();
});
