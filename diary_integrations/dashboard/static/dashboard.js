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

document.addEventListener("DOMContentLoaded", () => {
  enableSorting(document);
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
