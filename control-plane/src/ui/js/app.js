// Drover web UI. Pages are rendered by the server; this script keeps them
// live (SSE), sends forms as JSON with the CSRF token, and builds the forms
// generated from JSON Schemas (actions) and manifests (apps).
// Everything from the server is inserted with textContent, never innerHTML.
"use strict";

const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
const ROLE = document.body.dataset.role || "viewer";
const PAGE = document.body.dataset.page || "";
const $ = (s, r) => (r || document).querySelector(s);
const $$ = (s, r) => Array.from((r || document).querySelectorAll(s));

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

async function api(method, url, body) {
  const opts = { method, headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(url, opts);
  } catch (e) {
    return { ok: false, status: 0, data: { error: "the control plane is unreachable; try again in a moment" } };
  }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && !url.startsWith("/api/v1/account")) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }
  return { ok: r.ok, status: r.status, data: data || {} };
}

// ---------------------------------------------------------------- time

function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < -5) {
    const f = -s;
    if (f < 90) return "in " + f + "s";
    if (f < 5400) return "in " + Math.round(f / 60) + " min";
    if (f < 172800) return "in " + Math.round(f / 3600) + " h";
    return "in " + Math.round(f / 86400) + " days";
  }
  if (s < 5) return "just now";
  if (s < 90) return s + "s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}
function updateTimes(root) {
  for (const t of $$("time[data-ms]", root)) {
    const ms = Number(t.dataset.ms);
    t.textContent = ago(ms);
    t.title = new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
}
setInterval(() => updateTimes(), 5000);
// Bar widths come as data-w (a percentage): the CSP allows no inline
// style attributes, but setting a style property from script is fine.
function applyWidths(root) {
  for (const b of $$("[data-w]", root)) {
    const w = Number(b.dataset.w);
    if (Number.isFinite(w)) b.style.width = Math.max(0, Math.min(100, w)) + "%";
  }
}

// ------------------------------------------------------- live regions

let refreshTimer = null;
let refreshing = false;
function scheduleRefresh(delay) {
  if (refreshTimer) return;
  refreshTimer = setTimeout(refreshLive, delay === undefined ? 600 : delay);
}
let refreshAgain = false;
async function refreshLive() {
  refreshTimer = null;
  const regions = $$("[data-live]");
  if (!regions.length) return;
  // One at a time; a change seen meanwhile triggers one more.
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  try {
    const r = await fetch(location.href, { credentials: "same-origin" });
    if (r.redirected && r.url.includes("/login")) { location.href = r.url; return; }
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    for (const old of regions) {
      // Someone is filling in a form here: keep it; a later refresh (after
      // the form is sent) takes the region.
      if ($("form[data-dirty]", old)) continue;
      const fresh = doc.querySelector('[data-live="' + old.dataset.live + '"]');
      if (fresh) old.replaceWith(document.importNode(fresh, true));
    }
    updateTimes();
    applyWidths();
    wireButtons();
    wireForms();
// A copy button copies the text of the [data-field] it names in its box.
document.addEventListener("click", (ev) => {
  const b = ev.target.closest && ev.target.closest("button[data-copy]");
  if (!b) return;
  const el = b.parentElement.querySelector('[data-field="' + b.dataset.copy + '"]');
  if (!el) return;
  const text = el.textContent;
  const done = () => toast("Copied");
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(done, () => window.getSelection().selectAllChildren(el));
  } else {
    window.getSelection().selectAllChildren(el);
  }
});
    wireCancelJob();
    fillTails();
  } catch (e) {
    // The banner shows connectivity; the next event retries.
  } finally {
    refreshing = false;
    if (refreshAgain) { refreshAgain = false; scheduleRefresh(300); }
  }
}

// ----------------------------------------------------------------- SSE

