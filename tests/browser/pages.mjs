// pages.mjs: every page of the privacy centre (the route table of web/static/js/app.js), for the accessibility
// and CSP scenarios and for the screenshots (screens.mjs). `who`: null (a visitor), "attendant" or "dpo";
// `path` may need ids the caller made through the API (UPG_IDS: {policyVersion, contactRequestId, requestId,
// incidentId}); a page whose id is missing is skipped and said so.

export const PAGES = [
  { name: "home", who: null, path: () => "/app/" },
  { name: "policy", who: null, path: () => "/app/privacy" },
  { name: "policy-version", who: null, path: (ids) => ids.policyVersion && `/app/privacy/versions/${encodeURIComponent(ids.policyVersion)}` },
  { name: "cookies", who: null, path: () => "/app/cookies" },
  { name: "contact", who: null, path: () => "/app/contact" },
  { name: "contact-status", who: null, path: (ids) => ids.contactRequestId && `/app/contact/${ids.contactRequestId}` },
  { name: "login", who: null, path: () => "/app/login" },
  { name: "me", who: "attendant", path: () => "/app/me" },
  { name: "me-requests", who: "attendant", path: () => "/app/me/requests" },
  { name: "me-access", who: "attendant", path: () => "/app/me/access" },
  { name: "me-consents", who: "attendant", path: () => "/app/me/consents" },
  { name: "me-policy", who: "attendant", path: () => "/app/me/policy" },
  { name: "dpo-requests", who: "dpo", path: () => "/app/dpo" },
  { name: "dpo-request", who: "dpo", path: (ids) => ids.requestId && `/app/dpo/requests/${ids.requestId}` },
  { name: "dpo-corrections", who: "dpo", path: () => "/app/dpo/corrections" },
  { name: "dpo-incidents", who: "dpo", path: () => "/app/dpo/incidents" },
  { name: "dpo-incident", who: "dpo", path: (ids) => ids.incidentId && `/app/dpo/incidents/${ids.incidentId}` },
  { name: "dpo-audit", who: "dpo", path: () => "/app/dpo/audit" },
];

export function ids() {
  try {
    return JSON.parse(process.env.UPG_IDS || "{}");
  } catch {
    return {};
  }
}

/** Whose pages to visit: UPG_WHO (a comma list of visitor, attendant, dpo; default all three). */
export function personas() {
  const chosen = (process.env.UPG_WHO || "visitor,attendant,dpo").split(",").map((w) => w.trim());
  return [null, "attendant", "dpo"].filter((who) => chosen.includes(who || "visitor"));
}
