// keyboard.mjs: the centre works from the keyboard alone. "Skip to content" is reachable and moves into the
// page's main content; Tab reaches the cookie banner's "Reject optional" and Enter records the choice;
// the contact form is filled and sent with Tab, the arrow keys and typing only.
// Env: UPG_CONTACT_EMAIL (an address of the test's own).
import { env, eventually, expect, fail, newContext, open, result, run, step } from "../lib.mjs";

/** Press Tab until the focused element satisfies `wanted` (a function of {tag, text, label}); at most `limit`. */
async function tabTo(page, what, wanted, limit = 60, key = "Tab") {
  for (let i = 0; i < limit; i += 1) {
    await page.keyboard.press(key);
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const label = el.id ? document.querySelector(`label[for="${CSS.escape(el.id)}"]`) : null;
      return { tag: el.tagName.toLowerCase(), text: (el.innerText || el.value || "").trim(), label: label ? label.innerText.trim() : "" };
    });
    if (focused && wanted(focused)) return focused;
  }
  fail(`Tab never reached ${what} (${limit} presses)`);
}

run(async (browser) => {
  const context = await newContext(browser);
  const page = await context.newPage();
  const puts = [];
  page.on("response", (response) => {
    if (response.request().method() === "PUT" && new URL(response.url()).pathname === "/v1/privacy/consents/visitor") puts.push(response.status());
  });

  step("the skip link is reachable (the router puts the focus on the page's heading) and moves into the content");
  await open(page, "/app/");
  await tabTo(page, "the skip link", (f) => f.tag === "a" && /skip to content/i.test(f.text), 20, "Shift+Tab");
  await page.keyboard.press("Enter");
  await eventually(page, "the skip link moved the focus into the main content", async () =>
    page.evaluate(() => document.getElementById("main").contains(document.activeElement) || document.activeElement.id === "main"),
  { timeout: 3000, interval: 100 });

  step("Tab to the cookie banner's Reject optional, Enter");
  await tabTo(page, "the banner's Reject optional", (f) => f.tag === "button" && /^reject optional$/i.test(f.text));
  await page.keyboard.press("Enter");
  await eventually(page, "the choice recorded from the keyboard", async () => puts.includes(200));
  await page.getByRole("region", { name: /cookies/i }).waitFor({ state: "hidden" });

  step("the contact form, from the keyboard alone");
  await open(page, "/app/contact");
  await tabTo(page, "the request type", (f) => f.tag === "select" && /request type/i.test(f.label));
  const before = await page.getByLabel(/request type/i).inputValue();
  await page.keyboard.press("ArrowDown");
  const after = await page.getByLabel(/request type/i).inputValue();
  expect(after !== before, "the arrow keys do not change the request type");
  await tabTo(page, "the e-mail", (f) => f.tag === "input" && /e-?mail/i.test(f.label), 3);
  await page.keyboard.type(env("UPG_CONTACT_EMAIL"));
  await tabTo(page, "the message", (f) => f.tag === "textarea", 3);
  await page.keyboard.type("Typed from the keyboard.");
  await tabTo(page, "Send request", (f) => f.tag === "button" && /send request/i.test(f.text), 5);
  await page.keyboard.press("Enter");
  await page.waitForURL((url) => /^\/app\/contact\/[0-9a-f-]{36}$/.test(url.pathname));
  result({ contact_request: page.url().split("/").pop(), type: after });
  await context.close();
});
