// The DPO console's request queue (/app/dpo, LGPD art. 18): the open requests by due date, the overdue
// first (GET /v1/privacy/requests/overdue), then every request with the state and type filters
// (GET /v1/privacy/requests), each with its days left and a link to its detail.
// Also the console's shared pieces (its section links, type and state names, problem display), which
// the other dpo_*.js pages import from here.
import { api, can } from "../api.js";
import { h, notice, formatDate, showFieldErrors } from "../dom.js";
import { t, register } from "../i18n.js";

export const TYPES = ["confirmation", "access", "correction", "anonymisation", "blocking", "deletion", "portability",
  "sharing_info", "consent_info", "consent_revocation"];
export const STATES = ["identity_unverified", "pending", "in_progress", "completed", "denied", "canceled", "error"];
const OPEN = new Set(["identity_unverified", "pending", "in_progress", "error"]);

register({
  "pt-BR": {
    "dpo.console": "Console do encarregado",
    "dpo.nav.requests": "Solicitações",
    "dpo.nav.corrections": "Correções",
    "dpo.nav.incidents": "Incidentes",
    "dpo.nav.audit": "Registro de auditoria",
    "dpo.requests.title": "Solicitações dos titulares",
    "dpo.requests.queue": "Fila: vencidas e próximas do prazo",
    "dpo.requests.queueEmpty": "Nenhuma solicitação em aberto.",
    "dpo.requests.overdue": "{count} solicitação(ões) com prazo vencido.",
    "dpo.requests.noneOverdue": "Nenhuma solicitação com prazo vencido.",
    "dpo.requests.all": "Todas as solicitações",
    "dpo.requests.empty": "Nenhuma solicitação com esses filtros.",
    "dpo.requests.filter": "Filtrar",
    "dpo.requests.clear": "Limpar filtros",
    "dpo.requests.more": "Mostrar mais",
    "dpo.requests.any": "Qualquer um",
    "dpo.col.request": "Solicitação",
    "dpo.col.type": "Tipo",
    "dpo.col.state": "Situação",
    "dpo.col.channel": "Canal",
    "dpo.col.received": "Recebida em",
    "dpo.col.due": "Prazo",
    "dpo.col.daysLeft": "Dias restantes",
    "dpo.field.state": "Situação",
    "dpo.field.type": "Tipo de solicitação",
    "dpo.days.left": "{days} dia(s)",
    "dpo.days.today": "Vence hoje",
    "dpo.days.overdue": "Vencida há {days} dia(s)",
    "dpo.days.closed": "Encerrada",
    "dpo.requestLink": "Abrir solicitação {id}",
    "dpo.channel.session": "Conta",
    "dpo.channel.contact": "Formulário de contato",
    "dpo.problem.fields": "Corrija os campos indicados.",
    "type.confirmation": "Confirmação de tratamento",
    "type.access": "Acesso aos dados",
    "type.correction": "Correção",
    "type.anonymisation": "Anonimização",
    "type.blocking": "Bloqueio",
    "type.deletion": "Eliminação",
    "type.portability": "Portabilidade",
    "type.sharing_info": "Com quem compartilhamos",
    "type.consent_info": "Consequências de não consentir",
    "type.consent_revocation": "Revogação do consentimento",
    "state.identity_unverified": "Aguardando verificação",
    "state.pending": "Pendente",
    "state.in_progress": "Em andamento",
    "state.completed": "Concluída",
    "state.denied": "Negada",
    "state.canceled": "Cancelada",
    "state.error": "Com erro",
  },
  en: {
    "dpo.console": "DPO console",
    "dpo.nav.requests": "Requests",
    "dpo.nav.corrections": "Corrections",
    "dpo.nav.incidents": "Incidents",
    "dpo.nav.audit": "Audit log",
    "dpo.requests.title": "Data-subject requests",
    "dpo.requests.queue": "Queue: overdue and due soon",
    "dpo.requests.queueEmpty": "No open requests.",
    "dpo.requests.overdue": "{count} request(s) overdue.",
    "dpo.requests.noneOverdue": "No request is overdue.",
    "dpo.requests.all": "All requests",
    "dpo.requests.empty": "No requests match these filters.",
    "dpo.requests.filter": "Filter",
    "dpo.requests.clear": "Clear filters",
    "dpo.requests.more": "Show more",
    "dpo.requests.any": "Any",
    "dpo.col.request": "Request",
    "dpo.col.type": "Type",
    "dpo.col.state": "State",
    "dpo.col.channel": "Channel",
    "dpo.col.received": "Received",
    "dpo.col.due": "Due",
    "dpo.col.daysLeft": "Days left",
    "dpo.field.state": "State",
    "dpo.field.type": "Request type",
    "dpo.days.left": "{days} day(s)",
    "dpo.days.today": "Due today",
    "dpo.days.overdue": "Overdue by {days} day(s)",
    "dpo.days.closed": "Closed",
    "dpo.requestLink": "Open request {id}",
    "dpo.channel.session": "Account",
    "dpo.channel.contact": "Contact form",
    "dpo.problem.fields": "Correct the fields shown.",
    "type.confirmation": "Confirmation of processing",
    "type.access": "Access to data",
    "type.correction": "Correction",
    "type.anonymisation": "Anonymisation",
    "type.blocking": "Blocking",
    "type.deletion": "Deletion",
    "type.portability": "Portability",
    "type.sharing_info": "Who we share with",
    "type.consent_info": "Consequences of not consenting",
    "type.consent_revocation": "Consent withdrawal",
    "state.identity_unverified": "Awaiting verification",
    "state.pending": "Pending",
    "state.in_progress": "In progress",
    "state.completed": "Completed",
    "state.denied": "Denied",
    "state.canceled": "Canceled",
    "state.error": "Error",
  },
});

