// flowkit dashboard: follow /api/events (Server-Sent Events) and refresh the parts of the
// page marked data-live when what they show changes. No other script runs on these pages.
"use strict";

(function () {
  const main = document.querySelector("main[data-events]");
  if (!main || !window.EventSource) return;

  let busy = false;
  let again = false;

  function editing(region) {
    const active = document.activeElement;
    return active && region.contains(active) && active.matches("input, textarea, select");
  }

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      // The page's own URL: after a refused action the address bar shows the form's.
      const response = await fetch(main.dataset.refresh, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of main.querySelectorAll("[data-live][id]")) {
        const replacement = fresh.getElementById(region.id);
        if (replacement && !editing(region)) region.replaceWith(document.adoptNode(replacement));
      }
      document.body.dataset.refreshed = String(Date.now());
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  const source = new EventSource(main.dataset.events, { withCredentials: true });
  source.addEventListener("execution", refresh);
  source.addEventListener("executions", refresh);
  source.addEventListener("open", () => { document.body.dataset.live = "on"; });
  source.addEventListener("error", () => { document.body.dataset.live = "off"; });
})();
