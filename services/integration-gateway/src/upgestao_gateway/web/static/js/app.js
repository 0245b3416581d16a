// app.js: the privacy centre's shell. Path routing under /app/ (the gateway answers index.html for every
// page path), one lazily imported module per page, the navigation, the language toggle and the cookie banner.
//
// A page module exports:
//   default async function render(main, ctx)   ctx = {params, query, session, navigate, lang}
//   export const access = "public" | "signed-in" | "<permission>"   (default "public")
//   export const titleKey = "<i18n key>"                             (the document title)

import { currentSession, can, signOut, ApiError } from "./api.js";
import { h, mount, notice } from "./dom.js";
import { t, lang, setLang } from "./i18n.js";

// [pattern, module]; :name captures one path segment
const ROUTES = [
  ["/app/", "./pages/home.js"],
  ["/app/privacy", "./pages/policy.js"],
  ["/app/privacy/versions/:version", "./pages/policy.js"],
  ["/app/cookies", "./pages/cookies.js"],
  ["/app/contact", "./pages/contact.js"],
  ["/app/contact/:requestId", "./pages/contact_status.js"],
  ["/app/login", "./pages/login.js"],
  ["/app/me", "./pages/me.js"],
  ["/app/me/requests", "./pages/me_requests.js"],
  ["/app/me/access", "./pages/me_access.js"],
  ["/app/me/consents", "./pages/me_consents.js"],
  ["/app/me/policy", "./pages/me_policy.js"],
  ["/app/dpo", "./pages/dpo_requests.js"],
  ["/app/dpo/requests/:requestId", "./pages/dpo_request.js"],
  ["/app/dpo/corrections", "./pages/dpo_corrections.js"],
  ["/app/dpo/incidents", "./pages/dpo_incidents.js"],
  ["/app/dpo/incidents/:incidentId", "./pages/dpo_incident.js"],
  ["/app/dpo/audit", "./pages/dpo_audit.js"],
];

function match(pathname) {
  const path = pathname.length > 5 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  for (const [pattern, module] of ROUTES) {
    const names = [];
    const regex = new RegExp("^" + pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; }) + "$");
    const found = path.match(regex) || (pattern === "/app/" && path === "/app" ? [] : null);
    if (found) {
      const params = {};
      names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
      return { module, params };
    }
  }
  return null;
}

export function navigate(url, { replace = false, state = null } = {}) {
  if (replace) history.replaceState(state, "", url); else history.pushState(state, "", url);
  return route();
}

async function renderNav(session) {
  const links = [
    ["/app/privacy", "nav.policy"],
    ["/app/cookies", "nav.cookies"],
    ["/app/contact", "nav.contact"],
  ];
  if (session) links.push(["/app/me", "nav.me"]);
  if (session && can("privacy.review")) links.push(["/app/dpo", "nav.dpo"]);
  const here = location.pathname;
  const items = links.map(([href, key]) =>
    h("li", {}, h("a", { href, "aria-current": here === href || here.startsWith(href + "/") ? "page" : null }, t(key))));
  items.push(h("li", {}, session
    ? h("button", { type: "button", class: "link-button", id: "sign-out", onclick: async () => { await signOut(); navigate("/app/"); } }, t("nav.logout"))
    : h("a", { href: `/app/login?next=${encodeURIComponent(here + location.search)}` }, t("nav.login"))));
  const nav = document.getElementById("nav");
  nav.setAttribute("aria-label", t("nav.label"));
  mount(nav, h("ul", {}, items));
  document.querySelector(".skip-link").textContent = t("skip");
  const toggle = document.getElementById("lang-toggle");
  toggle.textContent = t("lang.other");
  toggle.lang = lang() === "pt-BR" ? "en" : "pt-BR";
}

let routing = 0;

export async function route() {
  const ticket = ++routing;
  const main = document.getElementById("main");
  const session = await currentSession();
  await renderNav(session);
  const found = match(location.pathname);
  if (!found) {
    document.title = t("app.title");
    mount(main, h("h1", {}, t("error.notFound")));
    return;
  }
  mount(main, h("p", { class: "loading" }, t("loading")));
  try {
    const page = await import(found.module);
    if (ticket !== routing) return;
    const access = page.access || "public";
    if (access !== "public" && !session) {
      return navigate(`/app/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    }
    if (access !== "public" && access !== "signed-in" && !can(access)) {
      mount(main, h("h1", {}, t("error.notFound")));
      return;
    }
    document.title = page.titleKey ? `${t(page.titleKey)} — UpGestão` : t("app.title");
    const ctx = { params: found.params, query: new URLSearchParams(location.search), session, navigate, lang: lang() };
    const fresh = document.createElement("div");
    await page.default(fresh, ctx);
    if (ticket !== routing) return;
    mount(main, ...fresh.childNodes);
    const heading = main.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (error) {
    console.error(error);
    if (ticket !== routing) return;
    const text = error instanceof ApiError ? (error.status === 404 ? t("error.notFound") : error.message) :
      (error instanceof TypeError ? t("error.network") : t("error.generic"));
    mount(main, notice(text, "error"));
  }
}

// Links inside the app navigate without a reload; everything else (downloads, other origins) is left alone.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/app") || link.hasAttribute("download") ||
      url.pathname.startsWith("/app/static/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => route());

document.getElementById("lang-toggle").addEventListener("click", () => {
  setLang(lang() === "pt-BR" ? "en" : "pt-BR");
  route();
  import("./cookie_banner.js").then((banner) => banner.show(true));
});

document.documentElement.lang = lang();
route();
import("./cookie_banner.js").then((banner) => banner.show(false));
