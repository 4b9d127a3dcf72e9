// Drover web UI: selectors and the Jobs page (start, tails, cancel). Loaded after app.js and schema_forms.js, before init.js.
"use strict";

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

