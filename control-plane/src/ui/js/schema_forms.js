// Drover web UI: forms built from JSON Schemas (actions), command results shown live, the host page's runner. Loaded after app.js (its helpers), before init.js.
"use strict";

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

// `list`: the actions to offer (default: the whole catalogue).
async function actionPicker(form, only, list) {
  const sel = $("#action", form);
  const acts = (list || await loadActions()).filter((a) => a.name !== "sys.cancel" && (!only || only.includes(a.module)));
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
  // Only what this host can run now; the page says what is left out, and why.
  const mine = await api("GET", "/api/v1/agents/" + encodeURIComponent(form.dataset.agent) + "/actions");
  await actionPicker(form, null, mine.ok ? mine.data.actions : null);
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

