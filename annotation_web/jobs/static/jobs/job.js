// A job's page, live: while the job is not over, GET /api/jobs/<id>/ every 2 s and update the state, progress
// bar, log tail, history, lease and outputs in place; Cancel and Retry POST to the API with the session's CSRF
// token. Text only (textContent), never markup from the server's JSON.
(() => {
  "use strict";
  const root = document.getElementById("job");
  if (!root) return;
  const POLL_MS = 2000;
  const csrf = root.dataset.csrf;
  const terminal = new Set(root.dataset.terminalStates.split(","));
  const modelKeys = new Set(root.dataset.modelKeys.split(","));
  const modelUrl = root.dataset.modelUrl;  // "/models/"
  const el = (id) => document.getElementById(id);
  const LABELS = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed", cancelled: "Cancelled" };
  let timer = null;
  let busy = false;

  async function api(method, url) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  function when(iso) {
    if (!iso) return "—";
    return new Date(iso).toISOString().replace("T", " ").slice(0, 19);
  }

  function duration(job) {
    if (!job.started_at) return "—";
    const end = job.finished_at ? new Date(job.finished_at) : new Date();
    let seconds = Math.max(Math.floor((end - new Date(job.started_at)) / 1000), 0);
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    seconds %= 60;
    const pad = (n) => String(n).padStart(2, "0");
    if (hours) return `${hours} h ${pad(minutes)} min`;
    if (minutes) return `${minutes} min ${pad(seconds)} s`;
    return `${seconds} s`;
  }

  function setText(id, text) {
    const node = el(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  const rendered = {};  // table id -> the JSON it shows: a table is rebuilt only when it changed (keeps focus)

  function renderFields(tableId, data, emptyText) {
    const json = JSON.stringify(data || {});
    if (rendered[tableId] === undefined) {  // what the server rendered, normalised by this page's JSON
      try { rendered[tableId] = JSON.stringify(JSON.parse(el(tableId).dataset.json)); } catch (e) { rendered[tableId] = ""; }
    }
    if (rendered[tableId] === json) return;
    rendered[tableId] = json;
    const body = el(tableId).tBodies[0];
    const rows = [];
    for (const [key, value] of Object.entries(data || {})) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = key;
      const td = document.createElement("td");
      if (modelKeys.has(key) && Number.isInteger(value)) {
        const a = document.createElement("a");
        a.href = `${modelUrl}${value}/`;
        a.textContent = `model version #${value}`;
        td.appendChild(a);
      } else {
        const code = document.createElement("code");
        code.textContent = typeof value === "string" ? value : JSON.stringify(value);
        td.appendChild(code);
      }
      tr.append(th, td);
      rows.push(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.className = "muted";
      td.textContent = emptyText;
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function render(job) {
    const over = terminal.has(job.state);
    root.dataset.state = job.state;
    const state = el("job-state");
    state.className = `state state-${job.state}`;
    setText("job-state", LABELS[job.state] || job.state);

    const bar = el("job-progress");
    if (job.progress_total > 0) {
      bar.max = job.progress_total;
      bar.value = job.progress_done;
      const percent = Math.round((100 * job.progress_done) / job.progress_total);
      setText("job-progress-text", `${job.progress_done} / ${job.progress_total} steps (${percent}%)`);
    } else {
      bar.removeAttribute("value");  // indeterminate
      setText("job-progress-text", "no steps reported yet");
    }

    setText("job-started", when(job.started_at));
    setText("job-finished", when(job.finished_at));
    setText("job-duration", duration(job));
    setText("job-attempt", String(job.attempt));
    setText("job-worker", job.worker || "—");
    setText("job-heartbeat", when(job.heartbeat_at));
    setText("job-lease", when(job.lease_expires_at));

    const log = el("job-log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    setText("job-log", job.log_tail || "(nothing logged yet)");
    if (atBottom) log.scrollTop = log.scrollHeight;  // follow the tail unless the reader scrolled up
    setText("job-history", job.history || "(nothing yet)");
    el("job-error-section").hidden = !job.error;
    setText("job-error", job.error || "");

    el("no-worker").hidden = over || job.queue_has_live_worker;
    el("waiting-for").hidden = !job.waiting_for;
    if (job.waiting_for) {
      el("waiting-for-link").href = `/jobs/${job.waiting_for}/`;
      setText("waiting-for-id", String(job.waiting_for));
    }
    el("cancel-button").hidden = over;
    el("retry-button").hidden = job.state !== "failed";
    renderFields("job-params", job.params, "No parameters.");
    renderFields("job-outputs", job.outputs, "Nothing yet.");
    return over;
  }

  function flash(text, isError) {
    const node = el("job-flash");
    node.textContent = text;
    node.className = isError ? "error" : "muted";
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    let over = terminal.has(root.dataset.state);
    try {
      const { status, data } = await api("GET", root.dataset.api);
      if (status === 200 && data) {
        over = render(data);
      } else if (status === 403 || status === 404 || status === 401) {
        flash((data && data.detail) || "This job can no longer be read; reload the page.", true);
        return;
      }
    } catch (e) { /* network: try again at the next tick */ }
    if (!over) schedule();
  }

  async function act(button, url, verb) {
    if (busy) return;
    busy = true;
    button.disabled = true;
    try {
      const { status, data } = await api("POST", url);
      if (status === 200 && data) {
        render(data);
        flash(`Job ${data.state}.`, false);
        if (!terminal.has(data.state)) schedule();
      } else {
        flash((data && data.detail) || `Could not ${verb} the job (HTTP ${status}).`, true);
        poll();
      }
    } catch (e) {
      flash(`Could not ${verb} the job: the server did not answer.`, true);
    }
    button.disabled = false;
    busy = false;
  }

  el("cancel-button").addEventListener("click", (event) => act(event.currentTarget, root.dataset.cancel, "cancel"));
  el("retry-button").addEventListener("click", (event) => act(event.currentTarget, root.dataset.retry, "retry"));
  if (!terminal.has(root.dataset.state)) schedule();
})();
