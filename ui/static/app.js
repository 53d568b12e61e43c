// hookrelay dashboard: local times, actions through /ui/api/, live refresh.
// No framework, no build step; the pages work without it but for the buttons.
"use strict";

function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = d.toLocaleString();
  }
}

function showError(msg) {
  const p = document.getElementById("action-error");
  if (p) { p.textContent = msg; p.hidden = false; } else { alert(msg); }
}

async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = body; }
  const res = await fetch(url, init);
  let data = null;
  const text = await res.text();
  if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
  if (res.status === 401) { location.href = "/ui/login"; }
  if (!res.ok) {
    const m = data && data.error ? data.error.message : res.status + " " + res.statusText;
    throw new Error(m);
  }
  return data;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// watch polls a delivery until it has more attempts than before, then reloads.
async function watch(url, before, out) {
  for (let i = 0; i < 60; i++) {
    await sleep(1000);
    const d = await api("GET", url);
    if (out) out.textContent = "Replayed: " + d.status + ", " + d.attempt_log.length + " attempt(s)";
    if (d.attempt_log.length > before && d.status !== "pending") { location.reload(); return; }
  }
}

// busy disables el while fn runs and shows fn's error.
async function busy(el, fn) {
  el.disabled = true;
  try { await fn(); } catch (e) { showError(e.message); } finally { el.disabled = false; }
}

// showSecret shows a secret from the API's answer, this once; link, when
// given, points at the webhook it belongs to.
function showSecret(secret, link) {
  const box = document.getElementById("secret");
  box.querySelector("[data-secret]").textContent = secret;
  const a = box.querySelector("[data-created]");
  if (a && link) a.href = link;
  box.hidden = false;
}

function act(btn) {
  const ds = btn.dataset;
  if (ds.confirm && !confirm(ds.confirm)) return;
  busy(btn, async () => {
    const data = await api(ds.action, ds.url, ds.body);
    if (ds.show === "secret") {
      showSecret(data.secret);
    } else if (ds.show === "test-result") {
      const out = document.getElementById("test-result");
      out.textContent = (data.success ? "Success: " : "Failed: ") +
        (data.status_code ? "HTTP " + data.status_code : "no answer") +
        " in " + Math.round(data.duration_ms) + " ms" + (data.error ? " · " + data.error : "");
    } else if (ds.watch) {
      const out = document.getElementById("replay-result");
      out.textContent = "Replay queued…";
      await watch(ds.watch, Number(ds.attempts), out);
    } else if (ds.then) {
      location.href = ds.then;
    } else {
      location.reload();
    }
  });
}

document.addEventListener("click", (ev) => {
  const btn = ev.target.closest("button[data-action]");
  if (btn) { ev.preventDefault(); act(btn); return; }
  const copy = ev.target.closest("button[data-copy]");
  if (copy) {
    const code = copy.parentElement.querySelector("[data-secret]");
    navigator.clipboard.writeText(code.textContent).then(() => { copy.textContent = "Copied"; });
  }
});

// formBody turns a form.json into the API's JSON body: data-kind says how a
// field reads (a comma list, "Name: value" lines, a local time sent as UTC,
// a checkbox); empty fields are left out.
function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    const kind = el.dataset.kind, v = el.value.trim();
    if (kind === "bool") { if (el.checked) body[el.name] = true; continue; }
    if (v === "" && kind !== "headers") continue;
    if (kind === "list") body[el.name] = v.split(",").map((x) => x.trim()).filter(Boolean);
    else if (kind === "utc") body[el.name] = new Date(v).toISOString();
    else if (kind === "headers") {
      const h = {};
      for (const line of v.split("\n")) {
        const i = line.indexOf(":");
        if (i > 0) h[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      body[el.name] = h;
    } else body[el.name] = v;
  }
  return body;
}

function submitJSON(form) {
  const ds = form.dataset;
  busy(form.querySelector("button[type=submit]"), async () => {
    const data = await api(ds.method, ds.url, JSON.stringify(formBody(form)));
    if (ds.then === "created") {
      showSecret(data.secret, location.pathname + "webhooks/" + data.id);
      form.reset();
    } else {
      location.reload();
    }
  });
}

document.addEventListener("submit", (ev) => {
  const form = ev.target.closest("form.json");
  if (form) { ev.preventDefault(); submitJSON(form); }
});

// Time filters: the form shows local time, the API takes RFC 3339 UTC.
function pad(n) { return String(n).padStart(2, "0"); }
function utcFilters(form) {
  for (const input of form.querySelectorAll("input[data-utc]")) {
    const hidden = form.querySelector('input[type=hidden][name="' + input.dataset.utc + '"]');
    const d = hidden.value ? new Date(hidden.value) : null;
    if (d && !isNaN(d)) {
      input.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
        "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    }
  }
  form.addEventListener("submit", () => {
    for (const input of form.querySelectorAll("input[data-utc]")) {
      const hidden = form.querySelector('input[type=hidden][name="' + input.dataset.utc + '"]');
      hidden.value = input.value ? new Date(input.value).toISOString() : "";
    }
    // Leave empty fields out of the address.
    for (const el of form.elements) { if (el.name && !el.value) el.disabled = true; }
  });
}

// Live parts: every few seconds, fetch this page again and swap in the
// elements marked data-live, without a full reload.
const liveEvery = 5000;
async function refreshLive() {
  if (document.hidden) return;
  const res = await fetch(location.href, { credentials: "same-origin" });
  if (!res.ok) return;
  const doc = new DOMParser().parseFromString(await res.text(), "text/html");
  for (const el of document.querySelectorAll("[data-live]")) {
    const fresh = doc.querySelector('[data-live="' + el.dataset.live + '"]');
    if (fresh && fresh.innerHTML !== el.innerHTML) {
      el.innerHTML = fresh.innerHTML;
      localTimes(el);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  for (const form of document.querySelectorAll("form.filters")) utcFilters(form);
  if (document.querySelector("[data-live]")) setInterval(() => refreshLive().catch(() => {}), liveEvery);
});
