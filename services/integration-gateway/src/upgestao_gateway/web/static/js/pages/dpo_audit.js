// The audit log in the DPO console (/app/dpo/audit): search it (GET /v1/audit with its filters, older pages by
// cursor) and verify it in this browser: the signed checkpoint's Ed25519 signature (WebCrypto), an inclusion
// proof of a record recomputed up to the signed root, and the record's own leaf (js/audit_verify.js). The
// server's word is not taken: only the public key is.
import { api } from "../api.js";
import { h, mount, notice, formatDate } from "../dom.js";
import { t, lang, register } from "../i18n.js";
import { consoleNav, shortId, showProblem, selectOf, tableWrap } from "./dpo_requests.js";
import { fetchAndVerify } from "../audit_verify.js";

const ACTIONS = ["read", "list", "create", "update", "delete", "export", "share", "notify", "login", "logout", "erase",
  "audit_query"];
const OUTCOMES = ["success", "denied", "failure"];
const TEXT_FILTERS = ["subject_id", "actor_id", "service", "resource_type", "request_id"];
// The last checkpoint this browser verified: a later verification must find that the log only grew since
// (a consistency proof). Public data (a size, a root hash, a signature): no token, nothing personal.
const MEMORY = "upg_audit_checkpoint";

function remembered() {
  try { return JSON.parse(localStorage.getItem(MEMORY) || "null"); } catch { return null; }
}

function remember(checkpoint) {
  try { localStorage.setItem(MEMORY, JSON.stringify(checkpoint)); } catch { /* storage refused: nothing kept */ }
}

