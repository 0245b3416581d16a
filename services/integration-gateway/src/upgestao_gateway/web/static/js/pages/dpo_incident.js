// One security incident in the DPO console (/app/dpo/incidents/:incidentId): its art. 48 §1 texts, the
// 3-business-day clock (deadline and time left, as privacy computes them), "confirm" (which resolves the people
// affected and starts the notice's e-mail campaign), and the campaign's progress per recipient
// (GET /v1/notifications/campaigns/{id} for the counts, the incident's own progress for each recipient),
// refreshed every few seconds while the page is open and the campaign is not done.
import { api, can } from "../api.js";
import { h, mount, field, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { consoleNav, shortId, showProblem, tableWrap } from "./dpo_requests.js";
import { categoryLabel, incidentStateBadge, deadlineBadge } from "./dpo_incidents.js";

const REFRESH_MS = 3000;
const CLOCK_MS = 30000;
const STATUSES = ["queued", "sending", "sent", "soft_failed", "hard_failed", "suppressed"];

register({
  "pt-BR": {
    "dpoIncOne.title": "Incidente",
    "dpoIncOne.heading": "Incidente {id}",
    "dpoIncOne.back": "Voltar aos incidentes",
    "dpoIncOne.state": "Situação",
    "dpoIncOne.occurred": "Aconteceu em",
    "dpoIncOne.detected": "Detectado em",
    "dpoIncOne.recordedAt": "Registrado em",
    "dpoIncOne.confirmedAt": "Confirmado em",
    "dpoIncOne.keepUntil": "Guardado até",
    "dpoIncOne.affected": "Pessoas afetadas",
    "dpoIncOne.affectedIds": "{count} identificador(es) listado(s)",
    "dpoIncOne.clock": "Prazo para comunicar (3 dias úteis)",
    "dpoIncOne.due": "Prazo",
    "dpoIncOne.brasilia": "horário de Brasília",
    "dpoIncOne.deadlineState": "Situação do prazo",
    "dpoIncOne.left": "Tempo restante",
    "dpoIncOne.leftText": "{days} dia(s) útil(eis) — {hours} h {minutes} min",
    "dpoIncOne.overdueText": "Prazo vencido há {hours} h {minutes} min",
    "dpoIncOne.notified": "Comunicado em {at}.",
    "dpoIncOne.texts": "O que as pessoas afetadas vão ler",
    "dpoIncOne.nature": "Natureza dos dados (I)",
    "dpoIncOne.categories": "Categorias",
    "dpoIncOne.people": "Titulares envolvidos (II)",
    "dpoIncOne.technical": "Medidas técnicas e de segurança (III)",
    "dpoIncOne.risks": "Riscos (IV)",
    "dpoIncOne.delay": "Motivos da demora (V)",
    "dpoIncOne.measures": "Medidas tomadas (VI)",
    "dpoIncOne.whatToDo": "O que fazer",
    "dpoIncOne.dpoContact": "Contato do encarregado",
    "dpoIncOne.none": "—",
    "dpoIncOne.confirmTitle": "Confirmar e comunicar",
    "dpoIncOne.confirmLead": "Ao confirmar, cada pessoa afetada recebe um e-mail individual com estes textos. Uma comunicação nunca é enviada duas vezes.",
    "dpoIncOne.confirmDelay": "Motivos da demora",
    "dpoIncOne.confirmDelayHint": "Obrigatório depois do prazo, se não foi informado no registro.",
    "dpoIncOne.confirm": "Confirmar e avisar as pessoas afetadas",
    "dpoIncOne.confirmed": "Incidente confirmado: a comunicação começou.",
    "dpoIncOne.recorded": "Incidente registrado como rascunho. Revise e confirme para avisar as pessoas afetadas.",
    "dpoIncOne.progress": "Andamento da comunicação",
    "dpoIncOne.noCampaign": "A comunicação começa quando o incidente é confirmado.",
    "dpoIncOne.nobody": "Ninguém a avisar: nenhuma pessoa corresponde ao critério.",
    "dpoIncOne.delivered": "{percent} % entregue",
    "dpoIncOne.deliveredOf": "{sent} de {total} e-mails enviados",
    "dpoIncOne.bar": "E-mails entregues",
    "dpoIncOne.waiting": "{count} ainda não enfileirado(s).",
    "dpoIncOne.refreshing": "Atualizado a cada {seconds} s enquanto a comunicação está em andamento.",
    "dpoIncOne.done": "Comunicação concluída.",
    "dpoIncOne.recipients": "Por destinatário",
    "dpoIncOne.col.recipient": "Destinatário",
    "dpoIncOne.col.status": "Situação",
    "dpoIncOne.col.attempts": "Tentativas",
    "dpoIncOne.col.code": "Último código SMTP",
    "dpoIncOne.col.sent": "Enviado em",
    "dpoIncOne.moreRecipients": "Mais destinatários",
    "delivery.queued": "Na fila",
    "delivery.sending": "Enviando",
    "delivery.sent": "Entregue",
    "delivery.soft_failed": "Nova tentativa",
    "delivery.hard_failed": "Falhou",
    "delivery.suppressed": "Suprimido",
  },
  en: {
    "dpoIncOne.title": "Incident",
    "dpoIncOne.heading": "Incident {id}",
    "dpoIncOne.back": "Back to the incidents",
    "dpoIncOne.state": "State",
    "dpoIncOne.occurred": "Happened",
    "dpoIncOne.detected": "Detected",
    "dpoIncOne.recordedAt": "Recorded",
    "dpoIncOne.confirmedAt": "Confirmed",
    "dpoIncOne.keepUntil": "Kept until",
    "dpoIncOne.affected": "People affected",
    "dpoIncOne.affectedIds": "{count} id(s) listed",
    "dpoIncOne.clock": "Deadline to notify (3 business days)",
    "dpoIncOne.due": "Deadline",
    "dpoIncOne.brasilia": "Brasília time",
    "dpoIncOne.deadlineState": "Deadline status",
    "dpoIncOne.left": "Time left",
    "dpoIncOne.leftText": "{days} business day(s) — {hours} h {minutes} min",
    "dpoIncOne.overdueText": "Overdue by {hours} h {minutes} min",
    "dpoIncOne.notified": "Notified on {at}.",
    "dpoIncOne.texts": "What the people affected will read",
    "dpoIncOne.nature": "Nature of the data (I)",
    "dpoIncOne.categories": "Categories",
    "dpoIncOne.people": "Data subjects involved (II)",
    "dpoIncOne.technical": "Technical and security measures (III)",
    "dpoIncOne.risks": "Risks (IV)",
    "dpoIncOne.delay": "Reasons for the delay (V)",
    "dpoIncOne.measures": "Measures taken (VI)",
    "dpoIncOne.whatToDo": "What to do",
    "dpoIncOne.dpoContact": "DPO contact",
    "dpoIncOne.none": "—",
    "dpoIncOne.confirmTitle": "Confirm and notify",
    "dpoIncOne.confirmLead": "Once confirmed, every person affected receives an individual e-mail with these texts. A notice is never sent twice.",
    "dpoIncOne.confirmDelay": "Reasons for the delay",
    "dpoIncOne.confirmDelayHint": "Required after the deadline, unless given when the incident was recorded.",
    "dpoIncOne.confirm": "Confirm and notify the people affected",
    "dpoIncOne.confirmed": "Incident confirmed: the notice is on its way.",
    "dpoIncOne.recorded": "Incident recorded as a draft. Review it and confirm to notify the people affected.",
    "dpoIncOne.progress": "Notification progress",
    "dpoIncOne.noCampaign": "The notice starts when the incident is confirmed.",
    "dpoIncOne.nobody": "Nobody to notify: no one matches the criterion.",
    "dpoIncOne.delivered": "{percent} % delivered",
    "dpoIncOne.deliveredOf": "{sent} of {total} e-mails sent",
    "dpoIncOne.bar": "E-mails delivered",
    "dpoIncOne.waiting": "{count} not queued yet.",
    "dpoIncOne.refreshing": "Refreshed every {seconds} s while the notice is under way.",
    "dpoIncOne.done": "Notice complete.",
    "dpoIncOne.recipients": "Per recipient",
    "dpoIncOne.col.recipient": "Recipient",
    "dpoIncOne.col.status": "Status",
    "dpoIncOne.col.attempts": "Attempts",
    "dpoIncOne.col.code": "Last SMTP code",
    "dpoIncOne.col.sent": "Sent",
    "dpoIncOne.moreRecipients": "More recipients",
    "delivery.queued": "Queued",
    "delivery.sending": "Sending",
    "delivery.sent": "Delivered",
    "delivery.soft_failed": "Retrying",
    "delivery.hard_failed": "Failed",
    "delivery.suppressed": "Suppressed",
  },
});

export const access = "privacy.incidents";
export const titleKey = "dpoIncOne.title";

const incidentPath = (id, cursor) =>
  `/v1/privacy/incidents/${encodeURIComponent(id)}${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`;

export default async function render(main, ctx) {
  const id = ctx.params.incidentId;
  const incident = await api("GET", incidentPath(id));
  const status = h("div", {});
  const body = h("div", {});
  if (ctx.query.get("recorded")) status.append(notice(t("dpoIncOne.recorded"), "ok"));
  main.append(
    h("h1", {}, t("dpoIncOne.heading", { id: shortId(incident.id) })),
    consoleNav(null),
    h("p", {}, h("a", { href: "/app/dpo/incidents" }, t("dpoIncOne.back"))),
    status, body);
  const view = { id, body, status, ctx, fetchedAt: performance.now(), incident };
  show(view);
  keepFresh(view);
}

function show(view) {
  const { incident, ctx } = view;
  const lang = ctx.lang;
  view.clock = h("div", {});
  // the notice's progress: its parts are made once per view, so the live region keeps its identity and a change
  // of its text is announced
  view.live = h("p", { class: "progress-text", role: "status" });
  view.progressBody = h("div", {});
  view.recipientsBox = h("div", {});
  view.morePages = false;
  view.progress = h("section", { "aria-labelledby": "progress-heading" },
    h("h2", { id: "progress-heading" }, t("dpoIncOne.progress")), view.live, view.progressBody, view.recipientsBox);
  mount(view.body,
    h("dl", { class: "props" },
      prop(t("dpoIncOne.state"), incidentStateBadge(incident.state)),
      prop(t("dpoIncOne.occurred"), formatDate(incident.occurred_at, lang)),
      prop(t("dpoIncOne.detected"), formatDate(incident.detected_at, lang)),
      prop(t("dpoIncOne.recordedAt"), formatDate(incident.recorded_at, lang)),
      incident.confirmed_at ? prop(t("dpoIncOne.confirmedAt"), formatDate(incident.confirmed_at, lang)) : null,
      prop(t("dpoIncOne.affected"), affectedText(incident)),
      prop(t("dpoIncOne.keepUntil"), formatDate(incident.keep_until, lang))),
    h("section", { "aria-labelledby": "clock-heading" }, h("h2", { id: "clock-heading" }, t("dpoIncOne.clock")), view.clock),
    incident.state === "draft" ? confirmForm(view) : null,
    view.progress,
    textsSection(incident));
  renderClock(view);
  renderProgress(view);
}

function prop(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function affectedText(incident) {
  const affected = incident.affected || {};
  const who = affected.kind === "ids" ? t("dpoIncOne.affectedIds", { count: affected.ids_count })
    : `${t(`dpoInc.kind.${affected.kind}`)}${affected.channel ? ` (${affected.channel})` : ""}`;
  return incident.affected_count === null || incident.affected_count === undefined
    ? who : `${incident.affected_count} — ${who}`;
}

function renderClock(view) {
  const deadline = view.incident.deadline || {};
  const lang = view.ctx.lang;
  let left = null;
  if (deadline.seconds_left !== null && deadline.seconds_left !== undefined) {
    // privacy's count when the incident was read, less the time since
    const seconds = Math.round(deadline.seconds_left - (performance.now() - view.fetchedAt) / 1000);
    const abs = Math.abs(seconds);
    const hours = Math.floor(abs / 3600);
    const minutes = Math.floor((abs % 3600) / 60);
    left = seconds >= 0
      ? t("dpoIncOne.leftText", { days: deadline.business_days_left ?? "?", hours, minutes })
      : t("dpoIncOne.overdueText", { hours, minutes });
  }
  mount(view.clock, h("dl", { class: "props" },
    prop(t("dpoIncOne.due"), h("time", { datetime: deadline.due_at || null }, brasilia(deadline.due_at, lang))),
    prop(t("dpoIncOne.deadlineState"), deadlineBadge(deadline)),
    left ? prop(t("dpoIncOne.left"), left) : null),
    view.incident.confirmed_at && !left ? h("p", {}, t("dpoIncOne.notified", { at: formatDate(view.incident.confirmed_at, lang) })) : null);
}

/** The deadline in Brasília time, as ANPD counts it (the close of the 3rd business day there). */
function brasilia(iso, lang) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return iso || "—";
  try {
    return `${date.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short", timeZone: "America/Sao_Paulo" })} (${t("dpoIncOne.brasilia")})`;
  } catch {
    return formatDate(iso, lang);
  }
}

function textsSection(incident) {
  const list = (items) => ((items || []).length ? h("ul", { class: "plain" }, items.map((item) => h("li", {}, item))) : t("dpoIncOne.none"));
  const text = (value) => (value ? h("span", { class: "policy-text" }, value) : t("dpoIncOne.none"));
  return h("section", { "aria-labelledby": "texts-heading" },
    h("h2", { id: "texts-heading" }, t("dpoIncOne.texts")),
    h("dl", { class: "props" },
      prop(t("dpoIncOne.nature"), list(incident.nature_of_data)),
      prop(t("dpoIncOne.categories"), (incident.categories || []).map(categoryLabel).join(", ")),
      prop(t("dpoIncOne.people"), text(incident.people_affected)),
      prop(t("dpoIncOne.technical"), text(incident.technical_measures)),
      prop(t("dpoIncOne.risks"), text(incident.risks)),
      prop(t("dpoIncOne.delay"), text(incident.delay_reasons)),
      prop(t("dpoIncOne.measures"), text(incident.measures_taken)),
      prop(t("dpoIncOne.whatToDo"), list(incident.what_to_do)),
      prop(t("dpoIncOne.dpoContact"), text(incident.dpo_contact))));
}

function confirmForm(view) {
  const slot = h("div", {});
  const delay = h("textarea", { name: "delay_reasons", rows: 3, maxlength: 4000, dataset: { field: "delay_reasons" } });
  const button = h("button", { type: "submit" }, t("dpoIncOne.confirm"));
  const form = h("form", { novalidate: true, "aria-labelledby": "confirm-heading" },
    h("p", {}, t("dpoIncOne.confirmLead")),
    view.incident.delay_reasons ? null
      : field({ id: "confirm-delay", label: t("dpoIncOne.confirmDelay"), hint: t("dpoIncOne.confirmDelayHint"), control: delay }),
    slot,
    h("div", { class: "actions" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    button.disabled = true;
    try {
      const reasons = delay.value.trim();
      await api("POST", `/v1/privacy/incidents/${encodeURIComponent(view.id)}/confirm`,
        { body: reasons ? { delay_reasons: reasons } : {} });
      await refresh(view);
      show(view);
      const message = notice(t("dpoIncOne.confirmed"), "ok");
      message.tabIndex = -1;
      view.status.replaceChildren(message);
      message.focus();
      keepFresh(view);
    } catch (error) {
      button.disabled = false;
      showProblem(form, error, slot);
    }
  });
  return h("section", { "aria-labelledby": "confirm-heading" }, h("h2", { id: "confirm-heading" }, t("dpoIncOne.confirmTitle")), form);
}

async function refresh(view) {
  const incident = await api("GET", incidentPath(view.id));
  view.incident = incident;
  view.fetchedAt = performance.now();
  let campaign = null;
  if (incident.campaign_id && can("notifications.read")) {
    campaign = await api("GET", `/v1/notifications/campaigns/${encodeURIComponent(incident.campaign_id)}`)
      .catch((error) => { if (error.status === 404 || error.status === 403) return null; throw error; });
  }
  view.campaign = campaign;
}

/** The campaign's counts (the notifier's, else the incident's own), the total and whether it is done. */
function tally(view) {
  const progress = view.incident.progress || {};
  const counts = { ...Object.fromEntries(STATUSES.map((s) => [s, 0])), ...(progress.counts || {}), ...((view.campaign && view.campaign.counts) || {}) };
  const total = Math.max(progress.recipients_total || 0, (view.campaign && view.campaign.total) || 0, progress.deliveries_total || 0);
  const pending = counts.queued + counts.sending + counts.soft_failed + (progress.not_yet_queued || 0);
  const settled = counts.sent + counts.hard_failed + counts.suppressed;
  const done = Boolean(view.incident.campaign_id) && pending === 0 && settled >= total;
  return { counts, total, done, progress };
}

function renderProgress(view) {
  const incident = view.incident;
  if (!incident.campaign_id) {
    setLive(view, null);
    mount(view.progressBody, h("p", {}, incident.state === "confirmed" && incident.affected_count === 0
      ? t("dpoIncOne.nobody") : t("dpoIncOne.noCampaign")));
    return;
  }
  const { counts, total, done, progress } = tally(view);
  if (total === 0 && done) {
    setLive(view, null);
    mount(view.progressBody, h("p", {}, t("dpoIncOne.nobody")));
    return;
  }
  const percent = total ? Math.floor((counts.sent * 100) / total) : 0;
  setLive(view, [h("strong", {}, t("dpoIncOne.delivered", { percent })), " — ", t("dpoIncOne.deliveredOf", { sent: counts.sent, total })],
    `${percent}/${counts.sent}/${total}`);
  mount(view.progressBody,
    h("label", { for: "delivery-progress" }, t("dpoIncOne.bar")),
    h("progress", { id: "delivery-progress", max: Math.max(total, 1), value: counts.sent }, `${percent} %`),
    h("ul", { class: "counts" }, STATUSES.map((s) => h("li", {}, `${t(`delivery.${s}`)}: ${counts[s]}`))),
    progress.not_yet_queued ? h("p", {}, t("dpoIncOne.waiting", { count: progress.not_yet_queued })) : null,
    h("p", { class: "hint" }, done ? t("dpoIncOne.done") : t("dpoIncOne.refreshing", { seconds: REFRESH_MS / 1000 })));
  // the table is redrawn only while nobody is in it and no later page was loaded into it
  if (view.morePages || view.recipientsBox.contains(document.activeElement)) return;
  const recipients = progress.recipients || [];
  const tbody = h("tbody", {}, recipients.map((r) => recipientRow(r, view.ctx.lang)));
  const more = h("button", { type: "button", class: "secondary", hidden: !progress.next_cursor }, t("dpoIncOne.moreRecipients"));
  let cursor = progress.next_cursor;
  more.addEventListener("click", async () => {
    more.disabled = true;
    view.morePages = true;
    try {
      const next = await api("GET", incidentPath(view.id, cursor));
      for (const r of next.progress.recipients || []) tbody.append(recipientRow(r, view.ctx.lang));
      cursor = next.progress.next_cursor;
      more.hidden = !cursor;
    } finally {
      more.disabled = false;
    }
  });
  mount(view.recipientsBox, recipients.length ? [
    h("h3", {}, t("dpoIncOne.recipients")),
    tableWrap(t("dpoIncOne.recipients"), h("table", {},
      h("thead", {}, h("tr", {}, ["dpoIncOne.col.recipient", "dpoIncOne.col.status", "dpoIncOne.col.attempts", "dpoIncOne.col.code",
        "dpoIncOne.col.sent"].map((key) => h("th", { scope: "col" }, t(key))))),
      tbody)),
    more] : null);
}

/** The live region's text, replaced only when it says something new (`key`). */
function setLive(view, content, key = "") {
  if (view.live.dataset.key === key) return;
  view.live.dataset.key = key;
  mount(view.live, content);
}

function recipientRow(r, lang) {
  const bad = r.status === "hard_failed" || r.status === "suppressed";
  return h("tr", {},
    h("td", {}, h("code", {}, r.recipient_id)),
    h("td", {}, h("span", { class: `badge${r.status === "sent" ? " badge-ok" : bad ? " badge-bad" : ""}` }, t(`delivery.${r.status}`))),
    h("td", {}, r.attempts),
    h("td", {}, r.last_code ?? "—"),
    h("td", {}, formatDate(r.sent_at, lang) || "—"));
}

/**
 * While the page shows this incident: the clock ticks every 30 s, and the incident and its campaign are read
 * again every 3 s until the campaign is done. Both stop once the page is left (its nodes are detached).
 */
function keepFresh(view) {
  view.generation = (view.generation || 0) + 1;
  const generation = view.generation;
  const alive = watch(view.body, () => generation === view.generation);
  const clockLoop = () => {
    if (!alive()) return;
    renderClock(view);
    setTimeout(clockLoop, CLOCK_MS);
  };
  setTimeout(clockLoop, CLOCK_MS);
  const progressLoop = async () => {
    if (!alive()) return;
    if (view.incident.campaign_id && tally(view).done && view.campaign !== undefined) return;
    try {
      await refresh(view);
      if (!alive()) return;
      renderClock(view);
      renderProgress(view);
    } catch (error) {
      console.warn("incident refresh failed", error);
    }
    if (!running(view.incident)) return;
    if (!tally(view).done) setTimeout(progressLoop, REFRESH_MS);
  };
  if (running(view.incident)) progressLoop();
}

/** Whether a notice may be under way: a campaign, or a confirmed incident whose campaign is still being made. */
function running(incident) {
  return Boolean(incident.campaign_id) || (incident.state === "confirmed" && incident.affected_count !== 0);
}

/** alive(): whether `node` is (or, before it was first attached, may still be) on the page, and `still()`. */
function watch(node, still) {
  let seen = false;
  let checks = 0;
  return () => {
    if (!still()) return false;
    if (node.isConnected) { seen = true; return true; }
    checks += 1;
    return !seen && checks < 20;
  };
}
