// Create (/new-job) and edit (/jobs/{name}/edit): the fields or the raw JSON, a live preview of
// the schedule (debounced POST /v1/schedule/preview), and the server's validation errors shown
// at the field they name. An edit sends If-Match with the version it was read at.

import * as api from "./api.js";
import { h, mount, localTime, utcTime, debounce, pretty } from "./dom.js";
import { notify, describeError, loadingLine } from "./ui.js";
import { buildFields, slotFor, showFieldError, clearFieldErrors } from "./form-fields.js";
import { specOf } from "./page-job.js";

const PREVIEW_COUNT = 5;
const PREVIEW_DELAY_MS = 350;

const NEW_JOB = {
  name: "",
  schedule: { cron: "" },
  target: { url: "", method: "POST" },
  overlap: "allow",
  misfire: { policy: "fire_once" },
  paused: false,
};

export async function renderJobForm(root, ctx, name) {
  const editing = name !== null;
  ctx.setTitle(editing ? `Edit ${name}` : "New job");
  let version = null;
  let initial = NEW_JOB;
  if (editing) {
    mount(root, loadingLine());
    const res = await api.request("GET", `/v1/jobs/${api.seg(name)}`, { signal: ctx.signal });
    initial = specOf(res.data);
    version = etagVersion(res.headers.get("ETag")) ?? res.data.version;
  }

  const fields = buildFields({ editing });
  const formError = h("div", { class: "error-box", id: "form-error", role: "alert", hidden: true });
  const conflict = h("div", { class: "error-box", id: "version-conflict", role: "alert", hidden: true });
  const json = h("textarea", { id: "f-json", class: "code", rows: 28, spellcheck: "false", "aria-label": "Job spec as JSON" });
  const jsonError = h("p", { class: "field-error", id: "json-error", role: "alert", hidden: true });
  const formPane = h("div", { class: "pane", id: "pane-form" }, fields.groups);
  const jsonPane = h("div", { class: "pane", id: "pane-json", hidden: true },
    h("p", { class: "hint" }, "The spec exactly as it will be sent. Edits here apply when you save, or when you go back to the fields."),
    json, jsonError);
  const tabForm = h("button", { type: "button", class: "tab", id: "tab-form", "aria-selected": "true", role: "tab" }, "Fields");
  const tabJson = h("button", { type: "button", class: "tab", id: "tab-json", "aria-selected": "false", role: "tab" }, "JSON");
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "job-submit" }, editing ? "Save changes" : "Create job");
  const cancel = h("a", { class: "btn", id: "job-cancel", href: editing ? `/jobs/${api.seg(name)}` : "/" }, "Cancel");
  const preview = h("div", { class: "preview", id: "schedule-preview", dataset: { state: "empty" } });

  const form = h("form", { id: "job-form", class: "job-form", novalidate: true },
    formError, conflict,
    h("div", { class: "tabs", role: "tablist" }, tabForm, tabJson),
    formPane, jsonPane,
    h("div", { class: "form-actions sticky-actions" }, cancel, submit));

  mount(root,
    h("div", { class: "page-head" },
      h("div", {},
        h("div", { class: "crumbs" }, h("a", { href: "/" }, "Jobs"), " / ", editing ? [h("a", { href: `/jobs/${api.seg(name)}` }, name), " / "] : null),
        h("h1", {}, editing ? `Edit ${name}` : "New job"),
        editing ? h("p", { class: "muted" }, `Editing version ${version}. Saving fails, without changing anything, if someone else changed the job meanwhile.`) : null)),
    h("div", { class: "form-layout" }, form, h("aside", { class: "card preview-card" }, h("h2", {}, "Schedule preview"), preview)));

  fields.fill(initial);
  const onJson = () => !jsonPane.hidden;

  // Tabs: the JSON is generated from the fields, and read back into them.
  tabJson.addEventListener("click", () => {
    json.value = pretty(fields.read());
    jsonError.hidden = true;
    select(true);
  });
  tabForm.addEventListener("click", () => {
    const spec = parseJson();
    if (!spec) return;
    fields.fill(spec);
    select(false);
    schedulePreview();
  });
  function select(toJson) {
    jsonPane.hidden = !toJson;
    formPane.hidden = toJson;
    tabJson.setAttribute("aria-selected", String(toJson));
    tabForm.setAttribute("aria-selected", String(!toJson));
  }
  function parseJson() {
    try {
      const spec = JSON.parse(json.value);
      if (!spec || typeof spec !== "object" || Array.isArray(spec)) throw new Error("the spec must be a JSON object");
      jsonError.hidden = true;
      return spec;
    } catch (e) {
      jsonError.textContent = `Not valid JSON: ${e.message}`;
      jsonError.hidden = false;
      return null;
    }
  }

  // Live preview of the schedule.
  let previewSeq = 0;
  async function runPreview() {
    const schedule = onJson() ? (parseJson() || {}).schedule : fields.readSchedule();
    const mine = ++previewSeq;
    const main = schedule && (schedule.cron || schedule.every || schedule.at);
    if (!main) {
      clearFieldErrors(form, "schedule");
      preview.dataset.state = "empty";
      mount(preview, h("p", { class: "muted" }, "Enter a cron expression, a period or an instant to see the next fires."));
      return;
    }
    preview.dataset.state = "loading";
    preview.setAttribute("aria-busy", "true");
    try {
      const out = await api.post("/v1/schedule/preview", { schedule, count: PREVIEW_COUNT }, { signal: ctx.signal });
      if (mine !== previewSeq) return;
      clearFieldErrors(form, "schedule");
      syncFormError();
      mount(preview,
        h("p", { class: "description", id: "preview-description" }, out.description || ""),
        out.instants.length
          ? h("ol", { class: "instants", id: "preview-instants" }, out.instants.map((iso) => h("li", {}, h("span", {}, localTime(iso)), h("span", { class: "muted" }, utcTime(iso)))))
          : h("p", { class: "muted", id: "preview-instants" }, "No upcoming instant: this schedule never fires again."));
      preview.dataset.state = "ok";
    } catch (err) {
      if (mine !== previewSeq || err.name === "AbortError" || err.status === 401) return;
      clearFieldErrors(form, "schedule");
      const slot = err.field ? slotFor(form, err.field) : null;
      if (slot && err.status === 400) showFieldError(form, slot, err.message);
      mount(preview, h("p", { class: "field-error", id: "preview-error" }, describeError(err)));
      preview.dataset.state = "error";
    } finally {
      if (mine === previewSeq) preview.removeAttribute("aria-busy");
    }
  }
  // A field's error goes once the field is edited; the banner pointing at it goes with the last one.
  form.addEventListener("input", (e) => {
    const path = e.target.closest("[data-field]")?.dataset.field;
    if (path && !path.startsWith("schedule")) clearFieldErrors(form, path);
    syncFormError();
  });
  function syncFormError() {
    if (formError.dataset.kind === "field" && !form.querySelector("[data-error-for]:not([hidden])")) formError.hidden = true;
  }
  const schedulePreview = debounce(runPreview, PREVIEW_DELAY_MS);
  fields.scheduleGroup.addEventListener("input", schedulePreview);
  fields.scheduleGroup.addEventListener("change", schedulePreview);
  json.addEventListener("input", schedulePreview);
  runPreview();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const spec = onJson() ? parseJson() : fields.read();
    if (!spec) return;
    clearFieldErrors(form);
    formError.hidden = true;
    conflict.hidden = true;
    submit.disabled = true;
    try {
      const res = editing
        ? await api.request("PUT", `/v1/jobs/${api.seg(name)}`, { body: spec, headers: { "If-Match": `"${version}"` } })
        : await api.request("POST", "/v1/jobs", { body: spec });
      ctx.navigate(`/jobs/${api.seg(res.data.name)}`);
      notify(editing ? `Saved ${res.data.name} (version ${res.data.version}).` : `Created ${res.data.name}.`, "ok");
    } catch (err) {
      if (err.status === 401) return;
      showSubmitError(err);
    } finally {
      submit.disabled = false;
    }
  });

  function showSubmitError(err) {
    if (err.status === 409 && err.code === "version_mismatch") {
      mount(conflict,
        h("strong", {}, "Someone else changed this job since you opened it. "),
        `Nothing was saved (${err.message}). `,
        h("a", { href: `/jobs/${api.seg(name)}/edit`, id: "reload-job" }, "Reload the latest version"),
        " and apply your change again.");
      conflict.hidden = false;
      conflict.scrollIntoView({ block: "center" });
      return;
    }
    const path = err.code === "already_exists" ? "name" : err.field;
    const slot = path && !onJson() ? slotFor(form, path) : null;
    if (slot) {
      const control = showFieldError(form, slot, err.message);
      (control || slot).scrollIntoView({ block: "center" });
      if (control && control.focus) control.focus({ preventScroll: true });
      mount(formError, "The cluster refused the job: see the field marked below.");
      formError.dataset.kind = "field";
      formError.hidden = false;
      return;
    }
    mount(formError, err.field ? `${err.field}: ${describeError(err)}` : describeError(err));
    formError.dataset.kind = "general";
    formError.hidden = false;
    formError.scrollIntoView({ block: "center" });
  }
}

/** The version in an ETag (`"3"`, `W/"3"`), or null. */
function etagVersion(etag) {
  const m = etag && etag.match(/^(?:W\/)?"?(\d+)"?$/);
  return m ? Number(m[1]) : null;
}
