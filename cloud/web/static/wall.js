// The alarm wall: every open device alarm, newest and worst first, live; acknowledge and dispatch in one click.
"use strict";
(async function () {
  const SC = window.SC, t = SC.t;
  const RANK = { critical: 0, major: 1, warning: 2, info: 3 };
  const ON_WALL = SC.rules.actions.acknowledge.from; // every status in which an alarm still needs someone
  const orders = new Map();
  const box = document.getElementById("alarms");
  const tpl = document.getElementById("alarm-tpl");
  let site;

  const onWall = (o) => o.source === "device" && ON_WALL.includes(o.status);

  const act = async (o, body) => {
    try {
      const d = await SC.api(`/work-orders/${o.id}/actions`, { json: body });
      upsert(d);
    } catch (err) { SC.fail(err); }
  };

  const card = (o) => {
    const node = tpl.content.firstElementChild.cloneNode(true);
    node.id = "alarm-" + o.id;
    node.dataset.id = o.id;
    node.classList.add("sev-" + o.severity);
    if (!o.acknowledged_at) node.classList.add("unacked");
    node.querySelector(".sev").textContent = t("severity." + o.severity);
    node.querySelector(".kind").textContent = t("kind." + o.kind);
    node.querySelector(".new").textContent = o.acknowledged_at ? "" : t("wall.unacked");
    node.querySelector(".ago").textContent = SC.fmtTime(o.created_at);
    node.querySelector(".where").textContent = SC.where(site, o.location) + (o.device ? ` · ${o.device}` : "");
    const meta = [`${t("status." + o.status)}`, `${o.alarm_count} ${t("wall.alarms")}`];
    if (o.assignee) meta.push(`→ ${site.workers.find((w) => w.id === o.assignee)?.name ?? o.assignee}`);
    if (o.cleared_at) meta.push(t("wall.cleared"));
    if (o.acknowledged_at) meta.push(`${t("wall.acked_by")} ${o.acknowledged_by} ${SC.fmtTime(o.acknowledged_at)}`);
    if (o.escalation_level > 0) meta.push(`${t("escalated")} ${o.escalation_level} → ${o.escalated_to}`);
    node.querySelector(".meta").textContent = meta.join(" · ");
    if (o.snapshot_url) SC.authImg(node.querySelector(".snap"), o.snapshot_url);
    const ack = node.querySelector(".ack");
    ack.textContent = t("action.acknowledge");
    ack.hidden = !SC.can("acknowledge", o);
    ack.onclick = () => act(o, { action: "acknowledge" });
    const sel = node.querySelector(".worker");
    for (const w of site.workers) sel.append(SC.el("option", { value: w.id, selected: w.id === o.assignee, text: w.name }));
    sel.title = t("dispatch.to");
    const dispatch = node.querySelector(".dispatch");
    dispatch.textContent = t("action.dispatch");
    sel.hidden = dispatch.hidden = !SC.can("dispatch", o);
    dispatch.onclick = () => act(o, { action: "dispatch", assignee: sel.value });
    const link = node.querySelector(".open");
    link.textContent = "#" + o.id;
    link.href = "/ui/orders#" + o.id;
    return node;
  };

  const render = () => {
    const list = [...orders.values()].filter(onWall).sort((a, b) =>
      (!!a.acknowledged_at - !!b.acknowledged_at) || (RANK[a.severity] - RANK[b.severity]) || (b.id - a.id));
    box.replaceChildren(...list.map(card));
    document.getElementById("wall-empty").hidden = list.length > 0;
    document.getElementById("wall-count").textContent = list.length ? `(${list.length})` : "";
  };

  const upsert = (o) => { orders.set(o.id, o); render(); };

  try {
    site = await SC.site();
    const q = ON_WALL.map((s) => "status=" + s).join("&");
    for (const o of await SC.api(`/work-orders?${q}&limit=1000`)) orders.set(o.id, o);
    render();
  } catch (err) { return SC.fail(err); }

  SC.live((ev) => {
    const o = ev.order;
    // a new alarm, or the device alarming again on an open order: sound and flash until acknowledged
    const calls = (ev.action === "open" && !orders.has(o.id)) || ev.action === "alarm_again";
    orders.set(o.id, o);
    render();
    if (calls && onWall(o)) {
      SC.beep(o.severity);
      document.getElementById("alarm-" + o.id)?.classList.add("flash");
    }
  });

  // an unacknowledged critical or major alarm keeps calling every 10 s
  setInterval(() => {
    const open = [...orders.values()].filter((o) => onWall(o) && !o.acknowledged_at);
    const worst = open.sort((a, b) => RANK[a.severity] - RANK[b.severity])[0];
    if (worst && RANK[worst.severity] <= RANK.major) SC.beep(worst.severity);
  }, 10000);
  setInterval(render, 30000); // "ago"/deadline texts
})();
