// My consent history and my policy acceptances (R7.1, R11.1): GET /v1/privacy/consents (the current choice per
// purpose and every change, newest first) and GET /v1/privacy/policy-acceptances.
import { api } from "../api.js";
import { add, h, tableWrap, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { PURPOSES } from "../consent.js";
import { historyTable } from "./cookies.js";

register({
  "pt-BR": {
    "mcons.title": "Meus consentimentos",
    "mcons.current": "Escolha atual de cookies",
    "mcons.none": "Você ainda não fez uma escolha de cookies com a sua conta.",
    "mcons.underVersion": "Registrada sob a versão {version} da política.",
    "mcons.change": "Mudar a escolha de cookies",
    "mcons.history": "Histórico de consentimentos",
    "mcons.acceptances": "Aceites da política de privacidade",
    "mcons.noAcceptances": "Nenhum aceite registrado.",
    "mcons.col.version": "Versão",
    "mcons.col.accepted": "Aceita em",
    "mcons.col.purpose": "Finalidade",
    "mcons.col.state": "Situação",
  },
  en: {
    "mcons.title": "My consents",
    "mcons.current": "Current cookie choice",
    "mcons.none": "You have not made a cookie choice with your account yet.",
    "mcons.underVersion": "Recorded under policy version {version}.",
    "mcons.change": "Change my cookie choice",
    "mcons.history": "Consent history",
    "mcons.acceptances": "Privacy policy acceptances",
    "mcons.noAcceptances": "No acceptance recorded.",
    "mcons.col.version": "Version",
    "mcons.col.accepted": "Accepted on",
    "mcons.col.purpose": "Purpose",
    "mcons.col.state": "State",
  },
});

export const access = "signed-in";
export const titleKey = "mcons.title";

export default async function render(main, ctx) {
  const [consents, acceptances] = await Promise.all([
    api("GET", "/v1/privacy/consents"),
    api("GET", "/v1/privacy/policy-acceptances"),
  ]);
  const history = consents.history || [];
  const purposes = consents.purposes || {};
  add(main, 
    h("h1", {}, t("mcons.title")),
    h("h2", {}, t("mcons.current")),
    history.length ? [
      h("p", {}, t("mcons.underVersion", { version: consents.policy_version })),
      tableWrap(t("mcons.current"),
        h("table", { id: "my-consents" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, t("mcons.col.purpose")),
            h("th", { scope: "col" }, t("mcons.col.state")))),
          h("tbody", {}, PURPOSES.map((name) => h("tr", { dataset: { purpose: name } },
            h("th", { scope: "row" }, t(`consent.purpose.${name}`)),
            h("td", {}, name === "essential" || purposes[name]
              ? h("span", { class: "badge badge-ok" }, t("cookies.on")) : h("span", { class: "badge" }, t("cookies.off")))))))),
    ] : h("p", {}, t("mcons.none")),
    h("p", {}, h("a", { href: "/app/cookies" }, t("mcons.change"))),
    h("h2", {}, t("mcons.history")),
    historyTable(history, ctx.lang),
    h("h2", {}, t("mcons.acceptances")),
    (acceptances.items || []).length ? tableWrap(t("mcons.acceptances"),
      h("table", { id: "my-acceptances" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, t("mcons.col.version")),
          h("th", { scope: "col" }, t("mcons.col.accepted")))),
        h("tbody", {}, acceptances.items.map((item) => h("tr", {},
          h("td", {}, h("a", { href: `/app/privacy/versions/${encodeURIComponent(item.version)}` }, item.version)),
          h("td", {}, h("time", { datetime: item.accepted_at }, formatDate(item.accepted_at, ctx.lang)))))))) :
      h("p", {}, t("mcons.noAcceptances")));
}
