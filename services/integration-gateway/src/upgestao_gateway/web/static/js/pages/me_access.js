// Who accessed my data and with whom it was shared (R4.2, R9.1). The audit log's own routes need audit.read
// (the DPO's); what the API gives the data subject is:
//  * the audit section of my export (an access or portability request's bundle: accesses, shares and each
//    third party's privacy-policy address) -- downloaded on "My requests" (kept in memory here) or opened
//    from the saved file (read in the browser, never uploaded);
//  * the answer of a "sharing_info" request (GET /v1/privacy/requests/{id}: recipients with their
//    privacy-policy addresses), which this page files with one click.
import { api, ApiError } from "../api.js";
import { add, h, tableWrap, mount, field, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import "./contact.js";
import "./contact_status.js";

register({
  "pt-BR": {
    "macc.title": "Quem acessou os meus dados",
    "macc.lead": "Cada acesso a dados pessoais fica registrado num log de auditoria à prova de adulteração. Você pode ver o resumo do seu de duas formas: no arquivo dos seus dados (pedido de acesso) ou num pedido de informação sobre compartilhamento.",
    "macc.fromExport": "Pelo arquivo dos meus dados",
    "macc.exportHow": "Peça o acesso aos seus dados em {link}; quando ficar pronto, baixe o arquivo lá e volte aqui, ou abra abaixo um arquivo que você já baixou.",
    "macc.requestsLink": "Meus pedidos",
    "macc.file": "Abrir o arquivo dos meus dados (.json)",
    "macc.fileHint": "O arquivo é lido só no seu navegador; nada é enviado.",
    "macc.badFile": "Este arquivo não é uma exportação de dados da UpGestão.",
    "macc.bundleOf": "Arquivo gerado em {date}.",
    "macc.accesses": "Quem acessou",
    "macc.noAccesses": "Nenhum acesso registrado.",
    "macc.col.who": "Quem",
    "macc.col.service": "Serviço",
    "macc.col.action": "O quê",
    "macc.col.fields": "Dados",
    "macc.col.purpose": "Por quê",
    "macc.col.count": "Vezes",
    "macc.col.when": "Primeiro / último",
    "macc.system": "O sistema",
    "macc.you": "Você",
    "macc.role": "{role} ({id})",
    "macc.denied": "Tentativas recusadas: {count}.",
    "macc.total": "Registros sobre você no log: {count}.",
    "macc.shared": "Com quem foram compartilhados",
    "macc.noShares": "Seus dados não foram compartilhados com terceiros.",
    "macc.col.party": "Terceiro",
    "macc.col.policy": "Política de privacidade",
    "macc.noPolicy": "(não informada)",
    "macc.fromRequest": "Pelo pedido de informação sobre compartilhamento",
    "macc.askSharing": "Pedir a lista de com quem meus dados foram compartilhados",
    "macc.asked": "Pedido registrado: o encarregado de dados vai respondê-lo até {date}; a resposta aparece aqui.",
    "macc.pendingSharing": "Você tem um pedido de informação sobre compartilhamento em aberto (prazo {date}).",
    "macc.answeredOn": "Resposta de {date}",
  },
  en: {
    "macc.title": "Who accessed my data",
    "macc.lead": "Every access to personal data is recorded in a tamper-evident audit log. You can see its summary about you in two ways: in your data file (an access request) or in a request for sharing information.",
    "macc.fromExport": "From my data file",
    "macc.exportHow": "Ask for access to your data in {link}; when it is ready, download the file there and come back, or open below a file you downloaded before.",
    "macc.requestsLink": "My requests",
    "macc.file": "Open my data file (.json)",
    "macc.fileHint": "The file is read in your browser only; nothing is uploaded.",
    "macc.badFile": "This file is not an UpGestão data export.",
    "macc.bundleOf": "File generated on {date}.",
    "macc.accesses": "Who accessed it",
    "macc.noAccesses": "No access recorded.",
    "macc.col.who": "Who",
    "macc.col.service": "Service",
    "macc.col.action": "What",
    "macc.col.fields": "Data",
    "macc.col.purpose": "Why",
    "macc.col.count": "Times",
    "macc.col.when": "First / last",
    "macc.system": "The system",
    "macc.you": "You",
    "macc.role": "{role} ({id})",
    "macc.denied": "Refused attempts: {count}.",
    "macc.total": "Records about you in the log: {count}.",
    "macc.shared": "With whom it was shared",
    "macc.noShares": "Your data was not shared with third parties.",
    "macc.col.party": "Third party",
    "macc.col.policy": "Privacy policy",
    "macc.noPolicy": "(not given)",
    "macc.fromRequest": "From a sharing-information request",
    "macc.askSharing": "Ask with whom my data was shared",
    "macc.asked": "Request filed: the data protection officer will answer it by {date}; the answer shows here.",
    "macc.pendingSharing": "You have an open sharing-information request (due {date}).",
    "macc.answeredOn": "Answer of {date}",
  },
});

export const access = "signed-in";
export const titleKey = "macc.title";

let bundle = null;
let bundleName = null;

/** Called by "My requests" with the export it downloaded (kept in memory for this page view only). */
export function setBundle(value, filename) {
  bundle = value && typeof value === "object" ? value : null;
  bundleName = filename || null;
}

/** An http(s) address as a link; anything else (javascript:, data:...) as plain text. */
export function safeLink(url, text) {
  try {
    const parsed = new URL(String(url));
    if (parsed.protocol === "https:" || parsed.protocol === "http:") {
      return h("a", { href: parsed.href, rel: "noopener noreferrer external", target: "_blank" }, text || parsed.href);
    }
  } catch { /* not a URL */ }
  return String(url);
}

function short(iso, lang) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso || "") : date.toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
}

