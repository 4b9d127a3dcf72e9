// Drover web UI: runs last. Wires the page's forms and buttons, says which events make each page's live regions stale, starts the page's own script, and keeps the nav's firing-alerts badge.
"use strict";

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
  releases: ["release"], services: ["service"], alerts: ["alert"], operations: ["command"],
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
