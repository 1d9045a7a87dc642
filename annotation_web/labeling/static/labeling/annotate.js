// The judging page: keyboard first, the next pair always prefetched, submits queued and retried in order.
(() => {
  "use strict";
  const app = document.getElementById("app");
  const project = app.dataset.project;
  const csrf = app.dataset.csrf;
  const el = (id) => document.getElementById(id);
  const KEYS = {
    ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right",
    ArrowDown: "tie", t: "tie", T: "tie", b: "both_bad", B: "both_bad", s: "skip", S: "skip",
  };
  const LABELS = { left: "Left", right: "Right", tie: "Tie", both_bad: "Both bad", skip: "Skipped" };

  let current = null;      // the pair on screen
  let prefetched = null;   // the next pair, images already loading
  let shownAt = 0;
  let queueEmpty = false;
  let submitChain = Promise.resolve();
  let pendingSubmits = 0;
  let judgedToday = 0;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "k-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  function preload(pair) {
    if (!pair) return;
    pair._images = [pair.reference_url, pair.left_url, pair.right_url].map((src) => {
      const img = new Image();
      img.src = src;
      return img;
    });
  }

  function heldIds() {
    return [current, prefetched].filter(Boolean).map((p) => p.reservation);
  }

  function accept(nextPayload) {
    if (!nextPayload) return;
    const pair = nextPayload.pair;
    if (!pair) {
      if (!current && !prefetched) { queueEmpty = true; el("empty").textContent = nextPayload.message; }
      render();
      return;
    }
    if (heldIds().includes(pair.reservation)) return;
    queueEmpty = false;
    preload(pair);
    if (!current) { current = pair; render(); }
    else if (!prefetched) { prefetched = pair; }
  }

  function render() {
    const hasPair = Boolean(current);
    el("stage").hidden = !hasPair;
    el("hints").hidden = !hasPair;
    el("empty").hidden = hasPair || !queueEmpty;
    if (hasPair) {
      el("reference-img").src = current.reference_url;
      el("left-img").src = current.left_url;
      el("right-img").src = current.right_url;
      el("stage").dataset.reservation = current.reservation;
      shownAt = performance.now();
    }
    el("saving").textContent = pendingSubmits ? `saving ${pendingSubmits}…` : "";
  }

  function flash(text, isError) {
    const f = el("flash");
    f.textContent = text;
    f.className = isError ? "error" : "muted";
  }

  async function refreshStats() {
    const { status, data } = await api("GET", `/api/projects/${project}/me/stats/`);
    if (status === 200) {
      judgedToday = data.judged_today;
      el("judged-today").textContent = judgedToday;
      el("left-in-queue").textContent = data.left_in_queue;
    }
  }

  async function fetchNext() {
    const { status, data } = await api("POST", `/api/projects/${project}/next/`, { exclude: heldIds() });
    if (status === 200) accept(data);
    else flash((data && data.detail) || `Could not load a pair (HTTP ${status})`, true);
  }

  async function sendSubmit(body) {
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        body.next = { exclude: heldIds() };
        const { status, data } = await api("POST", "/api/judgments/", body);
        if (status === 200 || status === 201) { accept(data.next); return true; }
        if (status >= 400 && status < 500 && status !== 429) {
          flash(`Not saved: ${(data && data.detail) || "HTTP " + status}`, true);
          if (!current && !prefetched) await fetchNext();
          return false;
        }
      } catch (e) { /* network: retry with the same idempotency key */ }
      await new Promise((r) => setTimeout(r, 300 * 2 ** attempt));
    }
    flash("The server is unreachable; your last answer is kept and will be retried.", true);
    return false;
  }

  function choose(choice) {
    if (!current) return;
    const body = {
      reservation: current.reservation,
      choice,
      idempotency_key: uuid(),
      client_duration_ms: Math.round(performance.now() - shownAt),
    };
    current = prefetched;
    prefetched = null;
    render();
    flash(`${LABELS[choice]} ✓`, false);
    pendingSubmits += 1;
    el("saving").textContent = `saving ${pendingSubmits}…`;
    submitChain = submitChain.then(async () => {
      const saved = await sendSubmit(body);
      pendingSubmits -= 1;
      if (saved && choice !== "skip") { judgedToday += 1; el("judged-today").textContent = judgedToday; }
      if (!current && !prefetched && !queueEmpty) await fetchNext();
      render();
      refreshStats();
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const choice = KEYS[event.key];
    if (!choice) return;
    event.preventDefault();
    choose(choice);
  });
  el("hints").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-choice]");
    if (button) choose(button.dataset.choice);
  });

  (async () => {
    await fetchNext();
    if (current) await fetchNext();  // prefetch the one after
    render();
    refreshStats();
  })();
})();
