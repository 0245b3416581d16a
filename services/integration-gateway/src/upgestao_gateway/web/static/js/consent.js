// consent.js: cookie consent (R7.1) for the banner (every page) and the preferences page (pages/cookies.js).
// Purposes: essential (always on), analytics and personalisation (off until chosen). A choice is recorded
// through the API with the policy version in effect:
//   signed in (privacy.self)  PUT /v1/privacy/consents          {purposes, policy_version}
//   anonymous                 PUT /v1/privacy/consents/visitor  {purposes, policy_version, visitor_id?}
// An anonymous visitor's id is issued by the API on the first choice and kept in the first-party cookie
// `upg_visitor` (Path=/app, Secure, SameSite=Strict, 1 year); it is sent back in the body (PUT) or in the
// Visitor-Id header (GET), never in a URL. The banner shows until a choice is recorded for the current
// policy version: the API is the memory (GET ... answers the last choice and its policy version).

import { api, can, currentSession, ApiError } from "./api.js";
import { h, mount, notice } from "./dom.js";
import { t, register } from "./i18n.js";

export const PURPOSES = ["essential", "analytics", "personalisation"];
export const OPTIONAL = ["analytics", "personalisation"];
const VISITOR_COOKIE = "upg_visitor";
const VISITOR_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

register({
  "pt-BR": {
    "consent.purpose.essential": "Essenciais",
    "consent.purpose.analytics": "Estatísticas de uso",
    "consent.purpose.personalisation": "Personalização",
    "consent.desc.essential": "Necessários para entrar, manter a sua sessão segura e lembrar as suas escolhas. Sempre ativos.",
    "consent.desc.analytics": "Medem como a plataforma é usada, para melhorá-la.",
    "consent.desc.personalisation": "Adaptam o conteúdo às suas preferências.",
    "banner.title": "Cookies",
    "banner.text": "Usamos cookies essenciais para o site funcionar. Com a sua permissão, usamos também cookies de estatísticas de uso e de personalização. Você pode mudar de ideia a qualquer momento.",
    "banner.policy": "Leia a política de privacidade",
    "banner.acceptAll": "Aceitar todos",
    "banner.rejectOptional": "Recusar opcionais",
    "banner.choose": "Escolher",
    "banner.save": "Salvar minhas escolhas",
    "banner.legend": "Finalidades dos cookies",
    "banner.saved": "Sua escolha foi registrada.",
    "banner.failed": "Não foi possível registrar a sua escolha: {error}",
    "consent.noPolicy": "Ainda não há uma política de privacidade publicada: não há como registrar uma escolha.",
  },
  en: {
    "consent.purpose.essential": "Essential",
    "consent.purpose.analytics": "Usage statistics",
    "consent.purpose.personalisation": "Personalisation",
    "consent.desc.essential": "Needed to sign in, keep your session safe and remember your choices. Always on.",
    "consent.desc.analytics": "Measure how the platform is used, to improve it.",
    "consent.desc.personalisation": "Adapt content to your preferences.",
    "banner.title": "Cookies",
    "banner.text": "We use essential cookies to make the site work. With your permission we also use usage-statistics and personalisation cookies. You can change your mind at any time.",
    "banner.policy": "Read the privacy policy",
    "banner.acceptAll": "Accept all",
    "banner.rejectOptional": "Reject optional",
    "banner.choose": "Choose",
    "banner.save": "Save my choices",
    "banner.legend": "Cookie purposes",
    "banner.saved": "Your choice was recorded.",
    "banner.failed": "Your choice could not be recorded: {error}",
    "consent.noPolicy": "No privacy policy has been published yet: a choice cannot be recorded.",
  },
});

// -- the visitor id ----------------------------------------------------------------------------------------

export function visitorId() {
  const match = document.cookie.match(/(?:^|;\s*)upg_visitor=([^;]+)/);
  const value = match ? decodeURIComponent(match[1]) : null;
  return value && VISITOR_RE.test(value) ? value : null;
}

function keepVisitorId(id) {
  if (!id || !VISITOR_RE.test(id)) return;
  document.cookie = `${VISITOR_COOKIE}=${id}; Path=/app; Max-Age=31536000; SameSite=Strict; Secure`;
}

function forgetVisitorId() {
  document.cookie = `${VISITOR_COOKIE}=; Path=/app; Max-Age=0; SameSite=Strict; Secure`;
}

// -- the policy version and the state ------------------------------------------------------------------------

let policyPromise = null;

/** The policy version in effect (a string), or null when none is published. */
export function currentPolicyVersion() {
  if (!policyPromise) {
    policyPromise = api("GET", "/v1/privacy/policies/current").then((p) => p.version, (error) => {
      policyPromise = null;
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    });
  }
  return policyPromise;
}

async function asUser() {
  const session = await currentSession();
  return Boolean(session) && can("privacy.self");
}

/** The recorded choice: {holder_kind, purposes, policy_version, history[]} or null when nothing is recorded. */
export async function getState() {
  if (await asUser()) return api("GET", "/v1/privacy/consents");
  const id = visitorId();
  if (!id) return null;
  try {
    return await api("GET", "/v1/privacy/consents/visitor", { headers: { "Visitor-Id": id } });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 422 || error.status === 404)) {
      forgetVisitorId();  // not an id this API issued (or forgotten): start afresh
      return null;
    }
    throw error;
  }
}

