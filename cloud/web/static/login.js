"use strict";
document.getElementById("signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const err = document.getElementById("signin-error");
  err.hidden = true;
  const resp = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
  if (!resp.ok) { err.hidden = false; return; }
  const { access_token } = await resp.json();
  localStorage.setItem("sc_token", access_token);
  const me = await (await fetch("/api/v1/auth/me", { headers: { Authorization: "Bearer " + access_token } })).json();
  localStorage.setItem("sc_user", JSON.stringify(me));
  const next = new URLSearchParams(location.search).get("next");
  location.href = next && next.startsWith("/ui/") ? next : me.role === "grid_worker" ? "/ui/orders" : "/ui/wall";
});
