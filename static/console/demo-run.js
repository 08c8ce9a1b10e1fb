// The dashboard's "run this" box: one REST run (wait=true) in the playground's sandbox, or a new one.
import { api, describe } from "./api.js";

const STORE = "mem0.playground";
const form = document.getElementById("demo-run");
const out = document.getElementById("demo-output");

async function sandbox() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(STORE) || "{}") || {};
  } catch {
    saved = {};
  }
  if (saved.sandbox) {
    try {
      const existing = await api("GET", `sandboxes/${encodeURIComponent(saved.sandbox)}`);
      if (existing.state === "running") return existing;
    } catch {
      // gone: make another
    }
  }
  const created = await api("POST", "sandboxes", { json: { runtime: "python", metadata: { source: "playground" } } });
  localStorage.setItem(STORE, JSON.stringify({ sandbox: created.id, runtime: created.runtime }));
  return created;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  out.classList.remove("bad");
  out.textContent = "running…";
  try {
    const box = await sandbox();
    const run = await api("POST", `sandboxes/${encodeURIComponent(box.id)}/executions`,
      { json: { code: form.elements.code.value, wait: true } });
    out.textContent = `${run.stdout}${run.stderr}` || `(no output; ${run.status})`;
  } catch (err) {
    out.classList.add("bad");
    out.textContent = describe(err);
  } finally {
    button.disabled = false;
  }
});
document.body.dataset.ready = "dashboard";
