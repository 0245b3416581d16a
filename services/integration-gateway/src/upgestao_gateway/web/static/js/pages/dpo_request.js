// One data-subject request in the DPO console (/app/dpo/requests/:requestId): what was asked, by whom, its
// due date and history (GET /v1/privacy/requests/{id}), what privacy answered itself, an erasure's progress,
// and the actions the API offers in its state: start, complete (a note), deny (a reason), extend (a new due
// date and a reason), cancel, and lift a completed blocking. Each action answers with the request as it now
// is, which replaces the page's content; a refusal is shown next to the field it names.
import { api } from "../api.js";
import { h, mount, field, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { consoleNav, typeLabel, stateLabel, stateBadge, daysLeft, shortId, showProblem, tableWrap } from "./dpo_requests.js";

register({
  "pt-BR": {
    "dpoReq.title": "Solicitação",
    "dpoReq.heading": "Solicitação {id}: {type}",
    "dpoReq.back": "Voltar à fila",
    "dpoReq.id": "Identificador",
    "dpoReq.type": "Tipo",
    "dpoReq.state": "Situação",
    "dpoReq.channel": "Canal",
    "dpoReq.subject": "Titular",
    "dpoReq.subjectUnknown": "Endereço sem cadastro",
    "dpoReq.requester": "Solicitante",
    "dpoReq.received": "Recebida em",
    "dpoReq.due": "Prazo",
    "dpoReq.daysLeft": "Dias restantes",
    "dpoReq.closed": "Encerrada em",
    "dpoReq.outcome": "Resultado",
    "dpoReq.whatFailed": "O que falhou",
    "dpoReq.contact": "Mensagem recebida pelo formulário",
    "dpoReq.contactEmail": "E-mail",
    "dpoReq.contactMessage": "Mensagem",
    "dpoReq.contactErased": "Os dados de contato foram eliminados.",
    "dpoReq.answer": "Resposta automática",
    "dpoReq.holdsData": "Tratamos dados desta pessoa",
    "dpoReq.holdsDataNo": "Não tratamos dados desta pessoa",
    "dpoReq.services": "Serviços",
    "dpoReq.recipient": "Destinatário",
    "dpoReq.service": "Serviço",
    "dpoReq.fields": "Campos",
    "dpoReq.count": "Vezes",
    "dpoReq.policy": "Política de privacidade",
    "dpoReq.noRecipients": "Nenhum compartilhamento registrado.",
    "dpoReq.erasure": "Andamento da eliminação",
    "dpoReq.erasureMode": "Modo",
    "dpoReq.participant": "Serviço",
    "dpoReq.participantState": "Situação",
    "dpoReq.participant.pending": "Pendente",
    "dpoReq.participant.confirmed": "Confirmado",
    "dpoReq.erasureDone": "Todos os serviços confirmaram.",
    "dpoReq.erasureLifted": "O bloqueio foi levantado.",
    "dpoReq.told": "Terceiros avisados",
    "dpoReq.history": "Histórico",
    "dpoReq.col.at": "Quando",
    "dpoReq.col.event": "Evento",
    "dpoReq.col.change": "Situação",
    "dpoReq.col.by": "Por",
    "dpoReq.col.reason": "Motivo ou nota",
    "dpoReq.system": "Sistema",
    "dpoReq.actions": "Ações",
    "dpoReq.noActions": "Esta solicitação está encerrada: não há ações.",
    "dpoReq.start": "Iniciar atendimento",
    "dpoReq.startHint": "Este tipo de solicitação é respondido na hora, pelo próprio serviço de privacidade.",
    "dpoReq.complete": "Concluir",
    "dpoReq.completeNote": "Nota ao titular (opcional)",
    "dpoReq.deny": "Negar",
    "dpoReq.denyReason": "Motivo da negativa",
    "dpoReq.denyHint": "O titular recebe este motivo por e-mail.",
    "dpoReq.extend": "Prorrogar prazo",
    "dpoReq.extendDue": "Novo prazo",
    "dpoReq.extendReason": "Motivo da prorrogação",
    "dpoReq.cancel": "Cancelar solicitação",
    "dpoReq.cancelReason": "Motivo do cancelamento (opcional)",
    "dpoReq.unblock": "Levantar o bloqueio",
    "dpoReq.unblockHint": "Os dados da pessoa voltam a ser tratados.",
    "dpoReq.done.start": "Atendimento iniciado.",
    "dpoReq.done.complete": "Solicitação concluída.",
    "dpoReq.done.deny": "Solicitação negada.",
    "dpoReq.done.extend": "Prazo prorrogado.",
    "dpoReq.done.cancel": "Solicitação cancelada.",
    "dpoReq.done.unblock": "Bloqueio levantado.",
    "dpoReq.required": "Preencha este campo.",
    "event.filed": "Registrada",
    "event.verified": "Verificada",
    "event.started": "Iniciada",
    "event.completed": "Concluída",
    "event.denied": "Negada",
    "event.canceled": "Cancelada",
    "event.failed": "Falhou",
    "event.extended": "Prazo prorrogado",
  },
  en: {
    "dpoReq.title": "Request",
    "dpoReq.heading": "Request {id}: {type}",
    "dpoReq.back": "Back to the queue",
    "dpoReq.id": "Id",
    "dpoReq.type": "Type",
    "dpoReq.state": "State",
    "dpoReq.channel": "Channel",
    "dpoReq.subject": "Data subject",
    "dpoReq.subjectUnknown": "An address nobody here has",
    "dpoReq.requester": "Requester",
    "dpoReq.received": "Received",
    "dpoReq.due": "Due",
    "dpoReq.daysLeft": "Days left",
    "dpoReq.closed": "Closed",
    "dpoReq.outcome": "Outcome",
    "dpoReq.whatFailed": "What failed",
    "dpoReq.contact": "Message from the contact form",
    "dpoReq.contactEmail": "E-mail",
    "dpoReq.contactMessage": "Message",
    "dpoReq.contactErased": "The contact details were erased.",
    "dpoReq.answer": "Automatic answer",
    "dpoReq.holdsData": "We hold data about this person",
    "dpoReq.holdsDataNo": "We hold no data about this person",
    "dpoReq.services": "Services",
    "dpoReq.recipient": "Recipient",
    "dpoReq.service": "Service",
    "dpoReq.fields": "Fields",
    "dpoReq.count": "Times",
    "dpoReq.policy": "Privacy policy",
    "dpoReq.noRecipients": "No sharing recorded.",
    "dpoReq.erasure": "Erasure progress",
    "dpoReq.erasureMode": "Mode",
    "dpoReq.participant": "Service",
    "dpoReq.participantState": "State",
    "dpoReq.participant.pending": "Pending",
    "dpoReq.participant.confirmed": "Confirmed",
    "dpoReq.erasureDone": "Every service confirmed.",
    "dpoReq.erasureLifted": "The blocking was lifted.",
    "dpoReq.told": "Third parties told",
    "dpoReq.history": "History",
    "dpoReq.col.at": "When",
    "dpoReq.col.event": "Event",
    "dpoReq.col.change": "State",
    "dpoReq.col.by": "By",
    "dpoReq.col.reason": "Reason or note",
    "dpoReq.system": "System",
    "dpoReq.actions": "Actions",
    "dpoReq.noActions": "This request is closed: no actions left.",
    "dpoReq.start": "Start work",
    "dpoReq.startHint": "This kind of request is answered at once, by the privacy service itself.",
    "dpoReq.complete": "Complete",
    "dpoReq.completeNote": "Note to the requester (optional)",
    "dpoReq.deny": "Deny",
    "dpoReq.denyReason": "Reason for denial",
    "dpoReq.denyHint": "The requester receives this reason by e-mail.",
    "dpoReq.extend": "Extend the due date",
    "dpoReq.extendDue": "New due date",
    "dpoReq.extendReason": "Reason for the extension",
    "dpoReq.cancel": "Cancel request",
    "dpoReq.cancelReason": "Reason for cancelling (optional)",
    "dpoReq.unblock": "Lift the blocking",
    "dpoReq.unblockHint": "The person's data is processed again.",
    "dpoReq.done.start": "Work started.",
    "dpoReq.done.complete": "Request completed.",
    "dpoReq.done.deny": "Request denied.",
    "dpoReq.done.extend": "Due date extended.",
    "dpoReq.done.cancel": "Request canceled.",
    "dpoReq.done.unblock": "Blocking lifted.",
    "dpoReq.required": "Fill in this field.",
    "event.filed": "Filed",
    "event.verified": "Verified",
    "event.started": "Started",
    "event.completed": "Completed",
    "event.denied": "Denied",
    "event.canceled": "Canceled",
    "event.failed": "Failed",
    "event.extended": "Due date extended",
  },
});

export const access = "privacy.review";
export const titleKey = "dpoReq.title";

const OPEN = ["identity_unverified", "pending", "in_progress", "error"];

export default async function render(main, ctx) {
  const id = ctx.params.requestId;
  const request = await api("GET", `/v1/privacy/requests/${encodeURIComponent(id)}`);
  const body = h("div", {});
  const status = h("div", { class: "action-result" });
  main.append(
    h("h1", {}, t("dpoReq.heading", { id: shortId(request.id), type: typeLabel(request.type) })),
    consoleNav(null),
    h("p", {}, h("a", { href: "/app/dpo" }, t("dpoReq.back"))),
    status, body);
  show(body, status, request, ctx);
}

function show(body, status, request, ctx) {
  const lang = ctx.lang;
  const done = (key) => async (answer) => {
    show(body, status, answer, ctx);
    const message = notice(t(key), "ok");
    message.tabIndex = -1;
    status.replaceChildren(message);
    message.focus();
  };
  mount(body,
    h("dl", { class: "props" },
      prop(t("dpoReq.id"), request.id),
      prop(t("dpoReq.type"), typeLabel(request.type)),
      prop(t("dpoReq.state"), stateBadge(request.state)),
      prop(t("dpoReq.channel"), t(`dpo.channel.${request.channel}`)),
      prop(t("dpoReq.subject"), request.subject_id ? `${request.subject_id}${request.subject_kind ? ` (${request.subject_kind})` : ""}`
        : t("dpoReq.subjectUnknown")),
      request.requester_id ? prop(t("dpoReq.requester"), request.requester_id) : null,
      prop(t("dpoReq.received"), formatDate(request.received_at, lang)),
      prop(t("dpoReq.due"), formatDate(request.due_at, lang)),
      OPEN.includes(request.state) ? prop(t("dpoReq.daysLeft"), daysLeft(request)) : null,
      request.closed_at ? prop(t("dpoReq.closed"), formatDate(request.closed_at, lang)) : null,
      request.outcome ? prop(t("dpoReq.outcome"), stateLabel(request.outcome)) : null,
      request.what_failed ? prop(t("dpoReq.whatFailed"), request.what_failed) : null),
    contactSection(request),
    answerSection(request, lang),
    erasureSection(request),
    historySection(request, lang),
    actionsSection(request, done));
}

function prop(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function contactSection(request) {
  if (!("contact" in request) || request.channel !== "contact") return null;
  const contact = request.contact;
  return h("section", { "aria-labelledby": "contact-heading" },
    h("h2", { id: "contact-heading" }, t("dpoReq.contact")),
    contact ? h("dl", { class: "props" },
      prop(t("dpoReq.contactEmail"), contact.email || "—"),
      prop(t("dpoReq.contactMessage"), h("span", { class: "policy-text" }, contact.message || "—")))
      : h("p", {}, t("dpoReq.contactErased")));
}

function answerSection(request, lang) {
  const answer = request.answer;
  if (!answer || typeof answer !== "object") return null;
  let content;
  if (answer.kind === "confirmation") {
    content = [h("p", {}, answer.holds_data ? t("dpoReq.holdsData") : t("dpoReq.holdsDataNo")),
      (answer.services || []).length ? h("p", {}, `${t("dpoReq.services")}: ${answer.services.join(", ")}`) : null];
  } else if (answer.kind === "sharing_info") {
    const recipients = answer.recipients || [];
    content = recipients.length ? tableWrap(t("dpoReq.answer"), h("table", {},
      h("thead", {}, h("tr", {}, ["dpoReq.recipient", "dpoReq.service", "dpoReq.fields", "dpoReq.count", "dpoReq.policy"]
        .map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", {}, recipients.map((r) => h("tr", {},
        h("td", {}, r.recipient || "—"), h("td", {}, r.service || ""), h("td", {}, (r.fields || []).join(", ")),
        h("td", {}, r.count ?? ""),
        h("td", {}, safeUrl(r.privacy_policy_url) ? h("a", { href: r.privacy_policy_url, rel: "noopener noreferrer" }, r.privacy_policy_url) : "—"))))))
      : h("p", {}, t("dpoReq.noRecipients"));
  } else if (answer.kind === "consent_info") {
    const text = answer.text || {};
    content = h("p", { class: "policy-text" }, text[lang] || text["pt-BR"] || text.en || "");
  } else {
    return null;
  }
  return h("section", { "aria-labelledby": "answer-heading" }, h("h2", { id: "answer-heading" }, t("dpoReq.answer")), content);
}

/** Only http(s) addresses become links (a javascript: URL from a third party's declaration never does). */
function safeUrl(url) {
  try { return ["https:", "http:"].includes(new URL(url).protocol); } catch { return false; }
}

function erasureSection(request) {
  const progress = request.erasure_progress;
  if (!progress || typeof progress !== "object") return null;
  const participants = Object.entries(progress.participants || {});
  return h("section", { "aria-labelledby": "erasure-heading" },
    h("h2", { id: "erasure-heading" }, t("dpoReq.erasure")),
    h("p", {}, `${t("dpoReq.erasureMode")}: ${typeLabel(progress.mode)}`),
    participants.length ? tableWrap(t("dpoReq.erasure"), h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("dpoReq.participant")), h("th", { scope: "col" }, t("dpoReq.participantState")))),
      h("tbody", {}, participants.map(([service, state]) => h("tr", {}, h("td", {}, service),
        h("td", {}, h("span", { class: `badge${state === "confirmed" ? " badge-ok" : ""}` }, t(`dpoReq.participant.${state}`)))))))) : null,
    progress.completed ? h("p", {}, t("dpoReq.erasureDone")) : null,
    progress.lifted ? h("p", {}, t("dpoReq.erasureLifted")) : null,
    (progress.recipients || []).length ? h("p", {}, `${t("dpoReq.told")}: ${progress.recipients.join(", ")}`) : null);
}

