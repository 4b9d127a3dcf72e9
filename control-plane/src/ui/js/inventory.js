// Inventory on a host's page (ui/inventory.rs): the name, label and notes
// forms are generic `form[data-api]` (app.js); this file owns only the
// decommission button: confirm, call the API, reload to show the banner.
(function () {
  const b = $("#decommission");
  if (!b) return;
  b.addEventListener("click", async () => {
    if (!confirm(b.dataset.confirm)) return;
    b.disabled = true;
    const r = await api("POST", b.dataset.url);
    b.disabled = false;
    if (!r.ok) { toast(r.data.error || ("failed (" + r.status + ")"), true); return; }
    location.reload();
  });
})();
