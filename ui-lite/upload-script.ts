/**
 * The console's one script, served from memory at `/assets/upload.js`: the Bundles page's resumable
 * upload. It sends the file (or its parts, in name order, as one stream) in 16 MiB chunks at the
 * server's offset, asks for that offset again after any failure, and remembers the session in
 * localStorage so that choosing the same file after a reload resumes it.
 */
export const UPLOAD_SCRIPT = `"use strict";
(() => {
  const form = document.getElementById("upload");
  if (form === null) return;
  const input = document.getElementById("upload-file");
  const drop = document.getElementById("upload-drop");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const csrf = form.dataset.csrf;
  const CHUNK = 16 * 1024 * 1024;
  const KEY = "airlock-upload";
  const RETRIES = 8;
  const PHASES = { upload: "Uploading", import: "Verifying and importing" };
  const mib = (n) => (n / 1048576).toFixed(1);
  const say = (text, alert) => {
    status.textContent = text;
    status.setAttribute("role", alert ? "alert" : "status");
  };
  const show = (phase, done, total) => {
    bar.max = total;
    bar.value = done;
    bar.dataset.phase = phase;
    say(PHASES[phase] + ": " + mib(done) + " of " + mib(total) + " MiB");
  };
  const ordered = (files) =>
    [...files].filter((f) => !f.name.endsWith(".parts.json")).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const identity = (files) => files.map((f) => f.name + ":" + f.size + ":" + f.lastModified).join("|");
  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  class Refused extends Error {}

  // The bytes [start, end) of the files laid end to end: parts are byte ranges of one bundle.
  function slice(files, start, end) {
    const pieces = [];
    let base = 0;
    for (const file of files) {
      const from = Math.max(start - base, 0);
      const to = Math.min(end - base, file.size);
      if (from < to) pieces.push(file.slice(from, to));
      base += file.size;
    }
    return new Blob(pieces);
  }

  async function refusal(response) {
    const body = await response.json().catch(() => null);
    const error = body && body.error;
    return new Refused(error ? error.code + ": " + error.message : "the console answered " + response.status);
  }

  async function sessionFor(files) {
    const saved = JSON.parse(localStorage.getItem(KEY) || "null");
    if (saved !== null && saved.identity === identity(files)) {
      const response = await fetch("/uploads/" + saved.id);
      if (response.ok) {
        const session = await response.json();
        if (session.state !== "failed" && session.state !== "done") return session;
      }
    }
    const size = files.reduce((sum, f) => sum + f.size, 0);
    const name = files.length === 1 ? files[0].name : files[0].name + " (+" + (files.length - 1) + " parts)";
    const response = await fetch("/uploads", {
      method: "POST",
      headers: { "X-CSRF-Token": csrf },
      body: new URLSearchParams({ name, size: String(size) }),
    });
    if (response.status !== 201) throw await refusal(response);
    const session = await response.json();
    localStorage.setItem(KEY, JSON.stringify({ identity: identity(files), id: session.id, name, size }));
    return session;
  }

  async function serverOffset(id) {
    const response = await fetch("/uploads/" + id);
    if (!response.ok) throw await refusal(response);
    return (await response.json()).offset;
  }

  async function sendChunk(files, session, offset) {
    const end = Math.min(offset + CHUNK, session.size);
    const response = await fetch("/uploads/" + session.id, {
      method: "PATCH",
      headers: {
        "X-CSRF-Token": csrf,
        "Content-Type": "application/octet-stream",
        "Content-Range": "bytes " + offset + "-" + (end - 1) + "/" + session.size,
      },
      body: slice(files, offset, end),
    });
    if (response.status === 204 || response.status === 202) return Number(response.headers.get("Upload-Offset"));
    if (response.status === 416) return (await response.json()).offset;
    throw await refusal(response);
  }

  async function send(files, session) {
    let offset = session.offset;
    let failures = 0;
    while (offset < session.size) {
      show("upload", offset, session.size);
      try {
        offset = await sendChunk(files, session, offset);
        failures = 0;
      } catch (error) {
        if (error instanceof Refused || ++failures > RETRIES) throw error;
        say("The connection dropped: resuming from the console's offset…");
        await delay(500 * failures);
        offset = await serverOffset(session.id).catch(() => offset);
      }
    }
  }

  async function refreshList() {
    const response = await fetch("/bundles");
    const next = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("bundle-list");
    const list = document.getElementById("bundle-list");
    if (next !== null && list !== null) list.replaceWith(next);
  }

  function watch(id) {
    return new Promise((resolve) => {
      const events = new EventSource("/uploads/" + id + "/events");
      events.onmessage = (message) => {
        const event = JSON.parse(message.data);
        if (event.phase === "upload" || event.phase === "import") return show(event.phase, event.done, event.total);
        events.close();
        localStorage.removeItem(KEY);
        const o = event.outcome;
        if (o.ok) {
          // The list first, so a page that says "Imported" already lists the bundle.
          refreshList().catch(() => undefined).finally(() => {
            bar.value = bar.max;
            bar.dataset.phase = "done";
            say((o.imported ? "Imported " : "Already imported: ") + o.name + " " + o.version + " (signature " + o.signature + ").");
            resolve();
          });
        } else {
          bar.dataset.phase = "failed";
          say("Refused, nothing imported: " + o.code + ": " + o.message + (o.hint ? " (" + o.hint + ")" : ""), true);
          resolve();
        }
      };
    });
  }

  let running = false;
  async function start(chosen) {
    const files = ordered(chosen);
    if (running || files.length === 0) return;
    running = true;
    try {
      const session = await sessionFor(files);
      await send(files, session);
      show("import", 0, session.size);
      await watch(session.id);
    } catch (error) {
      say("The upload stopped: " + error.message + ". Choose the same file again to resume.", true);
    } finally {
      running = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    start(input.files);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    start(event.dataTransfer.files);
  });
  const saved = JSON.parse(localStorage.getItem(KEY) || "null");
  if (saved !== null) {
    say("An upload of " + saved.name + " did not finish: choose the same file again to resume it.");
  }
})();
`;
