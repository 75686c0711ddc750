/**
 * The live timeline's script, served from memory at `/assets/timeline.js`: each element with
 * `data-run-events` listens to that run's server-sent events and takes each `timeline` event's
 * markup (drawn on the server) as its content; `end` closes the stream so it is not reopened.
 */
export const TIMELINE_SCRIPT = `"use strict";
(() => {
  if (typeof EventSource === "undefined") return;
  for (const live of document.querySelectorAll("[data-run-events]")) {
    const source = new EventSource(live.dataset.runEvents);
    source.addEventListener("timeline", (event) => {
      live.innerHTML = event.data;
    });
    source.addEventListener("end", () => source.close());
    live.dataset.live = "on";
  }
  for (const hint of document.querySelectorAll("[data-live-hint]")) hint.textContent = "Updates live while the run goes on.";
})();
`;
