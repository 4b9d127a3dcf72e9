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

// -------------------------------------------- forms from a JSON Schema

function resolve(schema, root) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    const defs = (root.$defs || root.definitions || {});
    return Object.assign({}, defs[name] || {}, { description: schema.description || (defs[name] || {}).description });
  }
  if (schema && (schema.anyOf || schema.oneOf)) {
    const opts = (schema.anyOf || schema.oneOf).filter((s) => s.type !== "null");
    if (opts.length === 1) return Object.assign({}, resolve(opts[0], root), { description: schema.description, default: schema.default });
    // A set of constants: a select.
    const consts = opts.map((o) => resolve(o, root)).filter((o) => o.const !== undefined || o.enum);
    if (consts.length === opts.length) {
      return { type: "string", enum: consts.flatMap((o) => o.enum || [o.const]), description: schema.description, default: schema.default };
    }
  }
  return schema || {};
}
function typeOf(s) {
  let t = s.type;
  if (Array.isArray(t)) t = t.find((x) => x !== "null");
  return t || (s.enum ? "string" : "string");
}

function buildSchemaForm(box, schema, sensitive) {
  box.textContent = "";
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const names = Object.keys(props);
  if (!names.length) {
    box.append(el("p", { class: "mut", text: "This action takes no parameters." }));
    return;
  }
  for (const name of names) {
    const s = resolve(props[name], schema);
    const t = typeOf(s);
    const label = el("label", { "data-param": name }, name + (required.has(name) ? " *" : ""));
    let input;
    if (s.enum) {
      input = el("select", { name });
      if (!required.has(name)) input.append(el("option", { value: "", text: "—" }));
      for (const v of s.enum) input.append(el("option", { value: String(v), text: String(v) }));
      if (s.default !== undefined && s.default !== null) input.value = String(s.default);
    } else if (t === "boolean") {
      input = el("input", { type: "checkbox", name });
      input.checked = s.default === true;
      label.classList.add("check");
    } else if (t === "integer" || t === "number") {
      input = el("input", { type: "number", name, step: t === "integer" ? "1" : "any", min: s.minimum, max: s.maximum });
      if (s.default !== undefined && s.default !== null) input.value = s.default;
    } else if (t === "array") {
      input = el("input", { name, placeholder: "comma-separated", "data-kind": "array" });
      if (Array.isArray(s.default)) input.value = s.default.join(", ");
    } else if (t === "object") {
      input = el("textarea", { name, rows: 3, placeholder: "JSON object", "data-kind": "json" });
    } else {
      input = el("input", {
        type: sensitive.includes(name) ? "password" : "text",
        name, pattern: s.pattern, minlength: s.minLength, maxlength: s.maxLength,
        autocomplete: sensitive.includes(name) ? "new-password" : "off",
      });
      if (typeof s.default === "string" && !sensitive.includes(name)) input.value = s.default;
    }
    input.dataset.type = t;
    if (required.has(name)) input.required = true;
    label.append(input);
    if (s.description) label.append(el("small", { text: s.description }));
    box.append(label);
  }
}

function collectSchemaForm(box) {
  const out = {};
  for (const f of $$("[name]", box)) {
    const t = f.dataset.type;
    if (f.type === "checkbox") { out[f.name] = f.checked; continue; }
    if (f.value === "") continue;
    if (t === "integer" || t === "number") out[f.name] = Number(f.value);
    else if (f.dataset.kind === "array") out[f.name] = f.value.split(",").map((x) => x.trim()).filter(Boolean);
    else if (f.dataset.kind === "json") {
      try { out[f.name] = JSON.parse(f.value); } catch (e) { throw new Error(f.name + ": not valid JSON"); }
    } else out[f.name] = f.value;
  }
  return out;
}

let ACTIONS = null;
async function loadActions() {
  if (ACTIONS) return ACTIONS;
  const r = await api("GET", "/api/v1/actions");
  ACTIONS = (r.data.actions || []).filter((a) => !a.name.startsWith("sys.cancel"));
  return ACTIONS;
}

