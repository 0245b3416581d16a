// "Meus dados" (R5.1, R4.2): my data as the platform holds it (GET /v1/me), each field with its category from
// the data map (GET /v1/privacy/data-map, every service's map; GET /v1/data-map, identity's, if that fails),
// an edit form (PATCH /v1/me: the fields my role may edit change at once, the others are filed as a
// correction -- the 202 answer says which), a correction request (POST /v1/privacy/corrections) and my
// corrections with their decisions; a notice when a new policy version awaits my acceptance.
import { api, ApiError } from "../api.js";
import { add, h, tableWrap, mount, field, notice, showFieldErrors, formatDate, formatDay } from "../dom.js";
import { t, register } from "../i18n.js";

register({
  "pt-BR": {
    "me.title": "Meus dados",
    "me.lead": "Estes são os dados pessoais que a plataforma guarda sobre você, cada um com a sua categoria no mapa de dados.",
    "me.policyDue": "Há uma nova versão da política de privacidade (versão {version}) esperando o seu aceite.",
    "me.policyLink": "Ler e aceitar a nova política",
    "me.sections": "Mais sobre os seus dados",
    "me.link.requests": "Meus pedidos (acesso, exportação, eliminação…) e o download dos meus dados",
    "me.link.access": "Quem acessou os meus dados e com quem foram compartilhados",
    "me.link.consents": "Meus consentimentos e aceites da política",
    "me.link.policy": "Aceite da política de privacidade",
    "me.data": "Dados que guardamos",
    "me.col.field": "Dado",
    "me.col.value": "Valor",
    "me.col.category": "Categoria",
    "me.col.purpose": "Para quê",
    "me.empty": "(não informado)",
    "me.hasPhoto": "Foto enviada",
    "me.noPhoto": "Sem foto",
    "me.account": "Conta",
    "me.edit": "Editar meus dados",
    "me.editHint": "O que o seu perfil de acesso permite muda na hora; o resto vira um pedido de correção, analisado pelo encarregado de dados.",
    "me.currentPassword": "Senha atual",
    "me.currentPasswordHint": "Necessária só para mudar o e-mail.",
    "me.locale": "Idioma dos e-mails",
    "me.save": "Salvar alterações",
    "me.nothing": "Nada foi alterado.",
    "me.saved": "Alterações salvas.",
    "me.partly": "Aplicado agora: {applied}. Enviado como pedido de correção (protocolo {id}), aguardando análise: {filed}.",
    "me.filedOnly": "Seu perfil não permite mudar {filed} diretamente: enviamos um pedido de correção (protocolo {id}), aguardando análise.",
    "me.correction": "Pedir uma correção",
    "me.correctionLead": "Algum dado está errado e você não pode mudá-lo? Peça a correção: o encarregado de dados analisa e você recebe a decisão por e-mail.",
    "me.correctionField": "Dado a corrigir",
    "me.correctionValue": "Valor correto",
    "me.correctionReason": "Motivo (opcional)",
    "me.correctionSubmit": "Pedir correção",
    "me.correctionFiled": "Pedido de correção enviado (protocolo {id}).",
    "me.corrections": "Meus pedidos de correção",
    "me.noCorrections": "Nenhum pedido de correção.",
    "me.col.when": "Quando",
    "me.col.changes": "O que foi pedido",
    "me.col.status": "Situação",
    "me.col.decision": "Decisão",
    "me.corr.pending": "Aguardando análise",
    "me.corr.approved": "Aprovado (aplicado)",
    "me.corr.denied": "Negado",
    "me.invalid": "Confira os campos destacados.",
    "field.full_name": "Nome completo",
    "field.email": "E-mail",
    "field.phone": "Telefone",
    "field.birth_date": "Data de nascimento",
    "field.address": "Endereço",
    "field.gender": "Gênero",
    "field.job_title": "Cargo",
    "field.photo": "Foto de perfil",
    "field.role": "Perfil de acesso",
    "field.status": "Situação da conta",
    "field.locale": "Idioma",
    "field.created_at": "Conta criada em",
    "field.street": "Logradouro",
    "field.number": "Número",
    "field.complement": "Complemento",
    "field.district": "Bairro",
    "field.city": "Cidade",
    "field.state": "UF",
    "field.postal_code": "CEP",
    "field.country": "País (código de 2 letras)",
    "category.identification": "Identificação",
    "category.contact": "Contato",
    "category.demographic": "Demográfico",
    "category.professional": "Profissional",
    "category.image": "Imagem",
    "category.credential": "Credencial",
    "category.none": "Dado da conta (não pessoal)",
  },
  en: {
    "me.title": "My data",
    "me.lead": "This is the personal data the platform holds about you, each item with its category in the data map.",
    "me.policyDue": "A new version of the privacy policy (version {version}) awaits your acceptance.",
    "me.policyLink": "Read and accept the new policy",
    "me.sections": "More about your data",
    "me.link.requests": "My requests (access, export, deletion…) and my data download",
    "me.link.access": "Who accessed my data and with whom it was shared",
    "me.link.consents": "My consents and policy acceptances",
    "me.link.policy": "Privacy policy acceptance",
    "me.data": "Data we hold",
    "me.col.field": "Item",
    "me.col.value": "Value",
    "me.col.category": "Category",
    "me.col.purpose": "What for",
    "me.empty": "(not given)",
    "me.hasPhoto": "Photo uploaded",
    "me.noPhoto": "No photo",
    "me.account": "Account",
    "me.edit": "Edit my data",
    "me.editHint": "What your role allows changes at once; the rest becomes a correction request, reviewed by the data protection officer.",
    "me.currentPassword": "Current password",
    "me.currentPasswordHint": "Needed only to change your e-mail.",
    "me.locale": "Language of e-mails",
    "me.save": "Save changes",
    "me.nothing": "Nothing was changed.",
    "me.saved": "Changes saved.",
    "me.partly": "Applied now: {applied}. Filed as a correction request (reference {id}), awaiting review: {filed}.",
    "me.filedOnly": "Your role may not change {filed} directly: we filed a correction request (reference {id}), awaiting review.",
    "me.correction": "Ask for a correction",
    "me.correctionLead": "Is something wrong that you cannot change? Ask for a correction: the data protection officer reviews it and you get the decision by e-mail.",
    "me.correctionField": "Item to correct",
    "me.correctionValue": "Correct value",
    "me.correctionReason": "Reason (optional)",
    "me.correctionSubmit": "Ask for correction",
    "me.correctionFiled": "Correction request filed (reference {id}).",
    "me.corrections": "My correction requests",
    "me.noCorrections": "No correction requests.",
    "me.col.when": "When",
    "me.col.changes": "What was asked",
    "me.col.status": "Status",
    "me.col.decision": "Decision",
    "me.corr.pending": "Awaiting review",
    "me.corr.approved": "Approved (applied)",
    "me.corr.denied": "Denied",
    "me.invalid": "Check the highlighted fields.",
    "field.full_name": "Full name",
    "field.email": "E-mail",
    "field.phone": "Phone",
    "field.birth_date": "Birth date",
    "field.address": "Address",
    "field.gender": "Gender",
    "field.job_title": "Job title",
    "field.photo": "Profile photo",
    "field.role": "Role",
    "field.status": "Account status",
    "field.locale": "Language",
    "field.created_at": "Account created on",
    "field.street": "Street",
    "field.number": "Number",
    "field.complement": "Complement",
    "field.district": "District",
    "field.city": "City",
    "field.state": "State (UF)",
    "field.postal_code": "Postal code",
    "field.country": "Country (2-letter code)",
    "category.identification": "Identification",
    "category.contact": "Contact",
    "category.demographic": "Demographic",
    "category.professional": "Professional",
    "category.image": "Image",
    "category.credential": "Credential",
    "category.none": "Account data (not personal)",
  },
});

