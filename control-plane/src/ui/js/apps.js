// Drover web UI: the Apps page (install forms from manifests, conditional inputs) and the Account page. Loaded after app.js, before init.js.
"use strict";

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

