// incident.mjs: the DPO records an incident in the console with every LGPD art. 48 §1 item (affecting the
// customers pytest made), confirms it, and watches the notice reach 100 % delivered.
// Env: UPG_DPO_EMAIL, UPG_DPO_PASSWORD, UPG_CUSTOMER_IDS (a JSON list), UPG_RISKS (a text of the test's own).
import { env, eventually, expect, newContext, open, result, run, signInApi, step } from "../lib.mjs";

const CUSTOMERS = JSON.parse(env("UPG_CUSTOMER_IDS"));
const RISKS = env("UPG_RISKS");

run(async (browser) => {
  const context = await newContext(browser);
  await signInApi(context, env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD"));
  const page = await context.newPage();
  let recorded = null;
  page.on("response", async (response) => {
    if (response.request().method() === "POST" && new URL(response.url()).pathname === "/v1/privacy/incidents") {
      recorded = { status: response.status(), answer: await response.json().catch(() => null) };
    }
  });

  step("record an incident with every art. 48 §1 item");
  await open(page, "/app/dpo/incidents");
  const label = (text) => page.getByLabel(text, { exact: true });
  await label("Nature of the data affected").fill("Full names\nE-mail addresses");
  await page.getByRole("checkbox", { name: "Identification", exact: true }).check();
  await page.getByRole("checkbox", { name: "Contact", exact: true }).check();
  await label("Who is affected (who is notified)").selectOption("ids");
  await label("Ids of the people affected").fill(CUSTOMERS.join("\n"));
  await label("Who was affected, in plain words").fill("Customers who wrote to us through the website form in November.");
  await label("Technical and security measures that protected the data").fill("Every personal field is encrypted with a key of its own per person.");
  await label("Risks to the people affected").fill(RISKS);
  await label("Measures taken to reverse or lessen the harm").fill("We closed the exposed export and rotated every credential it used.");
  await label("What the people affected should do").fill("Be wary of e-mails asking for your password\nNever share the codes we send you");
  await label("DPO contact given in the notice").fill("dpo@upgestao.example");
  await page.getByRole("button", { name: "Record incident", exact: true }).click();
  await eventually(page, "the incident recorded (201)", async () => recorded && recorded.status === 201);
  const incidentId = recorded.answer.id;
  result({ incident_id: incidentId });
  await page.waitForURL((url) => url.pathname === `/app/dpo/incidents/${incidentId}`);
  const main = page.locator("main");
  await eventually(page, "the incident's page shows the draft and its 3-business-day clock", async () => {
    const text = await main.innerText();
    return text.includes(RISKS) && /deadline to notify/i.test(text) && /business day/i.test(text);
  });

  step("confirm it and notify the people affected");
  await page.getByRole("button", { name: /confirm and notify the people affected/i }).click();
  await eventually(page, "the page says the incident was confirmed", async () => /incident confirmed/i.test(await main.innerText()));

  step("watch the notice reach 100 % delivered");
  await eventually(page, "100 % delivered", async () => {
    const text = await main.innerText();
    return /100\s*%\s*delivered/i.test(text) && text.includes(`${CUSTOMERS.length} of ${CUSTOMERS.length}`);
  }, { timeout: 45000, interval: 500 });
  const rows = await main.locator("table").last().locator("tbody tr").count();
  expect(rows === CUSTOMERS.length, `the per-recipient table has ${rows} rows, not ${CUSTOMERS.length}`);
  await context.close();
});
