// failup's pages work without this script; it adds what only a script can: drafts that survive
// a reload or a closed tab, and pages that refresh themselves when sync brings a change.
"use strict";

const DRAFT = "failup-draft:";

function fields(form) {
  return Array.from(form.elements).filter(
    (el) => el.name && el.name !== "csrf" && el.type !== "hidden" && el.type !== "submit");
}

function save(form) {
  const values = {};
  for (const el of fields(form)) {
    values[el.name + (el.type === "radio" || el.type === "checkbox" ? ":" + el.value : "")] =
      el.type === "radio" || el.type === "checkbox" ? el.checked : el.value;
  }
  localStorage.setItem(DRAFT + form.dataset.draft, JSON.stringify(values));
}

function restore(form) {
  const raw = localStorage.getItem(DRAFT + form.dataset.draft);
  if (!raw) return;
  let values;
  try { values = JSON.parse(raw); } catch (_) { return; }
  for (const el of fields(form)) {
    const checkable = el.type === "radio" || el.type === "checkbox";
    const key = el.name + (checkable ? ":" + el.value : "");
    if (!(key in values)) continue;
    if (checkable) el.checked = !!values[key];
    else el.value = values[key];
  }
  const details = form.querySelector("details");
  if (details && fields(form).some((el) => el.closest("details") && el.value && el.type !== "radio")) {
    details.open = true;
  }
}

function setup(root) {
  const cleared = document.body.dataset.clearDraft;
  if (cleared) localStorage.removeItem(DRAFT + cleared);
  for (const form of root.querySelectorAll("form[data-draft]")) {
    // A form the server filled again after a refusal holds what was sent: keep it as the draft.
    if (form.hasAttribute("data-filled")) save(form);
    else restore(form);
    form.addEventListener("input", () => save(form));
  }
}

// A change arrived by sync: fetch this page again and swap its content in, unless the person is
// in a field (then the next change, or a reload, brings it). What was typed elsewhere on the
// page is in its draft, which the new forms take up again.
async function refresh() {
  const active = document.activeElement;
  if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return;
  const response = await fetch(location.href, {
    credentials: "same-origin",
    headers: { "X-Failup-Refresh": "1" },
  });
  if (!response.ok) return;
  const html = await response.text();
  const next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
  const main = document.getElementById("main");
  if (next && main) {
    main.replaceWith(next);
    setup(next);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }
}

setup(document);
if (window.EventSource) {
  const events = new EventSource("/events");
  events.addEventListener("change", () => { refresh().catch(() => {}); });
}