register({
  "pt-BR": {
    "dpoAudit.title": "Registro de auditoria",
    "dpoAudit.verify": "Verificar o registro",
    "dpoAudit.verifyLead": "Este navegador confere a assinatura Ed25519 do checkpoint mais recente com a chave pública do registro, recalcula a raiz assinada a partir da prova de inclusão de um registro e confirma que o registro só cresceu desde a última verificação feita aqui: nada depende da palavra do servidor além da chave.",
    "dpoAudit.seq": "Registro a provar (nº)",
    "dpoAudit.seqHint": "Vazio: o mais recente. Ou use “Conferir” numa linha da busca.",
    "dpoAudit.verifyButton": "Verificar",
    "dpoAudit.verifying": "Verificando…",
    "dpoAudit.valid": "Registro válido: o checkpoint (árvore de {size} registros) está assinado pela chave do registro e o registro nº {seq} está nele.",
    "dpoAudit.validEmpty": "Registro válido: o checkpoint (vazio) está assinado pela chave do registro.",
    "dpoAudit.tampered": "Adulteração detectada: {what}.",
    "dpoAudit.cannot": "Não foi possível verificar: {what}.",
    "dpoAudit.step.signature.ok": "Assinatura válida (chave {key}).",
    "dpoAudit.step.proof.ok": "A prova de inclusão do registro nº {seq} corresponde ao checkpoint.",
    "dpoAudit.step.leaf.ok": "O registro nº {seq} é exatamente a folha guardada no registro.",
    "dpoAudit.step.consistency.ok": "O registro só cresceu desde o checkpoint que este navegador verificou antes ({size} registros, assinado em {at}).",
    "dpoAudit.fail.consistency": "o registro foi reescrito ou encolheu desde a última verificação",
    "dpoAudit.fail.signature": "assinatura inválida",
    "dpoAudit.fail.proof": "a prova não corresponde ao checkpoint",
    "dpoAudit.fail.leaf": "o registro não corresponde à folha do registro",
    "dpoAudit.fail.malformed": "checkpoint ou prova malformados",
    "dpoAudit.fail.unsupported": "este navegador não verifica assinaturas Ed25519",
    "dpoAudit.checkpoint": "Checkpoint verificado",
    "dpoAudit.treeSize": "Registros na árvore",
    "dpoAudit.root": "Raiz",
    "dpoAudit.signedAt": "Assinado em",
    "dpoAudit.keyId": "Chave",
    "dpoAudit.search": "Buscar no registro",
    "dpoAudit.f.subject_id": "Titular (id)",
    "dpoAudit.f.actor_id": "Quem acessou (id)",
    "dpoAudit.f.service": "Serviço",
    "dpoAudit.f.resource_type": "Tipo de recurso",
    "dpoAudit.f.request_id": "Requisição (X-Request-ID)",
    "dpoAudit.f.action": "Ação",
    "dpoAudit.f.outcome": "Resultado",
    "dpoAudit.f.from": "A partir de",
    "dpoAudit.f.to": "Antes de",
    "dpoAudit.any": "Qualquer uma",
    "dpoAudit.searchButton": "Buscar",
    "dpoAudit.clear": "Limpar",
    "dpoAudit.empty": "Nenhum registro com esses filtros.",
    "dpoAudit.older": "Registros mais antigos",
    "dpoAudit.col.seq": "Nº",
    "dpoAudit.col.when": "Quando",
    "dpoAudit.col.service": "Serviço",
    "dpoAudit.col.actor": "Quem",
    "dpoAudit.col.action": "Ação e resultado",
    "dpoAudit.col.resource": "Serviço: recurso",
    "dpoAudit.col.subject": "Titular",
    "dpoAudit.col.fields": "Campos",
    "dpoAudit.col.purpose": "Finalidade",
    "dpoAudit.col.outcome": "Resultado",
    "dpoAudit.col.check": "Prova",
    "dpoAudit.check": "Conferir nº {seq}",
    "dpoAudit.sharedWith": "compartilhado com {recipient}",
  },
  en: {
    "dpoAudit.title": "Audit log",
    "dpoAudit.verify": "Verify the log",
    "dpoAudit.verifyLead": "This browser checks the latest checkpoint's Ed25519 signature with the log's public key, recomputes the signed root from one record's inclusion proof, and checks that the log only grew since the last verification made here: nothing rests on the server's word but the key.",
    "dpoAudit.seq": "Record to prove (number)",
    "dpoAudit.seqHint": "Empty: the newest. Or use “Check” on a row of the search.",
    "dpoAudit.verifyButton": "Verify",
    "dpoAudit.verifying": "Verifying…",
    "dpoAudit.valid": "The log is valid: the checkpoint (a tree of {size} records) is signed by the log's key and record #{seq} is in it.",
    "dpoAudit.validEmpty": "The log is valid: the (empty) checkpoint is signed by the log's key.",
    "dpoAudit.tampered": "Tampering detected: {what}.",
    "dpoAudit.cannot": "Could not verify: {what}.",
    "dpoAudit.step.signature.ok": "Signature valid (key {key}).",
    "dpoAudit.step.proof.ok": "The inclusion proof of record #{seq} matches the checkpoint.",
    "dpoAudit.step.leaf.ok": "Record #{seq} is exactly the leaf the log holds.",
    "dpoAudit.step.consistency.ok": "The log only grew since the checkpoint this browser verified before ({size} records, signed {at}).",
    "dpoAudit.fail.consistency": "log rewritten or rolled back since the last verification",
    "dpoAudit.fail.signature": "signature invalid",
    "dpoAudit.fail.proof": "proof does not match the checkpoint",
    "dpoAudit.fail.leaf": "record does not match the log's leaf",
    "dpoAudit.fail.malformed": "checkpoint or proof malformed",
    "dpoAudit.fail.unsupported": "this browser cannot check Ed25519 signatures",
    "dpoAudit.checkpoint": "Checkpoint verified",
    "dpoAudit.treeSize": "Records in the tree",
    "dpoAudit.root": "Root",
    "dpoAudit.signedAt": "Signed",
    "dpoAudit.keyId": "Key",
    "dpoAudit.search": "Search the log",
    "dpoAudit.f.subject_id": "Data subject (id)",
    "dpoAudit.f.actor_id": "Who accessed (id)",
    "dpoAudit.f.service": "Service",
    "dpoAudit.f.resource_type": "Resource type",
    "dpoAudit.f.request_id": "Request (X-Request-ID)",
    "dpoAudit.f.action": "Action",
    "dpoAudit.f.outcome": "Outcome",
    "dpoAudit.f.from": "From",
    "dpoAudit.f.to": "Before",
    "dpoAudit.any": "Any",
    "dpoAudit.searchButton": "Search",
    "dpoAudit.clear": "Clear",
    "dpoAudit.empty": "No records match these filters.",
    "dpoAudit.older": "Older records",
    "dpoAudit.col.seq": "#",
    "dpoAudit.col.when": "When",
    "dpoAudit.col.service": "Service",
    "dpoAudit.col.actor": "Who",
    "dpoAudit.col.action": "Action and outcome",
    "dpoAudit.col.resource": "Service: resource",
    "dpoAudit.col.subject": "Data subject",
    "dpoAudit.col.fields": "Fields",
    "dpoAudit.col.purpose": "Purpose",
    "dpoAudit.col.outcome": "Outcome",
    "dpoAudit.col.check": "Proof",
    "dpoAudit.check": "Check #{seq}",
    "dpoAudit.sharedWith": "shared with {recipient}",
  },
});

export const access = "audit.read";
export const titleKey = "dpoAudit.title";

