// Recovery Vault console: keeps an open page current without a reload.
// Countdowns tick every second from their deadline; every few seconds the
// page's sections marked data-live are re-read from the server and
// swapped in where they changed, unless the operator is using them.
"use strict";

function formatRemaining(ms) {
  if (ms <= 0) return "purge due";
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const pad = (n) => String(n).padStart(2, "0");
  return (d > 0 ? d + "d " : "") + h + "h " + pad(m) + "m " + pad(s) + "s";
}

function tick() {
  for (const el of document.querySelectorAll("time.countdown")) {
    el.textContent = formatRemaining(Date.parse(el.getAttribute("datetime")) - Date.now());
  }
}

// A section is in use while focus or a text selection is in it, one of
// its disclosures is open, or the operator has typed into one of its fields.
function inUse(el) {
  const sel = document.getSelection();
  if (sel && !sel.isCollapsed && el.contains(sel.anchorNode)) return true;
  return el.contains(document.activeElement) || el.querySelector("details[open], [data-typed]") !== null;
}

// What a section shows, leaving out the countdowns' text, which the page
// ticks itself: a section is swapped only when something else changed.
function content(el) {
  return el.innerHTML.replace(/(<time class="countdown"[^>]*>)[^<]*/g, "$1");
}

async function refresh(url) {
  if (document.hidden) return;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15000);
  try {
    const res = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" }, signal: abort.signal });
    if (!res.ok || res.redirected) return;
    const fresh = new DOMParser().parseFromString(await res.text(), "text/html");
    for (const el of document.querySelectorAll("[data-live][id]")) {
      const next = fresh.getElementById(el.id);
      if (next && content(next) !== content(el) && !inUse(el)) {
        el.replaceWith(document.importNode(next, true));
      }
    }
    tick();
  } catch (e) {
    // The worker may be restarting: try again next time.
  } finally {
    clearTimeout(timer);
  }
}

document.addEventListener("input", (e) => {
  if (e.target.form) e.target.form.setAttribute("data-typed", "");
});

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  const url = document.body.dataset.refresh;
  const every = Number(document.body.dataset.refreshMs) || 3000;
  // One refresh at a time: the next is planned when the last has ended.
  const loop = async () => {
    await refresh(url);
    setTimeout(loop, every);
  };
  if (url) setTimeout(loop, every);
});