async function actionPicker(form, only) {
  const sel = $("#action", form);
  const acts = (await loadActions()).filter((a) => !only || only.includes(a.module));
  sel.textContent = "";
  for (const a of acts) sel.append(el("option", { value: a.name, text: a.name }));
  const render = () => {
    const a = acts.find((x) => x.name === sel.value);
    if (!a) return;
    $("#action-desc", form).textContent = a.description || "";
    buildSchemaForm($("#params", form), a.params_schema || {}, a.sensitive || []);
  };
  sel.addEventListener("change", render);
  if (acts.find((a) => a.name === "sys.ping")) sel.value = "sys.ping";
  render();
}

// ------------------------------------------------------ results, live

function renderResult(box, c) {
  box.hidden = false;
  box.textContent = "";
  const final = ["succeeded", "failed", "rejected", "expired", "cancelled"].includes(c.status);
  box.className = "result " + (c.status === "succeeded" ? "ok" : final ? "bad" : "wait");
  box.dataset.status = c.status;
  box.append(
    el("div", { class: "result-head" },
      el("span", { class: "pill s-" + c.status, text: c.status }), " ",
      el("code", { text: c.action || "" }), " ",
      el("span", { class: "id", text: c.id }),
      c.exit_code !== null && c.exit_code !== undefined ? el("span", { class: "mut", text: " exit " + c.exit_code }) : null),
  );
  if (c.summary) box.append(el("p", { class: "summary", text: c.summary }));
  if (c.outcome_source === "inferred") {
    box.append(el("p", { class: "mut small inferred", text: "Inferred by the control plane (no report from the host yet); the host's own result replaces it if it arrives." }));
  }
  if (c.replaced_inferred) {
    box.append(el("p", { class: "mut small replaced", text: "The host's report replaced the inferred outcome " + c.replaced_inferred.status + " (" + (c.replaced_inferred.summary || "") + ")." }));
  }
  if (c.result !== null && c.result !== undefined) box.append(el("pre", { class: "out", text: JSON.stringify(c.result, null, 2) }));
  if (!final) box.append(el("p", { class: "mut", text: "Waiting for the agent…" }));
}

/// The command's output lines (from the broker), appended as they come.
async function loadOutput(id, state) {
  const r = await api("GET", "/api/v1/commands/" + encodeURIComponent(id) + "/output?after=" + (state.after || 0));
  if (!r.ok) return;
  for (const l of r.data.lines || []) {
    state.lines.push(l.line);
    state.after = Math.max(state.after || 0, l.seq);
  }
}

function watchCommand(id, box) {
  const out = { after: 0, lines: [] };
  const load = async () => {
    const r = await api("GET", "/api/v1/commands/" + encodeURIComponent(id));
    if (!r.ok) return;
    await loadOutput(id, out);
    renderResult(box, r.data);
    if (out.lines.length) {
      box.append(el("div", { class: "mut small", text: "Output" }),
        el("pre", { class: "out", id: "run-output", text: out.lines.slice(-200).join("\n") }));
    }
  };
  on("command", (ev) => { if ((ev.command_id || ev.id) === id) load(); });
  load();
}

async function initRunner() {
  const form = $("#run-form");
  if (!form) return;
  await actionPicker(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(form, "");
    let params;
    try { params = collectSchemaForm($("#params", form)); } catch (err) { showError(form, err.message); return; }
    const r = await api("POST", "/api/v1/agents/" + encodeURIComponent(form.dataset.agent) + "/commands",
      { action: $("#action", form).value, params });
    if (!r.ok) { showError(form, r.data.error || "failed"); return; }
    const box = $("#run-result");
    renderResult(box, r.data);
    watchCommand(r.data.id, box);
  });
}

// --------------------------------------------------------- selectors

function selectorFrom(root) {
  const mode = $("#sel-mode", root).value;
  const v = ($("#sel-value", root).value || "").trim();
  if (mode === "all") return { all: true };
  if (mode === "hostname") return v ? { hostname: v } : null;
  if (mode === "agents") { const a = v.split(",").map((x) => x.trim()).filter(Boolean); return a.length ? { agents: a } : null; }
  const labels = {};
  for (const part of v.split(",").map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i > 0) labels[part.slice(0, i)] = part.slice(i + 1);
  }
  return Object.keys(labels).length ? { labels } : null;
}