const handlers = { agent: [], command: [], rollout: [], release: [], service: [], alert: [] };
function on(kind, f) { handlers[kind].push(f); }
let backoff = 1000;
let es = null;
function connect() {
  const live = $("#live");
  es = new EventSource("/api/v1/events");
  es.onopen = () => {
    const wasDown = !$("#banner").hidden;
    $("#banner").hidden = true;
    if (live) { live.textContent = "live"; live.className = "live ok"; }
    backoff = 1000;
    // Whatever changed before the stream was (re)connected: fetch it now.
    scheduleRefresh(wasDown ? 0 : 200);
  };
  es.onerror = () => {
    es.close();
    $("#banner").hidden = false;
    if (live) { live.textContent = "reconnecting…"; live.className = "live bad"; }
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
  for (const kind of ["agent", "command", "rollout", "release", "service", "alert"]) {
    es.addEventListener(kind, (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      // Events are externally tagged ({"Agent": {...}}) or flat.
      const body = ev.Agent || ev.Command || ev.Rollout || ev.Release || ev.Service || ev.agent || ev.command || ev.rollout || ev.release || ev.service || ev;
      for (const f of handlers[kind]) f(body);
    });
  }
}
if ($("#banner")) {
  connect();
  // A page kept in the back/forward cache must not keep its stream open
  // (browsers allow few connections per host); reopen it when shown again.
  window.addEventListener("pagehide", () => { if (es) es.close(); });
  window.addEventListener("pageshow", (e) => { if (e.persisted) { connect(); scheduleRefresh(0); } });
}

// ------------------------------------------------- generic forms/buttons

function formValues(form) {
  const out = {};
  for (const f of $$("input[name], select[name], textarea[name]", form)) {
    if (f.name === "csrf" || f.closest("[hidden]")) continue;
    const t = f.dataset.type;
    if (f.type === "checkbox") out[f.name] = f.checked;
    else if (t === "int") out[f.name] = f.value === "" ? null : Number(f.value);
    else if (t === "list") out[f.name] = f.value.split(",").map((s) => s.trim()).filter(Boolean);
    else if (t === "bool") out[f.name] = f.value === "true";
    // Days from now, as milliseconds since the epoch (an expiry).
    else if (t === "days") out[f.name] = f.value === "" ? null : Date.now() + Number(f.value) * 86400000;
    else if (t === "kv") {
      const m = {};
      for (const part of f.value.split(",").map((s) => s.trim()).filter(Boolean)) {
        const i = part.indexOf("=");
        if (i > 0) m[part.slice(0, i).trim()] = part.slice(i + 1).trim();
      }
      out[f.name] = m;
    } else out[f.name] = f.value;
  }
  // Dotted names ("config.url") become nested objects for the API.
  for (const k of Object.keys(out)) {
    if (!k.includes(".")) continue;
    const parts = k.split(".");
    let o = out;
    for (const p of parts.slice(0, -1)) o = (o[p] = o[p] || {});
    o[parts[parts.length - 1]] = out[k];
    delete out[k];
  }
  return out;
}

function showError(form, msg) {
  const e = $(".form-error", form);
  if (e) { e.textContent = msg || ""; e.className = "form-error" + (msg ? " on" : ""); }
}

// A form with unsent edits (see refreshLive).
document.addEventListener("input", (ev) => {
  const f = ev.target.closest && ev.target.closest("form[data-api]");
  if (f) f.dataset.dirty = "1";
});

function wireForms() {
  for (const form of $$("form[data-api]")) {
    if (form.dataset.wired) continue;
    form.dataset.wired = "1";
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      showError(form, "");
      const btn = $("button", form);
      if (btn) btn.disabled = true;
      const values = formValues(form);
      // A named submit button says which of several it was (approve / decline).
      if (ev.submitter && ev.submitter.name) values[ev.submitter.name] = ev.submitter.value;
      const r = await api(form.dataset.method || "POST", form.dataset.api, values);
      if (btn) btn.disabled = false;
      if (!r.ok) { showError(form, r.data.error || ("failed (" + r.status + ")")); return; }
      delete form.dataset.dirty;
      if (form.dataset.secret) {
        const box = $(".secret", form);
        $(".value", box).textContent = r.data[form.dataset.secret] || "";
        // Other fields of the answer shown beside it (the install line).
        for (const el of $$("[data-field]", box)) el.textContent = r.data[el.dataset.field] || "";
        box.hidden = false;
      } else if (form.dataset.done) {
        showError(form, "");
        const e = $(".form-error", form);
        if (e) { e.textContent = form.dataset.done; e.className = "form-error ok"; }
      }
      if (form.dataset.reload) { location.reload(); return; }
      if (!form.classList.contains("auto")) for (const i of $$("input[type=password]", form)) i.value = "";
      scheduleRefresh(0);
    });
  }
}

function wireButtons() {
  for (const b of $$("button[data-api]")) {
    if (b.dataset.wired) continue;
    b.dataset.wired = "1";
    b.addEventListener("click", async () => {
      if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
      b.disabled = true;
      const r = await api(b.dataset.method || "POST", b.dataset.api);
      b.disabled = false;
      if (!r.ok) { toast(r.data.error || ("failed (" + r.status + ")"), true); return; }
      toast("Done.");
      scheduleRefresh(0);
    });
  }
}

function toast(msg, bad) {
  if (bad) document.body.dataset.lastError = msg;
  const t = el("div", { class: "toast" + (bad ? " bad" : ""), text: msg });
  document.body.append(t);
  setTimeout(() => t.remove(), bad ? 7000 : 2500);
}