export const access = "privacy.review";
export const titleKey = "dpo.requests.title";

// -- shared by the console's pages -------------------------------------------------------------------------

/** The console's section links (each shown only with the permission its API needs). */
export function consoleNav(current) {
  const sections = [
    ["/app/dpo", "dpo.nav.requests", "privacy.review"],
    ["/app/dpo/corrections", "dpo.nav.corrections", "privacy.review"],
    ["/app/dpo/incidents", "dpo.nav.incidents", "privacy.incidents"],
    ["/app/dpo/audit", "dpo.nav.audit", "audit.read"],
  ].filter(([, , permission]) => can(permission));
  return h("nav", { class: "console-nav", "aria-label": t("dpo.console") },
    h("ul", {}, sections.map(([href, key]) =>
      h("li", {}, h("a", { href, "aria-current": href === current ? "page" : null }, t(key))))));
}

export const typeLabel = (type) => (TYPES.includes(type) ? t(`type.${type}`) : type);
export const stateLabel = (state) => (STATES.includes(state) ? t(`state.${state}`) : state);

export function stateBadge(state) {
  const kind = state === "error" || state === "denied" ? " badge-bad" : state === "completed" ? " badge-ok" : "";
  return h("span", { class: `badge${kind}` }, stateLabel(state));
}

/** Days left to a request's due date, as words (a badge when overdue). */
export function daysLeft(request) {
  if (!OPEN.has(request.state)) return t("dpo.days.closed");
  if (request.overdue || request.days_left < 0) {
    return h("span", { class: "badge badge-bad" }, t("dpo.days.overdue", { days: Math.max(1, -request.days_left) }));
  }
  if (request.days_left === 0) return h("span", { class: "badge badge-bad" }, t("dpo.days.today"));
  return t("dpo.days.left", { days: request.days_left });
}

export const shortId = (id) => String(id || "").slice(0, 8);

/** A table in a horizontally scrollable region reachable by keyboard (named, so it is announced). */
export function tableWrap(label, table) {
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": label }, table);
}

/**
 * Show an API error in a form: problem+json `errors` next to their controls (data-field; "a.b.3" also finds
 * "a.b" and "a"), the rest in `slot` as an alert; anything but an API error as a generic alert.
 */
export function showProblem(form, error, slot) {
  if (!error || !error.problem) {
    console.error(error);
    slot.replaceChildren(notice(error instanceof TypeError ? t("error.network") : t("error.generic"), "error"));
    return;
  }
  const problem = error.problem;
  const matched = [];
  const unmatched = [];
  for (const item of problem.errors || []) {
    let name = String(item.field || "");
    let control = null;
    while (name && !(control = form.querySelector(`[data-field="${CSS.escape(name)}"]`))) {
      name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
    }
    if (control) matched.push({ field: name, message: item.message });
    else unmatched.push(item);
  }
  showFieldErrors(form, { errors: matched });
  const lines = unmatched.map((item) => `${item.field}: ${item.message}`);
  const text = [problem.detail || problem.title || error.message, ...lines].filter(Boolean).join(" ");
  slot.replaceChildren(notice(matched.length && !unmatched.length ? `${t("dpo.problem.fields")} ${text}` : text, "error"));
}

