// Security incidents in the DPO console (/app/dpo/incidents, R6.1, LGPD art. 48): the list (newest first, with
// the 3-business-day deadline's state) and the form recording one with every item of art. 48 §1, in the plain
// words the people affected will read. GET and POST /v1/privacy/incidents (privacy.incidents).
import { api } from "../api.js";
import { h, field, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { consoleNav, shortId, showProblem, tableWrap } from "./dpo_requests.js";

export const CATEGORIES = ["identification", "contact", "demographic", "professional", "image", "credential",
  "communication", "financial", "location", "sensitive", "other"];
const AFFECTED_KINDS = ["ids", "every_user", "every_customer", "channel_customers"];
const CHANNELS = ["whatsapp", "email", "web", "phone", "other"];
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

register({
  "pt-BR": {
    "dpoInc.title": "Incidentes de segurança",
    "dpoInc.list": "Incidentes registrados",
    "dpoInc.empty": "Nenhum incidente registrado.",
    "dpoInc.more": "Mostrar mais",
    "dpoInc.col.incident": "Incidente",
    "dpoInc.col.state": "Situação",
    "dpoInc.col.detected": "Detectado em",
    "dpoInc.col.deadline": "Prazo para comunicar",
    "dpoInc.col.affected": "Pessoas afetadas",
    "dpoInc.link": "Abrir incidente {id}",
    "dpoInc.state.draft": "Rascunho",
    "dpoInc.state.confirmed": "Confirmado",
    "deadline.on_time": "No prazo",
    "deadline.at_risk": "Menos de 24 h",
    "deadline.late": "Atrasado",
    "deadline.met": "Cumprido",
    "deadline.missed": "Descumprido",
    "dpoInc.new": "Registrar um incidente",
    "dpoInc.newLead": "Todos os itens do art. 48 §1º da LGPD. Escreva em linguagem simples: as pessoas afetadas recebem estes textos por e-mail.",
    "dpoInc.nature": "Natureza dos dados afetados",
    "dpoInc.natureHint": "Art. 48 §1º I. Um item por linha.",
    "dpoInc.categories": "Categorias dos dados",
    "dpoInc.affectedKind": "Quem é afetado (a quem avisar)",
    "dpoInc.kind.ids": "As pessoas listadas (identificadores)",
    "dpoInc.kind.every_user": "Todos os usuários ativos",
    "dpoInc.kind.every_customer": "Todos os clientes",
    "dpoInc.kind.channel_customers": "Os clientes de um canal",
    "dpoInc.ids": "Identificadores das pessoas afetadas",
    "dpoInc.idsHint": "Um identificador (UUID) de usuário ou cliente por linha.",
    "dpoInc.idsBad": "Linha {line}: não é um identificador (UUID).",
    "dpoInc.channel": "Canal",
    "dpoInc.peopleAffected": "Quem foi afetado, em palavras simples",
    "dpoInc.peopleAffectedHint": "Art. 48 §1º II: as informações sobre os titulares envolvidos.",
    "dpoInc.technical": "Medidas técnicas e de segurança que protegiam os dados",
    "dpoInc.technicalHint": "Art. 48 §1º III.",
    "dpoInc.risks": "Riscos para as pessoas afetadas",
    "dpoInc.risksHint": "Art. 48 §1º IV.",
    "dpoInc.delay": "Motivos da demora (se houver)",
    "dpoInc.delayHint": "Art. 48 §1º V: só se a comunicação vier depois de 3 dias úteis da detecção.",
    "dpoInc.measures": "Medidas tomadas para reverter ou reduzir os danos",
    "dpoInc.measuresHint": "Art. 48 §1º VI: tomadas ou planejadas.",
    "dpoInc.whatToDo": "O que as pessoas afetadas devem fazer",
    "dpoInc.whatToDoHint": "Um item por linha.",
    "dpoInc.dpoContact": "Contato do encarregado informado no aviso",
    "dpoInc.occurred": "Quando aconteceu",
    "dpoInc.detected": "Quando foi detectado",
    "dpoInc.detectedHint": "O prazo de 3 dias úteis (Resolução ANPD 15/2024) conta a partir daqui.",
    "dpoInc.record": "Registrar incidente",
    "dpoInc.required": "Preencha este campo.",
    "dpoInc.chooseCategory": "Escolha ao menos uma categoria.",
    "dpoInc.recorded": "Incidente registrado como rascunho.",
    "category.identification": "Identificação",
    "category.contact": "Contato",
    "category.demographic": "Demográficos",
    "category.professional": "Profissionais",
    "category.image": "Imagem",
    "category.credential": "Credenciais de acesso",
    "category.communication": "Comunicações",
    "category.financial": "Financeiros",
    "category.location": "Localização",
    "category.sensitive": "Sensíveis (art. 11)",
    "category.other": "Outros",
  },
  en: {
    "dpoInc.title": "Security incidents",
    "dpoInc.list": "Recorded incidents",
    "dpoInc.empty": "No incidents recorded.",
    "dpoInc.more": "Show more",
    "dpoInc.col.incident": "Incident",
    "dpoInc.col.state": "State",
    "dpoInc.col.detected": "Detected",
    "dpoInc.col.deadline": "Deadline to notify",
    "dpoInc.col.affected": "People affected",
    "dpoInc.link": "Open incident {id}",
    "dpoInc.state.draft": "Draft",
    "dpoInc.state.confirmed": "Confirmed",
    "deadline.on_time": "On time",
    "deadline.at_risk": "Under 24 h left",
    "deadline.late": "Late",
    "deadline.met": "Met",
    "deadline.missed": "Missed",
    "dpoInc.new": "Record an incident",
    "dpoInc.newLead": "Every item of LGPD art. 48 §1. Write in plain words: the people affected receive these texts by e-mail.",
    "dpoInc.nature": "Nature of the data affected",
    "dpoInc.natureHint": "Art. 48 §1 I. One item a line.",
    "dpoInc.categories": "Categories of data",
    "dpoInc.affectedKind": "Who is affected (who is notified)",
    "dpoInc.kind.ids": "The people listed (ids)",
    "dpoInc.kind.every_user": "Every active user",
    "dpoInc.kind.every_customer": "Every customer",
    "dpoInc.kind.channel_customers": "The customers of one channel",
    "dpoInc.ids": "Ids of the people affected",
    "dpoInc.idsHint": "One user or customer id (UUID) a line.",
    "dpoInc.idsBad": "Line {line}: not an id (UUID).",
    "dpoInc.channel": "Channel",
    "dpoInc.peopleAffected": "Who was affected, in plain words",
    "dpoInc.peopleAffectedHint": "Art. 48 §1 II: the data subjects involved.",
    "dpoInc.technical": "Technical and security measures that protected the data",
    "dpoInc.technicalHint": "Art. 48 §1 III.",
    "dpoInc.risks": "Risks to the people affected",
    "dpoInc.risksHint": "Art. 48 §1 IV.",
    "dpoInc.delay": "Reasons for any delay",
    "dpoInc.delayHint": "Art. 48 §1 V: only when the notice comes more than 3 business days after detection.",
    "dpoInc.measures": "Measures taken to reverse or lessen the harm",
    "dpoInc.measuresHint": "Art. 48 §1 VI: taken or planned.",
    "dpoInc.whatToDo": "What the people affected should do",
    "dpoInc.whatToDoHint": "One item a line.",
    "dpoInc.dpoContact": "DPO contact given in the notice",
    "dpoInc.occurred": "When it happened",
    "dpoInc.detected": "When it was detected",
    "dpoInc.detectedHint": "The 3 business days (ANPD Resolution 15/2024) run from here.",
    "dpoInc.record": "Record incident",
    "dpoInc.required": "Fill in this field.",
    "dpoInc.chooseCategory": "Choose at least one category.",
    "dpoInc.recorded": "Incident recorded as a draft.",
    "category.identification": "Identification",
    "category.contact": "Contact",
    "category.demographic": "Demographic",
    "category.professional": "Professional",
    "category.image": "Image",
    "category.credential": "Sign-in credentials",
    "category.communication": "Communications",
    "category.financial": "Financial",
    "category.location": "Location",
    "category.sensitive": "Sensitive (art. 11)",
    "category.other": "Other",
  },
});

export const access = "privacy.incidents";
export const titleKey = "dpoInc.title";

export const categoryLabel = (category) => (CATEGORIES.includes(category) ? t(`category.${category}`) : category);

export function incidentStateBadge(state) {
  return h("span", { class: `badge${state === "confirmed" ? " badge-ok" : ""}` }, t(`dpoInc.state.${state}`));
}

export function deadlineBadge(deadline) {
  const status = deadline && deadline.status;
  const bad = status === "late" || status === "missed" || status === "at_risk";
  return h("span", { class: `badge${bad ? " badge-bad" : status === "met" ? " badge-ok" : ""}` }, status ? t(`deadline.${status}`) : "—");
}

function row(item, lang) {
  return h("tr", { dataset: { incidentId: item.id } },
    h("td", {}, h("a", { href: `/app/dpo/incidents/${encodeURIComponent(item.id)}`, "aria-label": t("dpoInc.link", { id: shortId(item.id) }) },
      shortId(item.id))),
    h("td", {}, incidentStateBadge(item.state)),
    h("td", {}, formatDate(item.detected_at, lang)),
    h("td", {}, formatDate(item.deadline && item.deadline.due_at, lang), " ", deadlineBadge(item.deadline)),
    h("td", {}, item.affected_count ?? t(`dpoInc.kind.${item.affected.kind}`)));
}

export default async function render(main, ctx) {
  const page = await api("GET", "/v1/privacy/incidents?limit=50");
  const tbody = h("tbody", {}, page.items.map((item) => row(item, ctx.lang)));
  const more = h("button", { type: "button", class: "secondary", hidden: !page.next_cursor }, t("dpoInc.more"));
  let cursor = page.next_cursor;
  const listSlot = h("div", {});
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await api("GET", `/v1/privacy/incidents?limit=50&cursor=${encodeURIComponent(cursor)}`);
      for (const item of next.items) tbody.append(row(item, ctx.lang));
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      listSlot.replaceChildren(notice(error.message || t("error.generic"), "error"));
    } finally {
      more.disabled = false;
    }
  });
  main.append(
    h("h1", {}, t("dpoInc.title")),
    consoleNav("/app/dpo/incidents"),
    h("section", { "aria-labelledby": "incidents-heading" },
      h("h2", { id: "incidents-heading" }, t("dpoInc.list")),
      page.items.length
        ? tableWrap(t("dpoInc.list"), h("table", {},
          h("thead", {}, h("tr", {}, ["dpoInc.col.incident", "dpoInc.col.state", "dpoInc.col.detected", "dpoInc.col.deadline",
            "dpoInc.col.affected"].map((key) => h("th", { scope: "col" }, t(key))))),
          tbody))
        : h("p", {}, t("dpoInc.empty")),
      listSlot, more),
    recordForm(ctx));
}

