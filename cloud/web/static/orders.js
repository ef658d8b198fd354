// The work-order board: a column per status, deadlines counting down, escalations marked; the selected
// order's full history and the actions the signed-in role may take (with the rating when closing).
"use strict";
(async function () {
  const SC = window.SC, t = SC.t, el = SC.el;
  // a column per status, closed last (it only shows the latest)
  const COLUMNS = [...SC.rules.statuses.filter((s) => s !== "closed"), "closed"];
  const orders = new Map();
  const board = document.getElementById("board");
  const detail = document.getElementById("detail");
  let site, selected = null;

  const due = (o) => {
    if (o.status === "closed" || o.status === "resolved") return null;
    const [what, at] = o.responded_at ? ["resolve", o.resolve_by] : ["respond", o.respond_by];
    const left = new Date(at) - Date.now();
    return { text: left < 0 ? `${t("due.overdue")} ${SC.span(left)}` : `${t("due." + what)} ${SC.span(left)}`, late: left < 0, soon: left >= 0 && left < 15 * 60000 };
  };

  const card = (o) => {
    const d = due(o);
    return el("article", {
      class: `order sev-${o.severity}` + (o.escalation_level ? " escalated" : "") + (o.id === selected ? " selected" : ""),
      id: "order-" + o.id, tabindex: 0,
      onclick: () => select(o.id),
      onkeydown: (e) => e.key === "Enter" && select(o.id),
    },
      el("div", { class: "line1" }, el("b", { text: "#" + o.id }), " ", el("span", { class: "sev", text: t("severity." + o.severity) }),
        o.escalation_level ? el("span", { class: "badge", text: `${t("escalated")} ${o.escalation_level}` }) : null),
      el("div", { class: "title", text: o.kind ? t("kind." + o.kind) : o.title }),
      el("div", { class: "where", text: SC.where(site, o.location) }),
      d ? el("div", { class: "due" + (d.late ? " late" : d.soon ? " soon" : ""), text: d.text }) : null,
      o.rating ? el("div", { class: "stars", text: "★".repeat(o.rating) + "☆".repeat(5 - o.rating) }) : null,
    );
  };

  const render = () => {
    const cols = COLUMNS.map((s) => {
      let list = [...orders.values()].filter((o) => o.status === s).sort((a, b) => b.id - a.id);
      if (s === "closed") list = list.slice(0, 20);
      return el("section", { class: "col", "data-status": s },
        el("h2", {}, s === "closed" ? t("orders.closed_recent") : t("status." + s), el("span", { class: "count", text: ` ${list.length}` })),
        list.map(card));
    });
    board.replaceChildren(...cols);
  };

  const row = (label, value) => el("div", { class: "kv" }, el("span", { text: label }), el("b", { text: value ?? "–" }));

  const showDetail = (d) => {
    const worker = (id) => site.workers.find((w) => w.id === id)?.name ?? id;
    const note = el("input", { class: "note", placeholder: t("note"), maxlength: 2000 });
    const acts = el("div", { class: "acts" });
    for (const a of d.actions) {
      if (a === "dispatch") {
        const sel = el("select", { class: "worker", title: t("dispatch.to") },
          site.workers.map((w) => el("option", { value: w.id, selected: w.id === d.assignee, text: `${w.name} (${w.department})` })));
        acts.append(el("span", { class: "group" }, sel, el("button", { type: "button", "data-action": a, text: t("action." + a),
          onclick: () => act(d.id, { action: a, assignee: sel.value, note: note.value }) })));
      } else if (a === "close") {
        const stars = el("select", { class: "rating", title: t("rating") },
          [5, 4, 3, 2, 1].map((n) => el("option", { value: n, text: "★".repeat(n) })));
        const comment = el("input", { class: "comment", placeholder: t("comment"), maxlength: 2000 });
        acts.append(el("span", { class: "group" }, stars, comment, el("button", { type: "button", class: "primary", "data-action": a, text: t("action." + a),
          onclick: () => act(d.id, { action: a, rating: Number(stars.value), comment: comment.value || null, note: note.value }) })));
      } else {
        acts.append(el("button", { type: "button", class: a === "acknowledge" || a === "accept" ? "primary" : "", "data-action": a, text: t("action." + a),
          onclick: () => act(d.id, { action: a, note: note.value }) }));
      }
    }
    const snap = el("img", { class: "snap", alt: "", hidden: true });
    if (d.snapshot_url) SC.authImg(snap, d.snapshot_url);
    detail.replaceChildren(...[
      el("button", { type: "button", class: "ghost close-detail", text: "×", onclick: () => { selected = null; detail.classList.remove("open"); history.replaceState(null, "", location.pathname); render(); } }),
      el("h2", {}, `#${d.id} `, el("span", { class: "sev sev-" + d.severity, text: t("severity." + d.severity) }), " ", d.kind ? t("kind." + d.kind) : d.title),
      el("div", { class: "status-line", text: t("status." + d.status) + (d.escalation_level ? ` · ${t("escalated")} ${d.escalation_level} → ${d.escalated_to}` : "") }),
      snap,
      row(t("order.location"), SC.where(site, d.location) + (d.device ? ` · ${d.device}` : "")),
      row(t("order.department"), site.departments.find((x) => x.id === d.department)?.name ?? d.department),
      row(t("order.assignee"), d.assignee ? worker(d.assignee) : null),
      row(t("order.created"), SC.fmtTime(d.created_at)),
      row(t("due.respond"), SC.fmtTime(d.respond_by) + (d.responded_at ? ` ✓ ${SC.fmtTime(d.responded_at)}` : "")),
      row(t("due.resolve"), SC.fmtTime(d.resolve_by) + (d.resolved_at ? ` ✓ ${SC.fmtTime(d.resolved_at)}` : "")),
      d.last_reading ? row(t("order.reading"), Object.entries(d.last_reading).filter(([k]) => k !== "type").map(([k, v]) => `${k} ${v}`).join(", ")) : null,
      d.rating ? row(t("rating"), "★".repeat(d.rating) + (d.rating_comment ? ` “${d.rating_comment}”` : "")) : null,
      d.description ? el("p", { text: d.description }) : null,
      d.actions.length ? el("div", { class: "act-box" }, note, acts) : null,
      el("h3", { text: t("order.history") }),
      el("ol", { class: "history" }, d.history.map((h) => el("li", {},
        el("time", { text: SC.fmtTime(h.at) }), " ",
        el("b", { text: SC.labels["action." + h.action] ?? SC.labels["history." + h.action] ?? h.action }),
        ` · ${h.actor}` + (h.to_status && h.to_status !== h.from_status ? ` → ${t("status." + h.to_status)}` : "") + (h.note ? ` · ${h.note}` : "")))),
      d.events.length ? el("h3", { text: t("order.events") }) : null,
      d.events.length ? el("ol", { class: "history" }, d.events.map((e) => el("li", {},
        el("time", { text: SC.fmtTime(e.ts) }), ` ${t("kind." + e.kind)} ${e.state} · ${e.device}`))) : null,
    ].filter((x) => x !== null));
    detail.classList.add("open");
  };

  const select = async (id) => {
    selected = id;
    history.replaceState(null, "", "#" + id);
    render();
    try { showDetail(await SC.api(`/work-orders/${id}`)); } catch (err) { SC.fail(err); }
  };

  const act = async (id, body) => {
    try {
      const d = await SC.api(`/work-orders/${id}/actions`, { json: body });
      orders.set(d.id, d);
      render();
      showDetail(d);
      SC.toast(`#${d.id} ${t("status." + d.status)}`, false);
    } catch (err) { SC.fail(err); }
  };

  try {
    site = await SC.site();
    // every order still in work, and the latest closed ones (however many were closed before them)
    const active = COLUMNS.filter((c) => c !== "closed").map((c) => "status=" + c).join("&");
    const [working, closed] = await Promise.all([
      SC.api(`/work-orders?${active}&limit=1000`), SC.api("/work-orders?status=closed&limit=20"),
    ]);
    for (const o of [...working, ...closed]) orders.set(o.id, o);
    render();
    const want = Number(location.hash.slice(1));
    if (want) select(want);
  } catch (err) { return SC.fail(err); }

  SC.live((ev) => {
    orders.set(ev.order.id, ev.order);
    render();
    if (ev.order.id === selected) select(selected);
  });
  setInterval(render, 1000); // deadlines count down
})();