/** First and last time, one per line. */
const when = (entry, lang) => {
  const first = short(entry.first_at, lang);
  const last = entry.last_at && entry.last_at !== entry.first_at ? short(entry.last_at, lang) : null;
  return h("span", { class: "when" }, first, last ? [h("br"), last] : null);
};

function accessesTable(accesses, myId, lang) {
  if (!accesses.length) return h("p", {}, t("macc.noAccesses"));
  const who = (a) => !a.actor_id || a.actor_id === "system" || a.actor_role === "system" ? t("macc.system") : a.actor_id === myId ? t("macc.you") :
    t("macc.role", { role: a.actor_role || "?", id: a.actor_id.slice(0, 8) });
  return tableWrap(t("macc.accesses"),
    h("table", { id: "access-list" },
      h("thead", {}, h("tr", {},
        ["who", "service", "action", "fields", "purpose", "count", "when"].map((c) => h("th", { scope: "col" }, t(`macc.col.${c}`))))),
      h("tbody", {}, accesses.map((a) => h("tr", {},
        h("td", {}, who(a)),
        h("td", {}, a.service),
        h("td", {}, `${a.action} · ${a.resource_type}`),
        h("td", {}, (a.fields || []).join(", ")),
        h("td", {}, a.purpose),
        h("td", {}, String(a.count)),
        h("td", {}, when(a, lang)))))));
}

/** Third parties: [{recipient, name, privacy_policy_url, service?, fields?, count?, first_at?, last_at?}]. */
function sharesTable(shares, lang) {
  if (!shares.length) return h("p", {}, t("macc.noShares"));
  return tableWrap(t("macc.shared"),
    h("table", { class: "shares" },
      h("thead", {}, h("tr", {},
        ["party", "policy", "service", "fields", "count", "when"].map((c) => h("th", { scope: "col" }, t(`macc.col.${c}`))))),
      h("tbody", {}, shares.map((s) => h("tr", { dataset: { recipient: s.recipient || "" } },
        h("th", { scope: "row" }, s.name || s.recipient || "?"),
        h("td", {}, s.privacy_policy_url ? safeLink(s.privacy_policy_url) : h("span", { class: "hint" }, t("macc.noPolicy"))),
        h("td", {}, s.service || ""),
        h("td", {}, (s.fields || []).join(", ")),
        h("td", {}, s.count === undefined ? "" : String(s.count)),
        h("td", {}, s.first_at ? when(s, lang) : null))))));
}