export const access = "signed-in";
export const titleKey = "me.title";

const PROFILE = ["full_name", "email", "phone", "birth_date", "address", "gender", "job_title"];
const ADDRESS = ["street", "number", "complement", "district", "city", "state", "postal_code", "country"];
const ADDRESS_REQUIRED = ["street", "number", "district", "city", "state", "postal_code"];
const CORRECTABLE = ["full_name", "email", "phone", "birth_date", "gender", "job_title"];

/** {field: {category, description, purpose, legal_basis}} of identity's "user" resource. */
async function dataMap() {
  const pick = (items) => {
    const map = {};
    for (const item of items || []) {
      if (item.resource === "user" && (!item.service || item.service === "identity") && !map[item.field]) map[item.field] = item;
    }
    return map;
  };
  try {
    const all = await api("GET", "/v1/privacy/data-map");
    const map = pick(all.items);
    if (Object.keys(map).length) return map;
  } catch (error) {
    console.warn("privacy data map", error);
  }
  try {
    return pick((await api("GET", "/v1/data-map")).items);
  } catch {
    return {};
  }
}

function formatAddress(address) {
  if (!address) return null;
  const line1 = [address.street, address.number, address.complement].filter(Boolean).join(", ");
  const line2 = [address.district, address.city, address.state].filter(Boolean).join(", ");
  return [line1, line2, [address.postal_code, address.country].filter(Boolean).join(" ")].filter(Boolean).join(" — ");
}

