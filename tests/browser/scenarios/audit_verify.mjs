// audit_verify.mjs: the DPO's "Verify" button in the audit log page checks the signed checkpoint and an
// inclusion proof in the browser and reports a valid log; then GET /v1/audit/checkpoint's answer is altered on
// its way to the page (page.route: the test double at the HTTP boundary, the server untouched), one bit of the
// root hash, then one bit of the signature, and each time the page reports tampering; with the real answer
// back, the log is valid again.
// Env: UPG_DPO_EMAIL, UPG_DPO_PASSWORD.
import { env, eventually, expect, newContext, open, result, run, signInApi, step } from "../lib.mjs";

const CHECKPOINT = "**/v1/audit/checkpoint";

function flipBit(base64) {
  const bytes = Buffer.from(base64, "base64");
  bytes[bytes.length >> 1] ^= 0x01;
  return bytes.toString("base64");
}

run(async (browser) => {
  const context = await newContext(browser);
  await signInApi(context, env("UPG_DPO_EMAIL"), env("UPG_DPO_PASSWORD"));
  const page = await context.newPage();
  await open(page, "/app/dpo/audit");
  const verify = page.getByRole("button", { name: "Verify", exact: true });
  const outcome = page.locator(".verify-outcome");
  const verified = async (what, pattern) => {
    await verify.click();  // the outcome shows "Verifying…" at once: an earlier outcome cannot be mistaken for this one
    await eventually(page, what, async () => pattern.test(await outcome.innerText()), { timeout: 15000, interval: 200 });
    return (await outcome.innerText()).replace(/\s+/g, " ").slice(0, 300);
  };

  step("the log as served: valid");
  const valid = await verified("the page reports a valid log", /the log is valid/i);

  const served = [];
  for (const [field, alter] of [["root_hash", flipBit], ["signature", flipBit]]) {
    step(`the checkpoint altered on its way (one bit of ${field}): tampering reported`);
    await page.route(CHECKPOINT, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      body[field] = alter(body[field]);
      served.push(field);
      await route.fulfill({ response, json: body });
    });
    const before = served.length;
    const tampered = await verified(`the page reports tampering when ${field} is altered`, /tampering detected/i);
    expect(served.length > before, `the page did not fetch the checkpoint again (the altered ${field} was never served)`);
    result({ [`tampered_${field}`]: tampered });
    await page.unroute(CHECKPOINT);
  }

  step("the real checkpoint again: valid");
  await verified("the page reports a valid log again", /the log is valid/i);
  result({ valid, altered: served });
  await context.close();
});