/** Whether the state holds a choice made under the current policy version. */
export function chosen(state, version) {
  return Boolean(state && state.policy_version && state.policy_version === version &&
    (state.history ? state.history.length > 0 : true));
}

/** Record {analytics, personalisation} (essential is always true) with the policy version in effect. */
export async function record(optional) {
  const version = await currentPolicyVersion();
  if (!version) throw new Error(t("consent.noPolicy"));
  const purposes = { essential: true };
  for (const name of OPTIONAL) purposes[name] = Boolean(optional[name]);
  let state;
  if (await asUser()) {
    state = await api("PUT", "/v1/privacy/consents", { body: { purposes, policy_version: version } });
  } else {
    const body = { purposes, policy_version: version };
    const id = visitorId();
    if (id) body.visitor_id = id;
    try {
      state = await api("PUT", "/v1/privacy/consents/visitor", { body });
    } catch (error) {
      if (!(id && error instanceof ApiError && error.status === 422)) throw error;
      forgetVisitorId();  // an id the API no longer knows: get a new one
      delete body.visitor_id;
      state = await api("PUT", "/v1/privacy/consents/visitor", { body });
    }
    keepVisitorId(state.visitor_id);
  }
  hideBanner();
  for (const listener of listeners) listener(state);
  return state;
}

const listeners = new Set();
/** Be told of every recorded choice (the preferences page re-renders). Returns the unsubscribe function. */
export function onRecorded(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The checkboxes of the purposes (essential: disabled and checked). `values` the current purposes. */
export function purposeFields(prefix, values = {}) {
  return h("fieldset", {},
    h("legend", {}, t("banner.legend")),
    PURPOSES.map((name) => {
      const id = `${prefix}-${name}`;
      const essential = name === "essential";
      return h("div", { class: "check" },
        h("input", { type: "checkbox", id, name, checked: essential || Boolean(values[name]), disabled: essential,
          "aria-describedby": `${id}-desc` }),
        h("div", {},
          h("label", { for: id }, t(`consent.purpose.${name}`)),
          h("p", { class: "hint", id: `${id}-desc` }, t(`consent.desc.${name}`))));
    }));
}

export function readPurposes(form) {
  const values = {};
  for (const name of OPTIONAL) values[name] = Boolean(form.querySelector(`input[name="${name}"]`)?.checked);
  return values;
}

// -- the banner ----------------------------------------------------------------------------------------------

let bannerSlot = null;
let bannerOpen = false;
let bannerExpanded = false;

export function hideBanner() {
  bannerOpen = false;
  bannerExpanded = false;
  document.body.classList.remove("cookie-banner-open");
  if (bannerSlot) mount(bannerSlot);
}

/** Show the banner in `slot` when no choice is recorded for the current policy version. `force`: only
 *  re-render it if it is showing (after a language change). */
export async function renderBanner(slot, force) {
  bannerSlot = slot;
  if (force) {
    if (bannerOpen) drawBanner();
    return;
  }
  let version;
  let state;
  try {
    version = await currentPolicyVersion();
    if (!version) return;  // nothing to record a choice against
    state = await getState();
  } catch (error) {
    console.error(error);
    state = null;  // cannot tell: ask (a choice is recorded again, no harm)
    if (!version) return;
  }
  if (chosen(state, version)) return;
  bannerOpen = true;
  drawBanner();
}

function drawBanner() {
  if (!bannerSlot) return;
  document.body.classList.add("cookie-banner-open");
  const status = h("div", { class: "banner-status" });
  const act = (values) => async () => {
    for (const button of bannerSlot.querySelectorAll("button")) button.disabled = true;
    try {
      await record(values);
    } catch (error) {
      mount(status, notice(t("banner.failed", { error: error.message }), "error"));
      for (const button of bannerSlot.querySelectorAll("button")) button.disabled = false;
    }
  };
  const form = bannerExpanded ? h("form", {
    class: "banner-choices",
    onsubmit: (event) => { event.preventDefault(); act(readPurposes(event.target))(); },
  }, purposeFields("banner"), h("div", { class: "actions" }, h("button", { type: "submit" }, t("banner.save")))) : null;
  mount(bannerSlot,
    h("section", { class: "cookie-banner", "aria-labelledby": "cookie-banner-title" },
      h("div", { class: "inner" },
        h("h2", { id: "cookie-banner-title" }, t("banner.title")),
        h("p", {}, t("banner.text"), " ", h("a", { href: "/app/privacy" }, t("banner.policy"))),
        h("div", { class: "actions" },
          h("button", { type: "button", onclick: act({ analytics: true, personalisation: true }) }, t("banner.acceptAll")),
          h("button", { type: "button", onclick: act({ analytics: false, personalisation: false }) }, t("banner.rejectOptional")),
          h("button", {
            type: "button", "aria-expanded": bannerExpanded ? "true" : "false", "aria-controls": bannerExpanded ? "banner-choices" : null,
            onclick: () => {
              bannerExpanded = !bannerExpanded;
              drawBanner();
              bannerSlot.querySelector(bannerExpanded ? "#banner-analytics" : "button")?.focus();
            },
          }, t("banner.choose"))),
        form ? h("div", { id: "banner-choices" }, form) : null,
        status)));
}
