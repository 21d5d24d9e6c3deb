/* The lab page: start a run through the staff API, poll it about once a second while it runs,
 * and draw it: units sold against the stock line (oversold in red), answers by code, lock-wait
 * percentiles, fence refusals, and one bar per critical section (overlapping holders in red).
 * When the run ends: the audit's verdict and the server's paragraph of what happened. Kept runs
 * are listed; two can be drawn side by side. Everything drawn comes from the API's figures.
 */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var SVG = "http://www.w3.org/2000/svg";
  var root = document.querySelector("[data-lab]");
  if (!root) return;
  var RUNS = root.getAttribute("data-runs-url");
  var form = root.querySelector("[data-lab-form]");
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var current = root.querySelector("[data-lab-current]");
  var runButton = root.querySelector("[data-lab-run]");
  var stopButton = root.querySelector("[data-lab-stop]");
  var message = root.querySelector("[data-lab-message]");
  var runsBody = root.querySelector("[data-lab-runs]");
  var compareButton = root.querySelector("[data-lab-compare]");
  var watching = null;
  var timer = null;
  var uid = 0;

  var STATUS_WORDS = {
    "200": "replayed", "201": "created", "202": "accepted", "409": "sold out / limit",
    "429": "busy (or fence refused)", "500": "error", "503": "unavailable"
  };

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, body: data };
      });
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "true" : String(value));
    });
  }

  function append(node, children) {
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
  }

  function ms(value) { return value === null || value === undefined ? "–" : Math.round(value) + " ms"; }

  function paramsText(p) {
    var parts = ["stock " + p.stock, p.buyers + " buyers", "delay " + p.delay_ms + " ms"];
    if (["naive_lock", "lock", "lock_fenced"].indexOf(p.strategy) >= 0) parts.push("lease " + p.lease_ms + " ms");
    if (p.stall_ms) parts.push("buyer 1 stalls " + p.stall_ms + " ms");
    parts.push("limit " + p.time_limit_s + " s");
    return parts.join(" · ");
  }

  function tile(label, field, value, bad) {
    return el("div", { "class": "lab-tile" + (bad ? " lab-tile--bad" : "") }, [
      el("dt", { text: label }), el("dd", { "data-field": field, text: String(value) })
    ]);
  }

  /* Units sold over time as a step line; above the stock line it is red. */
  function soldChart(f, width) {
    var W = Math.max(280, width), H = 170, L = 38, R = 10, T = 10, B = 22;
    var points = f.sold_over_time || [];
    var last = points.length ? points[points.length - 1][0] : 0;
    var xmax = Math.max(f.elapsed_ms || 0, last, 1);
    var ymax = Math.max(f.stock, f.sold, 1) * 1.15;
    function x(t) { return L + (W - L - R) * t / xmax; }
    function y(n) { return H - B - (H - T - B) * n / ymax; }
    var d = "M" + x(0) + " " + y(0);
    points.forEach(function (p) { d += " H" + x(p[0]).toFixed(1) + " V" + y(p[1]).toFixed(1); });
    d += " H" + x(xmax);
    var clip = "lab-clip-" + (++uid);
    var stockY = y(f.stock);
    return svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "lab-chart", role: "img",
      "aria-label": f.sold + " units sold against a stock of " + f.stock }, [
      svg("defs", {}, [svg("clipPath", { id: clip }, [svg("rect", { x: 0, y: 0, width: W, height: Math.max(0, stockY - 2) })])]),
      svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "lab-axis" }),
      svg("line", { x1: L, x2: W - R, y1: stockY, y2: stockY, "class": "lab-stock-line" }),
      svg("text", { x: L - 4, y: stockY + 4, "text-anchor": "end", "class": "lab-label", text: String(f.stock) }),
      svg("text", { x: W - R, y: stockY - 4, "text-anchor": "end", "class": "lab-label", text: "stock" }),
      svg("path", { d: d, "class": "lab-sold-line" }),
      svg("path", { d: d, "class": "lab-sold-line lab-sold-line--over", "clip-path": "url(#" + clip + ")",
        "data-oversold-line": f.oversold > 0 }),
      svg("text", { x: L, y: H - 6, "class": "lab-label", text: "0 ms" }),
      svg("text", { x: W - R, y: H - 6, "text-anchor": "end", "class": "lab-label", text: ms(xmax) })
    ]);
  }

  function answersChart(f) {
    var statuses = Object.keys(f.answers || {});
    var total = statuses.reduce(function (sum, s) { return sum + f.answers[s]; }, 0) || 1;
    var rows = statuses.map(function (status) {
      var n = f.answers[status];
      var bar = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", "class": "lab-answer-bar" }, [
        svg("rect", { x: 0, y: 0, height: 10, width: Math.max(1, 100 * n / total), "class": "lab-answer lab-answer--" + status })
      ]);
      return el("li", { "data-answer": status }, [
        el("span", { "class": "lab-answer-code", text: status + " " + (STATUS_WORDS[status] || "") }),
        bar, el("span", { "class": "lab-answer-count", "data-field": "answer-" + status, text: String(n) })
      ]);
    });
    var codes = Object.keys(f.codes || {}).map(function (c) { return c.replace(/_/g, " ") + " " + f.codes[c]; });
    return el("div", {}, [
      el("ul", { "class": "lab-answers" }, rows.length ? rows : [el("li", { "class": "muted", text: "no answers yet" })]),
      codes.length ? el("p", { "class": "small", text: "By code: " + codes.join(", ") }) : null
    ]);
  }

  /* One bar per critical section, from entering (or reading) to writing. */
  function timeline(f, width) {
    var bars = f.timeline || [];
    if (!bars.length) {
      return el("p", { "class": "muted lab-no-bars", text: "No critical sections recorded" +
        (f.sections === 0 && f.answers && f.answers["202"] ? ": redis_atomic decides inside one Lua script." : " yet.") });
    }
    var W = Math.max(280, width), L = 44, R = 10, T = 4, B = 22;
    var rowH = bars.length > 150 ? 3 : bars.length > 60 ? 5 : 10;
    var H = T + B + rowH * bars.length;
    var xmax = Math.max.apply(null, bars.map(function (b) { return b.end; }).concat([1]));
    function x(t) { return L + (W - L - R) * t / xmax; }
    var nodes = bars.map(function (b, i) {
      var kind = b.refused ? "refused" : b.overlap ? "overlap" : "alone";
      var label = "buyer " + b.buyer + (b.attempt > 1 ? " (try " + b.attempt + ")" : "") + ": " +
        Math.round(b.start) + "–" + Math.round(b.end) + " ms" +
        (b.stock_read !== null ? ", read " + b.stock_read + " left" : "") +
        (b.fence !== null ? ", fence " + b.fence : "") +
        (b.refused ? ", write refused" : b.wrote ? ", wrote" : ", did not write") +
        (b.overlap ? ", overlapped another holder" : "") + (b.stalled ? ", stalled" : "") +
        (b.batch && b.batch.length > 1 ? ", decided a batch of " + b.batch.length + ": buyers " + b.batch.join(", ") : "");
      return svg("rect", {
        x: x(b.start).toFixed(1), y: T + i * rowH, height: Math.max(1, rowH - 1),
        width: Math.max(1.5, x(b.end) - x(b.start)).toFixed(1),
        "class": "lab-bar lab-bar--" + kind + (b.stalled ? " lab-bar--stalled" : ""),
        "data-bar": b.buyer, "data-overlap": b.overlap ? "true" : "false",
        "data-refused": b.refused ? "true" : "false", "data-stalled": b.stalled ? "true" : "false"
      }, [svg("title", { text: label })]);
    });
    if (rowH >= 10) {
      bars.forEach(function (b, i) {
        var extra = b.batch && b.batch.length > 1 ? " +" + (b.batch.length - 1) : "";
        nodes.push(svg("text", { x: L - 4, y: T + i * rowH + rowH - 2, "text-anchor": "end", "class": "lab-label", text: "#" + b.buyer + extra }));
      });
    }
    nodes.push(svg("line", { x1: L, x2: W - R, y1: H - B + 2, y2: H - B + 2, "class": "lab-axis" }));
    nodes.push(svg("text", { x: L, y: H - 6, "class": "lab-label", text: "0 ms" }));
    nodes.push(svg("text", { x: W - R, y: H - 6, "text-anchor": "end", "class": "lab-label", text: ms(xmax) }));
    return el("div", {}, [
      svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "lab-timeline", role: "img", "data-timeline": "",
        "aria-label": bars.length + " critical sections, " + f.overlapping_sections + " overlapping another holder" }, nodes),
      el("ul", { "class": "lab-legend small" }, [
        el("li", { "class": "lab-key lab-key--alone", text: "alone in the critical section" }),
        el("li", { "class": "lab-key lab-key--overlap", text: "overlapping another holder" }),
        el("li", { "class": "lab-key lab-key--refused", text: "write refused (stale fence)" }),
        el("li", { "class": "lab-key lab-key--stalled", text: "stalled holder" })
      ]),
      f.timeline_truncated ? el("p", { "class": "small", text: "Only the first bars are drawn." }) : null
    ]);
  }

  /* Group commit: which batch each buyer rode in, and whose lock hold decided it. */
  function batchView(f) {
    var batches = f.batches || [];
    if (!batches.length) return null;
    var shown = batches.slice(0, 30);
    return el("figure", { "class": "lab-batches" }, [
      el("ol", { "class": "lab-batch-list" }, shown.map(function (b) {
        return el("li", { "data-batch": b.batch_id, "data-batch-size": b.size }, [
          el("strong", { text: b.size + (b.size === 1 ? " request" : " requests") }),
          " decided by " + (b.decided_by ? "buyer " + b.decided_by : "a holder") + " (fence " + b.fence + "), orders for ",
          el("span", { "class": "lab-batch-buyers", text: b.buyers.map(function (n) { return "#" + n; }).join(" ") })
        ]);
      })),
      batches.length > shown.length ? el("p", { "class": "small", text: (batches.length - shown.length) + " more batches." }) : null,
      el("figcaption", { text: "Batches (group commit): " + batches.length + ", " + f.mean_batch_size +
        " requests each on average, each batch decided in its holder's one transaction" })
    ]);
  }

  function verdict(run) {
    if (run.status === "running") return null;
    var v = (run.audit && run.audit.violations) || [];
    var box = run.audit_ok === true
      ? el("p", { "class": "alert alert--success", "data-field": "verdict", "data-ok": "true",
          text: "Audit: every invariant holds (no oversell, stock conserved, limits kept)." })
      : run.audit_ok === false
        ? el("div", { "class": "alert alert--error", "data-field": "verdict", "data-ok": "false" }, [
            el("p", {}, [el("strong", { text: "Audit: violations found." })]),
            el("ul", {}, v.map(function (item) {
              return el("li", { text: "invariant " + item.invariant + ", " + item.code + ": " + item.message });
            }))
          ])
        : el("p", { "class": "alert alert--warning", "data-field": "verdict", text: "Audit: not run (" + run.status + ")" +
            (run.figures && run.figures.error ? ": " + run.figures.error : ".") });
    return el("div", { "class": "lab-verdict" }, [
      box, run.narrative ? el("p", { "class": "lab-narrative", "data-field": "narrative", text: run.narrative }) : null
    ]);
  }

  function panel(run) {
    var f = run.figures || {};
    var w = f.lock_wait_ms || {};
    var waits = w.count ? [ms(w.p50), ms(w.p90), ms(w.p99), ms(w.max)].join(" / ") : "–";
    return el("article", { "class": "lab-panel", "data-run-id": run.id, "data-status": run.status }, [
      el("header", { "class": "lab-panel-head" }, [
        el("h3", { text: "Run #" + run.id + " · " + run.strategy }),
        el("span", { "class": "badge lab-status lab-status--" + run.status, "data-field": "status", text: run.status })
      ]),
      el("p", { "class": "small", text: paramsText(run.params) + " · " + ms(f.elapsed_ms) +
        (run.status === "running" ? " so far" : " in all") }),
      el("dl", { "class": "lab-tiles" }, [
        tile("Sold", "sold", f.sold || 0, f.oversold > 0),
        tile("Stock", "stock", f.stock),
        tile("Oversold", "oversold", f.oversold || 0, f.oversold > 0),
        tile("Overlapping sections", "overlapping", f.overlapping_sections || 0, f.overlapping_sections > 0),
        tile("Most inside at once", "most-at-once", f.most_at_once || 0, f.most_at_once > 1),
        tile("Fence refusals", "fence-refusals", f.fence_refusals || 0),
        tile("Lock wait p50 / p90 / p99 / max", "lock-wait", waits)
      ]),
      el("div", { "class": "lab-charts" }, [
        el("figure", {}, [el("div", { "data-draw": "sold" }), el("figcaption", { text: "Units sold over time against the stock line" })]),
        el("figure", {}, [answersChart(f), el("figcaption", { text: "Answers by HTTP status" })])
      ]),
      el("figure", { "class": "lab-timeline-figure" }, [el("div", { "data-draw": "timeline" }),
        el("figcaption", { text: "Critical sections, one bar per buyer, from entering to writing" })]),
      batchView(f),
      verdict(run)
    ]);
  }

  /* Charts are drawn once their box is laid out, one SVG unit per pixel, so text stays legible
   * in one panel or two. */
  var DRAW = { sold: soldChart, timeline: timeline };

  function show(runs) {
    current.classList.toggle("lab-panels--two", runs.length > 1);
    var panels = runs.map(panel);
    current.replaceChildren.apply(current, panels);
    panels.forEach(function (node, i) {
      node.querySelectorAll("[data-draw]").forEach(function (box) {
        box.replaceChildren(DRAW[box.getAttribute("data-draw")](runs[i].figures || {}, box.clientWidth));
      });
    });
  }

  function setRunning(running) {
    runButton.disabled = running;
    stopButton.disabled = !running;
  }

  function watch(id) {
    watching = id;
    window.clearTimeout(timer);
    api("GET", RUNS + id + "/").then(function (answer) {
      if (watching !== id) return;
      if (answer.status !== 200) { message.textContent = "Could not read run " + id + "."; return; }
      var run = answer.body;
      show([run]);
      var running = run.status === "running";
      setRunning(running);
      if (running) timer = window.setTimeout(function () { watch(id); }, POLL_MS);
      else { message.textContent = "Run #" + id + " " + run.status + "."; loadRuns(); }
    });
  }

  function loadRuns() {
    return api("GET", RUNS).then(function (answer) {
      if (answer.status !== 200) return [];
      var runs = answer.body;
      runsBody.replaceChildren.apply(runsBody, runs.length ? runs.map(runRow) :
        [el("tr", {}, [el("td", { colspan: 9, "class": "muted", text: "No runs yet." })])]);
      updateCompare();
      return runs;
    });
  }

  function runRow(run) {
    var h = run.headline || {};
    var audit = run.audit_ok === true ? el("span", { "class": "good", text: "holds" })
      : run.audit_ok === false ? el("span", { "class": "bad", text: "violations" })
        : el("span", { "class": "muted", text: run.status });
    var sold = el("span", { text: (h.sold === undefined || h.sold === null ? "–" : h.sold) + " / " + run.params.stock });
    return el("tr", { "data-run-row": run.id }, [
      el("td", {}, [el("input", { type: "checkbox", value: run.id, "data-compare": "", "aria-label": "Compare run " + run.id })]),
      el("td", { text: "#" + run.id }),
      el("td", {}, [el("code", { text: run.strategy })]),
      el("td", { "class": "small", text: paramsText(run.params) }),
      el("td", {}, [sold, h.oversold ? el("span", { "class": "bad", text: " (+" + h.oversold + ")" }) : null]),
      el("td", { text: String(h.overlapping_sections === undefined || h.overlapping_sections === null ? "–" : h.overlapping_sections) }),
      el("td", { text: String(h.fence_refusals === undefined || h.fence_refusals === null ? "–" : h.fence_refusals) }),
      el("td", {}, [audit]),
      el("td", {}, [el("button", { type: "button", "class": "button button--secondary lab-show", "data-show": run.id, text: "Show" })])
    ]);
  }

  function checked() {
    return Array.prototype.slice.call(runsBody.querySelectorAll("[data-compare]:checked")).map(function (box) { return box.value; });
  }

  function updateCompare() { compareButton.disabled = checked().length !== 2; }

  runsBody.addEventListener("change", updateCompare);
  runsBody.addEventListener("click", function (event) {
    var button = event.target.closest("[data-show]");
    if (button) watch(button.getAttribute("data-show"));
  });
  compareButton.addEventListener("click", function () {
    var ids = checked();
    if (ids.length !== 2) return;
    watching = null;
    window.clearTimeout(timer);
    Promise.all(ids.map(function (id) { return api("GET", RUNS + id + "/"); })).then(function (answers) {
      show(answers.filter(function (a) { return a.status === 200; }).map(function (a) { return a.body; }));
      message.textContent = "Runs #" + ids.join(" and #") + " side by side.";
    });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { strategy: form.elements.strategy.value };
    Array.prototype.forEach.call(form.querySelectorAll("input[type=number]"), function (input) {
      body[input.name] = Number(input.value);
    });
    setRunning(true);
    message.textContent = "Starting…";
    api("POST", RUNS, body).then(function (answer) {
      if (answer.status === 202) {
        message.textContent = "Run #" + answer.body.id + " is running.";
        loadRuns();
        watch(answer.body.id);
        return;
      }
      setRunning(false);
      var error = (answer.body && answer.body.error) || {};
      message.textContent = (error.code === "lab_busy" ? "Another run is in progress: wait for it or stop it. " : "Not started: ") + (error.message || answer.status);
    }).catch(function () { setRunning(false); message.textContent = "Not started: the server did not answer."; });
  });

  stopButton.addEventListener("click", function () {
    if (watching === null) return;
    stopButton.disabled = true;
    message.textContent = "Stopping run #" + watching + "…";
    api("POST", RUNS + watching + "/stop/");
  });

  loadRuns().then(function (runs) {
    var running = runs.filter(function (r) { return r.status === "running"; })[0];
    if (running) watch(running.id);
  });
})();
