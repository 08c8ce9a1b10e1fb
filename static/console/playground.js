// The playground: pick a runtime, edit, run with live output over /ws/sandboxes/{id}/, stop, fork,
// snapshot, restore and browse the workspace. Everything goes through the public API and websocket.
// Sandbox output is only ever put into the page as text (textContent), images as data: URLs of a fixed
// image type, and HTML results inside an iframe with an empty sandbox attribute (no scripts, no origin).
import { createEditor } from "../vendor/codemirror.js";
import { api, describe, humanBytes } from "./api.js";

const $ = (id) => document.getElementById(id);
const STORE = "mem0.playground";
const OUTPUT_CHARS = 2_000_000; // the page keeps at most this much output text per run
const SAMPLES = {
  python: 'import time\nfor i in range(5):\n    print("line", i, flush=True)\n    time.sleep(0.5)\nprint(6 * 7)\n',
  node: 'for (let i = 0; i < 5; i++) console.log("line", i);\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello from Go")\n}\n',
};

const state = { sandbox: null, socket: null, socketReady: null, execution: null, outputChars: 0, cwd: "" };

function remember() {
  const saved = { sandbox: state.sandbox ? state.sandbox.id : null, runtime: $("runtime").value };
  localStorage.setItem(STORE, JSON.stringify(saved));
}

function recalled() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || "{}") || {};
  } catch {
    return {};
  }
}

function codeKey(runtime) {
  return `${STORE}.code.${runtime}`;
}

function showAlert(message, kind = "error") {
  const box = $("alert");
  box.textContent = message;
  box.className = `notice ${kind === "error" ? "error" : ""}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = false;
}

function clearAlert() {
  $("alert").hidden = true;
}

function setStatus(text) {
  const el = $("status");
  el.textContent = text;
  el.className = `state state-${text}`;
}

function setSandbox(sandbox) {
  state.sandbox = sandbox;
  if (state.socket) {
    state.socket.close();
    state.socket = null;
    state.socketReady = null;
  }
  const live = Boolean(sandbox && sandbox.state === "running");
  $("sandbox-id").textContent = sandbox ? sandbox.id : "none yet";
  $("sandbox-link").href = sandbox ? `/sandboxes/${sandbox.id}` : "#";
  $("sandbox-state").textContent = sandbox ? sandbox.state : "";
  $("sandbox-state").className = sandbox ? `state state-${sandbox.state}` : "state";
  for (const id of ["fork", "snapshot", "files-refresh", "upload"]) $(id).disabled = !live;
  $("upload-label").classList.toggle("disabled", !live);
  if (sandbox && $("runtime").value !== sandbox.runtime) {
    $("runtime").value = sandbox.runtime;
    editor.setRuntime(sandbox.runtime);
  }
  remember();
  state.cwd = "";
  if (live) {
    listFiles();
    listSnapshots();
  } else {
    renderFiles(null);
  }
}

async function loadRuntimes() {
  const select = $("runtime");
  try {
    const { runtimes } = await api("GET", "runtimes");
    select.replaceChildren();
    for (const rt of runtimes) {
      const option = new Option(rt.available ? rt.name : `${rt.name} (unavailable)`, rt.name);
      option.disabled = !rt.available;
      option.title = rt.description || "";
      select.append(option);
    }
  } catch (err) {
    showAlert(`Could not load the runtimes: ${describe(err)}`);
  }
}

async function restoreSavedSandbox() {
  const { sandbox: id, runtime } = recalled();
  if (runtime && [...$("runtime").options].some((o) => o.value === runtime)) $("runtime").value = runtime;
  if (!id) return;
  try {
    const sandbox = await api("GET", `sandboxes/${encodeURIComponent(id)}`);
    setSandbox(sandbox.state === "running" ? sandbox : null);
  } catch {
    setSandbox(null); // gone or another organisation's: start afresh
  }
}

async function ensureSandbox() {
  const runtime = $("runtime").value;
  if (state.sandbox && state.sandbox.state === "running" && state.sandbox.runtime === runtime) return state.sandbox;
  setStatus("starting");
  const sandbox = await api("POST", "sandboxes", { json: { runtime, metadata: { source: "playground" } } });
  setSandbox(sandbox);
  return sandbox;
}

function socketFor(sandbox) {
  if (state.socket && state.socket.readyState <= WebSocket.OPEN) return state.socketReady;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sandboxes/${encodeURIComponent(sandbox.id)}/`);
  state.socket = socket;
  state.socketReady = new Promise((resolve, reject) => {
    socket.addEventListener("open", () => resolve(socket), { once: true });
    socket.addEventListener("close", (event) => reject(new Error(`the websocket closed (${event.code})`)), { once: true });
  });
  socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (state.execution || $("run").disabled) finishRun();
    if (event.code === 4404) {
      showAlert("This sandbox no longer exists; the next run starts a new one.");
      setSandbox(null);
    } else if (event.code >= 4000) {
      showAlert(`The server closed the output stream (code ${event.code}).`);
    }
  });
  return state.socketReady;
}

