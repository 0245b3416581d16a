// Sign in: e-mail + password -> signIn() (POST /app/session sets the HttpOnly session cookie), then back to
// `next` -- only a path of this app (/app/...), never another origin.
import { signIn, ApiError } from "../api.js";
import { add, h, mount, field, notice, showFieldErrors } from "../dom.js";
import { t, register } from "../i18n.js";

register({
  "pt-BR": {
    "login.title": "Entrar",
    "login.lead": "Entre com a sua conta da UpGestão para ver e corrigir os seus dados.",
    "login.email": "E-mail",
    "login.password": "Senha",
    "login.submit": "Entrar",
    "login.busy": "Entrando…",
    "login.invalid": "E-mail ou senha incorretos.",
    "login.throttled": "Muitas tentativas sem sucesso: por segurança, o acesso está bloqueado por {minutes} minuto(s). Tente de novo depois.",
    "login.throttledSoon": "Muitas tentativas sem sucesso: tente de novo mais tarde.",
    "login.refused": "Esta conta não pode entrar agora (bloqueada ou desativada). Fale com o administrador.",
    "login.unavailable": "O serviço está ocupado. Tente de novo em instantes.",
    "login.required": "Preencha o e-mail e a senha.",
    "login.already": "Você já está conectado.",
    "login.continue": "Continuar",
    "login.forgot": "Não é usuário da plataforma? Use o formulário de contato.",
  },
  en: {
    "login.title": "Sign in",
    "login.lead": "Sign in with your UpGestão account to see and correct your data.",
    "login.email": "E-mail",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.busy": "Signing in…",
    "login.invalid": "The e-mail or the password is wrong.",
    "login.throttled": "Too many failed attempts: for your safety, signing in is blocked for {minutes} minute(s). Try again later.",
    "login.throttledSoon": "Too many failed attempts: try again later.",
    "login.refused": "This account cannot sign in now (locked or deactivated). Contact your administrator.",
    "login.unavailable": "The service is busy. Try again in a moment.",
    "login.required": "Fill in the e-mail and the password.",
    "login.already": "You are signed in already.",
    "login.continue": "Continue",
    "login.forgot": "Not a user of the platform? Use the contact form.",
  },
});

export const access = "public";
export const titleKey = "login.title";

/** `next` if it is a path of this app (same origin, under /app/), else /app/me. */
export function safeNext(next) {
  const fallback = "/app/me";
  if (typeof next !== "string" || !next.startsWith("/app") || next.startsWith("//") || next.includes("\\")) return fallback;
  try {
    const url = new URL(next, location.origin);
    if (url.origin !== location.origin) return fallback;
    if (!(url.pathname === "/app" || url.pathname.startsWith("/app/")) || url.pathname.startsWith("/app/login")) return fallback;
    return url.pathname + url.search + url.hash;
  } catch {
    return fallback;
  }
}

export default async function render(main, ctx) {
  const next = safeNext(ctx.query.get("next"));
  add(main, h("h1", {}, t("login.title")));
  if (ctx.session) {
    add(main, notice(t("login.already"), "ok"), h("p", {}, h("a", { href: next }, t("login.continue"))));
    return;
  }
  const status = h("div", {});
  const form = h("form", { novalidate: true },
    field({ id: "login-email", label: t("login.email"),
      control: h("input", { type: "email", name: "email", "data-field": "email", autocomplete: "username", required: true, maxlength: 254 }) }),
    field({ id: "login-password", label: t("login.password"),
      control: h("input", { type: "password", name: "password", "data-field": "password", autocomplete: "current-password", required: true, maxlength: 1024 }) }),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("login.submit"))));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    showFieldErrors(form, { errors: [] });
    mount(status);
    if (!email || !password) {
      mount(status, notice(t("login.required"), "error"));
      (email ? form.elements.password : form.elements.email).focus();
      return;
    }
    button.disabled = true;
    button.textContent = t("login.busy");
    try {
      await signIn(email, password);
      await ctx.navigate(next, { replace: true });
    } catch (error) {
      button.disabled = false;
      button.textContent = t("login.submit");
      form.elements.password.value = "";
      let text;
      if (!(error instanceof ApiError)) text = t("error.network");
      else if (error.status === 401) text = t("login.invalid");
      else if (error.status === 429) {
        const seconds = Number(error.problem.retry_after);
        text = seconds > 0 ? t("login.throttled", { minutes: Math.max(1, Math.ceil(seconds / 60)) }) : t("login.throttledSoon");
      } else if (error.status === 403 || error.status === 409 || error.status === 423) text = t("login.refused");
      else if (error.status === 503) text = t("login.unavailable");
      else if (error.status === 422 && showFieldErrors(form, error.problem)) text = null;
      else text = error.message;
      if (text) mount(status, notice(text, "error"));
      if (error instanceof ApiError && error.status === 401) form.elements.password.focus();
    }
  });

  add(main, h("p", {}, t("login.lead")), form,
    h("p", { class: "hint" }, h("a", { href: "/app/contact" }, t("login.forgot"))));
}
