// api.js: the one door to the gateway's JSON API for every page.
// - the web session is an HttpOnly cookie the gateway sets (POST /app/session); this code never sees a token;
// - every state change carries the session's CSRF token in X-CSRF-Token (the gateway refuses it otherwise);
// - an expired session is refreshed once (POST /app/session/refresh) and the request retried;
// - a problem+json answer becomes an ApiError carrying the problem (status, title, detail, errors[]).

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

let session = null;          // {user, csrf_token, expires_at} or null when signed out
let sessionLoaded = null;    // the promise of the first GET /app/session

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

async function send(method, path, { body, headers = {}, raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json, application/problem+json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (UNSAFE.has(method) && session) init.headers["X-CSRF-Token"] = session.csrf_token;
  const response = await fetch(path, init);
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

/** Call the API: api("GET", "/v1/me"); api("POST", "/v1/privacy/corrections", {body}). */
export async function api(method, path, options = {}) {
  try {
    return await send(method, path, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && session && !options.noRefresh) {
      if (await refresh()) return send(method, path, options);
      session = null;
    }
    throw error;
  }
}

/** The web session (loaded once per page view): {user, csrf_token, expires_at} or null. */
export function currentSession() {
  if (!sessionLoaded) {
    sessionLoaded = send("GET", "/app/session").then((s) => (session = s), async (error) => {
      if (error instanceof ApiError && error.status === 401 && (await refresh())) return session;
      session = null;
      return null;
    });
  }
  return sessionLoaded;
}

async function refresh() {
  try {
    session = await send("POST", "/app/session/refresh");
    return true;
  } catch {
    return false;
  }
}

export async function signIn(email, password) {
  session = await send("POST", "/app/session", { body: { email, password } });
  sessionLoaded = Promise.resolve(session);
  return session;
}

export async function signOut() {
  // through api(): after an idle spell the access cookie has expired, and a 401 must refresh and retry, or the
  // cookies would stay and the next page load would sign the person back in
  try { await api("DELETE", "/app/session"); } finally {
    session = null;
    sessionLoaded = Promise.resolve(null);
  }
}

/** Whether the signed-in user holds `permission` (the session lists the role's permissions). */
export function can(permission) {
  return Boolean(session && session.user && (session.user.permissions || []).includes(permission));
}
