// Accept a new privacy-policy version (R11.1): GET /v1/me says which version is due; its text
// (GET /v1/privacy/policies/{version}) and an "I accept" button (POST /v1/privacy/policies/{version}/accept).
import { api, ApiError } from "../api.js";
import { add, h, mount, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { renderPolicyText } from "./policy.js";

register({
  "pt-BR": {
    "mpol.title": "Aceite da política de privacidade",
    "mpol.due": "A versão {version} da política de privacidade entrou em vigor em {date}. Leia-a e confirme o seu aceite para continuar usando a plataforma.",
    "mpol.summary": "O que mudou: {summary}",
    "mpol.accept": "Eu aceito",
    "mpol.accepting": "Registrando…",
    "mpol.accepted": "Seu aceite da versão {version} foi registrado em {date}.",
    "mpol.nothing": "Não há nenhuma versão da política esperando o seu aceite.",
    "mpol.back": "Voltar para Meus dados",
    "mpol.history": "Ver os meus aceites",
    "mpol.text": "Texto da versão {version}",
  },
  en: {
    "mpol.title": "Privacy policy acceptance",
    "mpol.due": "Version {version} of the privacy policy took effect on {date}. Read it and confirm your acceptance to keep using the platform.",
    "mpol.summary": "What changed: {summary}",
    "mpol.accept": "I accept",
    "mpol.accepting": "Recording…",
    "mpol.accepted": "Your acceptance of version {version} was recorded on {date}.",
    "mpol.nothing": "No policy version awaits your acceptance.",
    "mpol.back": "Back to My data",
    "mpol.history": "See my acceptances",
    "mpol.text": "Text of version {version}",
  },
});

export const access = "signed-in";
export const titleKey = "mpol.title";

export default async function render(main, ctx) {
  const me = await api("GET", "/v1/me");
  const due = me.policy_acceptance_required;
  add(main, h("h1", {}, t("mpol.title")));
  const links = () => h("ul", {},
    h("li", {}, h("a", { href: "/app/me" }, t("mpol.back"))),
    h("li", {}, h("a", { href: "/app/me/consents" }, t("mpol.history"))));
  if (!due) {
    add(main, notice(t("mpol.nothing"), "ok"), links());
    return;
  }
  const policy = await api("GET", `/v1/privacy/policies/${encodeURIComponent(due.version)}`);
  const status = h("div", {});
  const button = h("button", { type: "button", onclick: async () => {
    button.disabled = true;
    button.textContent = t("mpol.accepting");
    try {
      const accepted = await api("POST", `/v1/privacy/policies/${encodeURIComponent(due.version)}/accept`);
      mount(actions);
      mount(status, notice(t("mpol.accepted", { version: accepted.version, date: formatDate(accepted.accepted_at, ctx.lang) }), "ok"), links());
    } catch (error) {
      button.disabled = false;
      button.textContent = t("mpol.accept");
      mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
    }
  } }, t("mpol.accept"));
  const actions = h("div", { class: "actions" }, button);
  add(main, 
    notice(t("mpol.due", { version: policy.version, date: formatDate(policy.effective_at, ctx.lang) }), "warn"),
    policy.summary ? h("p", {}, t("mpol.summary", { summary: policy.summary })) : null,
    h("article", { class: "policy-doc", lang: "pt-BR", "aria-label": t("mpol.text", { version: policy.version }) },
      renderPolicyText(policy.text)),
    status,
    actions);
}
