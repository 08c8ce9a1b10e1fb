// The snapshot lineage graph: Cytoscape.js with the dagre layout over GET /api/v1/lineage (a page of the
// organisation's newest snapshots at a time) or, with ?around=<snapshot id>, that snapshot's connected
// graph (GET /api/v1/snapshots/{id}/lineage). Click a node for details; restore, tag and delete from there.
import { api, describe, humanBytes } from "./api.js";
import { openInPlayground } from "./open-playground.js";

const $ = (id) => document.getElementById(id);
const PAGE = Math.min(2000, Math.max(1, Number(new URLSearchParams(location.search).get("limit")) || 500));
const DAGRE_MAX_NODES = 300;
const cytoscape = window.cytoscape;
cytoscape.use(window.cytoscapeDagre);

const state = { next: null, tag: "", selected: null, bounds: null };

const cy = cytoscape({
  container: $("graph"),
  minZoom: 0.05,
  maxZoom: 3,
  textureOnViewport: true,
  pixelRatio: 1,
  hideEdgesOnViewport: true,
  style: [
    { selector: "node", style: { label: "data(label)", "font-size": 10, "min-zoomed-font-size": 7, "text-valign": "bottom", "text-margin-y": 3, width: 18, height: 18, color: "#344054" } },
    { selector: "node[kind = 'snapshot']", style: { shape: "round-rectangle", "background-color": "#3b5bdb" } },
    { selector: "node[kind = 'sandbox']", style: { shape: "ellipse", "background-color": "#adb5bd" } },
    { selector: "node[state = 'running']", style: { "background-color": "#2b8a3e" } },
    { selector: "node.quiet", style: { label: "" } },
    { selector: "node.quiet:selected, node.quiet.match", style: { label: "data(label)" } },
    { selector: "node.match", style: { "border-width": 4, "border-color": "#f59f00" } },
    { selector: "node:selected", style: { "border-width": 4, "border-color": "#e8590c" } },
    { selector: "edge", style: { width: 1.5, "curve-style": "straight", "target-arrow-shape": "triangle", "arrow-scale": 0.8, "line-color": "#ced4da", "target-arrow-color": "#ced4da" } },
    { selector: "edge.quiet", style: { "curve-style": "haystack", "target-arrow-shape": "none" } },
    { selector: "edge[kind = 'fork']", style: { "line-style": "dashed", "line-color": "#2b8a3e", "target-arrow-color": "#2b8a3e" } },
    { selector: "edge[kind = 'restore']", style: { "line-color": "#e8590c", "target-arrow-color": "#e8590c" } },
    { selector: "edge[kind = 'parent']", style: { "line-color": "#5c7cfa", "target-arrow-color": "#5c7cfa" } },
  ],
});

function showAlert(message, kind = "error") {
  const box = $("alert");
  box.textContent = message;
  box.className = `notice ${kind === "error" ? "error" : ""}`;
  box.hidden = false;
}

// Labels stay short (the id's tail, tags first): the details panel has the rest.
function label(node) {
  const short = `${node.id.slice(0, 4)}…${node.id.slice(-5)}`;
  if (node.kind === "snapshot" && node.tags && node.tags.length) return `${node.tags.join(", ")} · ${short}`;
  return short;
}

function addGraph(graph) {
  const elements = [];
  for (const node of graph.nodes) {
    if (cy.getElementById(node.id).nonempty()) continue;
    elements.push({ group: "nodes", data: { ...node, label: label(node), tagsText: (node.tags || []).join(" ") } });
  }
  for (const edge of graph.edges) {
    const id = `${edge.kind}:${edge.from}>${edge.to}`;
    if (cy.getElementById(id).nonempty()) continue;
    elements.push({ group: "edges", data: { id, source: edge.from, target: edge.to, kind: edge.kind } });
  }
  cy.batch(() => cy.add(elements.filter((e) => e.group === "nodes")));
  // an edge may point at a node of a page not loaded yet: add only those whose ends are here
  cy.batch(() => cy.add(elements.filter((e) => e.group === "edges" && cy.getElementById(e.data.source).nonempty() && cy.getElementById(e.data.target).nonempty())));
}

