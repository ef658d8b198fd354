// The control room's common script: sign-in token, API calls, labels, the live feed, sound, time formats.
// Each view's own script (wall.js, orders.js, ...) builds on window.SC.
"use strict";
(function () {
  // the page's settings come as a JSON data block (no inline script runs under the Content-Security-Policy)
  const SC = (window.SC = JSON.parse(document.getElementById("sc-config").textContent));
  const TOKEN = "sc_token", USER = "sc_user", SOUND = "sc_sound";

  // may the signed-in user take ``action`` on ``order`` now? (the state machine's rules; the API checks again)
  SC.can = (action, order) => {
    const rule = SC.rules.actions[action];
    if (!rule || !rule.roles.includes(SC.user()?.role) || !rule.from.includes(order.status)) return false;
    return action !== "acknowledge" || !order.acknowledged_at;
  };
  SC.t = (key) => SC.labels[key] ?? key.split(".").pop().replaceAll("_", " ");
  SC.user = () => JSON.parse(localStorage.getItem(USER) || "null");
  // the sign-out button also revokes the token in the cloud (a 401 only forgets it here: it is already invalid)
  SC.signOut = async (clicked) => {
    const tok = localStorage.getItem(TOKEN);
    if (tok && clicked) {
      try {
        await fetch("/api/v1/auth/signout", { method: "POST", headers: { Authorization: "Bearer " + tok } });
      } catch (e) { /* offline: the token expires on its own */ }
    }
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(USER);
    location.href = "/ui/login?next=" + encodeURIComponent(location.pathname);
  };

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }
  SC.ApiError = ApiError;

  // fetch the JSON API as the signed-in user; a 401 sends the person to the sign-in page
  SC.api = async (path, opts = {}) => {
    const headers = Object.assign({ Authorization: "Bearer " + localStorage.getItem(TOKEN) }, opts.headers || {});
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      opts = Object.assign({}, opts, { body: JSON.stringify(opts.json), method: opts.method || "POST" });
    }
    const resp = await fetch("/api/v1" + path, Object.assign({}, opts, { headers }));
    if (resp.status === 401) { SC.signOut(); throw new ApiError(401, "signed out"); }
    const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
    if (!resp.ok) {
      const d = body?.detail;
      throw new ApiError(resp.status, typeof d === "string" ? d : JSON.stringify(d ?? resp.statusText));
    }
    return body;
  };

  SC.toast = (text, bad = true) => {
    const el = document.getElementById("toast");
    el.textContent = text;
    el.className = bad ? "show bad" : "show";
    clearTimeout(SC._toastTimer);
    SC._toastTimer = setTimeout(() => (el.className = ""), 5000);
  };
  SC.fail = (err) => SC.toast(SC.t("error") + ": " + (err?.message || err));

  // ---- time
  const pad = (n) => String(n).padStart(2, "0");
  SC.fmtTime = (iso) => {
    if (!iso) return "–";
    const d = new Date(iso);
    const today = new Date().toDateString() === d.toDateString();
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return today ? hm : `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
  };
  SC.span = (ms) => {
    const s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  };
  SC.ago = (iso) => (iso ? SC.span(Date.now() - new Date(iso)) : "–");

  SC.el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
    return e;
  };

  // ---- the site: names of places in the grid tree, workers to dispatch to
  let sitePromise = null;
  SC.site = () => (sitePromise ??= SC.api("/site").then((s) => {
    s.node = Object.fromEntries(s.tree.map((n) => [n.id, n]));
    return s;
  }));
  // "street › community › grid › building" for a location id
  SC.where = (site, loc) => {
    const names = [];
    for (let n = site.node[loc]; n; n = site.node[n.parent]) names.unshift(n.name);
    return names.length ? names.join(" › ") : loc;
  };
  SC.gridOf = (site, loc) => {
    for (let n = site.node[loc]; n; n = site.node[n.parent]) if (n.level === "micro_grid") return n.id;
    return null;
  };

  // an image the API serves only to signed-in users (snapshots), fetched once per page (views re-render often)
  const images = new Map();
  SC.authImg = async (img, url) => {
    if (!images.has(url)) {
      images.set(url, fetch(url, { headers: { Authorization: "Bearer " + localStorage.getItem(TOKEN) } })
        .then((resp) => (resp.ok ? resp.blob().then((b) => URL.createObjectURL(b)) : null)));
      if (images.size > 200) {
        const [oldest, src] = images.entries().next().value;
        images.delete(oldest);
        src.then((u) => u && URL.revokeObjectURL(u));
      }
    }
    const src = await images.get(url);
    if (src) { img.src = src; img.hidden = false; }
  };

  // ---- sound: WebAudio beeps, more and higher for worse alarms; off until the person turns it on
  let audio = null;
  SC.soundOn = () => localStorage.getItem(SOUND) === "on";
  SC.beep = (severity) => {
    if (!SC.soundOn()) return;
    audio ??= new AudioContext();
    const plan = { critical: [880, 3], major: [660, 2], warning: [440, 1] }[severity];
    if (!plan) return;
    const [freq, times] = plan;
    for (let i = 0; i < times; i++) {
      const osc = audio.createOscillator(), gain = audio.createGain();
      const at = audio.currentTime + i * 0.3;
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.25, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + 0.26);
    }
  };

  // ---- the live feed: Server-Sent Events read with fetch (so the token goes in a header), resumed with Last-Event-ID
  SC.live = (onOrder) => {
    let last = null;
    const dot = document.getElementById("live");
    if (dot) dot.hidden = false;
    const state = (ok) => {
      if (!dot) return;
      dot.className = ok ? "live on" : "live off";
      dot.title = SC.t(ok ? "live.connected" : "live.reconnecting");
    };
    const run = async () => {
      for (;;) {
        try {
          const headers = { Authorization: "Bearer " + localStorage.getItem(TOKEN), Accept: "text/event-stream" };
          if (last !== null) headers["Last-Event-ID"] = last;
          const resp = await fetch("/api/v1/live", { headers });
          if (resp.status === 401) return SC.signOut();
          if (!resp.ok) throw new Error(resp.statusText);
          state(true);
          const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              let id = null, data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith("id: ")) id = line.slice(4);
                else if (line.startsWith("data: ")) data += line.slice(6);
              }
              if (id !== null) last = id;
              if (data) onOrder(JSON.parse(data));
            }
          }
        } catch (err) {
          console.warn("live feed:", err);
        }
        state(false);
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    run();
  };

  // ---- page header
  document.addEventListener("DOMContentLoaded", () => {
    if (SC.view === "login") return;
    const u = SC.user();
    if (!u || !localStorage.getItem(TOKEN)) return SC.signOut();
    document.getElementById("who").textContent = `${u.name} · ${SC.t("role." + u.role)}`;
    document.getElementById("signout").onclick = SC.signOut;
    const sound = document.getElementById("sound");
    const paint = () => (sound.textContent = SC.t(SC.soundOn() ? "sound.on" : "sound.off"));
    sound.onclick = () => {
      localStorage.setItem(SOUND, SC.soundOn() ? "off" : "on");
      paint();
      SC.beep("warning");
    };
    paint();
    if (u.role === "grid_worker") document.querySelectorAll('nav a[data-view="supervision"], nav a[data-view="site"]').forEach((a) => a.remove());
  });
})();
