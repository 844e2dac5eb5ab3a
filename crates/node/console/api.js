// The console's one way to the HTTP API (docs/API.md): same-origin fetches with the API token
// as a bearer header, JSON bodies with their content type, and belfry's error shape turned into
// an ApiError. A 401 anywhere brings back the sign-in prompt.

const TOKEN_KEY = "belfry-token";

/** An error answer: `status`, and belfry's `code`, `message`, `field` (and batch `errors`). */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const detail = (body && body.error) || {};
    super(detail.message || fallback || `HTTP ${status}`);
    this.status = status;
    this.code = detail.code || (status === 0 ? "network" : "http");
    this.field = detail.field || null;
    this.errors = (body && body.errors) || [];
  }
}

let onUnauthenticated = () => {};

/** Sets what happens when the API refuses the token (the sign-in prompt). */
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls the API. `body` (any JSON value) is sent as `application/json`; without it the request
 * has neither body nor content type. Resolves to `{status, headers, data}`.
 */
export async function request(method, path, { body, headers = {}, signal, quiet401 = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal, credentials: "omit", cache: "no-store" };
  const t = token();
  if (t) init.headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, null, "the node did not answer (network error): is it running?");
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = new ApiError(response.status, data, `${response.status} ${response.statusText}`.trim());
    if (response.status === 401 && !quiet401) onUnauthenticated(err);
    throw err;
  }
  return { status: response.status, headers: response.headers, data };
}

export const get = async (path, opts) => (await request("GET", path, opts)).data;
export const post = async (path, body, opts) => (await request("POST", path, { ...opts, body })).data;
export const del = async (path, opts) => (await request("DELETE", path, opts)).data;

/** A query string from `params`, leaving out empty values ("" when none remain). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** A path segment for a job name or fire key. */
export const seg = (value) => encodeURIComponent(value);