// Dagre for small graphs; above DAGRE_MAX_NODES a layered layout of our own (dagre took 7-20 s for 1,200
// nodes on the bench machine, bench/console_lineage.py): every edge points from an older node to a newer
// one, so one pass in creation order gives each node its rank (1 + its deepest predecessor's), and each
// rank is ordered by its predecessors' mean row: O(n log n), a few ms for 2,000 nodes.
function layeredPositions() {
  const nodes = cy.nodes().sort((a, b) => (a.data("created_at") < b.data("created_at") ? -1 : 1));
  const rank = new Map();
  const ranks = [];
  for (const node of nodes) {
    let r = 0;
    for (const source of node.incomers("node")) r = Math.max(r, (rank.get(source.id()) ?? -1) + 1);
    rank.set(node.id(), r);
    (ranks[r] ||= []).push(node);
  }
  const row = new Map();
  const positions = {};
  ranks.forEach((members, r) => {
    const keyed = members.map((node, i) => {
      const rows = node.incomers("node").map((p) => row.get(p.id())).filter((y) => y !== undefined);
      return { node, key: rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : i };
    });
    keyed.sort((a, b) => a.key - b.key);
    keyed.forEach(({ node }, i) => {
      row.set(node.id(), i);
      positions[node.id()] = { x: r * 140, y: i * 40 };
    });
  });
  return positions;
}

function layout() {
  if (cy.nodes().length <= DAGRE_MAX_NODES) {
    cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 12, rankSep: 60, animate: false }).run();
    cy.fit(undefined, 30);
    return;
  }
  // Large graphs: positions set in one batch (a "preset" layout run fires events per node, ~2 s for 2,000
  // nodes), labels only on selected and searched-for nodes, straight arrowless (haystack) edges — time flows left to right —, and the viewport fitted from the positions we
  // know (cy.fit measures every element's bounds: another ~2 s).
  const positions = layeredPositions();
  cy.batch(() => {
    cy.elements().addClass("quiet");
    cy.nodes().positions((node) => positions[node.id()]);
  });
  const xs = Object.values(positions).map((p) => p.x);
  const ys = Object.values(positions).map((p) => p.y);
  state.bounds = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  fitView();
}

function fitView() {
  if (cy.nodes().length <= DAGRE_MAX_NODES || !state.bounds) {
    cy.fit(undefined, 30);
    return;
  }
  const [minX, maxX, minY, maxY] = state.bounds;
  const pad = 30;
  const zoom = Math.max(cy.minZoom(), Math.min(1, (cy.width() - 2 * pad) / (maxX - minX + 20),
    (cy.height() - 2 * pad) / (maxY - minY + 20)));
  cy.viewport({ zoom, pan: { x: (cy.width() - (maxX + minX) * zoom) / 2, y: (cy.height() - (maxY + minY) * zoom) / 2 } });
}

let refit = null;
cy.on("resize", () => {
  clearTimeout(refit);
  refit = setTimeout(fitView, 100);
});

function summarise() {
  const snaps = cy.nodes("[kind = 'snapshot']").length;
  const boxes = cy.nodes("[kind = 'sandbox']").length;
  $("summary").textContent = `${snaps} snapshots, ${boxes} sandboxes, ${cy.edges().length} edges loaded${state.next ? " (older snapshots not loaded yet)" : ""}.`;
  $("older").disabled = !state.next;
  const list = $("node-list");
  list.replaceChildren();
  for (const node of cy.nodes().slice(0, 300)) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = `${node.data("kind")} ${node.id()}`;
    b.addEventListener("click", () => select(node.id()));
    li.append(b);
    list.append(li);
  }
}

async function loadPage(before = null) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (before) params.set("before", before);
  const graph = await api("GET", `lineage?${params}`);
  state.next = graph.next;
  addGraph(graph);
}

async function loadAround(snapshotId) {
  const graph = await api("GET", `snapshots/${encodeURIComponent(snapshotId)}/lineage`);
  state.next = null;
  addGraph(graph);
}

function field(dl, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  dl.append(dt, dd);
}

function actionButton(text, onClick, className = "secondary small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function select(id) {
  const node = cy.getElementById(id);
  if (node.empty()) return;
  cy.elements(":selected").unselect();
  node.select();
  cy.animate({ center: { eles: node }, zoom: Math.max(cy.zoom(), 0.8) }, { duration: 200 });
  state.selected = id;
  renderDetails(node.data());
}

