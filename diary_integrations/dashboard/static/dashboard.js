// diary dashboard: sortable tables, live refresh of running pages, auto-submitting controls. No library.
"use strict";

// Sorting: click a header; numbers sort as numbers, empty cells last. The choice survives live refreshes.
const sortState = {};

function cellValue(row, index) {
  const cell = row.cells[index];
  return cell ? (cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim()) : "";
}

function sortTable(table, index, direction) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const numeric = rows.every((r) => { const v = cellValue(r, index); return v === "" || !isNaN(Number(v)); });
  rows.sort((a, b) => {
    const x = cellValue(a, index), y = cellValue(b, index);
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y, undefined, { numeric: true });
    return direction === "ascending" ? order : -order;
  });
  rows.forEach((r) => body.appendChild(r));
  Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
    if (i === index) th.setAttribute("aria-sort", direction); else th.removeAttribute("aria-sort");
  });
}

function enableSorting(root) {
  root.querySelectorAll("table.sortable").forEach((table, n) => {
    Array.from(table.tHead.rows[0].cells).forEach((th, index) => {
      th.addEventListener("click", () => {
        const direction = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        sortState[n] = { index, direction };
        sortTable(table, index, direction);
      });
    });
    const state = sortState[n];
    if (state) sortTable(table, state.index, state.direction);
  });
}

// Live: a region whose data-running is "true" is fetched again every few seconds and swapped in place.
// A slow answer (a sweep of a thousand children) spaces the polls out, so a dashboard never loads its server.
const LIVE_MS = 2000;
let liveDelay = LIVE_MS;

function scheduleLive(region) {
  if (region.dataset.running !== "true") return;
  setTimeout(async () => {
    try {
      const started = performance.now();
      const response = await fetch(region.dataset.live, { headers: { Accept: "text/html" } });
      if (!response.ok) { scheduleLive(region); return; }
      const html = await response.text();
      liveDelay = Math.max(LIVE_MS, 10 * (performance.now() - started));
      const doc = new DOMParser().parseFromString(html, "text/html");
      const fresh = doc.querySelector(".live");
      if (!fresh) return;
      // Keep open <details> (a traceback being read) open across the swap.
      const open = Array.from(region.querySelectorAll("details")).map((d) => d.open);
      region.replaceWith(fresh);
      fresh.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
      enableSorting(fresh);
      document.dispatchEvent(new CustomEvent("diary:refreshed"));
      scheduleLive(fresh);
    } catch (error) {
      scheduleLive(region); // the server restarted or the network blinked: try again
    }
  }, liveDelay);
}

// Runs ticked to compare: kept in this browser across pages and experiments until compared or cleared.
const PICKS = "diary.compare";

function picks() {
  try { return JSON.parse(localStorage.getItem(PICKS) || "[]").map(String); } catch (error) { return []; }
}

function showPicks() {
  const ids = picks();
  document.querySelectorAll("input.pick").forEach((box) => { box.checked = ids.includes(box.value); });
  const tray = document.getElementById("compare-form");
  if (!tray) return;
  tray.hidden = ids.length === 0;
  tray.querySelector(".n").textContent = String(ids.length);
  tray.querySelector("input[name=ids]").value = ids.join(",");
}

function savePicks(ids) {
  try { localStorage.setItem(PICKS, JSON.stringify(ids)); } catch (error) { /* private mode: this page only */ }
  showPicks();
}

document.addEventListener("change", (event) => {
  const box = event.target.closest("input.pick");
  if (!box) return;
  const ids = picks().filter((id) => id !== box.value);
  if (box.checked) ids.push(box.value);
  savePicks(ids);
});
document.addEventListener("diary:refreshed", showPicks);

document.addEventListener("DOMContentLoaded", () => {
  enableSorting(document);
  // The compare page's runs are the ticked ones, so its "remove" links and the tray agree.
  const compared = document.querySelector("[data-compared]");
  if (compared) savePicks(compared.dataset.compared.split(",").filter(Boolean));
  showPicks();
  const tray = document.getElementById("compare-form");
  if (tray) {
    // The tray sends the ticked ids as one list; the page's boxes (form="compare-form") would repeat them.
    tray.addEventListener("formdata", (event) => {
      event.formData.delete("ids");
      event.formData.set("ids", picks().join(","));
    });
    tray.querySelector("[data-clear-picks]").addEventListener("click", () => savePicks([]));
  }
  // Parameter importance is its own request (a forest to fit): the page shows first, the bars after.
  document.querySelectorAll("[data-importance]").forEach(async (slot) => {
    try {
      const response = await fetch(slot.dataset.importance, { headers: { Accept: "text/html" } });
      slot.innerHTML = response.ok ? await response.text()
        : `<p class="importance-note cap-note">Parameter importance could not be computed (HTTP ${response.status}).</p>`;
    } catch (error) {
      slot.innerHTML = '<p class="importance-note cap-note">Parameter importance could not be fetched.</p>';
    }
  });
  document.querySelectorAll("input[data-autosubmit-box]").forEach((box) => {
    box.addEventListener("change", () => box.form.submit());
  });
  document.querySelectorAll(".live").forEach(scheduleLive);
  document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  // Timing columns of a sweep table: folded away until the toggle shows them (kept across live refreshes).
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-toggle-timing]");
    if (!button) return;
    const shown = document.documentElement.classList.toggle("show-timing");
    document.querySelectorAll("[data-toggle-timing]").forEach((b) => {
      b.setAttribute("aria-pressed", shown ? "true" : "false");
      b.textContent = shown ? b.dataset.hide : b.dataset.show;
    });
  });
  // Scroll the sidebar to the open iteration.
  const current = document.querySelector(".sidebar .row.current");
  if (current) current.scrollIntoView({ block: "center" });
});
