// The judging page: keyboard first, the next pair always prefetched, submits queued and retried in order.
// Each pair knows its reservation's expiry (`expires_at`): the one on screen is renewed while the annotator is
// present, and a prefetched one is renewed (its clock started) when it is shown, not when it was fetched.
(() => {
  "use strict";
  const app = document.getElementById("app");
  const project = app.dataset.project;
  const csrf = app.dataset.csrf;
  const ttlMs = Number(app.dataset.ttl || 300) * 1000;  // the project's reservation time
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
  let lastActivity = Date.now();
  const PRESENT_MS = 5 * 60 * 1000;  // no key, pointer or focus for this long: the annotator is away

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

  // The reservation's deadline: `expires_at` by the server's clock; renewals are timed by this page's clock
  // from when the last one was answered (a skewed client clock cannot make it renew too late).
  function stamp(pair, expiresAt) {
    pair.expires_at = expiresAt;
    pair.renewedAt = Date.now();
  }

  async function renew(pair, shown) {
    if (pair.renewing) return;
    pair.renewing = true;
    try {
      const { status, data } = await api("POST", `/api/reservations/${pair.reservation}/renew/`, { shown });
      if (status === 200) {
        stamp(pair, data.expires_at);
        if (current === pair) el("stage").dataset.expiresAt = pair.expires_at;
      } else if (status === 410 || status === 404 || status === 409) {
        drop(pair, (data && data.detail) || "This pair is no longer reserved for you.");
      }
    } catch (e) { /* network: the next tick tries again */ }
    pair.renewing = false;
  }

  // A pair the server no longer holds for this annotator leaves the screen (or the prefetch slot).
  function drop(pair, message) {
    if (current === pair) {
      current = prefetched;
      prefetched = null;
      flash(message, true);
      render();
      if (!prefetched && !queueEmpty) fetchNext();
    } else if (prefetched === pair) {
      prefetched = null;
      if (!queueEmpty) fetchNext();
    }
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
    stamp(pair, pair.expires_at);
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
      if (el("stage").dataset.reservation !== current.reservation) {
        el("stage").dataset.reservation = current.reservation;
        el("stage").dataset.expiresAt = current.expires_at;
        shownAt = performance.now();
        // Shown now: its clock starts and its deadline is one TTL from now, however long it waited prefetched.
        renew(current, true);
      }
    } else {
      delete el("stage").dataset.reservation;
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

  // While the annotator is here, keep the pair on screen reserved: renew it when half its time is gone.
  ["keydown", "pointermove", "pointerdown", "focus", "visibilitychange"].forEach((name) =>
    window.addEventListener(name, () => { lastActivity = Date.now(); }, { passive: true }));
  setInterval(() => {
    if (!current || document.visibilityState !== "visible") return;
    if (Date.now() - lastActivity > PRESENT_MS) return;
    if (Date.now() - current.renewedAt > ttlMs / 2) renew(current, false);
  }, Math.min(5000, ttlMs / 4));

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