function displayValue(name, me, lang) {
  const value = me[name];
  if (name === "address") return formatAddress(value);
  if (name === "birth_date") return value ? formatDay(value, lang) : null;
  if (name === "photo") return me.has_photo ? t("me.hasPhoto") : t("me.noPhoto");
  if (name === "created_at") return formatDate(value, lang);
  return value;
}

function dataTable(me, map, lang) {
  const row = (name, personal) => {
    const entry = map[name];
    const value = displayValue(name, me, lang);
    return h("tr", { dataset: { field: name } },
      h("th", { scope: "row" }, t(`field.${name}`)),
      h("td", {}, value === null || value === undefined || value === "" ? h("span", { class: "hint" }, t("me.empty")) : value),
      h("td", {}, entry ? h("span", { class: "badge" }, t(`category.${entry.category}`)) :
        (personal ? "—" : h("span", { class: "hint" }, t("category.none")))),
      h("td", {}, entry ? entry.purpose || entry.description : ""));
  };
  return tableWrap(t("me.data"),
    h("table", { id: "my-data" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, t("me.col.field")),
        h("th", { scope: "col" }, t("me.col.value")),
        h("th", { scope: "col" }, t("me.col.category")),
        h("th", { scope: "col" }, t("me.col.purpose")))),
      h("tbody", {},
        [...PROFILE, "photo"].map((name) => row(name, true)),
        ["role", "status", "locale", "created_at"].map((name) => row(name, false)))));
}

function input(name, value, attrs = {}) {
  return h("input", { type: "text", name, "data-field": name, value: value ?? "", ...attrs });
}

