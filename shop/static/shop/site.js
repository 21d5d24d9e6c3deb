/* seckill pages: countdowns, live stock and status, and a buy button that cannot fire twice.
 *
 * Plain progressive enhancement: every page works without this script (the server renders the
 * status and disables the buy button); the script keeps the figures fresh by polling the public
 * sale API and corrects the browser's clock by the server's, so countdowns agree with the server.
 */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var LIST_POLL_MS = 3000;

  function clockSkew(el) {
    var holder = el.closest("[data-server-now]");
    var serverNow = holder ? Number(holder.getAttribute("data-server-now")) : NaN;
    return isNaN(serverNow) ? 0 : serverNow - Date.now();
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatLeft(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), sec = s % 60;
    var hms = (h || d ? pad(h) + ":" : "") + pad(m) + ":" + pad(sec);
    return d ? d + "d " + hms : hms;
  }

  /* <time data-countdown datetime="ISO">: counts down; fires "countdown:done" at zero. */
  function startCountdown(el) {
    var deadline = Date.parse(el.getAttribute("datetime"));
    if (isNaN(deadline)) return;
    var skew = clockSkew(el);
    var done = false;
    function tick() {
      var left = deadline - (Date.now() + skew);
      if (left <= 0) {
        el.textContent = el.getAttribute("data-done-text") || "now";
        if (!done) {
          done = true;
          el.dispatchEvent(new CustomEvent("countdown:done", { bubbles: true }));
        }
        return;
      }
      el.textContent = formatLeft(left);
      window.setTimeout(tick, Math.min(250, left));
    }
    tick();
  }

  function statusCopy() {
    var node = document.getElementById("status-copy");
    return node ? JSON.parse(node.textContent) : {};
  }

  function setText(root, field, text) {
    root.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) {
      if (el.textContent !== String(text)) el.textContent = text;
    });
  }

  function setBadge(el, status, copy) {
    if (!el) return;
    el.className = el.className.replace(/badge--\S+/, "badge--" + status);
    el.textContent = (copy[status] || {}).title || status;
  }

  /* Elements marked data-show-when="<status>" are visible only in that status. */
  function showWhen(root, status) {
    root.querySelectorAll("[data-show-when]").forEach(function (el) {
      el.hidden = el.getAttribute("data-show-when") !== status;
    });
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; });
  }

  /* Run load() now and then every interval (slower in a hidden tab); a call while a load is in
   * flight runs once more right after it, so there is only ever one polling chain. */
  function poller(load, interval) {
    var timer = null, busy = false, again = false;
    function run() {
      window.clearTimeout(timer);
      if (busy) { again = true; return; }
      busy = true;
      load()
        .catch(function () { /* offline for a moment: keep the last figures */ })
        .finally(function () {
          busy = false;
          if (again) { again = false; run(); return; }
          timer = window.setTimeout(run, document.hidden ? interval * 5 : interval);
        });
    }
    return run;
  }

  /* The sale page: poll the sale's API detail and redraw status, stock and the buy button. */
  function liveSale(root) {
    var url = root.getAttribute("data-api-url");
    var copy = statusCopy();
    var button = root.querySelector("[data-buy-button]");
    var form = root.querySelector("[data-buy-form]");

    function apply(sale) {
      if (!sale) return;
      root.setAttribute("data-status", sale.status);
      setText(root, "stock_left", sale.stock_left);
      setBadge(root.querySelector('[data-field="status"]'), sale.status, copy);
      setText(root, "hint", (copy[sale.status] || {}).hint || "");
      var meter = root.querySelector('[data-field="meter"]');
      if (meter) {
        meter.setAttribute("aria-valuenow", sale.stock_left);
        var pct = sale.stock_total ? (100 * sale.stock_left) / sale.stock_total : 0;
        meter.firstElementChild.style.width = Math.max(0, Math.min(100, pct)) + "%";
      }
      showWhen(root, sale.status);
      if (button && !(form && form.hasAttribute("data-submitting"))) {
        button.disabled = sale.status !== "live";
      }
    }

    var poll = poller(function () { return getJSON(url).then(apply); }, POLL_MS);
    root.addEventListener("countdown:done", function () { window.setTimeout(poll, 50); });
    poll();
  }

  /* The sales list: one request for every row. */
  function liveList(root) {
    var url = root.getAttribute("data-api-url");
    var copy = statusCopy();

    function apply(page) {
      ((page && page.results) || []).forEach(function (sale) {
        var row = root.querySelector('[data-sale-id="' + sale.id + '"]');
        if (!row) return;
        row.setAttribute("data-status", sale.status);
        setText(row, "stock_left", sale.stock_left);
        setBadge(row.querySelector('[data-field="status"]'), sale.status, copy);
        showWhen(row, sale.status);
      });
    }

    var poll = poller(function () { return getJSON(url).then(apply); }, LIST_POLL_MS);
    root.addEventListener("countdown:done", function () { window.setTimeout(poll, 50); });
    window.setTimeout(poll, LIST_POLL_MS);
  }

  /* A double click submits once from here; the server's Idempotency-Key covers the rest.
   * Sales that need a purchase token get one from the API as the buyer presses Buy (tokens are
   * single-use and short-lived, so never earlier); if that fails the form is sent anyway and
   * the server's answer says why. */
  function guardBuyForm(form) {
    var button = form.querySelector("[data-buy-button]");
    var tokenUrl = form.getAttribute("data-token-url");

    function markSubmitting() {
      form.setAttribute("data-submitting", "");
      form.setAttribute("aria-busy", "true");
      if (button) {
        // Disable after this event, so the click that submitted still counts.
        window.setTimeout(function () {
          button.disabled = true;
          button.textContent = "Placing order…";
        }, 0);
      }
    }

    function fetchTokenThenSubmit() {
      var csrf = form.querySelector("[name=csrfmiddlewaretoken]");
      fetch(tokenUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrf ? csrf.value : "" },
      })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (body && body.token) form.elements.purchase_token.value = body.token;
        })
        .catch(function () {})
        .finally(function () { form.submit(); });
    }

    form.addEventListener("submit", function (event) {
      if (tokenUrl) {
        event.preventDefault();
        if (form.hasAttribute("data-submitting")) return;
        markSubmitting();
        fetchTokenThenSubmit();
        return;
      }
      markSubmitting();
    });
  }

  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-countdown]").forEach(startCountdown);
    document.querySelectorAll("[data-live-sale]").forEach(liveSale);
    document.querySelectorAll("[data-sales-list]").forEach(liveList);
    document.querySelectorAll("[data-buy-form]").forEach(guardBuyForm);
    confirmForms();
    var reload = document.querySelector("[data-reload-after]");
    if (reload) {
      window.setTimeout(function () { window.location.reload(); },
        Number(reload.getAttribute("data-reload-after")));
    }
  });

  /* Coming back through the history cache: the form is usable again (same key, so still safe). */
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("[data-buy-form][data-submitting]").forEach(function (form) {
      form.removeAttribute("data-submitting");
      form.removeAttribute("aria-busy");
      var button = form.querySelector("[data-buy-button]");
      if (button) {
        button.textContent = "Buy now";
        var root = form.closest("[data-live-sale]");
        button.disabled = !root || root.getAttribute("data-status") !== "live";
      }
    });
  });
})();
