// Devices: every gateway and device with its state, filterable by grid, kind and state; a device's readings
// over the last 24 hours from the telemetry store, charted with Chart.js.
"use strict";
(async function () {
  const SC = window.SC, t = SC.t, el = SC.el;
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#device-table tbody");
  let site, devices = [], chart = null, chosen = null;

  const kindOf = (d) => (d.type || "").split(":")[0] || "?";
  const stateOf = (d) => (d.online === true ? "online" : d.online === false ? "offline" : "unknown");
  const reading = (r) => (r ? Object.entries(r).filter(([k]) => k !== "battery_pct" && k !== "type")
    .map(([k, v]) => `${k.replaceAll("_", " ")} ${typeof v === "number" ? +v.toFixed(2) : v}`).join(", ") : "–");

  const fillFilters = () => {
    const grids = site.tree.filter((n) => n.level === "micro_grid");
    const gsel = form.elements.grid, ksel = form.elements.kind;
    for (const g of grids) gsel.append(el("option", { value: g.id, text: g.name }));
    for (const k of [...new Set(devices.map(kindOf))].sort()) ksel.append(el("option", { value: k, text: k }));
  };

  const render = () => {
    const f = Object.fromEntries(new FormData(form));
    const shown = devices.filter((d) => (!f.grid || SC.gridOf(site, d.location) === f.grid)
      && (!f.kind || kindOf(d) === f.kind) && (!f.state || stateOf(d) === f.state));
    document.getElementById("device-count").textContent = `${shown.length} / ${devices.length}`;
    tbody.replaceChildren(...shown.map((d) => {
      const st = stateOf(d);
      const battery = d.last_reading?.battery_pct;
      return el("tr", { "data-id": d.id, class: (d.id === chosen ? "selected " : "") + "state-" + st, onclick: () => chart_of(d) },
        el("td", { text: d.id }), el("td", { text: d.type || "–" }),
        el("td", { text: d.location ? SC.where(site, d.location) : d.gateway }),
        el("td", {}, el("span", { class: "pill " + st, text: t("devices." + st) }),
          st === "offline" && d.status_since ? ` ${t("devices.since")} ${SC.fmtTime(d.status_since)}` : "",
          d.status_reason && st !== "online" ? el("div", { class: "reason", text: d.status_reason }) : null),
        el("td", { text: reading(d.last_reading) }),
        el("td", { class: battery !== undefined && battery < 20 ? "low" : "", text: battery !== undefined ? battery + "%" : "–" }),
        el("td", { text: SC.fmtTime(d.last_seen) }));
    }));
  };

  const chart_of = async (d) => {
    chosen = d.id;
    render();
    document.getElementById("chart-title").textContent = `${d.id} · ${t("devices.history")}`;
    const empty = document.getElementById("chart-empty");
    const since = new Date(Date.now() - Number(document.getElementById("chart-range").value) * 1000).toISOString();
    let data;
    try {
      data = await SC.api(`/devices/${encodeURIComponent(d.id)}/readings?since=${encodeURIComponent(since)}&points=240`);
    } catch (err) { return SC.fail(err); }
    const series = data.series.filter((s) => s.points.some((p) => p[1] !== null));
    empty.hidden = series.length > 0;
    chart?.destroy();
    const colors = ["#d9480f", "#1971c2", "#2f9e44", "#ae3ec9", "#f08c00", "#495057"];
    chart = new Chart(document.getElementById("chart"), {
      type: "line",
      data: { datasets: series.map((s, i) => ({
        label: s.field.replaceAll("_", " "), borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length],
        pointRadius: s.points.filter((p) => p[1] !== null).length < 60 ? 3 : 0, borderWidth: 2, spanGaps: false, yAxisID: s.field === "battery_pct" ? "y2" : "y",
        data: s.points.map(([ts, v]) => ({ x: new Date(ts).getTime(), y: v })),
      })) },
      options: {
        animation: false, maintainAspectRatio: false, parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", ticks: { callback: (v) => SC.fmtTime(new Date(v).toISOString()), maxTicksLimit: 8 } },
          y: { beginAtZero: true }, y2: { position: "right", min: 0, max: 100, display: series.some((s) => s.field === "battery_pct") },
        },
        plugins: { tooltip: { callbacks: { title: (items) => SC.fmtTime(new Date(items[0].parsed.x).toISOString()) } } },
      },
    });
  };

  const load = async () => {
    devices = await SC.api("/devices");
    render();
  };

  try {
    site = await SC.site();
    await load();
    fillFilters();
  } catch (err) { return SC.fail(err); }
  form.addEventListener("change", render);
  document.getElementById("chart-range").addEventListener("change", () => {
    const d = devices.find((x) => x.id === chosen);
    if (d) chart_of(d);
  });
  setInterval(() => load().catch(SC.fail), 10000);
})();
