// contact.mjs: a visitor files a request through the privacy contact form (type, e-mail, message), is asked for
// the one-time code, gives back the code pytest read from the SMTP sink, and lands on the request's status.
// Env: UPG_CONTACT_EMAIL (an address of the test's own), UPG_HANDOFF_DIR (pytest hands over the 6-digit code
// as "code" once the e-mail reached the SMTP sink, after this script printed the request's id).
import { env, eventually, expect, handoff, newContext, open, result, run, settled, step } from "../lib.mjs";

const EMAIL = env("UPG_CONTACT_EMAIL");

run(async (browser) => {
  const context = await newContext(browser);
  const page = await context.newPage();
  let filed = null;
  page.on("response", async (response) => {
    if (response.request().method() === "POST" && new URL(response.url()).pathname === "/v1/privacy/contact") {
      filed = { status: response.status(), answer: await response.json().catch(() => null) };
    }
  });

  step("fill the contact form: type, e-mail, message");
  await open(page, "/app/contact");
  await page.getByLabel(/request type/i).selectOption("confirmation");
  await page.getByLabel(/e-?mail/i).fill(EMAIL);
  await page.getByLabel(/message/i).fill("I would like to know whether you hold data about me.");
  await page.getByRole("button", { name: /send request/i }).click();
  await eventually(page, "the contact form accepted (POST /v1/privacy/contact answered 202)", async () => filed && filed.status === 202);
  const requestId = filed.answer.id;
  result({ request_id: requestId });

  step("the code step: the code from the e-mail");
  await page.waitForURL((url) => url.pathname === `/app/contact/${requestId}`);
  await settled(page);
  const code = page.getByLabel(/code/i);
  await code.waitFor();
  await code.fill(await handoff("code", { valid: (text) => /^[0-9]{6}$/.test(text) }));
  await page.getByRole("button", { name: /^confirm$/i }).click();

  step("the status page: the request is with the DPO, with its due date");
  const main = page.locator("main");
  await eventually(page, "the status page says the e-mail is confirmed and shows the request's state", async () => {
    const text = await main.innerText();
    return /e-mail confirmed/i.test(text) && /received, in the dpo's queue|in progress|completed/i.test(text) && /answer due by/i.test(text);
  });
  expect(page.url().endsWith(`/app/contact/${requestId}`), `the status page is not the request's: ${page.url()}`);
  const text = await main.innerText();
  expect(!/waiting for e-mail confirmation/i.test(text), `the status page still waits for the code: ${text.slice(0, 300)}`);

  step("the status survives a reload (kept in the history entry)");
  await page.reload({ waitUntil: "domcontentloaded" });
  await settled(page);
  await eventually(page, "the status is shown after a reload", async () => /answer due by/i.test(await main.innerText()));
  result({ status_text: text.replace(/\s+/g, " ").slice(0, 400) });
  await context.close();
});
