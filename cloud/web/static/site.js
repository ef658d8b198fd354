// Gates and garage: the recent entries at the gates (resident, visitor pass, refused) and the garage map:
// lanes, each light at its current level, the cars and people the gateway tracks; the lights override.
"use strict";
(async function () {
  const SC = window.SC, t = SC.t, el = SC.el;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("garage-map");
  const pick = document.getElementById("garage-pick");
  const staff = ["operator", "admin"].includes(SC.user()?.role);
  let site, garage = null, flip = (y) => y;

  const s = (tag, attrs = {}) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  // 0 % dark grey .. 100 % bright yellow
  const lightColour = (level) => `hsl(48, ${level ? 100 : 0}%, ${14 + level * 0.5}%)`;

  const drawLayout = (g) => {
    const pts = [...g.lanes.flatMap((l) => l.points), ...g.lights.map((l) => [l.x, l.y])];
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs) - 4, Math.max(...xs) + 4, Math.min(...ys) - 4, Math.max(...ys) + 4];
    flip = (y) => y1 + y0 - y; // the plan's y grows up, the screen's down
    svg.setAttribute("viewBox", `${x0} ${y0} ${x1 - x0} ${y1 - y0}`);
    svg.replaceChildren();
    for (const l of g.lanes) {
      svg.append(s("polyline", { class: "lane " + l.kind, "stroke-width": l.kind === "walkway" ? 1.2 : 3,
        points: l.points.map(([x, y]) => `${x},${flip(y)}`).join(" ") }));
    }
    const mark = (p, text) => {
      const e = s("text", { x: p[0], y: flip(p[1]), "text-anchor": "middle" });
      e.textContent = text;
      svg.append(e);
    };
    g.entrances.forEach((p) => mark(p, "⇄"));
    g.lobbies.forEach((p) => mark(p, "⇅"));
    for (const l of g.lights) {
      const c = s("circle", { class: "light", id: "light-" + l.id, cx: l.x, cy: flip(l.y), r: 0.9, fill: lightColour(0) });
      c.append(s("title"));
      c.firstChild.textContent = l.id;
      svg.append(c);
    }
    svg.append(s("g", { id: "tracks" }));
  };

  const drawState = (g) => {
    const st = g.state;
    const note = document.getElementById("garage-note");
    const sum = document.getElementById("garage-summary");
    note.hidden = !!st && !st.stale && !st.fire;
    note.textContent = !st ? t("site.no_state") : st.fire ? t("site.smoke") : st.stale ? t("site.stale") : "";
    if (!st) { sum.textContent = ""; return; }
    const faulty = new Set(st.faults.map((f) => f.device));
    for (const l of st.lights) {
      const c = document.getElementById("light-" + l.id);
      if (!c) continue;
      c.setAttribute("fill", lightColour(l.level));
      c.dataset.level = l.level;
      c.classList.toggle("fault", faulty.has(l.id));
      c.firstChild.textContent = `${l.id}: ${l.level}%` + (l.override ? ` (${t("level." + l.override)})` : "");
    }
    const layer = document.getElementById("tracks");
    layer.replaceChildren(...st.tracks.map((tr) => {
      const grp = s("g", { class: "track " + tr.kind, "data-id": tr.id });
      grp.append(s("circle", { cx: tr.x, cy: flip(tr.y), r: tr.kind === "car" ? 1.6 : 0.8 }));
      if (tr.heading_deg !== null && tr.heading_deg !== undefined) {
        const a = (tr.heading_deg * Math.PI) / 180;
        grp.append(s("line", { x1: tr.x, y1: flip(tr.y), x2: tr.x + 3 * Math.cos(a), y2: flip(tr.y + 3 * Math.sin(a)), stroke: "#fff", "stroke-width": 0.3 }));
      }
      return grp;
    }));
    const full = st.lights.filter((l) => l.full).length;
    const kinds = {};
    for (const tr of st.tracks) kinds[tr.kind] = (kinds[tr.kind] || 0) + 1;
    sum.textContent = `${full}/${st.lights.length} ${t("site.lights_full")} · ${t("site.tracks")}: ` +
      (Object.entries(kinds).map(([k, n]) => `${n} ${t("site." + k)}`).join(", ") || "0") +
      (st.faults.length ? ` · ${t("site.faults")}: ${st.faults.map((f) => `${f.device} ${f.kind}`).join(", ")}` : "");
  };

  const loadGarage = async (id) => {
    garage = await SC.api(`/garages/${encodeURIComponent(id)}`);
    drawLayout(garage);
    drawState(garage);
  };
  const refreshGarage = async () => {
    if (!garage) return;
    const g = await SC.api(`/garages/${encodeURIComponent(garage.id)}`);
    garage.state = g.state;
    drawState(garage);
  };

  const loadEntries = async () => {
    const rows = await SC.api("/entries?limit=50");
    const body = document.querySelector("#entries tbody");
    if (!rows.length) return body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty", text: t("site.no_entries") })));
    body.replaceChildren(...rows.map((e) => {
      const img = el("img", { class: "thumb", alt: "", hidden: true });
      if (e.snapshot_url) SC.authImg(img, e.snapshot_url);
      return el("tr", {},
        el("td", { text: SC.fmtTime(e.ts) }),
        el("td", { text: site.gates.find((g) => g.id === e.gate)?.name ?? e.gate }),
        el("td", { text: e.person ?? "–" }),
        el("td", { text: e.method ?? "–" }),
        el("td", { class: e.granted ? "granted" : "refused", text: (e.granted ? t("site.granted") : t("site.refused")) + (e.reason ? ` · ${e.reason}` : "") }),
        el("td", {}, img));
    }));
  };

  document.querySelectorAll(".override button").forEach((b) => {
    b.hidden = !staff;
    b.onclick = async () => {
      try {
        await SC.api(`/garages/${encodeURIComponent(garage.id)}/lights`, { json: { level: b.dataset.level } });
        SC.toast(`${t("site.override")}: ${t("level." + b.dataset.level)}`, false);
        await refreshGarage();
      } catch (err) { SC.fail(err); }
    };
  });

  try {
    site = await SC.site();
    for (const g of site.garages) pick.append(el("option", { value: g.id, text: g.name }));
    pick.onchange = () => loadGarage(pick.value).catch(SC.fail);
    if (site.garages.length) await loadGarage(site.garages[0].id);
    else document.querySelector(".garage-card").hidden = true;
    if (site.gates.length) await loadEntries();
    else document.querySelector(".entries-card").hidden = true;
  } catch (err) { return SC.fail(err); }
  setInterval(() => refreshGarage().catch(() => {}), 1000);
  setInterval(() => site.gates.length && loadEntries().catch(() => {}), 5000);
})();
