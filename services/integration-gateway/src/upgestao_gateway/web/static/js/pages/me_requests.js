// My privacy requests (LGPD art. 18): the list with status and due date (GET /v1/privacy/requests?mine=true),
// file a new one (POST /v1/privacy/requests), cancel an open one, and download my data.
// The export's single-use link exists only in the e-mail that announced it (privacy keeps only its hash:
// no API route gives it back), so the download takes that link: pasted here it is fetched once
// (GET /v1/privacy/exports/{token}: no session needed, the link is the credential), saved as a file and
// kept in memory for "who accessed my data" (me_access.js) -- never written to storage.
import { api, ApiError } from "../api.js";
import { add, h, tableWrap, mount, field, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { TYPES, typeSelect } from "./contact.js";
import "./contact_status.js";  // the states' names
import { setBundle } from "./me_access.js";

register({
  "pt-BR": {
    "mreq.title": "Meus pedidos de privacidade",
    "mreq.lead": "Acompanhe os seus pedidos e faça novos. O prazo de resposta é de 15 dias.",
    "mreq.list": "Pedidos",
    "mreq.none": "Você ainda não fez nenhum pedido.",
    "mreq.col.type": "Pedido",
    "mreq.col.state": "Situação",
    "mreq.col.received": "Recebido em",
    "mreq.col.due": "Prazo",
    "mreq.col.actions": "Ações",
    "mreq.daysLeft": "{days} dia(s) restante(s)",
    "mreq.overdue": "prazo vencido",
    "mreq.closedAt": "encerrado em {date}",
    "mreq.cancel": "Cancelar pedido",
    "mreq.cancelOf": "Cancelar pedido: {type}",
    "mreq.canceled": "Pedido cancelado.",
    "mreq.exportReady": "Seus dados estão prontos: o link de download foi enviado ao seu e-mail (vale uma vez, até {date}).",
    "mreq.exportReadyShort": "Link enviado por e-mail",
    "mreq.new": "Fazer um pedido",
    "mreq.type": "Tipo de pedido",
    "mreq.submit": "Fazer pedido",
    "mreq.filed": "Pedido registrado: {type}, prazo {date}.",
    "mreq.download": "Baixar meus dados",
    "mreq.downloadLead": "Quando um pedido de acesso ou portabilidade é concluído, enviamos um link de download ao seu e-mail. Ele funciona uma única vez: cole-o aqui para baixar o arquivo e ver, em seguida, quem acessou os seus dados.",
    "mreq.link": "Link de download do e-mail",
    "mreq.linkHint": "Começa com {prefix}",
    "mreq.linkInvalid": "Este não é um link de download desta plataforma.",
    "mreq.fetch": "Baixar meus dados",
    "mreq.fetching": "Baixando…",
    "mreq.gone": "Este link já foi usado ou expirou. Faça um novo pedido de acesso para receber outro.",
    "mreq.unknownLink": "Link desconhecido: confira se copiou o link inteiro.",
    "mreq.downloaded": "Arquivo baixado ({size}).",
    "mreq.saveAgain": "Salvar o arquivo de novo",
    "mreq.seeAccess": "Ver quem acessou os meus dados",
    "mreq.details": "Histórico",
    "mreq.detailsOf": "Histórico do pedido: {type}",
    "mreq.event.filed": "Registrado",
    "mreq.event.verified": "E-mail confirmado",
    "mreq.event.started": "Em andamento",
    "mreq.event.completed": "Concluído",
    "mreq.event.denied": "Negado",
    "mreq.event.canceled": "Cancelado",
    "mreq.event.failed": "Falhou",
    "mreq.event.extended": "Prazo prorrogado",
    "mreq.by.you": "por você",
    "mreq.by.dpo": "pelo encarregado",
    "mreq.by.system": "pelo sistema",
    "mreq.reason": "Motivo: {reason}",
    "mreq.newDue": "Novo prazo: {date}",
    "mreq.answer.holds": "Sim: tratamos dados seus (serviços: {services}).",
    "mreq.answer.holdsNone": "Não encontramos dados seus.",
    "mreq.answer.sharing": "Resposta: veja em “Quem acessou os meus dados”.",
  },
  en: {
    "mreq.title": "My privacy requests",
    "mreq.lead": "Follow your requests and file new ones. Answers are due within 15 days.",
    "mreq.list": "Requests",
    "mreq.none": "You have not filed any request yet.",
    "mreq.col.type": "Request",
    "mreq.col.state": "Status",
    "mreq.col.received": "Received on",
    "mreq.col.due": "Due by",
    "mreq.col.actions": "Actions",
    "mreq.daysLeft": "{days} day(s) left",
    "mreq.overdue": "overdue",
    "mreq.closedAt": "closed on {date}",
    "mreq.cancel": "Cancel request",
    "mreq.cancelOf": "Cancel request: {type}",
    "mreq.canceled": "Request canceled.",
    "mreq.exportReady": "Your data is ready: the download link was sent to your e-mail (it works once, until {date}).",
    "mreq.exportReadyShort": "Link sent by e-mail",
    "mreq.new": "File a request",
    "mreq.type": "Request type",
    "mreq.submit": "File request",
    "mreq.filed": "Request filed: {type}, due {date}.",
    "mreq.download": "Download my data",
    "mreq.downloadLead": "When an access or portability request is completed, we e-mail you a download link. It works only once: paste it here to download the file and then see who accessed your data.",
    "mreq.link": "Download link from the e-mail",
    "mreq.linkHint": "It starts with {prefix}",
    "mreq.linkInvalid": "This is not a download link of this platform.",
    "mreq.fetch": "Download my data",
    "mreq.fetching": "Downloading…",
    "mreq.gone": "This link was used already or has expired. File a new access request to get another.",
    "mreq.unknownLink": "Unknown link: check that you copied all of it.",
    "mreq.downloaded": "File downloaded ({size}).",
    "mreq.saveAgain": "Save the file again",
    "mreq.seeAccess": "See who accessed my data",
    "mreq.details": "History",
    "mreq.detailsOf": "Request history: {type}",
    "mreq.event.filed": "Filed",
    "mreq.event.verified": "E-mail confirmed",
    "mreq.event.started": "In progress",
    "mreq.event.completed": "Completed",
    "mreq.event.denied": "Denied",
    "mreq.event.canceled": "Canceled",
    "mreq.event.failed": "Failed",
    "mreq.event.extended": "Due date extended",
    "mreq.by.you": "by you",
    "mreq.by.dpo": "by the DPO",
    "mreq.by.system": "by the system",
    "mreq.reason": "Reason: {reason}",
    "mreq.newDue": "New due date: {date}",
    "mreq.answer.holds": "Yes: we process data about you (services: {services}).",
    "mreq.answer.holdsNone": "We found no data about you.",
    "mreq.answer.sharing": "Answer: see “Who accessed my data”.",
  },
});

export const access = "signed-in";
export const titleKey = "mreq.title";

const OPEN = new Set(["identity_unverified", "pending", "in_progress"]);
const EXPORTS = new Set(["access", "portability"]);
const EXPORT_PATH = "/v1/privacy/exports/";
const TOKEN = /^[A-Za-z0-9_-]{20,128}$/;

/** The token of a download link of this platform (the whole URL, or a path), or null. Only this origin:
 *  a link pointing elsewhere is refused (the browser would send nothing there anyway). */
export function exportToken(text) {
  let url;
  try { url = new URL(String(text).trim(), location.origin); } catch { return null; }
  if (url.origin !== location.origin || !url.pathname.startsWith(EXPORT_PATH)) return null;
  const token = url.pathname.slice(EXPORT_PATH.length);
  return TOKEN.test(token) ? token : null;
}

function dueCell(item, lang) {
  if (!OPEN.has(item.state)) return h("td", {}, t("mreq.closedAt", { date: formatDate(item.closed_at, lang) }));
  return h("td", {},
    h("time", { datetime: item.due_at }, formatDate(item.due_at, lang)), " ",
    h("span", { class: item.overdue ? "badge badge-bad" : "badge" },
      item.overdue ? t("mreq.overdue") : t("mreq.daysLeft", { days: item.days_left })));
}

/** A request's history and answer, fetched when first opened (GET /v1/privacy/requests/{id}). */
function detailsCell(item, myId, lang) {
  const body = h("div", { class: "request-history" });
  let loaded = false;
  const details = h("details", {
    ontoggle: async () => {
      if (!details.open || loaded) return;
      loaded = true;
      mount(body, h("p", { class: "loading" }, t("loading")));
      try {
        const detail = await api("GET", `/v1/privacy/requests/${item.id}`);
        mount(body, historyList(detail, myId, lang), answerOf(detail, lang));
      } catch (error) {
        loaded = false;
        mount(body, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
      }
    },
  }, h("summary", { "aria-label": t("mreq.detailsOf", { type: t(`type.${item.type}`) }) }, t("mreq.details")), body);
  return details;
}

function historyList(detail, myId, lang) {
  const by = (entry) => (entry.by_id && entry.by_id === myId ? t("mreq.by.you") :
    entry.by_role === "dpo" ? t("mreq.by.dpo") : !entry.by_id || entry.by_role === "system" ? t("mreq.by.system") : null);
  return h("ol", {}, (detail.history || []).map((entry) => h("li", {},
    h("time", { datetime: entry.at }, formatDate(entry.at, lang)), " — ",
    t(`mreq.event.${entry.event}`), by(entry) ? ` ${by(entry)}` : null,
    entry.reason ? [h("br"), t("mreq.reason", { reason: entry.reason })] : null,
    entry.event === "extended" && entry.note ? [h("br"), t("mreq.newDue", { date: formatDate(entry.note, lang) })] : null)));
}

function answerOf(detail, lang) {
  const answer = detail.answer;
  if (!answer || !answer.kind) return null;
  if (answer.kind === "confirmation") {
    return h("p", {}, answer.holds_data
      ? t("mreq.answer.holds", { services: (answer.services || []).join(", ") || "—" }) : t("mreq.answer.holdsNone"));
  }
  if (answer.kind === "consent_info") {
    const text = answer.text || {};
    return h("p", {}, text[lang] || text["pt-BR"] || "");
  }
  if (answer.kind === "sharing_info") return h("p", {}, h("a", { href: "/app/me/access" }, t("mreq.answer.sharing")));
  return null;
}

function formatSize(bytes) {
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
}

function downloadForm() {
  const status = h("div", { id: "download-status" });
  const form = h("form", { novalidate: true, "aria-labelledby": "mreq-download" },
    field({ id: "export-link", label: t("mreq.link"), hint: t("mreq.linkHint", { prefix: `${location.origin}${EXPORT_PATH}` }),
      control: h("input", { type: "url", name: "link", "data-field": "link", autocomplete: "off", spellcheck: "false" }) }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("mreq.fetch"))),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    mount(status);
    const token = exportToken(form.elements.link.value);
    if (!token) {
      mount(status, notice(t("mreq.linkInvalid"), "error"));
      form.elements.link.setAttribute("aria-invalid", "true");
      form.elements.link.focus();
      return;
    }
    form.elements.link.removeAttribute("aria-invalid");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = t("mreq.fetching");
    try {
      const response = await api("GET", `${EXPORT_PATH}${token}`, { raw: true });
      if (!response.ok) {
        const problem = (response.headers.get("Content-Type") || "").includes("json") ? await response.json().catch(() => null) : null;
        throw new ApiError(response.status, problem);
      }
      const disposition = response.headers.get("Content-Disposition") || "";
      const named = disposition.match(/filename="([A-Za-z0-9_.-]+)"/);
      const filename = named ? named[1] : "dados.json";
      const text = await response.text();
      let bundle = null;
      try { bundle = JSON.parse(text); } catch { bundle = null; }
      setBundle(bundle, filename);
      const blob = new Blob([text], { type: "application/json" });
      const href = URL.createObjectURL(blob);
      const save = h("a", { href, download: filename, class: "button secondary" }, t("mreq.saveAgain"));
      form.elements.link.value = "";  // spent: nothing to keep
      mount(status,
        notice(t("mreq.downloaded", { size: formatSize(blob.size) }), "ok"),
        h("div", { class: "actions" }, save, bundle ? h("a", { href: "/app/me/access", class: "button" }, t("mreq.seeAccess")) : null));
      // save it at once, as a plain link to the file would have
      const auto = h("a", { href, download: filename, hidden: true });
      document.body.append(auto);
      auto.click();
      auto.remove();
    } catch (error) {
      let text;
      if (!(error instanceof ApiError)) text = t("error.network");
      else if (error.status === 410) text = t("mreq.gone");
      else if (error.status === 404) text = t("mreq.unknownLink");
      else text = error.message;
      mount(status, notice(text, "error"));
    } finally {
      button.disabled = false;
      button.textContent = t("mreq.fetch");
    }
  });
  return form;
}

