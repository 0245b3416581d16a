// A contact-channel request (R10.1): the one-time-code step (POST /v1/privacy/contact/{id}/verify), then its
// status. The API gives an anonymous person nothing to read afterwards but the verify answer ({id, state,
// type, due_at, days_left}); it is kept in this history entry's state (history.state: it survives a reload
// and the back button, never written to storage) and the answer itself comes by e-mail.
import { api, ApiError } from "../api.js";
import { add, h, mount, field, notice, showFieldErrors, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import "./contact.js";  // the request types' names

register({
  "pt-BR": {
    "cstatus.title": "Seu pedido de privacidade",
    "cstatus.codeTitle": "Confirme o seu e-mail",
    "cstatus.codeLead": "Enviamos um código de 6 dígitos ao e-mail informado. Ele vale por 10 minutos e pode ser usado uma vez; são 3 tentativas.",
    "cstatus.code": "Código de 6 dígitos",
    "cstatus.codeHint": "Só números, como chegou no e-mail.",
    "cstatus.verify": "Confirmar",
    "cstatus.verifying": "Confirmando…",
    "cstatus.codeFormat": "O código tem 6 dígitos, só números.",
    "cstatus.wrong": "Código incorreto: resta(m) {left} tentativa(s).",
    "cstatus.newRequest": "Fazer um novo pedido",
    "cstatus.expired": "O código expirou. Faça o pedido de novo para receber outro.",
    "cstatus.exhausted": "Tentativas demais com códigos errados: este código não vale mais. Faça o pedido de novo.",
    "cstatus.used": "Este código já foi usado: o pedido já está confirmado e a resposta chegará por e-mail.",
    "cstatus.unknown": "Não encontramos este pedido. Confira o endereço ou faça um novo pedido.",
    "cstatus.verified": "E-mail confirmado: o seu pedido foi encaminhado ao encarregado de dados.",
    "cstatus.reference": "Protocolo",
    "cstatus.asked": "O que você pediu",
    "cstatus.status": "Situação",
    "cstatus.due": "Prazo de resposta",
    "cstatus.daysLeft": "{days} dia(s) restante(s)",
    "cstatus.overdue": "prazo vencido",
    "cstatus.next": "O que acontece agora",
    "cstatus.next.pending": "O encarregado de dados vai analisar o pedido e responder pelo e-mail que você informou até o prazo acima. Se ele precisar de mais tempo, você será avisado do novo prazo e do motivo.",
    "cstatus.next.in_progress": "O encarregado de dados já está trabalhando no pedido; a resposta chegará pelo seu e-mail.",
    "cstatus.next.completed": "O pedido foi respondido: veja o seu e-mail.",
    "cstatus.next.closed": "O pedido foi encerrado: o motivo foi enviado ao seu e-mail.",
    "cstatus.keep": "Guarde o protocolo. Esta página não guarda nada no seu navegador além deste histórico: as novidades chegam por e-mail.",
    "state.identity_unverified": "Aguardando confirmação do e-mail",
    "state.pending": "Recebido, na fila do encarregado",
    "state.in_progress": "Em andamento",
    "state.completed": "Concluído",
    "state.denied": "Negado",
    "state.canceled": "Cancelado",
    "state.error": "Com erro (o encarregado foi avisado)",
  },
  en: {
    "cstatus.title": "Your privacy request",
    "cstatus.codeTitle": "Confirm your e-mail",
    "cstatus.codeLead": "We sent a 6-digit code to the e-mail you gave. It is valid for 10 minutes and works once; you have 3 attempts.",
    "cstatus.code": "6-digit code",
    "cstatus.codeHint": "Digits only, as in the e-mail.",
    "cstatus.verify": "Confirm",
    "cstatus.verifying": "Confirming…",
    "cstatus.codeFormat": "The code is 6 digits, numbers only.",
    "cstatus.wrong": "Wrong code: {left} attempt(s) left.",
    "cstatus.newRequest": "File a new request",
    "cstatus.expired": "The code has expired. File the request again to get a new one.",
    "cstatus.exhausted": "Too many wrong codes: this code no longer works. File the request again.",
    "cstatus.used": "This code was used already: the request is confirmed and the answer will come by e-mail.",
    "cstatus.unknown": "We cannot find this request. Check the address or file a new request.",
    "cstatus.verified": "E-mail confirmed: your request went to the data protection officer.",
    "cstatus.reference": "Reference",
    "cstatus.asked": "What you asked for",
    "cstatus.status": "Status",
    "cstatus.due": "Answer due by",
    "cstatus.daysLeft": "{days} day(s) left",
    "cstatus.overdue": "overdue",
    "cstatus.next": "What happens next",
    "cstatus.next.pending": "The data protection officer will review your request and answer at the e-mail you gave by the date above. If more time is needed, you will be told the new date and why.",
    "cstatus.next.in_progress": "The data protection officer is working on your request; the answer will come to your e-mail.",
    "cstatus.next.completed": "Your request was answered: see your e-mail.",
    "cstatus.next.closed": "Your request was closed: the reason was sent to your e-mail.",
    "cstatus.keep": "Keep the reference. This page keeps nothing in your browser beyond this history entry: news comes by e-mail.",
    "state.identity_unverified": "Waiting for e-mail confirmation",
    "state.pending": "Received, in the DPO's queue",
    "state.in_progress": "In progress",
    "state.completed": "Completed",
    "state.denied": "Denied",
    "state.canceled": "Canceled",
    "state.error": "Failed (the DPO was told)",
  },
});

export const access = "public";
export const titleKey = "cstatus.title";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function nextStep(state) {
  if (state === "pending" || state === "identity_unverified") return t("cstatus.next.pending");
  if (state === "in_progress") return t("cstatus.next.in_progress");
  if (state === "completed") return t("cstatus.next.completed");
  return t("cstatus.next.closed");
}

function statusView(main, ctx, saved) {
  const answer = saved.verified;
  const overdue = answer.days_left !== undefined && answer.days_left <= 0;
  add(main, 
    h("h1", {}, t("cstatus.title")),
    notice(t("cstatus.verified"), "ok"),
    h("dl", { class: "props", id: "request-status" },
      h("dt", {}, t("cstatus.reference")), h("dd", {}, h("code", {}, answer.id)),
      h("dt", {}, t("cstatus.asked")), h("dd", { dataset: { type: answer.type } }, t(`type.${answer.type}`)),
      h("dt", {}, t("cstatus.status")), h("dd", { dataset: { state: answer.state } }, t(`state.${answer.state}`)),
      h("dt", {}, t("cstatus.due")), h("dd", {},
        h("time", { datetime: answer.due_at }, formatDate(answer.due_at, ctx.lang)), " ",
        h("span", { class: overdue ? "badge badge-bad" : "badge" },
          overdue ? t("cstatus.overdue") : t("cstatus.daysLeft", { days: answer.days_left })))),
    h("h2", {}, t("cstatus.next")),
    h("p", {}, nextStep(answer.state)),
    h("p", { class: "hint" }, t("cstatus.keep")),
    h("p", {}, h("a", { href: "/app/contact" }, t("cstatus.newRequest"))));
}

export default async function render(main, ctx) {
  const id = ctx.params.requestId;
  if (!UUID.test(id)) {
    add(main, h("h1", {}, t("cstatus.title")), notice(t("cstatus.unknown"), "error"),
      h("p", {}, h("a", { href: "/app/contact" }, t("cstatus.newRequest"))));
    return;
  }
  const saved = history.state && history.state.id === id ? history.state : { stage: "code", id };
  if (saved.verified) {
    statusView(main, ctx, saved);
    return;
  }
  const status = h("div", {});
  const form = h("form", { novalidate: true },
    field({ id: "contact-code", label: t("cstatus.code"), hint: t("cstatus.codeHint"),
      control: h("input", { type: "text", name: "code", "data-field": "code", inputmode: "numeric", autocomplete: "one-time-code",
        pattern: "[0-9]{6}", maxlength: 6, required: true }) }),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("cstatus.verify"))));
  const fileAgain = () => h("p", {}, h("a", { href: saved.type ? `/app/contact?type=${encodeURIComponent(saved.type)}` : "/app/contact" }, t("cstatus.newRequest")));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const code = form.elements.code.value.replace(/\s+/g, "");
    showFieldErrors(form, { errors: [] });
    mount(status);
    if (!/^[0-9]{6}$/.test(code)) {
      showFieldErrors(form, { errors: [{ field: "code", message: t("cstatus.codeFormat") }] });
      return;
    }
    button.disabled = true;
    button.textContent = t("cstatus.verifying");
    try {
      const verified = await api("POST", `/v1/privacy/contact/${encodeURIComponent(id)}/verify`, { body: { code } });
      await ctx.navigate(location.pathname, { replace: true, state: { ...saved, stage: "verified", verified } });
    } catch (error) {
      button.disabled = false;
      button.textContent = t("cstatus.verify");
      if (!(error instanceof ApiError)) { mount(status, notice(t("error.network"), "error")); return; }
      if (error.status === 422) {
        const left = error.problem.attempts_left;
        const errors = (error.problem.errors || []).map((e) => (e.field !== "code" ? e :
          { field: "code", message: typeof left === "number" ? t("cstatus.wrong", { left }) : t("cstatus.codeFormat") }));
        if (!showFieldErrors(form, { errors })) mount(status, notice(error.message, "error"));
      } else if (error.status === 410) {
        mount(status, notice(t("cstatus.expired"), "error"), fileAgain());
      } else if (error.status === 403) {
        mount(status, notice(t("cstatus.exhausted"), "error"), fileAgain());
      } else if (error.status === 409) {
        mount(status, notice(t("cstatus.used"), "info"));
      } else if (error.status === 404) {
        mount(status, notice(t("cstatus.unknown"), "error"), fileAgain());
      } else {
        mount(status, notice(error.message, "error"));
      }
    }
  });

  add(main, h("h1", {}, t("cstatus.codeTitle")),
    h("p", {}, t("cstatus.codeLead")),
    saved.type ? h("p", {}, t("cstatus.asked"), ": ", h("strong", {}, t(`type.${saved.type}`))) : null,
    form);
}