/** A labelled select of `values` (an "any" option first when `any`), named for its API field. */
export function selectOf(name, values, labelOf, selected, { any = false } = {}) {
  return h("select", { name, dataset: { field: name } },
    any ? h("option", { value: "" }, t("dpo.requests.any")) : null,
    values.map((value) => h("option", { value, selected: value === selected }, labelOf(value))));
}

// -- the queue ------------------------------------------------------------------------------------------

function requestsTable(items, lang, label) {
  return tableWrap(label, h("table", {},
    h("thead", {}, h("tr", {},
      ["dpo.col.request", "dpo.col.type", "dpo.col.state", "dpo.col.channel", "dpo.col.received", "dpo.col.due",
        "dpo.col.daysLeft"].map((key) => h("th", { scope: "col" }, t(key))))),
    h("tbody", {}, items.map((item) => requestRow(item, lang)))));
}

function requestRow(item, lang) {
  return h("tr", { dataset: { requestId: item.id } },
    h("td", {}, h("a", { href: `/app/dpo/requests/${encodeURIComponent(item.id)}`, "aria-label": t("dpo.requestLink", { id: shortId(item.id) }) },
      shortId(item.id))),
    h("td", {}, typeLabel(item.type)),
    h("td", {}, stateBadge(item.state)),
    h("td", {}, t(`dpo.channel.${item.channel}`)),
    h("td", {}, formatDate(item.received_at, lang)),
    h("td", {}, formatDate(item.due_at, lang)),
    h("td", {}, daysLeft(item)));
}

export default async function render(main, ctx) {
  const state = STATES.includes(ctx.query.get("state")) ? ctx.query.get("state") : "";
  const type = TYPES.includes(ctx.query.get("type")) ? ctx.query.get("type") : "";
  const filters = new URLSearchParams({ limit: "50" });
  if (state) filters.set("state", state);
  if (type) filters.set("type", type);
  const [queue, page] = await Promise.all([
    api("GET", "/v1/privacy/requests/overdue?limit=20"),
    api("GET", `/v1/privacy/requests?${filters}`),
  ]);

  main.append(h("h1", {}, t("dpo.requests.title")), consoleNav("/app/dpo"));

  // the queue: open requests by due date, the overdue first
  main.append(h("section", { "aria-labelledby": "queue-heading" },
    h("h2", { id: "queue-heading" }, t("dpo.requests.queue")),
    queue.overdue_count
      ? notice(t("dpo.requests.overdue", { count: queue.overdue_count }), "warn")
      : h("p", {}, t("dpo.requests.noneOverdue")),
    queue.items.length ? requestsTable(queue.items, ctx.lang, t("dpo.requests.queue")) : h("p", {}, t("dpo.requests.queueEmpty"))));

  // every request, filtered
  const form = h("form", { class: "filters", role: "search", "aria-label": t("dpo.requests.all") },
    h("div", { class: "filter-row" },
      fieldOf("filter-state", t("dpo.field.state"), selectOf("state", STATES, stateLabel, state, { any: true })),
      fieldOf("filter-type", t("dpo.field.type"), selectOf("type", TYPES, typeLabel, type, { any: true }))),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, t("dpo.requests.filter")),
      state || type ? h("a", { class: "button secondary", href: "/app/dpo" }, t("dpo.requests.clear")) : null));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const name of ["state", "type"]) if (form.elements[name].value) query.set(name, form.elements[name].value);
    ctx.navigate(query.toString() ? `/app/dpo?${query}` : "/app/dpo");
  });

  const results = h("div", {});
  const more = h("button", { type: "button", class: "secondary", hidden: !page.next_cursor }, t("dpo.requests.more"));
  let cursor = page.next_cursor;
  let tbody = null;
  if (page.items.length) {
    const table = requestsTable(page.items, ctx.lang, t("dpo.requests.all"));
    tbody = table.querySelector("tbody");
    results.append(table);
  } else {
    results.append(h("p", {}, t("dpo.requests.empty")));
  }
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      filters.set("cursor", cursor);
      const next = await api("GET", `/v1/privacy/requests?${filters}`);
      for (const item of next.items) tbody.append(requestRow(item, ctx.lang));
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      results.append(notice(error.message || t("error.generic"), "error"));
    } finally {
      more.disabled = false;
    }
  });
  main.append(h("section", { "aria-labelledby": "all-heading" },
    h("h2", { id: "all-heading" }, t("dpo.requests.all")), form, results, more));
}

/** field() without the hint and error slots a filter does not need. */
function fieldOf(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}