function historySection(request, lang) {
  return h("section", { "aria-labelledby": "history-heading" },
    h("h2", { id: "history-heading" }, t("dpoReq.history")),
    tableWrap(t("dpoReq.history"), h("table", {},
      h("thead", {}, h("tr", {}, ["dpoReq.col.at", "dpoReq.col.event", "dpoReq.col.change", "dpoReq.col.by", "dpoReq.col.reason"]
        .map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", {}, (request.history || []).map((step) => h("tr", {},
        h("td", {}, formatDate(step.at, lang)),
        h("td", {}, t(`event.${step.event}`)),
        h("td", {}, step.from ? `${stateLabel(step.from)} → ${stateLabel(step.to)}` : stateLabel(step.to)),
        h("td", {}, !step.by_role || step.by_role === "system" ? t("dpoReq.system")
          : `${step.by_role}${step.by_id && step.by_id !== step.by_role ? ` (${shortId(step.by_id)})` : ""}`),
        h("td", {}, [step.reason, step.event === "extended" && step.note ? formatDate(step.note, lang) : step.note]
          .filter(Boolean).join(" — "))))))));
}

function actionsSection(request, done) {
  const id = encodeURIComponent(request.id);
  const base = `/v1/privacy/requests/${id}`;
  const forms = [];
  const state = request.state;
  if (state === "pending" || state === "error") {
    const answered = ["confirmation", "sharing_info", "consent_info"].includes(request.type);
    forms.push(actionForm({ name: "start", title: t("dpoReq.start"), hint: answered ? t("dpoReq.startHint") : null, path: `${base}/start`, done }));
  }
  if (state === "in_progress") {
    forms.push(actionForm({ name: "complete", title: t("dpoReq.complete"), path: `${base}/complete`, done,
      fields: [{ name: "note", label: t("dpoReq.completeNote"), textarea: true }] }));
  }
  if (state === "pending" || state === "in_progress" || state === "error") {
    forms.push(actionForm({ name: "deny", title: t("dpoReq.deny"), path: `${base}/deny`, done, danger: true,
      fields: [{ name: "reason", label: t("dpoReq.denyReason"), hint: t("dpoReq.denyHint"), textarea: true, required: true }] }));
  }
  if (OPEN.includes(state)) {
    forms.push(actionForm({ name: "extend", title: t("dpoReq.extend"), path: `${base}/extend`, done,
      fields: [{ name: "due_at", label: t("dpoReq.extendDue"), type: "datetime-local", required: true, value: later(request.due_at) },
        { name: "reason", label: t("dpoReq.extendReason"), textarea: true, required: true }] }));
    forms.push(actionForm({ name: "cancel", title: t("dpoReq.cancel"), path: `${base}/cancel`, done, danger: true,
      fields: [{ name: "reason", label: t("dpoReq.cancelReason"), textarea: true }] }));
  }
  const progress = request.erasure_progress;
  if (request.type === "blocking" && state === "completed" && progress && progress.completed && !progress.lifted) {
    forms.push(actionForm({ name: "unblock", title: t("dpoReq.unblock"), hint: t("dpoReq.unblockHint"),
      path: `${base}/unblock`, done, reload: base }));
  }
  return h("section", { "aria-labelledby": "actions-heading" },
    h("h2", { id: "actions-heading" }, t("dpoReq.actions")),
    forms.length ? forms : h("p", {}, t("dpoReq.noActions")));
}

