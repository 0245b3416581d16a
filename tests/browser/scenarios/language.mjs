// language.mjs: Portuguese (pt-BR) by default, English on request. A visitor without the language cookie gets
// the centre in Portuguese (<html lang="pt-BR">); the header's "English" switches the page and the banner to
// English, which is remembered on the next visit; "Português" switches back.
import { expect, eventually, newContext, open, run, step } from "../lib.mjs";

run(async (browser) => {
  const context = await newContext(browser, { lang: null });
  const page = await context.newPage();
  const h1 = page.locator("main h1");

  step("Portuguese by default");
  await open(page, "/app/");
  expect((await h1.innerText()) === "Central de privacidade", `the default heading is "${await h1.innerText()}"`);
  expect((await page.getAttribute("html", "lang")) === "pt-BR", "the page's language is not pt-BR");
  await page.getByRole("region", { name: /cookies/i }).getByRole("button", { name: "Escolher", exact: true }).waitFor();

  step("English on request, the banner too");
  await page.getByRole("button", { name: "English", exact: true }).click();
  await eventually(page, "the page in English", async () => (await h1.innerText()) === "Privacy centre");
  expect((await page.getAttribute("html", "lang")) === "en", "the page's language is not en after the switch");
  await page.getByRole("region", { name: /cookies/i }).getByRole("button", { name: "Choose", exact: true }).waitFor();

  step("remembered on the next visit");
  await open(page, "/app/privacy");
  expect(/privacy policy/i.test(await h1.innerText()), `the next page is not in English: "${await h1.innerText()}"`);

  step("and back to Portuguese");
  await page.getByRole("button", { name: "Português", exact: true }).click();
  await eventually(page, "the page in Portuguese again", async () => /política de privacidade/i.test(await h1.innerText()));
  await context.close();
});