function appendOutput(stream, text) {
  const out = $("output");
  if (state.outputChars > OUTPUT_CHARS) return;
  state.outputChars += text.length;
  const span = document.createElement("span");
  span.className = stream === "stderr" ? "stderr" : "stdout";
  span.textContent = state.outputChars > OUTPUT_CHARS ? `${text}\n[the page shows no more of this run's output]\n` : text;
  out.append(span);
  out.scrollTop = out.scrollHeight;
}

function onMessage(message) {
  if (message.error) {
    showAlert(`${message.error.message} (${message.error.code})`);
    finishRun();
    return;
  }
  if (message.type === "started") {
    state.execution = message.execution_id;
    setStatus("running");
    $("stop").disabled = false;
  } else if (message.type === "exit") {
    setStatus(message.status || "finished");
    showDetails(message.execution_id || state.execution);
    finishRun();
  } else if (typeof message.data === "string") {
    appendOutput(message.stream, message.data);
  }
}

function finishRun() {
  state.execution = null;
  $("run").disabled = false;
  $("stop").disabled = true;
  if (state.sandbox) listFiles();
}

async function showDetails(executionId) {
  if (!executionId) return;
  try {
    const e = await api("GET", `executions/${encodeURIComponent(executionId)}`);
    const parts = [];
    if (e.exit_code !== null && e.exit_code !== undefined) parts.push(`exit ${e.exit_code}`);
    if (e.wall_ms !== null) parts.push(`${e.wall_ms.toFixed(1)} ms wall`);
    if (e.cpu_ms !== null) parts.push(`${e.cpu_ms.toFixed(1)} ms CPU`);
    if (e.peak_memory_bytes) parts.push(`${humanBytes(e.peak_memory_bytes)} peak`);
    $("timings").textContent = parts.join(" · ");
    $("limit").textContent = e.limit ? `limit hit: ${e.limit}` : "";
    renderResults(e.results || [], e.error || null);
  } catch (err) {
    showAlert(`Could not load the run's details: ${describe(err)}`);
  }
}

function renderResults(results, error) {
  const box = $("results");
  box.replaceChildren();
  for (const bundle of results.slice(0, 50)) {
    if (!bundle || typeof bundle !== "object") continue;
    const figure = document.createElement("figure");
    if (typeof bundle["image/png"] === "string" && /^[A-Za-z0-9+/=\s]+$/.test(bundle["image/png"])) {
      const img = document.createElement("img");
      img.alt = "Image result";
      img.src = `data:image/png;base64,${bundle["image/png"].replace(/\s/g, "")}`;
      figure.append(img);
    } else if (typeof bundle["text/html"] === "string") {
      const frame = document.createElement("iframe");
      frame.setAttribute("sandbox", ""); // no scripts, no forms, an opaque origin
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.title = "HTML result";
      frame.srcdoc = bundle["text/html"];
      figure.append(frame);
    } else if (typeof bundle["text/plain"] === "string") {
      const pre = document.createElement("pre");
      pre.className = "result-text";
      pre.textContent = bundle["text/plain"];
      figure.append(pre);
    } else {
      continue;
    }
    box.append(figure);
  }
  if (error && typeof error === "object") {
    const pre = document.createElement("pre");
    pre.className = "result-error";
    pre.textContent = `${error.name || "Error"}: ${error.value || ""}`;
    box.append(pre);
  }
}

