// The privacy contact channel (R10.1), no sign-in: request type, e-mail, message -> POST /v1/privacy/contact
// (always 202 with a request id); then /app/contact/:id asks for the 6-digit code e-mailed (contact_status.js).
import { api, ApiError } from "../api.js";
import { add, h, mount, field, notice, showFieldErrors } from "../dom.js";
import { t, register } from "../i18n.js";

export const TYPES = ["access", "confirmation", "correction", "portability", "sharing_info", "consent_info",
  "consent_revocation", "anonymisation", "blocking", "deletion"];

register({
  "pt-BR": {
    "contact.title": "Fale com o encarregado de dados",
    "contact.lead": "Exerça os seus direitos de titular (LGPD art. 18) ou tire uma dúvida sobre privacidade, sem precisar de conta. Enviaremos um código de 6 dígitos ao seu e-mail para confirmar que o endereço é seu.",
    "contact.type": "Tipo de pedido",
    "contact.email": "Seu e-mail",
    "contact.emailHint": "O código de confirmação e a resposta chegam neste endereço.",
    "contact.message": "Mensagem",
    "contact.messageHint": "Opcional: conte o que precisa (até 5000 caracteres).",
    "contact.submit": "Enviar pedido",
    "contact.sending": "Enviando…",
    "contact.throttled": "Muitos pedidos em pouco tempo. Tente de novo mais tarde.",
    "contact.invalid": "Confira os campos destacados.",
    "contact.emailInvalid": "Informe um e-mail válido, como nome@exemplo.com.br.",
    "contact.signedIn": "Você está conectado: também pode fazer pedidos em",
    "type.access": "Acesso aos meus dados",
    "type.confirmation": "Confirmar se vocês tratam meus dados",
    "type.correction": "Correção de dados",
    "type.portability": "Portabilidade dos meus dados",
    "type.sharing_info": "Com quem meus dados foram compartilhados",
    "type.consent_info": "Informação sobre não dar consentimento",
    "type.consent_revocation": "Revogar meu consentimento",
    "type.anonymisation": "Anonimização",
    "type.blocking": "Bloqueio",
    "type.deletion": "Eliminação dos meus dados",
  },
  en: {
    "contact.title": "Contact the data protection officer",
    "contact.lead": "Exercise your rights as a data subject (LGPD art. 18) or ask a privacy question, no account needed. We will e-mail you a 6-digit code to confirm the address is yours.",
    "contact.type": "Request type",
    "contact.email": "Your e-mail",
    "contact.emailHint": "The confirmation code and the answer are sent to this address.",
    "contact.message": "Message",
    "contact.messageHint": "Optional: tell us what you need (up to 5000 characters).",
    "contact.submit": "Send request",
    "contact.sending": "Sending…",
    "contact.throttled": "Too many requests in a short time. Try again later.",
    "contact.invalid": "Check the highlighted fields.",
    "contact.emailInvalid": "Give a valid e-mail address, like name@example.com.",
    "contact.signedIn": "You are signed in: you can also file requests in",
    "type.access": "Access to my data",
    "type.confirmation": "Confirm whether you process my data",
    "type.correction": "Correction of my data",
    "type.portability": "Portability of my data",
    "type.sharing_info": "With whom my data was shared",
    "type.consent_info": "Information about not consenting",
    "type.consent_revocation": "Withdraw my consent",
    "type.anonymisation": "Anonymisation",
    "type.blocking": "Blocking",
    "type.deletion": "Deletion of my data",
  },
});

export const access = "public";
export const titleKey = "contact.title";

export function typeSelect(attrs = {}) {
  return h("select", attrs, TYPES.map((type) => h("option", { value: type }, t(`type.${type}`))));
}

export default async function render(main, ctx) {
  const status = h("div", {});
  const form = h("form", { novalidate: true },
    field({ id: "contact-type", label: t("contact.type"), control: typeSelect({ name: "type", "data-field": "type", required: true }) }),
    field({ id: "contact-email", label: t("contact.email"), hint: t("contact.emailHint"),
      control: h("input", { type: "email", name: "email", "data-field": "email", autocomplete: "email", required: true, maxlength: 254 }) }),
    field({ id: "contact-message", label: t("contact.message"), hint: t("contact.messageHint"),
      control: h("textarea", { name: "message", "data-field": "message", maxlength: 5000, rows: 6 }) }),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("contact.submit"))));
  const preset = ctx.query.get("type");
  if (preset && TYPES.includes(preset)) form.elements.type.value = preset;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const type = form.elements.type.value;
    const email = form.elements.email.value.trim();
    const message = form.elements.message.value;
    showFieldErrors(form, { errors: [] });
    mount(status);
    const body = { type, email };
    if (message.trim()) body.message = message;
    button.disabled = true;
    button.textContent = t("contact.sending");
    try {
      const accepted = await api("POST", "/v1/privacy/contact", { body });
      ctx.navigate(`/app/contact/${encodeURIComponent(accepted.id)}`, { state: { stage: "code", id: accepted.id, type } });
    } catch (error) {
      button.disabled = false;
      button.textContent = t("contact.submit");
      if (error instanceof ApiError && error.status === 429) {
        mount(status, notice(t("contact.throttled"), "error"));
      } else if (error instanceof ApiError && error.status === 422) {
        const errors = (error.problem.errors || []).map((e) => (e.field === "email" ? { ...e, message: t("contact.emailInvalid") } : e));
        if (!showFieldErrors(form, { errors })) mount(status, notice(error.message, "error"));
        else mount(status, notice(t("contact.invalid"), "error"));
      } else {
        mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
      }
    }
  });

  add(main, h("h1", {}, t("contact.title")), h("p", {}, t("contact.lead")),
    ctx.session ? h("p", {}, t("contact.signedIn"), " ", h("a", { href: "/app/me/requests" }, t("nav.me")), ".") : null,
    form);
}