export default async function render(main, ctx) {
  const page = await api("GET", "/v1/privacy/requests?mine=true&limit=100");
  const items = page.items || [];
  // a completed access/portability request: the link's expiry from its detail (answer.bundle.expires_at)
  const ready = items.filter((item) => EXPORTS.has(item.type) && item.state === "completed").slice(0, 3);
  const readyDetails = await Promise.all(ready.map((item) =>
    api("GET", `/v1/privacy/requests/${item.id}`).catch(() => null)));
  const status = h("div", { id: "requests-status" });
  const reload = async (text, kind = "ok") => {
    const fresh = document.createElement("div");
    await render(fresh, ctx);
    const root = document.getElementById("main");
    mount(root, ...fresh.childNodes);
    const slot = document.getElementById("requests-status");
    if (slot) mount(slot, notice(text, kind));
  };

  const newForm = h("form", { novalidate: true, "aria-labelledby": "mreq-new" },
    field({ id: "request-type", label: t("mreq.type"), control: typeSelect({ name: "type", "data-field": "type" }) }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("mreq.submit"))));
  const preset = ctx.query.get("type");
  if (preset && TYPES.includes(preset)) newForm.elements.type.value = preset;
  newForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = newForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const filed = await api("POST", "/v1/privacy/requests", { body: { type: newForm.elements.type.value } });
      await reload(t("mreq.filed", { type: t(`type.${filed.type}`), date: formatDate(filed.due_at, ctx.lang) }));
    } catch (error) {
      button.disabled = false;
      mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
    }
  });

  const cancel = (item) => async (event) => {
    event.target.disabled = true;
    try {
      await api("POST", `/v1/privacy/requests/${item.id}/cancel`, { body: {} });
      await reload(t("mreq.canceled"));
    } catch (error) {
      event.target.disabled = false;
      mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
    }
  };

  add(main, 
    h("h1", {}, t("mreq.title")),
    h("p", {}, t("mreq.lead")),
    status,
    readyDetails.filter(Boolean).map((detail) => {
      const expires = detail.answer && detail.answer.bundle && detail.answer.bundle.expires_at;
      return expires && new Date(expires) > new Date()
        ? notice(t("mreq.exportReady", { date: formatDate(expires, ctx.lang) }), "ok") : null;
    }).filter(Boolean).slice(0, 1),
    h("h2", {}, t("mreq.list")),
    items.length ? tableWrap(t("mreq.list"),
      h("table", { id: "my-requests" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, t("mreq.col.type")),
          h("th", { scope: "col" }, t("mreq.col.state")),
          h("th", { scope: "col" }, t("mreq.col.received")),
          h("th", { scope: "col" }, t("mreq.col.due")),
          h("th", { scope: "col" }, t("mreq.col.actions")))),
        h("tbody", {}, items.map((item) => h("tr", { dataset: { request: item.id, type: item.type, state: item.state } },
          h("th", { scope: "row" }, t(`type.${item.type}`)),
          h("td", {}, t(`state.${item.state}`),
            EXPORTS.has(item.type) && item.state === "completed" ? [" ", h("span", { class: "badge badge-ok" }, t("mreq.exportReadyShort"))] : null),
          h("td", {}, h("time", { datetime: item.received_at }, formatDate(item.received_at, ctx.lang))),
          dueCell(item, ctx.lang),
          h("td", {},
            detailsCell(item, ctx.session && ctx.session.user && ctx.session.user.id, ctx.lang),
            OPEN.has(item.state)
              ? h("button", { type: "button", class: "secondary", onclick: cancel(item),
                "aria-label": t("mreq.cancelOf", { type: t(`type.${item.type}`) }) }, t("mreq.cancel"))
              : null)))))) : h("p", {}, t("mreq.none")),
    h("h2", { id: "mreq-new" }, t("mreq.new")),
    newForm,
    h("h2", { id: "mreq-download" }, t("mreq.download")),
    h("p", {}, t("mreq.downloadLead")),
    downloadForm());
}
