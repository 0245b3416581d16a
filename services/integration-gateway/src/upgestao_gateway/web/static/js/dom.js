// dom.js: build elements without innerHTML, so no data from the API is ever parsed as HTML.
//   h("p", {class: "note"}, "text", h("strong", {}, name))
// Attributes: strings (or true for a bare attribute); "on<event>" keys take listeners;
// children: strings, numbers, nodes, arrays of them, null/undefined/false (skipped).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Append `children` to `el` as h() takes them (null/false skipped, arrays flattened), unlike el.append. */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** A table in a horizontally scrollable box reachable by keyboard (named, so it is announced): axe's
 *  scrollable-region-focusable on a phone-sized screen. */
export function tableWrap(label, table) {
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": label }, table);
}

/** Replace everything inside `el` with `children`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form field: label + control + hint + error slot, wired with for/id and aria-describedby. */
export function field({ id, label, control, hint }) {
  control.id = id;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    control,
    h("p", { class: "field-error", id: errorId, role: "alert", hidden: true }));
}

/** Show the problem+json `errors` next to their fields (data-field="<api field>" on the control). */
export function showFieldErrors(form, problem) {
  for (const el of form.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  let first = null;
  for (const error of (problem && problem.errors) || []) {
    const control = form.querySelector(`[data-field="${CSS.escape(error.field)}"]`);
    if (!control) continue;
    control.setAttribute("aria-invalid", "true");
    const slot = document.getElementById(`${control.id}-error`);
    if (slot) { slot.textContent = error.message; slot.hidden = false; }
    first = first || control;
  }
  if (first) first.focus();
  return first !== null;
}

/** A status message region (polite live region). */
export function notice(text, kind = "info") {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function formatDate(iso, lang) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
}

export function formatDay(iso, lang) {
  if (!iso) return "";
  const date = new Date(iso.length === 10 ? `${iso}T00:00:00` : iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleDateString(lang, { dateStyle: "medium" });
}