function renderDetails(data) {
  const panel = $("node-details");
  panel.replaceChildren();
  const h = document.createElement("h2");
  h.textContent = data.kind === "snapshot" ? "Snapshot" : "Sandbox";
  const dl = document.createElement("dl");
  field(dl, "id", data.id);
  field(dl, "created", new Date(data.created_at).toLocaleString());
  if (data.kind === "snapshot") {
    field(dl, "name", data.name);
    field(dl, "tags", (data.tags || []).join(", "));
    field(dl, "size", humanBytes(data.logical_bytes));
    field(dl, "stored", humanBytes(data.stored_bytes));
    field(dl, "tier", data.tier);
  } else {
    field(dl, "runtime", data.runtime);
    field(dl, "state", data.state);
    field(dl, "memory", data.memory);
  }
  panel.append(h, dl);
  const actions = document.createElement("p");
  actions.className = "toolbar";
  if (data.kind === "snapshot") {
    actions.append(actionButton("Restore", () => restore(data.id), "small"));
    actions.append(actionButton("Delete", () => remove(data.id), "danger small"));
    const form = document.createElement("form");
    form.className = "toolbar";
    const input = document.createElement("input");
    input.placeholder = "new tag";
    input.size = 10;
    input.setAttribute("aria-label", "New tag");
    input.pattern = "[A-Za-z0-9][A-Za-z0-9._\\-]{0,79}";
    form.append(input, actionButton("Tag", () => {}, "secondary small"));
    form.lastChild.type = "submit";
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.value) tag(data.id, input.value.trim());
    });
    panel.append(actions, form);
  } else {
    const a = document.createElement("a");
    a.href = `/sandboxes/${encodeURIComponent(data.id)}`;
    a.textContent = "Open the sandbox page";
    actions.append(a);
    if (data.state === "running") actions.append(actionButton("Open in playground", () => openInPlayground(data.id, data.runtime), "small"));
    panel.append(actions);
  }
}

async function restore(id) {
  try {
    const sandbox = await api("POST", `snapshots/${encodeURIComponent(id)}/restore`, { json: {} });
    addGraph({ nodes: [{ id: sandbox.id, kind: "sandbox", runtime: sandbox.runtime, state: sandbox.state, created_at: sandbox.created_at, memory: sandbox.memory }], edges: [{ from: id, to: sandbox.id, kind: "restore" }] });
    layout();
    summarise();
    select(sandbox.id);
    showAlert(`Restored ${id} into sandbox ${sandbox.id}.`, "info");
  } catch (err) {
    showAlert(`Could not restore ${id}: ${describe(err)}`);
  }
}

async function tag(id, name) {
  try {
    const snap = await api("PUT", `snapshots/${encodeURIComponent(id)}/tags/${encodeURIComponent(name)}`);
    const node = cy.getElementById(id);
    node.data({ tags: snap.tags, tagsText: snap.tags.join(" "), label: label({ ...node.data(), tags: snap.tags }) });
    renderDetails(node.data());
  } catch (err) {
    showAlert(`Could not tag ${id}: ${describe(err)}`);
  }
}

async function remove(id) {
  if (!window.confirm(`Delete snapshot ${id}? Sandboxes restored from it keep running.`)) return;
  try {
    await api("DELETE", `snapshots/${encodeURIComponent(id)}`);
    cy.getElementById(id).remove();
    $("node-details").replaceChildren();
    summarise();
    showAlert(`Snapshot ${id} deleted.`, "info");
  } catch (err) {
    showAlert(`Could not delete ${id}: ${describe(err)}`);
  }
}

function search(event) {
  event.preventDefault();
  const wanted = $("tag").value.trim();
  cy.nodes().removeClass("match");
  if (!wanted) return;
  const matches = cy.nodes("[kind = 'snapshot']").filter((n) => (n.data("tags") || []).includes(wanted));
  matches.addClass("match");
  if (matches.nonempty()) {
    cy.fit(matches, 60);
    $("summary").textContent = `${matches.length} snapshot${matches.length > 1 ? "s" : ""} tagged ${wanted}.`;
    if (matches.length === 1) select(matches[0].id());
  } else {
    showAlert(`No loaded snapshot is tagged ${wanted}${state.next ? "; load older snapshots to search further" : ""}.`, "info");
  }
}

cy.on("tap", "node", (event) => select(event.target.id()));
$("search").addEventListener("submit", search);
$("fit").addEventListener("click", fitView);
$("older").addEventListener("click", async () => {
  try {
    await loadPage(state.next);
    layout();
    summarise();
  } catch (err) {
    showAlert(`Could not load older snapshots: ${describe(err)}`);
  }
});

const around = new URLSearchParams(location.search).get("around");
try {
  const t0 = performance.now();
  if (around) await loadAround(around);
  else await loadPage();
  const t1 = performance.now();
  layout();
  summarise();
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  // read by bench/console_lineage.py: the page's own figures, fetch (API + JSON) and layout + first frame
  window.mem0LineageTiming = { fetch_ms: t1 - t0, layout_ms: performance.now() - t1, nodes: cy.nodes().length };
  if (around) select(around);
} catch (err) {
  $("summary").textContent = "";
  showAlert(`Could not load the lineage: ${describe(err)}`);
}
document.body.dataset.ready = "lineage";
window.mem0Lineage = cy; // for the browser tests and the curious: the graph's nodes and edges
