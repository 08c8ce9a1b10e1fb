// The console's calls to the public API: same-origin, session cookie plus the page's CSRF token.
// Errors come back as the API's envelope; ApiError carries its code and message for the page to show.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export async function api(method, path, { json, body, raw = false } = {}) {
  const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/octet-stream";
  }
  let response;
  try {
    response = await fetch(`/api/v1/${path}`, { method, headers, body, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "network_error", `The server could not be reached (${err.message}).`);
  }
  if (!response.ok) {
    let error = { code: `http_${response.status}`, message: `${method} ${path} failed with ${response.status}.` };
    try {
      const payload = await response.json();
      if (payload && payload.error) error = payload.error;
    } catch {
      // not JSON: keep the generic message
    }
    throw new ApiError(response.status, error.code, error.message, error.details);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export function describe(err) {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return String(err && err.message ? err.message : err);
}

export function humanBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
