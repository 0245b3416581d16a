// The corrections awaiting the DPO's review (/app/dpo/corrections, LGPD art. 18 III): each with the fields and
// the values asked for, approved (identity applies it as the reviewer) or denied with a reason (e-mailed to the
// requester). GET /v1/privacy/corrections?status=..., POST .../{id}/approve, POST .../{id}/deny {reason}.
import { api } from "../api.js";
import { h, add as addTo, mount, field, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { consoleNav, shortId, showProblem, selectOf } from "./dpo_requests.js";

const STATUSES = ["pending", "approved", "denied"];

register({
  "pt-BR": {
    "dpoCor.title": "Correções para revisar",
    "dpoCor.status": "Situação",
    "dpoCor.all": "Todas",
    "dpoCor.show": "Mostrar",
    "dpoCor.empty": "Nenhuma correção nesta situação.",
    "dpoCor.more": "Mostrar mais",
    "dpoCor.heading": "Correção {id}",
    "dpoCor.requester": "Solicitante",
    "dpoCor.filed": "Pedida em",
    "dpoCor.source": "Origem",
    "dpoCor.source.request": "Pedido de correção",
    "dpoCor.source.profile_edit": "Edição do perfil",
    "dpoCor.changes": "Novos valores",
    "dpoCor.reason": "Motivo do titular",
    "dpoCor.decided": "Decidida em",
    "dpoCor.decisionReason": "Motivo da decisão",
    "dpoCor.approve": "Aprovar",
    "dpoCor.deny": "Negar",
    "dpoCor.denyReason": "Motivo da negativa",
    "dpoCor.denyHint": "O titular recebe este motivo por e-mail.",
    "dpoCor.approved": "Correção aprovada: o cadastro foi atualizado.",
    "dpoCor.denied": "Correção negada: o titular foi avisado.",
    "dpoCor.required": "Informe o motivo.",
    "dpoCor.status.pending": "Pendente",
    "dpoCor.status.approved": "Aprovada",
    "dpoCor.status.denied": "Negada",
    "dpoCor.field.full_name": "Nome completo",
    "dpoCor.field.address": "Endereço",
    "dpoCor.field.gender": "Gênero",
    "dpoCor.field.email": "E-mail",
    "dpoCor.field.phone": "Telefone",
    "dpoCor.field.job_title": "Cargo",
    "dpoCor.field.birth_date": "Data de nascimento",
  },
  en: {
    "dpoCor.title": "Corrections to review",
    "dpoCor.status": "Status",
    "dpoCor.all": "All",
    "dpoCor.show": "Show",
    "dpoCor.empty": "No corrections with this status.",
    "dpoCor.more": "Show more",
    "dpoCor.heading": "Correction {id}",
    "dpoCor.requester": "Requester",
    "dpoCor.filed": "Filed",
    "dpoCor.source": "Source",
    "dpoCor.source.request": "Correction request",
    "dpoCor.source.profile_edit": "Profile edit",
    "dpoCor.changes": "New values",
    "dpoCor.reason": "The requester's reason",
    "dpoCor.decided": "Decided",
    "dpoCor.decisionReason": "Reason for the decision",
    "dpoCor.approve": "Approve",
    "dpoCor.deny": "Deny",
    "dpoCor.denyReason": "Reason for denial",
    "dpoCor.denyHint": "The requester receives this reason by e-mail.",
    "dpoCor.approved": "Correction approved: the profile was updated.",
    "dpoCor.denied": "Correction denied: the requester was told.",
    "dpoCor.required": "Give the reason.",
    "dpoCor.status.pending": "Pending",
    "dpoCor.status.approved": "Approved",
    "dpoCor.status.denied": "Denied",
    "dpoCor.field.full_name": "Full name",
    "dpoCor.field.address": "Address",
    "dpoCor.field.gender": "Gender",
    "dpoCor.field.email": "E-mail",
    "dpoCor.field.phone": "Phone",
    "dpoCor.field.job_title": "Job title",
    "dpoCor.field.birth_date": "Birth date",
  },
});

export const access = "privacy.review";
export const titleKey = "dpoCor.title";

const fieldName = (name) => {
  const key = `dpoCor.field.${name}`;
  const text = t(key);
  return text === key ? name : text;
};

/** A value asked for, as text (an address is an object: its parts in order). */
function valueText(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return Object.entries(value).filter(([, v]) => v !== null && v !== "").map(([k, v]) => `${k}: ${valueText(v)}`).join(", ");
  return String(value);
}

function statusBadge(status) {
  const kind = status === "approved" ? " badge-ok" : status === "denied" ? " badge-bad" : "";
  return h("span", { class: `badge${kind}` }, STATUSES.includes(status) ? t(`dpoCor.status.${status}`) : status);
}

export default async function render(main, ctx) {
  const wanted = ctx.query.get("status");
  const status = wanted === "all" ? "" : STATUSES.includes(wanted) ? wanted : "pending";
  const query = new URLSearchParams({ limit: "50" });
  if (status) query.set("status", status);
  const page = await api("GET", `/v1/privacy/corrections?${query}`);

  const select = selectOf("status", ["all", ...STATUSES],
    (value) => (value === "all" ? t("dpoCor.all") : t(`dpoCor.status.${value}`)), status || "all");
  select.id = "corrections-status";
  const filter = h("form", { class: "filters", role: "search", "aria-label": t("dpoCor.status") },
    h("div", { class: "filter-row" },
      h("div", { class: "field" }, h("label", { for: "corrections-status" }, t("dpoCor.status")), select)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("dpoCor.show"))));
  filter.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.navigate(`/app/dpo/corrections?status=${encodeURIComponent(select.value)}`);
  });

  const list = h("div", { class: "cards" });
  const more = h("button", { type: "button", class: "secondary", hidden: !page.next_cursor }, t("dpoCor.more"));
  let cursor = page.next_cursor;
  const add = (items) => { for (const item of items) list.append(card(item, ctx)); };
  add(page.items);
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      query.set("cursor", cursor);
      const next = await api("GET", `/v1/privacy/corrections?${query}`);
      add(next.items);
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      list.append(notice(error.message || t("error.generic"), "error"));
    } finally {
      more.disabled = false;
    }
  });

  addTo(main, h("h1", {}, t("dpoCor.title")), consoleNav("/app/dpo/corrections"), filter,
    page.items.length ? null : h("p", {}, t("dpoCor.empty")), list, more);
}