export default async function render(main, ctx) {
  const query = new URLSearchParams({ limit: "50" });
  for (const name of [...TEXT_FILTERS, "action", "outcome", "from", "to"]) {
    const value = ctx.query.get(name);
    if (value) query.set(name, value);
  }
  const records = new Map();  // seq -> record, for the leaf check of a proved record
  const verifier = verifySection(records);
  const search = searchForm(ctx);
  const results = h("div", {});
  main.append(h("h1", {}, t("dpoAudit.title")), consoleNav("/app/dpo/audit"), verifier.section,
    h("section", { "aria-labelledby": "search-heading" }, h("h2", { id: "search-heading" }, t("dpoAudit.search")), search.form, results));
  try {
    const page = await api("GET", `/v1/audit?${query}`);
    showResults(results, page, query, records, verifier, ctx);
  } catch (error) {
    showProblem(search.form, error, results);
  }
}

function verifySection(records) {
  const seq = h("input", { type: "number", name: "seq", min: 0, step: 1, inputmode: "numeric", id: "verify-seq", dataset: { field: "seq" } });
  const button = h("button", { type: "submit", id: "verify-button" }, t("dpoAudit.verifyButton"));
  const outcome = h("div", { class: "verify-outcome" });
  const form = h("form", { novalidate: true, "aria-labelledby": "verify-heading" },
    h("div", { class: "field" },
      h("label", { for: "verify-seq" }, t("dpoAudit.seq")),
      h("p", { class: "hint", id: "verify-seq-hint" }, t("dpoAudit.seqHint")),
      seq),
    h("div", { class: "actions" }, button));
  seq.setAttribute("aria-describedby", "verify-seq-hint");
  const run = async (wanted) => {
    button.disabled = true;
    mount(outcome, h("p", { class: "loading", role: "status" }, t("dpoAudit.verifying")));
    try {
      const chosen = wanted === "" || wanted === null || wanted === undefined ? null : Number(wanted);
      const result = await fetchAndVerify((path) => api("GET", path),
        { seq: Number.isSafeInteger(chosen) && chosen >= 0 ? chosen : null, record: chosen !== null ? records.get(chosen) || null : null,
          previous: remembered() });
      if (result.ok) remember(result.checkpoint);
      mount(outcome, ...report(result));
    } catch (error) {
      console.error(error);
      mount(outcome, notice(error && error.message ? error.message : t("error.generic"), "error"));
    } finally {
      button.disabled = false;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(seq.value.trim());
  });
  const section = h("section", { "aria-labelledby": "verify-heading", class: "verify" },
    h("h2", { id: "verify-heading" }, t("dpoAudit.verify")),
    h("p", {}, t("dpoAudit.verifyLead")),
    form, outcome);
  return { section, check: (n) => { seq.value = String(n); run(n); section.scrollIntoView({ block: "nearest" }); } };
}

/** The verdict (role=status when valid, role=alert when not) and each step's result. */
function report(result) {
  const failures = result.steps.filter((s) => !s.ok);
  const what = [...new Set(failures.map((s) => t(`dpoAudit.fail.${s.code}`)))].join("; ");
  const summary = result.ok
    ? notice(result.seq === null ? t("dpoAudit.validEmpty") : t("dpoAudit.valid", { size: result.treeSize, seq: result.seq }), "ok")
    : notice(t(failures.some((s) => s.code === "unsupported") ? "dpoAudit.cannot" : "dpoAudit.tampered", { what }), "error");
  summary.classList.add(result.ok ? "verify-valid" : "verify-invalid");
  const items = result.steps.map((s) => h("li", { class: s.ok ? "step-ok" : "step-bad" },
    h("span", { "aria-hidden": "true" }, s.ok ? "✓ " : "✗ "),
    s.ok ? t(`dpoAudit.step.${s.step}.ok`, { seq: result.seq, key: result.keyId || "",
      size: result.previous ? result.previous.tree_size : "", at: result.previous ? formatDate(result.previous.signed_at, lang()) : "" })
      : `${t(`dpoAudit.fail.${s.code}`)} — ${s.message}`));
  const served = result.checkpoint || {};
  const signed = result.steps.some((s) => s.step === "signature" && s.ok);
  return [summary, h("ul", { class: "steps plain" }, items),
    signed ? h("details", {}, h("summary", {}, t("dpoAudit.checkpoint")), h("dl", { class: "props" },
      h("dt", {}, t("dpoAudit.treeSize")), h("dd", {}, String(served.tree_size)),
      h("dt", {}, t("dpoAudit.root")), h("dd", {}, h("code", {}, served.root_hash)),
      h("dt", {}, t("dpoAudit.signedAt")), h("dd", {}, served.signed_at),
      h("dt", {}, t("dpoAudit.keyId")), h("dd", {}, h("code", {}, served.key_id)))) : null];
}