function wireSelector(root) {
  const mode = $("#sel-mode", root), val = $("#sel-value", root), wrap = $("#sel-value-wrap", root), out = $("#preview", root);
  const ph = { hostname: "web-*", labels: "env=prod,role=web", agents: "agent id, agent id" };
  let seq = 0, timer = null;
  const preview = async () => {
    const sel = selectorFrom(root);
    if (!sel) { out.textContent = "enter a value"; out.dataset.count = ""; return; }
    const mine = ++seq;
    const r = await api("POST", "/api/v1/jobs/preview", sel);
    if (mine !== seq) return;
    if (!r.ok) { out.textContent = r.data.error || "—"; out.dataset.count = ""; return; }
    out.dataset.count = r.data.count;
    out.textContent = r.data.count + (r.data.count === 1 ? " host matches" : " hosts match");
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(preview, 250); };
  mode.addEventListener("change", () => { wrap.hidden = mode.value === "all"; val.placeholder = ph[mode.value] || ""; later(); });
  val.addEventListener("input", later);
  on("agent", later);
  preview();
}

async function initJobs() {
  const form = $("#job-form");
  if (!form) return;
  await actionPicker(form);
  wireSelector(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(form, "");
    const selector = selectorFrom(form);
    if (!selector) { showError(form, "choose the target hosts"); return; }
    let params;
    try { params = collectSchemaForm($("#params", form)); } catch (err) { showError(form, err.message); return; }
    const r = await api("POST", "/api/v1/jobs", { selector, action: $("#action", form).value, params });
    if (!r.ok) { showError(form, r.data.error || "failed"); return; }
    location.href = "/jobs/" + encodeURIComponent(r.data.id);
  });
}

/// Output tails of the first rows of a job page.
async function fillTails() {
  const rows = $$("#job-hosts tr[data-command]").slice(0, 25);
  for (const tr of rows) {
    const pre = $("pre.tail", tr);
    if (!pre || pre.dataset.filled) continue;
    pre.dataset.filled = "1";
    const out = { after: 0, lines: [] };
    await loadOutput(tr.dataset.command, out);
    if (out.lines.length) pre.textContent = out.lines.slice(-8).join("\n");
  }
}

function wireCancelJob() {
  const b = $("#cancel-job");
  if (!b || b.dataset.wired) return;
  b.dataset.wired = "1";
  b.addEventListener("click", async () => {
    if (!confirm("Cancel every command of this job that has not finished?")) return;
    b.disabled = true;
    const ids = (b.dataset.commands || "").split(",").filter(Boolean);
    let failed = 0;
    for (const id of ids) {
      const r = await api("POST", "/api/v1/commands/" + encodeURIComponent(id) + "/cancel");
      if (!r.ok && r.status !== 409) failed++;
    }
    toast(failed ? failed + " could not be cancelled" : "Cancelled.", failed > 0);
    scheduleRefresh(0);
  });
}

// ---------------------------------------------------------------- apps

function inputFor(inp) {
  const name = inp.name;
  const common = { name, id: "in-" + name, required: inp.required || null };
  let e;
  switch (inp.type) {
    case "boolean":
      e = el("input", Object.assign(common, { type: "checkbox", required: null }));
      e.checked = inp.default === true;
      break;
    case "select":
      e = el("select", common);
      if (!inp.required) e.append(el("option", { value: "", text: "—" }));
      for (const v of inp.allowed_values || []) e.append(el("option", { value: v, text: v }));
      if (inp.default !== undefined && inp.default !== null) e.value = String(inp.default);
      break;
    case "integer":
    case "port":
      e = el("input", Object.assign(common, { type: "number", step: "1",
        min: inp.min !== undefined && inp.min !== null ? inp.min : (inp.type === "port" ? 1 : null),
        max: inp.max !== undefined && inp.max !== null ? inp.max : (inp.type === "port" ? 65535 : null) }));
      if (inp.default !== undefined && inp.default !== null) e.value = inp.default;
      break;
    default: {
      const sensitive = inp.sensitive || inp.type === "password";
      const type = sensitive ? "password" : ({ email: "email", url: "url" }[inp.type] || "text");
      e = el("input", Object.assign(common, {
        type, pattern: inp.pattern, minlength: inp.min_length, maxlength: inp.max_length,
        autocomplete: sensitive ? "new-password" : "off",
        placeholder: { hostname: "host.example.com", path: "/srv/app", url: "https://…", email: "ops@example.com" }[inp.type] || null,
      }));
      // Sensitive values are never pre-filled (nor sent back by the server).
      if (!sensitive && inp.default !== undefined && inp.default !== null) e.value = String(inp.default);
    }
  }
  e.dataset.kind = inp.type;
  return e;
}

