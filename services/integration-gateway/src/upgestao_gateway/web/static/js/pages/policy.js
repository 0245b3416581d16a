// The privacy policy (R11.1): the version in effect (/app/privacy) or a given one (/app/privacy/versions/:v),
// its effective date, and every version with a link. The text is rendered as DOM nodes, never parsed as HTML.
import { api } from "../api.js";
import { add, h, tableWrap, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";

register({
  "pt-BR": {
    "policy.title": "Política de privacidade",
    "policy.version": "Versão {version}",
    "policy.effective": "Em vigor desde",
    "policy.published": "Publicada em",
    "policy.summary": "O que mudou",
    "policy.current": "Esta é a versão em vigor.",
    "policy.notCurrent": "Esta não é a versão em vigor.",
    "policy.readCurrent": "Ler a versão em vigor",
    "policy.versions": "Versões",
    "policy.col.version": "Versão",
    "policy.col.effective": "Em vigor desde",
    "policy.col.summary": "Resumo",
    "policy.inEffect": "em vigor",
    "policy.none": "Nenhuma política de privacidade foi publicada ainda.",
    "policy.textLang": "O texto da política é publicado em português.",
  },
  en: {
    "policy.title": "Privacy policy",
    "policy.version": "Version {version}",
    "policy.effective": "In effect since",
    "policy.published": "Published on",
    "policy.summary": "What changed",
    "policy.current": "This is the version in effect.",
    "policy.notCurrent": "This is not the version in effect.",
    "policy.readCurrent": "Read the version in effect",
    "policy.versions": "Versions",
    "policy.col.version": "Version",
    "policy.col.effective": "In effect since",
    "policy.col.summary": "Summary",
    "policy.inEffect": "in effect",
    "policy.none": "No privacy policy has been published yet.",
    "policy.textLang": "The policy's text is published in Portuguese.",
  },
});

export const access = "public";
export const titleKey = "policy.title";

const BULLET = /^\s*(?:[-*•·]|\d+[.)])\s+/;
const HEADING = /^(#{1,4})\s+(.*)$/;
const NUMBERED_TITLE = /^\d+(?:\.\d+)*\.?\s+\S.{0,90}$/;

/** The policy's text (plain text or simple Markdown: # headings, paragraphs, - / • / 1. lists, **bold**)
 *  as DOM nodes. Headings start at `level` (h2 under the page's h1). */
export function renderPolicyText(text, level = 2) {
  const blocks = String(text || "").replace(/\r\n?/g, "\n").split(/\n\s*\n/).map((b) => b.replace(/^\n+|\s+$/g, ""))
    .filter((b) => b.trim());
  const nodes = [];
  const tag = (depth) => `h${Math.min(6, level + depth)}`;
  blocks.forEach((block, index) => {
    const lines = block.split("\n");
    const heading = lines.length === 1 && lines[0].trim().match(HEADING);
    if (heading) {
      nodes.push(h(tag(Math.max(0, heading[1].length - 1)), {}, inline(heading[2])));
      return;
    }
    if (lines.every((line) => BULLET.test(line) || /^\s{2,}\S/.test(line))) {
      const ordered = /^\s*\d+[.)]\s/.test(lines[0]);
      const items = [];
      for (const line of lines) {
        if (BULLET.test(line)) items.push(line.replace(BULLET, ""));
        else if (items.length) items[items.length - 1] += " " + line.trim();
        else items.push(line.trim());
      }
      if (!(ordered && lines.length === 1)) {  // a lone "1. Title" line is a section title (below)
        nodes.push(h(ordered ? "ol" : "ul", {}, items.map((item) => h("li", {}, inline(item)))));
        return;
      }
    }
    const single = lines.length === 1 ? lines[0].trim() : null;
    if (single && NUMBERED_TITLE.test(single) && !/[.:;]$/.test(single)) {
      nodes.push(h(tag(0), {}, inline(single)));
      return;
    }
    if (single && index === 0 && single.length <= 90 && !/[.:;]$/.test(single)) {
      nodes.push(h(tag(0), {}, inline(single)));
      return;
    }
    const parts = [];
    lines.forEach((line, i) => {
      if (i) parts.push(h("br"));
      parts.push(inline(line.trim()));
    });
    nodes.push(h("p", {}, parts));
  });
  return nodes;
}

/** **bold** inside a line; everything else is text. */
function inline(text) {
  const out = [];
  const re = /\*\*([^*]+)\*\*/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h("strong", {}, m[1]));
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export default async function render(main, ctx) {
  const wanted = ctx.params.version;
  const [policy, list] = await Promise.all([
    api("GET", wanted ? `/v1/privacy/policies/${encodeURIComponent(wanted)}` : "/v1/privacy/policies/current")
      .catch((error) => { if (!wanted && error.status === 404) return null; throw error; }),
    api("GET", "/v1/privacy/policies").catch(() => ({ items: [] })),
  ]);
  add(main, h("h1", {}, t("policy.title")));
  if (!policy) {
    add(main, h("p", {}, t("policy.none")));
    return;
  }
  const items = list.items || [];
  const current = items.find((item) => item.current);
  const isCurrent = wanted ? Boolean(current && current.version === policy.version) : true;
  add(main, 
    h("dl", { class: "props" },
      h("dt", {}, t("policy.col.version")), h("dd", {}, policy.version,
        isCurrent ? [" ", h("span", { class: "badge badge-ok" }, t("policy.inEffect"))] : null),
      h("dt", {}, t("policy.effective")), h("dd", {}, h("time", { datetime: policy.effective_at }, formatDate(policy.effective_at, ctx.lang))),
      h("dt", {}, t("policy.published")), h("dd", {}, h("time", { datetime: policy.published_at }, formatDate(policy.published_at, ctx.lang))),
      policy.summary ? [h("dt", {}, t("policy.summary")), h("dd", {}, policy.summary)] : null),
    isCurrent ? null : h("p", { class: "notice notice-warn" }, t("policy.notCurrent"), " ",
      h("a", { href: "/app/privacy" }, t("policy.readCurrent"))),
    ctx.lang === "pt-BR" ? null : h("p", { class: "hint" }, t("policy.textLang")),
    h("article", { class: "policy-doc", lang: "pt-BR", "aria-label": t("policy.version", { version: policy.version }) },
      renderPolicyText(policy.text)));
  if (items.length) {
    add(main, 
      h("h2", {}, t("policy.versions")),
      tableWrap(t("policy.versions"),
        h("table", {},
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, t("policy.col.version")),
            h("th", { scope: "col" }, t("policy.col.effective")),
            h("th", { scope: "col" }, t("policy.col.summary")))),
          h("tbody", {}, items.map((item) => h("tr", {},
            h("td", {},
              h("a", {
                href: `/app/privacy/versions/${encodeURIComponent(item.version)}`,
                "aria-current": item.version === policy.version ? "page" : null,
              }, item.version),
              item.current ? [" ", h("span", { class: "badge badge-ok" }, t("policy.inEffect"))] : null),
            h("td", {}, h("time", { datetime: item.effective_at }, formatDate(item.effective_at, ctx.lang))),
            h("td", {}, item.summary)))))));
  }
}