async function run() {
  if ($("run").disabled) return;
  clearAlert();
  $("run").disabled = true;
  $("output").replaceChildren();
  $("results").replaceChildren();
  $("timings").textContent = "";
  $("limit").textContent = "";
  state.outputChars = 0;
  setStatus("queued");
  try {
    const sandbox = await ensureSandbox();
    const socket = await socketFor(sandbox);
    socket.send(JSON.stringify({ code: editor.getCode() }));
  } catch (err) {
    showAlert(`Could not run: ${describe(err)}`);
    setStatus("failed");
    finishRun();
  }
}

async function stop() {
  if (!state.execution) return;
  try {
    await api("POST", `executions/${encodeURIComponent(state.execution)}/cancel`, { json: {} });
    setStatus("cancelling");
  } catch (err) {
    showAlert(`Could not stop the run: ${describe(err)}`);
  }
}

async function fork() {
  clearAlert();
  const parent = state.sandbox;
  try {
    const child = await api("POST", `sandboxes/${encodeURIComponent(parent.id)}/fork`, { json: {} });
    setSandbox(child);
    const memory = child.memory === "fresh" ? "a fresh interpreter (this runtime cannot fork memory)" : "memory copied";
    showAlert(`Forked ${parent.id} into ${child.id} (${memory}); the playground now uses the fork.`, "info");
  } catch (err) {
    showAlert(`Could not fork: ${describe(err)}`);
  }
}

async function snapshot() {
  clearAlert();
  try {
    const snap = await api("POST", `sandboxes/${encodeURIComponent(state.sandbox.id)}/snapshots`, { json: {} });
    showAlert(`Snapshot ${snap.id} saved (${humanBytes(snap.logical_bytes)} of files).`, "info");
    await listSnapshots(snap.id);
  } catch (err) {
    showAlert(`Could not snapshot: ${describe(err)}`);
  }
}

async function listSnapshots(selected) {
  const select = $("restore-from");
  if (!state.sandbox) return;
  try {
    const page = await api("GET", "snapshots?limit=50"); // the organisation's latest: restore any of them
    select.replaceChildren();
    for (const s of page.results) {
      const mine = s.sandbox_id === state.sandbox.id ? " (this sandbox)" : "";
      const label = `${s.id}${s.name ? ` ${s.name}` : ""}${mine} · ${new Date(s.created_at).toLocaleTimeString()}`;
      select.append(new Option(label, s.id, false, s.id === selected));
    }
    if (!page.results.length) select.append(new Option("no snapshots", ""));
    select.disabled = $("restore").disabled = !page.results.length;
  } catch (err) {
    showAlert(`Could not list snapshots: ${describe(err)}`);
  }
}

async function restore() {
  const id = $("restore-from").value;
  if (!id) return;
  clearAlert();
  try {
    const sandbox = await api("POST", `snapshots/${encodeURIComponent(id)}/restore`, { json: {} });
    setSandbox(sandbox);
    showAlert(`Restored ${id} into a new sandbox ${sandbox.id}; the playground now uses it.`, "info");
  } catch (err) {
    showAlert(`Could not restore: ${describe(err)}`);
  }
}

const encodePath = (path) => path.split("/").map(encodeURIComponent).join("/");

async function listFiles() {
  if (!state.sandbox || state.sandbox.state !== "running") return;
  try {
    const listing = await api("GET", `sandboxes/${encodeURIComponent(state.sandbox.id)}/files?path=${encodeURIComponent(state.cwd)}`);
    renderFiles(listing.entries);
  } catch (err) {
    renderFiles([]);
    showAlert(`Could not list the workspace: ${describe(err)}`);
  }
}

