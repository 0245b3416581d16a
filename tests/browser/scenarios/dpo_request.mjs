// dpo_request.mjs: the DPO finds a person's request in the console's queue, opens its detail, extends the due
// date with a reason and then denies it with a reason; the page shows each step in the request's history.
// Env: UPG_DPO_EMAIL, UPG_DPO_PASSWORD, UPG_REQUEST_ID (a pending portability request pytest filed),
// UPG_REASON (a text of the test's own).
import { env, eventually, expect, newContext, open, result, run, signInApi, step } from "../lib.mjs";

const REQUEST = env("UPG_REQUEST_ID");
const REASON = env("UPG_REASON");

run(async (browser) => {
  const context = await newContext(browser);
  await signInApi(context, env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD"));
  const page = await context.newPage();

  step("filter the requests (pending portability requests), find it, open it");
  await open(page, "/app/dpo");
  await page.getByLabel("State", { exact: true }).selectOption("pending");
  await page.getByLabel("Request type", { exact: true }).selectOption("portability");
  await page.getByRole("button", { name: "Filter", exact: true }).click();
  await page.waitForURL((url) => url.searchParams.get("type") === "portability");
  const link = page.getByRole("link", { name: `Open request ${REQUEST.slice(0, 8)}` }).first();
  for (let more = 0; !(await link.isVisible().catch(() => false)) && more < 10; more += 1) {
    const button = page.getByRole("button", { name: "Show more", exact: true });
    if (!(await button.isVisible())) break;
    await button.click();
    await page.waitForTimeout(500);
  }
  await link.click();
  await page.waitForURL((url) => url.pathname === `/app/dpo/requests/${REQUEST}`);
  const main = page.locator("main");
  await eventually(page, "the detail with its history", async () => /history/i.test(await main.innerText()) && /filed/i.test(await main.innerText()));

  step("extend the due date with a reason");
  await page.getByLabel("Reason for the extension", { exact: true }).fill(`Extension: ${REASON}`);
  await page.getByRole("button", { name: "Extend the due date", exact: true }).click();
  await eventually(page, "the page says the due date was extended and the history shows it", async () => {
    const text = await main.innerText();
    return /due date extended\./i.test(text) && text.includes(`Extension: ${REASON}`);
  });

  step("deny it with a reason");
  await page.getByLabel("Reason for denial", { exact: true }).fill(`Denial: ${REASON}`);
  await page.getByRole("button", { name: "Deny", exact: true }).click();
  await eventually(page, "the page says the request was denied, with no actions left", async () => {
    const text = await main.innerText();
    return /request denied\./i.test(text) && text.includes(`Denial: ${REASON}`) && /no actions left/i.test(text);
  });
  expect(!(await page.getByRole("button", { name: "Deny", exact: true }).count()), "a denied request still offers Deny");
  result({ done: true });
  await context.close();
});