function card(correction, ctx) {
  const article = h("article", { class: "card", "aria-labelledby": `correction-${correction.id}`, dataset: { correctionId: correction.id } });
  fill(article, correction, ctx, null);
  return article;
}

function fill(article, correction, ctx, message) {
  const lang = ctx.lang;
  const changes = correction.changes && typeof correction.changes === "object" ? Object.entries(correction.changes) : [];
  const status = h("div", {});
  mount(article,
    h("h2", { id: `correction-${correction.id}` }, t("dpoCor.heading", { id: shortId(correction.id) }), " ", statusBadge(correction.status)),
    message,
    h("dl", { class: "props" },
      [h("dt", {}, t("dpoCor.requester")), h("dd", {}, correction.requester_id)],
      [h("dt", {}, t("dpoCor.filed")), h("dd", {}, formatDate(correction.created_at, lang))],
      [h("dt", {}, t("dpoCor.source")), h("dd", {}, t(`dpoCor.source.${correction.source}`))],
      [h("dt", {}, t("dpoCor.changes")), h("dd", {}, changes.length
        ? h("ul", { class: "plain" }, changes.map(([name, value]) => h("li", {}, h("strong", {}, fieldName(name)), ": ", valueText(value))))
        : (correction.fields || []).map(fieldName).join(", "))],
      correction.reason ? [h("dt", {}, t("dpoCor.reason")), h("dd", {}, correction.reason)] : null,
      correction.decided_at ? [h("dt", {}, t("dpoCor.decided")), h("dd", {}, formatDate(correction.decided_at, lang))] : null,
      correction.decision_reason ? [h("dt", {}, t("dpoCor.decisionReason")), h("dd", {}, correction.decision_reason)] : null),
    status,
    correction.status === "pending" ? decisions(article, correction, ctx, status) : null);
}

function decisions(article, correction, ctx, status) {
  const id = encodeURIComponent(correction.id);
  const decided = (key) => (answer) => {
    const message = notice(t(key), "ok");
    message.tabIndex = -1;
    fill(article, answer, ctx, message);
    message.focus();
  };
  const approve = h("button", { type: "button" }, t("dpoCor.approve"));
  approve.addEventListener("click", async () => {
    approve.disabled = true;
    status.replaceChildren();
    try {
      decided("dpoCor.approved")(await api("POST", `/v1/privacy/corrections/${id}/approve`));
    } catch (error) {
      approve.disabled = false;
      showProblem(denyForm, error, status);
    }
  });
  const reasonId = `deny-reason-${correction.id}`;
  const reason = h("textarea", { name: "reason", rows: 2, maxlength: 2000, dataset: { field: "reason" } });
  const denyButton = h("button", { type: "submit", class: "danger" }, t("dpoCor.deny"));
  const denyForm = h("form", { class: "action-form", novalidate: true },
    field({ id: reasonId, label: t("dpoCor.denyReason"), hint: t("dpoCor.denyHint"), control: reason }),
    h("div", { class: "actions" }, denyButton));
  denyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    if (!reason.value.trim()) {
      showProblem(denyForm, { problem: { errors: [{ field: "reason", message: t("dpoCor.required") }] } }, status);
      return;
    }
    denyButton.disabled = true;
    try {
      decided("dpoCor.denied")(await api("POST", `/v1/privacy/corrections/${id}/deny`, { body: { reason: reason.value.trim() } }));
    } catch (error) {
      denyButton.disabled = false;
      showProblem(denyForm, error, status);
    }
  });
  return h("div", {}, h("div", { class: "actions" }, approve), denyForm);
}
