// The privacy centre's landing page: where each right is exercised.
import { h } from "../dom.js";
import { t, register } from "../i18n.js";

register({
  "pt-BR": {
    "home.title": "Central de privacidade",
    "home.lead": "Aqui você lê a nossa política de privacidade, escolhe os cookies, fala com o encarregado de dados e, com a sua conta, vê e corrige os seus dados.",
  },
  en: {
    "home.title": "Privacy centre",
    "home.lead": "Read our privacy policy, choose your cookies, contact the data protection officer and, signed in, see and correct your data.",
  },
});

export const titleKey = "home.title";

export default async function render(main, ctx) {
  main.append(
    h("h1", {}, t("home.title")),
    h("p", {}, t("home.lead")),
    h("ul", {},
      h("li", {}, h("a", { href: "/app/privacy" }, t("nav.policy"))),
      h("li", {}, h("a", { href: "/app/cookies" }, t("nav.cookies"))),
      h("li", {}, h("a", { href: "/app/contact" }, t("nav.contact"))),
      ctx.session ? h("li", {}, h("a", { href: "/app/me" }, t("nav.me"))) : h("li", {}, h("a", { href: "/app/login" }, t("nav.login")))));
}