function searchForm(ctx) {
  const controls = [];
  const input = (name, type = "text") => {
    const control = h("input", { type, name, id: `audit-${name}`, value: valueOf(ctx, name, type) || null, dataset: { field: name } });
    controls.push(control);
    return h("div", { class: "field" }, h("label", { for: control.id }, t(`dpoAudit.f.${name}`)), control,
      h("p", { class: "field-error", id: `${control.id}-error`, role: "alert", hidden: true }));
  };
  const select = (name, values) => {
    const control = selectOf(name, values, (v) => v, ctx.query.get(name) || "", { any: true });
    control.id = `audit-${name}`;
    control.querySelector("option[value='']").textContent = t("dpoAudit.any");
    controls.push(control);
    return h("div", { class: "field" }, h("label", { for: control.id }, t(`dpoAudit.f.${name}`)), control,
      h("p", { class: "field-error", id: `${control.id}-error`, role: "alert", hidden: true }));
  };
  const form = h("form", { class: "filters", role: "search", "aria-label": t("dpoAudit.search"), novalidate: true },
    h("div", { class: "filter-row" },
      TEXT_FILTERS.map((name) => input(name)),
      select("action", ACTIONS), select("outcome", OUTCOMES),
      input("from", "datetime-local"), input("to", "datetime-local")),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, t("dpoAudit.searchButton")),
      h("a", { class: "button secondary", href: "/app/dpo/audit" }, t("dpoAudit.clear"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const control of controls) {
      const value = control.value.trim();
      if (!value) continue;
      if (control.type === "datetime-local") {
        const date = new Date(value);
        query.set(control.name, Number.isNaN(date.getTime()) ? value : date.toISOString());
      } else {
        query.set(control.name, value);
      }
    }
    const text = query.toString();
    ctx.navigate(text ? `/app/dpo/audit?${text}` : "/app/dpo/audit");
  });
  return { form };
}

/** A filter's value from the address (an ISO instant shown in a datetime-local control as local time). */
function valueOf(ctx, name, type) {
  const value = ctx.query.get(name);
  if (!value || type !== "datetime-local") return value;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function showResults(results, page, query, records, verifier, ctx) {
  if (!page.items.length) {
    mount(results, h("p", {}, t("dpoAudit.empty")));
    return;
  }
  const tbody = h("tbody", {});
  const add = (items) => {
    for (const item of items) {
      records.set(item.seq, item);
      tbody.append(row(item, verifier, ctx.lang));
    }
  };
  add(page.items);
  const more = h("button", { type: "button", class: "secondary", hidden: !page.next_cursor }, t("dpoAudit.older"));
  let cursor = page.next_cursor;
  const slot = h("div", {});
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      query.set("cursor", cursor);
      const next = await api("GET", `/v1/audit?${query}`);
      add(next.items);
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      slot.replaceChildren(notice(error.message || t("error.generic"), "error"));
    } finally {
      more.disabled = false;
    }
  });
  mount(results,
    tableWrap(t("dpoAudit.search"), h("table", { class: "audit-table" },
      h("thead", {}, h("tr", {}, ["seq", "when", "actor", "action", "resource", "subject", "fields", "purpose", "check"]
        .map((key) => h("th", { scope: "col" }, t(`dpoAudit.col.${key}`))))),
      tbody)),
    slot, more);
}

function row(item, verifier, lang) {
  const check = h("button", { type: "button", class: "secondary small" }, t("dpoAudit.check", { seq: item.seq }));
  check.addEventListener("click", () => verifier.check(item.seq));
  return h("tr", { dataset: { seq: item.seq } },
    h("td", {}, item.seq),
    h("td", {}, formatDate(item.occurred_at, lang)),
    h("td", {}, item.actor_id && item.actor_id !== item.actor_role ? `${item.actor_role || ""} ${shortId(item.actor_id)}`.trim()
      : item.actor_role || item.actor_id || "—"),
    h("td", {}, item.action, " ", h("span", { class: `badge${item.outcome === "success" ? "" : " badge-bad"}` }, item.outcome),
      item.recipient ? h("span", { class: "hint" }, ` (${t("dpoAudit.sharedWith", { recipient: item.recipient })})`) : null),
    h("td", {}, `${item.service}: ${item.resource_type}`, item.resource_id ? ` ${shortId(item.resource_id)}` : null),
    h("td", {}, item.subject_id ? h("code", { title: item.subject_id }, shortId(item.subject_id)) : "—"),
    h("td", {}, (item.fields || []).join(", ")),
    h("td", {}, item.purpose),
    h("td", {}, check));
}