function editForm(me, onDone) {
  const addr = me.address || {};
  const status = h("div", {});
  const form = h("form", { novalidate: true, "aria-labelledby": "me-edit" },
    field({ id: "me-full_name", label: t("field.full_name"), control: input("full_name", me.full_name, { autocomplete: "name", maxlength: 200 }) }),
    field({ id: "me-email", label: t("field.email"), control: input("email", me.email, { type: "email", autocomplete: "email", maxlength: 254 }) }),
    field({ id: "me-current_password", label: t("me.currentPassword"), hint: t("me.currentPasswordHint"),
      control: h("input", { type: "password", name: "current_password", "data-field": "current_password", autocomplete: "current-password" }) }),
    field({ id: "me-phone", label: t("field.phone"), control: input("phone", me.phone, { type: "tel", autocomplete: "tel", maxlength: 32 }) }),
    field({ id: "me-birth_date", label: t("field.birth_date"), control: input("birth_date", me.birth_date, { type: "date" }) }),
    field({ id: "me-gender", label: t("field.gender"), control: input("gender", me.gender, { maxlength: 100 }) }),
    field({ id: "me-job_title", label: t("field.job_title"), control: input("job_title", me.job_title, { autocomplete: "organization-title", maxlength: 200 }) }),
    h("fieldset", {},
      h("legend", {}, t("field.address")),
      ADDRESS.map((part) => field({ id: `me-address-${part}`, label: t(`field.${part}`),
        control: input(`address.${part}`, part === "country" ? (addr.country || "BR") : addr[part], { maxlength: part === "number" ? 20 : 200 }) }))),
    field({ id: "me-locale", label: t("me.locale"), control: h("select", { name: "locale", "data-field": "locale" },
      h("option", { value: "pt-BR", selected: me.locale !== "en" }, "Português (Brasil)"),
      h("option", { value: "en", selected: me.locale === "en" }, "English")) }),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("me.save"))));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showFieldErrors(form, { errors: [] });
    mount(status);
    const value = (name) => form.elements[name].value.trim();
    const body = {};
    for (const name of ["full_name", "email", "phone", "birth_date", "gender", "job_title"]) {
      const now = value(name);
      if (now !== (me[name] ?? "")) body[name] = name === "gender" && !now ? null : now;
    }
    const address = {};
    let changed = false;
    for (const part of ADDRESS) {
      address[part] = value(`address.${part}`);
      const before = part === "country" ? (addr.country || "BR") : (addr[part] ?? "");
      if (address[part] !== before) changed = true;
    }
    if (changed) {
      address.complement = address.complement || null;
      body.address = address;
      const missing = ADDRESS_REQUIRED.filter((part) => !address[part]);
      if (missing.length) {
        showFieldErrors(form, { errors: missing.map((part) => ({ field: `address.${part}`, message: t("me.invalid") })) });
        mount(status, notice(t("me.invalid"), "error"));
        return;
      }
    }
    if (form.elements.locale.value !== me.locale) body.locale = form.elements.locale.value;
    if (!Object.keys(body).length) {
      mount(status, notice(t("me.nothing"), "info"));
      return;
    }
    if (body.email && form.elements.current_password.value) body.current_password = form.elements.current_password.value;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await api("PATCH", "/v1/me", { body });
      let text = t("me.saved");
      if (answer && answer.id && Array.isArray(answer.fields) && Array.isArray(answer.applied) && !answer.role) {
        const filed = answer.fields.map((name) => t(`field.${name}`)).join(", ");
        text = answer.applied.length
          ? t("me.partly", { applied: answer.applied.map((name) => t(`field.${name}`)).join(", "), filed, id: answer.id })
          : t("me.filedOnly", { filed, id: answer.id });
      }
      await onDone(text);
    } catch (error) {
      button.disabled = false;
      if (error instanceof ApiError && (error.status === 422 || error.status === 403) && showFieldErrors(form, error.problem)) {
        mount(status, notice(t("me.invalid"), "error"));
      } else {
        mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
      }
    }
  });
  return form;
}

function correctionForm(onDone) {
  const status = h("div", {});
  const select = h("select", { name: "field" }, CORRECTABLE.map((name) => h("option", { value: name }, t(`field.${name}`))));
  const valueInput = h("input", { type: "text", name: "value", maxlength: 254 });
  const form = h("form", { novalidate: true, "aria-labelledby": "me-correction" },
    field({ id: "corr-field", label: t("me.correctionField"), control: select }),
    field({ id: "corr-value", label: t("me.correctionValue"), control: valueInput }),
    field({ id: "corr-reason", label: t("me.correctionReason"),
      control: h("textarea", { name: "reason", "data-field": "reason", maxlength: 2000, rows: 3 }) }),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("me.correctionSubmit"))));
  const sync = () => {
    valueInput.setAttribute("data-field", `changes.${select.value}`);
    valueInput.type = select.value === "birth_date" ? "date" : select.value === "email" ? "email" : "text";
  };
  select.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showFieldErrors(form, { errors: [] });
    mount(status);
    const name = select.value;
    const body = { changes: { [name]: valueInput.value.trim() } };
    const reason = form.elements.reason.value.trim();
    if (reason) body.reason = reason;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const filed = await api("POST", "/v1/privacy/corrections", { body });
      await onDone(t("me.correctionFiled", { id: filed.id }));
    } catch (error) {
      button.disabled = false;
      if (error instanceof ApiError && error.status === 422) {
        // the API names "changes.<field>" or "changes"; point both at the value box
        const errors = (error.problem.errors || []).map((e) => (String(e.field).startsWith("changes") ? { ...e, field: `changes.${name}` } : e));
        if (!showFieldErrors(form, { errors })) mount(status, notice(error.message, "error"));
      } else {
        mount(status, notice(error instanceof ApiError ? error.message : t("error.network"), "error"));
      }
    }
  });
  return form;
}

