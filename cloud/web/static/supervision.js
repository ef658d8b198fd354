// Supervision: response and resolution times, deadlines met and ratings per department, grid, community,
// property company or category, for a chosen period (GET /api/v1/stats), as charts and a table.
"use strict";
(async function () {
  const SC = window.SC, t = SC.t, el = SC.el;
  const form = document.getElementById("period");
  const charts = {};
  let site;

  const name = (by, key) => {
    if (by === "department") return site.departments.find((d) => d.id === key)?.name ?? key;
    if (by === "grid" || by === "community") return site.node[key]?.name ?? key;
    return key;
  };
  const bar = (id, labels, sets, opts = {}) => {
    charts[id]?.destroy();
    charts[id] = new Chart(document.getElementById(id), {
      type: "bar",
      data: { labels, datasets: sets },
      options: Object.assign({ animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } }, opts),
    });
  };
  const fmt = (v, digits = 1) => (v === null || v === undefined ? "–" : (+v).toFixed(digits));

  const load = async () => {
    const f = Object.fromEntries(new FormData(form));
    const custom = f.days === "custom";
    form.querySelectorAll(".custom").forEach((x) => (x.hidden = !custom));
    let range;
    if (!custom) range = `since=${encodeURIComponent(new Date(Date.now() - Number(f.days) * 86400000).toISOString())}`;
    else if (f.from && f.to) {
      // local midnights: "to" is inclusive, so the period ends at the next day's midnight
      const until = new Date(f.to + "T00:00");
      until.setDate(until.getDate() + 1);
      range = `since=${encodeURIComponent(new Date(f.from + "T00:00").toISOString())}&until=${encodeURIComponent(until.toISOString())}`;
    } else return;
    const rows = await SC.api(`/stats?by=${f.by}&${range}`);
    const labels = rows.map((r) => name(f.by, r.key));
    bar("c-times", labels, [
      { label: t("sup.response_min"), data: rows.map((r) => r.avg_response_min), backgroundColor: "#1971c2" },
      { label: t("sup.resolution_min"), data: rows.map((r) => r.avg_resolution_min), backgroundColor: "#f08c00" },
    ]);
    bar("c-met", labels, [
      { label: t("sup.respond_met"), data: rows.map((r) => r.response_deadline_met_pct), backgroundColor: "#2f9e44" },
      { label: t("sup.resolve_met"), data: rows.map((r) => r.resolution_deadline_met_pct), backgroundColor: "#66a80f" },
    ], { scales: { y: { min: 0, max: 100 } } });
    bar("c-rating", labels, [{ label: t("sup.rating"), data: rows.map((r) => r.avg_rating), backgroundColor: "#ae3ec9" }],
      { scales: { y: { min: 0, max: 5 } } });
    document.querySelector("#stats tbody").replaceChildren(...rows.map((r, i) => el("tr", {},
      el("td", { text: labels[i] }), el("td", { text: r.orders }),
      el("td", { text: fmt(r.avg_response_min) }), el("td", { text: fmt(r.avg_resolution_min) }),
      el("td", { text: fmt(r.response_deadline_met_pct, 0) }), el("td", { text: fmt(r.resolution_deadline_met_pct, 0) }),
      el("td", { text: r.escalated }), el("td", { text: fmt(r.reopen_rate_pct, 0) }),
      el("td", { text: fmt(r.avg_rating, 2) }), el("td", { text: r.ratings }))));
  };

  try { site = await SC.site(); await load(); } catch (err) { return SC.fail(err); }
  form.addEventListener("change", () => load().catch(SC.fail));
  // the figures follow the orders: reload (at most every 2 s) when one changes
  let pending = null;
  SC.live(() => (pending ??= setTimeout(() => { pending = null; load().catch(SC.fail); }, 2000)));
})();
