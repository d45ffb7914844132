// tether inspector: polls GET /inspect/api/state once a second and draws every session.
// Plain DOM, no framework; every value from the server goes in as text, never as markup.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const POLL_MS = 1000;
const EVENTS_SHOWN = 12;
const cards = new Map();

function headers(change) {
  const h = {};
  if (token) h["X-Tether-Token"] = token;
  if (change) h["X-Tether-Inspector"] = "1";
  return h;
}

function withToken(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function secs(ms) {
  if (ms == null) return "–";
  return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s";
}

function age(ms) {
  if (ms == null) return "never";
  if (ms < 1000) return "just now";
  if (ms < 60000) return Math.round(ms / 1000) + " s ago";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s ago";
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? h + ":" : "") + String(m).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
}

function showNotice(text) {
  const n = document.getElementById("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

async function change(path) {
  try {
    const r = await fetch(withToken(path), { method: "POST", headers: headers(true) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) showNotice(body.error || ("request failed: " + r.status));
    else showNotice("");
  } catch (e) {
    showNotice("cannot reach the server: " + e);
  }
  poll(true);
}

// ---- JSON, pretty-printed, with the paths the last patch touched highlighted ----

const PATH_SEP = "\u0000";

// The paths a PUT /worker patch changed, and the keys it removed. `external_metadata` and
// `internal_metadata` are merge patches (recursive, null deletes); other keys are replaced.
function patchPaths(patch) {
  const changed = new Set(), removed = [];
  const walk = (value, path, merge) => {
    if (merge && value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, path.concat(k), true);
      return;
    }
    if (value === null) removed.push(path.join("."));
    else changed.add(path.join(PATH_SEP));
  };
  if (patch && typeof patch === "object") {
    for (const [k, v] of Object.entries(patch)) {
      walk(v, [k], k === "external_metadata" || k === "internal_metadata");
    }
  }
  return { changed, removed };
}

function renderJson(value, changed) {
  const pre = el("pre", { class: "json" });
  const scalar = (v) => {
    if (typeof v === "string") return el("span", { class: "str", text: JSON.stringify(v) });
    if (typeof v === "number") return el("span", { class: "num", text: String(v) });
    return el("span", { class: "lit", text: String(v) });
  };
  const walk = (v, path, indent, target) => {
    const hot = path.length && changed.has(path.join(PATH_SEP));
    const into = hot ? el("span", { class: "changed" }) : null;
    const out = into || target;
    const add = (n) => out.append(n);
    const addText = (t) => out.append(document.createTextNode(t));
    if (Array.isArray(v)) {
      if (!v.length) addText("[]");
      else {
        addText("[\n");
        v.forEach((item, i) => {
          addText(indent + "  ");
          walk(item, path.concat(String(i)), indent + "  ", out);
          addText(i + 1 < v.length ? ",\n" : "\n");
        });
        addText(indent + "]");
      }
    } else if (v && typeof v === "object") {
      const keys = Object.keys(v);
      if (!keys.length) addText("{}");
      else {
        addText("{\n");
        keys.forEach((k, i) => {
          addText(indent + "  ");
          const keyHot = changed.has(path.concat(k).join(PATH_SEP));
          add(el("span", { class: "key" + (keyHot ? " changed" : ""), text: JSON.stringify(k) }));
          addText(": ");
          walk(v[k], path.concat(k), indent + "  ", out);
          addText(i + 1 < keys.length ? ",\n" : "\n");
        });
        addText(indent + "}");
      }
    } else add(scalar(v));
    if (into) target.append(into);
  };
  walk(value, [], "", pre);
  return pre;
}

function compact(v) {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 240 ? s.slice(0, 240) + "…" : s;
}

// ---- one card per session ----

function tile(key, field) {
  const v = el("div", { class: "v", "data-field": field });
  const s = el("div", { class: "s", "data-field": field + "-sub" });
  return { node: el("div", { class: "tile" }, el("div", { class: "k", text: key }), v, s), v, s };
}

function makeCard(id) {
  const c = {};
  c.title = el("h2", { text: id });
  c.epoch = el("span", { class: "badge", title: "worker epoch" });
  c.status = el("span", { class: "badge status", title: "worker_status in the document" });
  c.live = el("span", { class: "badge" });
  c.part = el("span", { class: "badge partitioned", hidden: "" });
  c.timeline = el("a", { target: "_blank", rel: "noopener", text: "timeline ↗" });
  c.seconds = el("input", { type: "number", min: "1", max: "3600", value: "10",
    "aria-label": "partition length in seconds" });
  c.partBtn = el("button", { class: "btn", type: "button", "data-action": "partition",
    text: "Partition",
    onclick: () => change("/inspect/api/partition?session=" + encodeURIComponent(id) +
      "&seconds=" + encodeURIComponent(c.seconds.value || "0")) });
  c.healBtn = el("button", { class: "btn danger", type: "button", hidden: "", text: "Heal",
    onclick: () => change("/inspect/api/partition?session=" + encodeURIComponent(id) + "&seconds=0") });
  const head = el("div", { class: "card-head" }, c.title, c.epoch, c.status, c.live, c.part,
    el("span", { class: "spacer" }),
    el("span", { class: "partition" }, "for", c.seconds, "s", c.partBtn, c.healBtn), c.timeline);

  c.tEvents = tile("Events stored", "events-stored");
  c.tDup = tile("Duplicates filtered", "duplicates");
  c.tBeat = tile("Last heartbeat", "heartbeat");
  c.tReq = tile("Requests", "requests");
  c.tFaults = tile("Faults injected", "faults");
  const tiles = el("div", { class: "tiles" }, c.tEvents.node, c.tDup.node, c.tBeat.node,
    c.tReq.node, c.tFaults.node);

  c.docMeta = el("span", { class: "muted" });
  c.doc = el("div", { "data-field": "document" });
  c.removed = el("div", { class: "removed" });
  c.eventsMeta = el("span", { class: "muted" });
  c.events = el("ol", { class: "events", "data-field": "events" });
  const cols1 = el("div", { class: "cols" },
    el("div", { class: "panel" }, el("h3", {}, "Worker document", c.docMeta), c.doc, c.removed),
    el("div", { class: "panel" }, el("h3", {}, "Last events", c.eventsMeta), c.events));

  c.requests = el("table", { class: "kv" });
  c.faults = el("table", { class: "kv", "data-field": "faults-table" });
  const cols2 = el("div", { class: "cols rows" },
    el("div", { class: "panel" }, el("h3", {}, "Requests by route",
      el("span", { class: "muted", text: "· linked to the protocol" })), c.requests),
    el("div", { class: "panel" }, el("h3", {}, "Faults by kind"), c.faults));

  c.threads = el("div", { class: "threads", hidden: "" });
  c.node = el("article", { class: "card", "data-session": id }, head, tiles, cols1, cols2, c.threads);
  return c;
}

function fillTable(table, rows) {
  table.replaceChildren(...rows.map(([label, n]) =>
    el("tr", { class: n ? "" : "zero" }, el("td", {}, label), el("td", { class: "n", text: String(n) }))));
}

function updateCard(c, s) {
  c.epoch.textContent = "epoch " + s.epoch;
  c.status.textContent = s.worker_status == null ? "no status" : String(s.worker_status);
  c.live.textContent = s.liveness;
  c.live.className = "badge " + (s.liveness === "live" ? "live" : s.liveness === "stale" ? "stale" : "");
  if (s.partition_left_ms != null) {
    c.part.hidden = false;
    c.part.textContent = "partitioned · " + Math.ceil(s.partition_left_ms / 1000) + " s left";
    c.healBtn.hidden = false;
  } else {
    c.part.hidden = true;
    c.healBtn.hidden = true;
  }
  c.timeline.href = withToken(s.timeline);

  c.tEvents.v.textContent = s.events.stored.toLocaleString("en-US");
  c.tEvents.s.textContent = s.events.rate.toFixed(1) + " /s · internal " + s.internal_events.stored;
  c.tDup.v.textContent = String(s.events.duplicates);
  c.tDup.s.textContent = "internal " + s.internal_events.duplicates + " · acks " + s.delivery_updates;
  c.tBeat.v.textContent = age(s.heartbeat_age_ms);
  c.tBeat.v.className = "v" + (s.liveness === "stale" ? " bad" : "");
  c.tBeat.s.textContent = s.liveness === "stale"
    ? "stale: none within " + secs(s.heartbeat_ttl_ms)
    : s.heartbeats + " accepted · TTL " + secs(s.heartbeat_ttl_ms);
  c.tReq.v.textContent = s.requests_total.toLocaleString("en-US");
  c.tReq.s.textContent = s.puts + " PUTs applied";
  c.tFaults.v.textContent = String(s.faults_total);
  c.tFaults.s.textContent = s.requests_total
    ? (100 * s.faults_total / Math.max(1, s.requests_total)).toFixed(1) + " % of requests" : "";

  const patch = s.last_patch ? s.last_patch.patch : null;
  const { changed, removed } = patchPaths(patch);
  const docKey = JSON.stringify(s.document) + JSON.stringify(patch);
  if (c.docKey !== docKey) {
    c.docKey = docKey;
    c.doc.replaceChildren(renderJson(s.document, changed));
    c.removed.replaceChildren();
    if (removed.length) {
      c.removed.append("removed by the last patch: ");
      removed.forEach((p, i) => {
        if (i) c.removed.append(", ");
        c.removed.append(el("code", { text: p }));
      });
    }
  }
  c.docMeta.textContent = s.last_patch
    ? "· last patch at " + secs(s.last_patch.at_ms) + ", highlighted"
    : "· no PUT yet";

  c.eventsMeta.textContent = s.events.last.length ? "· newest last" : "· none yet";
  const lastUuid = s.events.last.length ? s.events.last[s.events.last.length - 1].uuid : "";
  if (c.lastUuid !== lastUuid) {
    c.lastUuid = lastUuid;
    c.events.replaceChildren(...s.events.last.map((e) =>
      el("li", { title: e.uuid }, el("span", { class: "t", text: secs(e.at_ms) }), compact(e.payload))));
    c.events.scrollTop = c.events.scrollHeight;
  }

  c.requests.replaceChildren(...s.requests.map((r) =>
    el("tr", { class: r.count ? "" : "zero" },
      el("td", {}, el("a", { href: "/inspect/protocol#" + r.anchor, target: "_blank", rel: "noopener" },
        el("code", { text: r.route }))),
      el("td", { class: "n", text: String(r.count) }))));
  const kinds = ["5xx", "429", "413", "lost-request", "lost-response", "hang", "garbage", "latency", "partition"];
  fillTable(c.faults, kinds.map((k) => [k, s.faults[k] || 0]));

  if (s.threads.length) {
    c.threads.hidden = false;
    const key = JSON.stringify(s.threads);
    if (c.threadsKey !== key) {
      c.threadsKey = key;
      c.threads.replaceChildren(
        el("h3", { class: "panel-title", text: "Threads · session version " + s.threads_version }),
        ...s.threads.map((t) => el("div", { class: "thread" },
          el("div", { class: "thread-head" }, el("b", { text: t.id }),
            el("span", { class: "badge", text: "v" + t.v }),
            el("span", { class: "muted", text: Object.entries(t.fields)
              .map(([k, v]) => k + ": " + compact(v)).join(" · ") }),
            el("span", { class: "muted", text: t.message_count + " messages" })),
          ...t.messages.map((m) => typeof m === "string" ? el("div", { class: "msg", text: m }) :
            el("div", { class: "msg" }, el("span", { class: "role", text: m.role }),
              el("span", { class: "content", text: m.content }),
              el("span", { class: "id", text: m.id }))))));
    }
  } else c.threads.hidden = true;
}

// ---- the whole page ----

let timer = null;
let inFlight = false;

async function poll(now) {
  if (inFlight) return;
  if (timer) clearTimeout(timer);
  inFlight = true;
  try {
    const r = await fetch(withToken("/inspect/api/state?events=" + EVENTS_SHOWN),
      { headers: headers(false), cache: "no-store" });
    const body = await r.json();
    if (!r.ok) showNotice(body.error || "the server answered " + r.status);
    else {
      if (!now) showNotice("");
      render(body);
    }
  } catch (e) {
    document.getElementById("server").textContent = "server unreachable (retrying)";
  } finally {
    inFlight = false;
    timer = setTimeout(poll, POLL_MS);
  }
}

function render(state) {
  const server = document.getElementById("server");
  server.replaceChildren(el("b", { text: location.host }), " · up " + clock(state.uptime_ms) +
    " · " + state.sessions_total + (state.sessions_total === 1 ? " session" : " sessions") +
    " · " + state.totals.requests.toLocaleString("en-US") + " requests · " +
    state.totals.faults.toLocaleString("en-US") + " faults injected");
  for (const b of document.querySelectorAll("#plan button")) {
    b.classList.toggle("on", b.dataset.plan === state.faults.preset);
  }
  document.getElementById("plan-text").textContent = state.faults.description;
  document.getElementById("example-url").textContent =
    location.protocol + "//" + location.host + "/v1/code/sessions/demo";

  const box = document.getElementById("sessions");
  document.getElementById("empty").hidden = state.sessions.length > 0;
  const seen = new Set();
  for (const s of state.sessions) {
    seen.add(s.id);
    let c = cards.get(s.id);
    if (!c) {
      c = makeCard(s.id);
      cards.set(s.id, c);
      box.append(c.node);
    }
    updateCard(c, s);
  }
  for (const [id, c] of cards) {
    if (!seen.has(id)) { c.node.remove(); cards.delete(id); }
  }
  const list = document.getElementById("changes");
  if (state.changes.length) {
    list.replaceChildren(...state.changes.map((ch) =>
      el("li", {}, el("span", { class: "t", text: clock(ch.at_ms) }), ch.text)));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#plan button")) {
    b.addEventListener("click", () => change("/inspect/api/faults?plan=" + b.dataset.plan));
  }
  poll(false);
});