function correctionsTable(items, lang) {
  if (!items.length) return h("p", {}, t("me.noCorrections"));
  const describe = (changes, fields) => {
    if (!changes) return (fields || []).map((name) => t(`field.${name}`)).join(", ");
    return Object.entries(changes).map(([name, value]) =>
      `${t(`field.${name}`)}: ${value && typeof value === "object" ? formatAddress(value) : value}`).join("; ");
  };
  return tableWrap(t("me.corrections"),
    h("table", { id: "my-corrections" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, t("me.col.when")),
        h("th", { scope: "col" }, t("me.col.changes")),
        h("th", { scope: "col" }, t("me.col.status")),
        h("th", { scope: "col" }, t("me.col.decision")))),
      h("tbody", {}, items.map((item) => h("tr", { dataset: { correction: item.id, status: item.status } },
        h("td", {}, h("time", { datetime: item.created_at }, formatDate(item.created_at, lang))),
        h("td", {}, describe(item.changes, item.fields)),
        h("td", {}, h("span", { class: item.status === "approved" ? "badge badge-ok" : item.status === "denied" ? "badge badge-bad" : "badge" },
          t(`me.corr.${item.status}`))),
        h("td", {}, item.decision_reason || (item.decided_at ? formatDate(item.decided_at, lang) : "—")))))));
}

export default async function render(main, ctx) {
  const [me, map, corrections] = await Promise.all([
    api("GET", "/v1/me"),
    dataMap(),
    api("GET", "/v1/privacy/corrections").catch(() => ({ items: [] })),
  ]);
  const status = h("div", { id: "me-status" });
  const refresh = async (text) => {
    const fresh = document.createElement("div");
    await render(fresh, ctx);
    const root = document.getElementById("main");
    mount(root, ...fresh.childNodes);
    const slot = document.getElementById("me-status");
    if (slot) mount(slot, notice(text, "ok"));
    const heading = root.querySelector("h1");
    if (heading) { heading.tabIndex = -1; }
    slot?.scrollIntoView({ block: "nearest" });
  };
  const due = me.policy_acceptance_required;
  add(main, 
    h("h1", {}, t("me.title")),
    due ? h("div", { class: "notice notice-warn", role: "status", id: "policy-due" },
      t("me.policyDue", { version: due.version }), " ", h("a", { href: "/app/me/policy" }, t("me.policyLink"))) : null,
    status,
    h("p", {}, t("me.lead")),
    h("nav", { "aria-label": t("me.sections") },
      h("ul", {},
        h("li", {}, h("a", { href: "/app/me/requests" }, t("me.link.requests"))),
        h("li", {}, h("a", { href: "/app/me/access" }, t("me.link.access"))),
        h("li", {}, h("a", { href: "/app/me/consents" }, t("me.link.consents"))),
        h("li", {}, h("a", { href: "/app/me/policy" }, t("me.link.policy"))))),
    h("h2", {}, t("me.data")),
    dataTable(me, map, ctx.lang),
    h("h2", { id: "me-edit" }, t("me.edit")),
    h("p", { class: "hint" }, t("me.editHint")),
    editForm(me, refresh),
    h("h2", { id: "me-correction" }, t("me.correction")),
    h("p", {}, t("me.correctionLead")),
    correctionForm(refresh),
    h("h2", {}, t("me.corrections")),
    correctionsTable(corrections.items || [], ctx.lang));
}