/** The shares of an audit summary, each with its third party's name and policy (third_parties adds them). */
function sharesOf(audit) {
  const parties = {};
  for (const party of audit.third_parties || []) parties[party.recipient] = party;
  return (audit.shared_with || []).map((s) => ({
    ...s,
    name: s.name || (parties[s.recipient] || {}).name,
    privacy_policy_url: s.privacy_policy_url || (parties[s.recipient] || {}).privacy_policy_url,
  }));
}

function bundleView(data, myId, lang) {
  const audit = data && data.sections && data.sections.audit;
  if (!audit || !Array.isArray(audit.accesses)) return notice(t("macc.badFile"), "error");
  return h("div", { id: "bundle-view" },
    data.generated_at ? h("p", {}, t("macc.bundleOf", { date: formatDate(data.generated_at, lang) }), bundleName ? ` (${bundleName})` : null) : null,
    h("p", {}, t("macc.total", { count: audit.total_records ?? "?" }), " ", t("macc.denied", { count: audit.denied_attempts ?? 0 })),
    h("h3", {}, t("macc.accesses")),
    accessesTable(audit.accesses, myId, lang),
    h("h3", {}, t("macc.shared")),
    sharesTable(sharesOf(audit), lang));
}

export default async function render(main, ctx) {
  const myId = ctx.session && ctx.session.user && ctx.session.user.id;
  const page = await api("GET", "/v1/privacy/requests?mine=true&type=sharing_info&limit=20").catch(() => ({ items: [] }));
  const items = page.items || [];
  const answered = items.find((item) => item.state === "completed");
  const open = items.find((item) => ["pending", "in_progress", "identity_unverified"].includes(item.state));
  const detail = answered ? await api("GET", `/v1/privacy/requests/${answered.id}`).catch(() => null) : null;

  const view = h("div", {}, bundle ? bundleView(bundle, myId, ctx.lang) : null);
  const fileInput = h("input", { type: "file", name: "bundle", accept: "application/json,.json" });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    try {
      bundleName = file.name;
      mount(view, bundleView(JSON.parse(await file.text()), myId, ctx.lang));
    } catch {
      mount(view, notice(t("macc.badFile"), "error"));
    }
  });

  const status = h("div", {});
  const ask = h("button", { type: "button", onclick: async () => {
    ask.disabled = true;
    try {
      const filed = await api("POST", "/v1/privacy/requests", { body: { type: "sharing_info" } });
      mount(status, notice(t("macc.asked", { date: formatDate(filed.due_at, ctx.lang) }), "ok"));
    } catch (error) {
      ask.disabled = false;
      mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
    }
  } }, t("macc.askSharing"));

  const recipients = detail && detail.answer && detail.answer.kind === "sharing_info" ? detail.answer.recipients || [] : null;
  const requestsLink = h("a", { href: "/app/me/requests?type=access" }, t("macc.requestsLink"));
  const how = t("macc.exportHow", { link: "\u0000" }).split("\u0000");
  add(main, 
    h("h1", {}, t("macc.title")),
    h("p", {}, t("macc.lead")),
    h("h2", {}, t("macc.fromExport")),
    h("p", {}, how[0], requestsLink, how[1] || ""),
    h("form", { novalidate: true, onsubmit: (e) => e.preventDefault() },
      field({ id: "bundle-file", label: t("macc.file"), hint: t("macc.fileHint"), control: fileInput })),
    view,
    h("h2", {}, t("macc.fromRequest")),
    recipients ? [h("p", {}, t("macc.answeredOn", { date: formatDate(answered.closed_at, ctx.lang) })), sharesTable(recipients, ctx.lang)] : null,
    open ? h("p", {}, t("macc.pendingSharing", { date: formatDate(open.due_at, ctx.lang) })) : null,
    status,
    open ? null : h("div", { class: "actions" }, ask));
}