function valueOf(e) {
  if (!e) return undefined;
  if (e.type === "checkbox") return e.checked;
  if (e.dataset.kind === "integer" || e.dataset.kind === "port") return e.value === "" ? undefined : Number(e.value);
  return e.value;
}

// As the server decides: a condition holds only when the input it names is
// itself shown (a hidden input's value shows nothing), compared as text.
// Repeated so that chains settle whatever the declaration order.
function applyVisibility(form, inputs) {
  for (let pass = 0; pass <= inputs.length; pass++) {
    let changed = false;
    for (const inp of inputs) {
      const cond = inp.visible_if || {};
      let show = true;
      for (const [other, want] of Object.entries(cond)) {
        const ctl = $("#in-" + other, form);
        const v = ctl && !ctl.disabled ? valueOf(ctl) : undefined;
        const wants = Array.isArray(want) ? want : [want];
        if (v === undefined || !wants.some((w) => String(w) === String(v))) show = false;
      }
      const wrap = $('[data-input="' + inp.name + '"]', form);
      if (wrap.hidden !== !show) changed = true;
      wrap.hidden = !show;
      const f = $("#in-" + inp.name, form);
      if (f) f.disabled = !show;
    }
    if (!changed) break;
  }
}

async function initApps() {
  const box = $("#apps");
  if (!box) return;
  const r = await api("GET", "/api/v1/apps");
  box.textContent = "";
  if (!r.ok) {
    box.append(el("div", { class: "empty", text: r.status === 404 ? "The app catalogue is not available on this control plane yet." : (r.data.error || "Could not load the catalogue.") }));
    return;
  }
  const apps = r.data.apps || [];
  if (!apps.length) {
    box.append(el("div", { class: "empty", text: "No apps in the catalogue. Add manifests to the manifests directory." }));
    return;
  }
  const canInstall = box.dataset.canInstall === "true";
  for (const app of apps) {
    box.append(el("div", { class: "card app", "data-app": app.id },
      el("div", { class: "app-head" }, el("h3", { text: app.name || app.id }), el("span", { class: "chip", text: app.category || "app" })),
      el("p", { class: "mut", text: app.description || "" }),
      el("div", { class: "app-foot" },
        el("span", { class: "id", text: app.id + " " + (app.version || "") }),
        canInstall ? el("button", { class: "primary small", "data-install": app.id, text: "Install…", onclick: () => openInstall(app) }) : null)));
  }
}

function openInstall(app) {
  const card = $("#install-card"), form = $("#install-form"), box = $("#inputs");
  card.hidden = false;
  $("#install-title").textContent = "Install " + (app.name || app.id);
  $("#install-desc").textContent = app.description || "";
  box.textContent = "";
  showError(form, "");
  const inputs = app.inputs || [];
  for (const inp of inputs) {
    const field = inputFor(inp);
    const label = el("label", { "data-input": inp.name, class: inp.type === "boolean" ? "check" : null },
      (inp.label || inp.name) + (inp.required ? " *" : ""), field);
    if (inp.help) label.append(el("small", { text: inp.help }));
    box.append(label);
  }
  const update = () => applyVisibility(form, inputs);
  box.oninput = update;
  box.onchange = update;
  update();
  form.dataset.app = app.id;
  if (!form.dataset.wired) {
    form.dataset.wired = "1";
    wireSelector(form);
    $("#install-cancel").addEventListener("click", () => { card.hidden = true; });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showError(form, "");
      const selector = selectorFrom(form);
      if (!selector) { showError(form, "choose the target hosts"); return; }
      const vals = {};
      for (const f of $$("[name]", $("#inputs"))) {
        if (f.disabled) continue;
        const v = valueOf(f);
        if (v === undefined || v === "") continue;
        vals[f.name] = v;
      }
      const r = await api("POST", "/api/v1/apps/" + encodeURIComponent(form.dataset.app) + "/install", { selector, inputs: vals });
      // Clear secrets from the page whatever happened.
      for (const p of $$("input[type=password]", form)) p.value = "";
      if (!r.ok) { showError(form, r.data.error || "failed"); return; }
      location.href = "/jobs/" + encodeURIComponent(r.data.job_id || r.data.id);
    });
  }
  card.scrollIntoView({ behavior: "smooth", block: "start" });
}

