// correction.mjs: a signed-in attendant asks for a correction of an item their role may not edit (the job
// title), the DPO approves it in the console's correction reviews, and the attendant sees the new value in
// "My data" with the correction marked approved.
// Env: UPG_ATTENDANT_EMAIL, UPG_ATTENDANT_PASSWORD, UPG_DPO_EMAIL, UPG_DPO_PASSWORD, UPG_NEW_JOB_TITLE.
import { env, eventually, expect, newContext, open, result, run, sessionFacts, signInApi, signInUi, step } from "../lib.mjs";

const NEW_TITLE = env("UPG_NEW_JOB_TITLE");

run(async (browser) => {
  const attendantContext = await newContext(browser);
  const attendant = await attendantContext.newPage();

  step("the attendant signs in through the login page");
  await signInUi(attendant, env("UPG_ATTENDANT_EMAIL"), env("UPG_ATTENDANT_PASSWORD"), "/app/me");
  await open(attendant, "/app/me");
  result({ session: await sessionFacts(attendantContext, attendant) });
  // a state change from this page without the session's CSRF token (what a forged request could send) is refused
  const forged = await attendant.evaluate(async () => Promise.all([{}, { "X-CSRF-Token": "forged" }].map(async (extra) =>
    (await fetch("/v1/privacy/corrections", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", ...extra }, body: JSON.stringify({ changes: { job_title: "Forjado" } }) })).status)));
  result({ without_csrf: forged[0], wrong_csrf: forged[1] });

  step("the attendant asks for a correction of the job title");
  let filed = null;
  attendant.on("response", async (response) => {
    if (response.request().method() === "POST" && new URL(response.url()).pathname === "/v1/privacy/corrections") {
      filed = { status: response.status(), answer: await response.json().catch(() => null) };
    }
  });
  await attendant.getByLabel(/item to correct/i).selectOption("job_title");
  await attendant.getByLabel(/correct value/i).fill(NEW_TITLE);
  await attendant.getByLabel(/reason/i).fill("I was promoted last month.");
  await attendant.getByRole("button", { name: /ask for correction/i }).click();
  await eventually(attendant, "the correction filed (201) and the page says so", async () =>
    filed && filed.status === 201 && (await attendant.getByRole("status").filter({ hasText: /correction request filed/i }).count()) > 0);
  const correctionId = filed.answer.id;
  result({ correction_id: correctionId });
  const mine = attendant.locator(`#my-corrections tr[data-correction="${correctionId}"]`);
  await eventually(attendant, "the attendant's list shows it awaiting review", async () => /awaiting review/i.test(await mine.innerText()));

  step("the DPO approves it in the console");
  const dpoContext = await newContext(browser);
  await signInApi(dpoContext, env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD"));
  const dpo = await dpoContext.newPage();
  await open(dpo, "/app/dpo/corrections");
  const card = dpo.locator(`article[data-correction-id="${correctionId}"]`);
  await card.waitFor();
  expect((await card.innerText()).includes(NEW_TITLE), "the DPO's card does not show the value asked for");
  await card.getByRole("button", { name: /^approve$/i }).click();
  await eventually(dpo, "the console says the correction was approved", async () => /correction approved/i.test(await card.innerText()));

  step("the attendant sees the change");
  await eventually(attendant, "the new job title in My data and the correction approved", async () => {
    const row = attendant.locator("main table").first().getByRole("row").filter({ hasText: /job title/i });
    return (await row.innerText()).includes(NEW_TITLE) && /approved/i.test(await mine.innerText());
  }, { reload: true, timeout: 40000 });
  await dpoContext.close();
  await attendantContext.close();
});
