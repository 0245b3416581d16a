// i18n.js: Portuguese (pt-BR) by default, English on request; the choice is kept in the `upg_lang` cookie.
// Each page module registers its own messages: register({"pt-BR": {...}, en: {...}}).
// t("key", {name: "x"}) interpolates {name}; a missing key shows the key (and logs once).

const LANGS = ["pt-BR", "en"];
const catalogue = { "pt-BR": {}, en: {} };
const missing = new Set();

export function lang() {
  const match = document.cookie.match(/(?:^|;\s*)upg_lang=([^;]+)/);
  const chosen = match ? decodeURIComponent(match[1]) : null;
  return LANGS.includes(chosen) ? chosen : "pt-BR";
}

export function setLang(value) {
  if (!LANGS.includes(value)) return;
  document.cookie = `upg_lang=${encodeURIComponent(value)}; Path=/app; Max-Age=31536000; SameSite=Strict; Secure`;
  document.documentElement.lang = value;
}

export function register(messages) {
  for (const code of LANGS) Object.assign(catalogue[code], messages[code] || {});
}

export function t(key, params = {}) {
  const current = lang();
  let text = catalogue[current][key] ?? catalogue["pt-BR"][key];
  if (text === undefined) {
    if (!missing.has(key)) { missing.add(key); console.warn(`i18n: no message for ${key}`); }
    text = key;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => (params[name] ?? `{${name}}`));
}

register({
  "pt-BR": {
    "app.title": "UpGestão — Privacidade",
    "nav.policy": "Política de privacidade",
    "nav.cookies": "Cookies",
    "nav.contact": "Fale com o encarregado",
    "nav.me": "Meus dados",
    "nav.dpo": "Console do encarregado",
    "nav.login": "Entrar",
    "nav.logout": "Sair",
    "nav.label": "Principal",
    "skip": "Pular para o conteúdo",
    "lang.other": "English",
    "error.generic": "Algo deu errado. Tente de novo em instantes.",
    "error.network": "Sem conexão com o servidor. Tente de novo.",
    "error.notFound": "Página não encontrada.",
    "loading": "Carregando…",
    "footer.dpo": "Encarregado de dados: {email}",
  },
  en: {
    "app.title": "UpGestão — Privacy",
    "nav.policy": "Privacy policy",
    "nav.cookies": "Cookies",
    "nav.contact": "Contact the DPO",
    "nav.me": "My data",
    "nav.dpo": "DPO console",
    "nav.login": "Sign in",
    "nav.logout": "Sign out",
    "nav.label": "Main",
    "skip": "Skip to content",
    "lang.other": "Português",
    "error.generic": "Something went wrong. Try again in a moment.",
    "error.network": "Cannot reach the server. Try again.",
    "error.notFound": "Page not found.",
    "loading": "Loading…",
    "footer.dpo": "Data protection officer: {email}",
  },
});