// ------------------------------------------------------------- account

function initAccount() {
  const b = $("#totp-start");
  if (!b) return;
  b.addEventListener("click", async () => {
    const r = await api("POST", "/api/v1/account/totp");
    if (!r.ok) { toast(r.data.error || "failed", true); return; }
    $("#totp-secret").textContent = r.data.secret;
    $("#totp-url").textContent = r.data.otpauth_url;
    $("#totp-setup").hidden = false;
    b.hidden = true;
  });
}

// ---------------------------------------------------------------- init

updateTimes();
applyWidths();
wireForms();
wireButtons();
wireCancelJob();
fillTails();
// What makes each page's live regions stale.
const LIVE_ON = {
  fleet: ["agent"], agent: ["agent", "command"], jobs: ["command"], enrolment: ["agent"],
  security: ["agent"], audit: ["command", "agent"], schedules: ["command"],
  windows: ["command", "agent"], history: ["command"], rollouts: ["rollout", "command", "release"],
  releases: ["release"], services: ["service"], alerts: ["alert"],
};
if ($("#agent-head")) {
  const form = $("#run-form");
  const head = $("#agent-head .id");
  const agentId = form ? form.dataset.agent : (head ? head.textContent : "");
  on("agent", (ev) => { if (ev.agent_id === agentId) scheduleRefresh(1000); });
  on("command", (ev) => { if (ev.agent_id === agentId) scheduleRefresh(500); });
  on("service", (ev) => { if (ev.agent_id === agentId) scheduleRefresh(500); });
  initRunner();
} else if (PAGE === "fleet") {
  on("agent", () => scheduleRefresh(1500));
  on("service", () => scheduleRefresh(1500));
  // A scan's result changes the update and reboot counts.
  on("command", (ev) => { if (ev.action === "pkg.scan") scheduleRefresh(1500); });
} else if (PAGE === "updates") {
  on("command", (ev) => { if (String(ev.action || "").startsWith("pkg.")) scheduleRefresh(1000); });
  on("agent", () => scheduleRefresh(3000));
} else if (PAGE === "jobs") {
  on("command", () => scheduleRefresh(800));
  initJobs();
} else if (PAGE === "apps") {
  initApps();
} else if (PAGE === "account") {
  initAccount();
} else if (LIVE_ON[PAGE]) {
  for (const k of LIVE_ON[PAGE]) on(k, () => scheduleRefresh(1500));
}
// Deliveries change without an event on the stream: refresh while open.
if (PAGE === "notifications") setInterval(() => scheduleRefresh(0), 3000);

// ------------------------------------------------------------- alerts

// The nav's Alerts entry counts firing alerts, re-read on each alert event.
async function alertBadge() {
  const link = $('nav a[href="/alerts"]');
  if (!link) return;
  try {
    const r = await fetch("/api/v1/alerts?state=firing&limit=1", { credentials: "same-origin" });
    if (!r.ok) return;
    const n = (await r.json()).firing || 0;
    let b = $(".badge", link);
    if (!b) { b = el("span", { class: "badge" }); link.append(" ", b); }
    b.textContent = String(n);
    b.hidden = n === 0;
  } catch (e) { /* the banner shows connectivity */ }
}
if ($("#banner")) {
  alertBadge();
  let badgeTimer = null;
  on("alert", () => { clearTimeout(badgeTimer); badgeTimer = setTimeout(alertBadge, 500); });
}
