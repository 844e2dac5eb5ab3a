// Notices, the confirmation dialog and the wording of API errors, shared by every page.

import { h, mount } from "./dom.js";

/** What a person should read for an API error. */
export function describeError(err) {
  if (!err) return "unknown error";
  if (err.status === 403) return `Your token's role may not do this: ${err.message}`;
  if (err.status === 401) return `Your token was refused: ${err.message}`;
  if (err.status === 429) return `Too many requests, try again in a moment: ${err.message}`;
  if (err.status === 503) return `The cluster cannot answer right now: ${err.message}`;
  return err.message || String(err);
}

const area = () => document.getElementById("notice");

/**
 * Shows a notice at the top of the page. `tone` is ok, error or info; `extra` is appended
 * (a link, a button). Notices stay until the next navigation or the next notice.
 */
export function notify(text, tone = "info", extra = null, attrs = {}) {
  const close = h("button", { type: "button", class: "notice-close", "aria-label": "Dismiss", onclick: () => clearNotice() }, "×");
  mount(area(), h("div", { class: `notice notice-${tone}`, "data-test": "notice", dataset: { tone }, ...attrs },
    h("span", { class: "notice-text" }, text), extra ? h("span", { class: "notice-extra" }, extra) : null, close));
}

export function notifyError(err, prefix = "") {
  notify(prefix ? `${prefix}: ${describeError(err)}` : describeError(err), "error");
}

export function clearNotice() {
  area().replaceChildren();
}

/**
 * Asks for confirmation in a modal dialog. Resolves to true when confirmed. `danger` styles
 * the confirming button as destructive; `warning` is an extra highlighted paragraph.
 */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false, warning = null }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "dialog", id: "confirm-dialog", "aria-labelledby": "confirm-title" });
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const ok = h("button", { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary", id: "confirm-ok", onclick: () => finish(true) }, confirmLabel);
    const cancel = h("button", { type: "button", class: "btn", id: "confirm-cancel", onclick: () => finish(false) }, "Cancel");
    mount(dialog,
      h("h2", { id: "confirm-title" }, title),
      h("p", { class: "dialog-message" }, message),
      warning ? h("p", { class: "dialog-warning", id: "confirm-warning" }, warning) : null,
      h("div", { class: "dialog-actions" }, cancel, ok));
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    (danger ? cancel : ok).focus();
  });
}

/**
 * Runs `action` with `button` disabled meanwhile; an error becomes a notice. Resolves to the
 * action's result, or undefined after an error.
 */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (err) {
    if (err.status !== 401) notifyError(err);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/** A loading line or an error box for a region that could not load. */
export function loadingLine(text = "Loading…") {
  return h("p", { class: "muted loading" }, text);
}

export function errorBox(err, attrs = {}) {
  return h("div", { class: "error-box", role: "alert", ...attrs }, describeError(err));
}

/** Previous/Next paging over opaque cursors: a stack of the cursors of the pages behind. */
export class CursorPager {
  constructor() {
    this.reset();
  }

  reset() {
    this.stack = [null];
    this.next = null;
  }

  get cursor() {
    return this.stack[this.stack.length - 1];
  }

  get page() {
    return this.stack.length;
  }

  get hasPrevious() {
    return this.stack.length > 1;
  }

  get hasNext() {
    return Boolean(this.next);
  }

  forward() {
    if (this.next) this.stack.push(this.next);
  }

  back() {
    if (this.stack.length > 1) this.stack.pop();
  }

  /** Previous/Next buttons and a page label; `load` is called after each move. */
  controls(load, idPrefix) {
    const prev = h("button", { type: "button", class: "btn", id: `${idPrefix}-prev`, disabled: !this.hasPrevious, onclick: () => { this.back(); load(); } }, "← Previous");
    const next = h("button", { type: "button", class: "btn", id: `${idPrefix}-next`, disabled: !this.hasNext, onclick: () => { this.forward(); load(); } }, "Next →");
    const label = h("span", { class: "pager-label", id: `${idPrefix}-page`, dataset: { page: String(this.page) } }, `Page ${this.page}`);
    return h("div", { class: "pager" }, prev, label, next);
  }
}