function button(text, onClick, className = "secondary small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function renderFiles(entries) {
  $("files-path").textContent = `/workspace/${state.cwd}`;
  $("files-up").disabled = !state.cwd;
  const body = $("files").tBodies[0];
  body.replaceChildren();
  if (!entries) {
    body.insertRow().insertCell().textContent = "Run something to start a sandbox.";
    return;
  }
  if (!entries.length) body.insertRow().insertCell().textContent = "Empty.";
  for (const entry of entries.sort((a, b) => (b.type === "dir") - (a.type === "dir") || a.name.localeCompare(b.name))) {
    const row = body.insertRow();
    row.dataset.path = entry.path;
    const name = row.insertCell();
    if (entry.type === "dir") {
      name.append(button(`${entry.name}/`, () => { state.cwd = entry.path; listFiles(); }, "link"));
    } else {
      name.textContent = entry.name;
    }
    row.insertCell().textContent = entry.type === "file" ? humanBytes(entry.size) : entry.type;
    const actions = row.insertCell();
    if (entry.type === "file") {
      const dl = button("Download", () => download(entry));
      dl.setAttribute("aria-label", `Download ${entry.name}`);
      actions.append(dl, " ");
    }
    if (entry.type !== "dir") {
      const del = button("Delete", () => removeFile(entry), "danger small");
      del.setAttribute("aria-label", `Delete ${entry.name}`);
      actions.append(del);
    }
  }
}

async function download(entry) {
  try {
    const response = await api("GET", `sandboxes/${encodeURIComponent(state.sandbox.id)}/files/${encodePath(entry.path)}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = entry.name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    showAlert(`Could not download ${entry.name}: ${describe(err)}`);
  }
}

async function removeFile(entry) {
  if (!window.confirm(`Delete ${entry.path}?`)) return;
  try {
    await api("DELETE", `sandboxes/${encodeURIComponent(state.sandbox.id)}/files/${encodePath(entry.path)}`);
    await listFiles();
  } catch (err) {
    showAlert(`Could not delete ${entry.name}: ${describe(err)}`);
  }
}

async function upload(event) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file || !state.sandbox) return;
  const path = state.cwd ? `${state.cwd}/${file.name}` : file.name;
  try {
    await api("PUT", `sandboxes/${encodeURIComponent(state.sandbox.id)}/files/${encodePath(path)}`, { body: file });
    showAlert(`Uploaded ${path} (${humanBytes(file.size)}).`, "info");
    await listFiles();
  } catch (err) {
    showAlert(`Could not upload ${file.name}: ${describe(err)}`);
  }
}

function newSandbox() {
  setSandbox(null);
  setStatus("idle");
  $("restore-from").replaceChildren(new Option("no snapshots", ""));
  $("restore-from").disabled = $("restore").disabled = true;
  showAlert("The next run starts a new sandbox.", "info");
}

function changeRuntime() {
  const runtime = $("runtime").value;
  editor.setRuntime(runtime);
  editor.setCode(localStorage.getItem(codeKey(runtime)) || SAMPLES[runtime.split("-")[0]] || "");
  remember();
}

const initialRuntime = recalled().runtime || "python";
const editor = createEditor($("editor"), {
  doc: localStorage.getItem(codeKey(initialRuntime)) || SAMPLES[initialRuntime.split("-")[0]] || SAMPLES.python,
  runtime: initialRuntime,
  onRun: run,
  onChange: (text) => localStorage.setItem(codeKey($("runtime").value), text),
});

$("run").addEventListener("click", run);
$("stop").addEventListener("click", stop);
$("fork").addEventListener("click", fork);
$("snapshot").addEventListener("click", snapshot);
$("restore").addEventListener("click", restore);
$("new-sandbox").addEventListener("click", newSandbox);
$("runtime").addEventListener("change", changeRuntime);
$("files-refresh").addEventListener("click", listFiles);
$("files-up").addEventListener("click", () => { state.cwd = state.cwd.split("/").slice(0, -1).join("/"); listFiles(); });
$("upload").addEventListener("change", upload);
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
    event.preventDefault();
    run();
  }
});

await loadRuntimes();
await restoreSavedSandbox();
window.mem0Playground = { editor, state }; // for the browser tests and the curious
document.body.dataset.ready = "playground";