function localNow(offsetMinutes = 0) {
  const date = new Date(Date.now() + offsetMinutes * 60000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const lines = (text) => text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);

function recordForm(ctx) {
  const slot = h("div", {});
  const area = (name, rows = 3) => h("textarea", { name, rows, dataset: { field: name } });
  const kind = h("select", { name: "affected.kind", dataset: { field: "affected.kind" } },
    AFFECTED_KINDS.map((value) => h("option", { value }, t(`dpoInc.kind.${value}`))));
  const ids = area("affected.ids", 4);
  const channel = h("select", { name: "affected.channel", dataset: { field: "affected.channel" } },
    CHANNELS.map((value) => h("option", { value }, value)));
  const idsField = field({ id: "incident-ids", label: t("dpoInc.ids"), hint: t("dpoInc.idsHint"), control: ids });
  const channelField = field({ id: "incident-channel", label: t("dpoInc.channel"), control: channel });
  const showKind = () => {
    idsField.hidden = kind.value !== "ids";
    channelField.hidden = kind.value !== "channel_customers";
  };
  kind.addEventListener("change", showKind);

  const categoryBoxes = CATEGORIES.map((category) => h("div", { class: "check" },
    h("input", { type: "checkbox", id: `incident-category-${category}`, name: "categories", value: category }),
    h("label", { for: `incident-category-${category}` }, categoryLabel(category))));
  const categories = h("fieldset", { "aria-describedby": "incident-categories-error", dataset: { field: "categories" }, id: "incident-categories" },
    h("legend", {}, t("dpoInc.categories")), h("div", { class: "check-grid" }, categoryBoxes),
    h("p", { class: "field-error", id: "incident-categories-error", role: "alert", hidden: true }));

  const occurred = h("input", { type: "datetime-local", name: "occurred_at", value: localNow(-60), dataset: { field: "occurred_at" } });
  const detected = h("input", { type: "datetime-local", name: "detected_at", value: localNow(), dataset: { field: "detected_at" } });
  const texts = {
    nature_of_data: area("nature_of_data"),
    people_affected: area("people_affected"),
    technical_measures: area("technical_measures"),
    risks: area("risks"),
    delay_reasons: area("delay_reasons", 2),
    measures_taken: area("measures_taken"),
    what_to_do: area("what_to_do"),
    dpo_contact: h("input", { type: "text", name: "dpo_contact", dataset: { field: "dpo_contact" } }),
  };
  const button = h("button", { type: "submit" }, t("dpoInc.record"));
  const form = h("form", { "aria-labelledby": "new-incident-heading", novalidate: true },
    field({ id: "incident-nature", label: t("dpoInc.nature"), hint: t("dpoInc.natureHint"), control: texts.nature_of_data }),
    categories,
    field({ id: "incident-kind", label: t("dpoInc.affectedKind"), control: kind }),
    idsField, channelField,
    field({ id: "incident-people", label: t("dpoInc.peopleAffected"), hint: t("dpoInc.peopleAffectedHint"), control: texts.people_affected }),
    field({ id: "incident-technical", label: t("dpoInc.technical"), hint: t("dpoInc.technicalHint"), control: texts.technical_measures }),
    field({ id: "incident-risks", label: t("dpoInc.risks"), hint: t("dpoInc.risksHint"), control: texts.risks }),
    field({ id: "incident-delay", label: t("dpoInc.delay"), hint: t("dpoInc.delayHint"), control: texts.delay_reasons }),
    field({ id: "incident-measures", label: t("dpoInc.measures"), hint: t("dpoInc.measuresHint"), control: texts.measures_taken }),
    field({ id: "incident-what-to-do", label: t("dpoInc.whatToDo"), hint: t("dpoInc.whatToDoHint"), control: texts.what_to_do }),
    field({ id: "incident-dpo-contact", label: t("dpoInc.dpoContact"), control: texts.dpo_contact }),
    field({ id: "incident-occurred", label: t("dpoInc.occurred"), control: occurred }),
    field({ id: "incident-detected", label: t("dpoInc.detected"), hint: t("dpoInc.detectedHint"), control: detected }),
    slot,
    h("div", { class: "actions" }, button));
  showKind();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const errors = [];
    const need = (name, value) => { if (!value || (Array.isArray(value) && !value.length)) errors.push({ field: name, message: t("dpoInc.required") }); return value; };
    const body = {
      nature_of_data: need("nature_of_data", lines(texts.nature_of_data.value)),
      categories: categoryBoxes.map((box) => box.querySelector("input")).filter((box) => box.checked).map((box) => box.value),
      affected: { kind: kind.value },
      people_affected: need("people_affected", texts.people_affected.value.trim()),
      technical_measures: need("technical_measures", texts.technical_measures.value.trim()),
      risks: need("risks", texts.risks.value.trim()),
      delay_reasons: texts.delay_reasons.value.trim() || null,
      measures_taken: need("measures_taken", texts.measures_taken.value.trim()),
      what_to_do: need("what_to_do", lines(texts.what_to_do.value)),
      dpo_contact: need("dpo_contact", texts.dpo_contact.value.trim()),
      occurred_at: need("occurred_at", isoOf(occurred.value)),
      detected_at: need("detected_at", isoOf(detected.value)),
    };
    if (!body.categories.length) errors.push({ field: "categories", message: t("dpoInc.chooseCategory") });
    if (kind.value === "ids") {
      const given = lines(ids.value);
      const bad = given.findIndex((id) => !UUID.test(id));
      if (!given.length) errors.push({ field: "affected.ids", message: t("dpoInc.required") });
      else if (bad >= 0) errors.push({ field: "affected.ids", message: t("dpoInc.idsBad", { line: bad + 1 }) });
      body.affected.ids = given;
    } else if (kind.value === "channel_customers") {
      body.affected.channel = channel.value;
    }
    if (errors.length) {
      showProblem(form, { problem: { errors } }, slot);
      return;
    }
    button.disabled = true;
    try {
      const incident = await api("POST", "/v1/privacy/incidents", { body });
      await ctx.navigate(`/app/dpo/incidents/${encodeURIComponent(incident.id)}?recorded=1`);
    } catch (error) {
      button.disabled = false;
      showProblem(form, error, slot);
    }
  });
  return h("section", { "aria-labelledby": "new-incident-heading" },
    h("h2", { id: "new-incident-heading" }, t("dpoInc.new")),
    h("p", {}, t("dpoInc.newLead")),
    form);
}

/** A datetime-local value as ISO 8601 with its offset (UTC), or "" when empty or invalid. */
function isoOf(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}