/** The due date plus 15 days, as a datetime-local value (a sensible start for an extension). */
function later(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  date.setDate(date.getDate() + 15);
  return localValue(date);
}

function localValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function actionForm({ name, title, hint, path, fields = [], done, danger = false, reload = null }) {
  const slot = h("div", {});
  const controls = fields.map((spec) => {
    const control = spec.textarea
      ? h("textarea", { name: spec.name, rows: 3, required: spec.required || null, maxlength: 2000, dataset: { field: spec.name } })
      : h("input", { type: spec.type || "text", name: spec.name, required: spec.required || null, value: spec.value || null,
        dataset: { field: spec.name } });
    return field({ id: `${name}-${spec.name}`, label: spec.label, control, hint: spec.hint });
  });
  const button = h("button", { type: "submit", class: danger ? "danger" : null }, title);
  const form = h("form", { class: "action-form", "aria-labelledby": `${name}-title`, novalidate: true },
    h("h3", { id: `${name}-title` }, title),
    hint && !fields.length ? h("p", { class: "hint" }, hint) : null,
    controls, slot, h("div", { class: "actions" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const payload = {};
    const missing = [];
    for (const spec of fields) {
      const value = form.elements[spec.name].value.trim();
      if (!value) { if (spec.required) missing.push({ field: spec.name, message: t("dpoReq.required") }); continue; }
      if (spec.type === "datetime-local") {
        const date = new Date(value);
        payload[spec.name] = Number.isNaN(date.getTime()) ? value : date.toISOString();
      } else {
        payload[spec.name] = value;
      }
    }
    if (missing.length) {
      showProblem(form, { problem: { errors: missing } }, slot);
      return;
    }
    button.disabled = true;
    try {
      const answer = await api("POST", path, fields.length ? { body: payload } : {});
      await done(`dpoReq.done.${name}`)(reload ? await api("GET", reload) : answer);
    } catch (error) {
      button.disabled = false;
      showProblem(form, error, slot);
    }
  });
  return form;
}
