/*
 * GPT Studio chat widget loader. Put one tag on any page of an allowed site:
 *
 *   <script src="https://STUDIO/widget.js" data-key="pk_..." data-identity="OPTIONAL" async></script>
 *
 * It adds a chat bubble at the bottom right; a click opens the assistant in an iframe served by
 * GPT Studio, a second click closes it. A signed end-user identity (data-identity, or
 * GPTStudioWidget.setIdentity(token)) is handed to the iframe with postMessage, never in a URL.
 * The only global is window.GPTStudioWidget. No build step, no dependencies.
 */
(function () {
  "use strict";
  if (window.GPTStudioWidget && window.GPTStudioWidget.version) return;

  var script =
    document.currentScript || document.querySelector('script[data-key][src*="widget.js"]');
  if (!script) return;
  var appOrigin = new URL(script.src, window.location.href).origin;
  var key = script.getAttribute("data-key") || "";
  var identity = script.getAttribute("data-identity") || "";
  var PREFIX = "gptstudio-widget";
  var button = null;
  var panel = null;
  var iframe = null;
  var loading = false;

  function style(el, rules) {
    // Property by property (CSSOM), so that a host page's CSP without 'unsafe-inline' allows it.
    for (var name in rules) el.style[name] = rules[name];
    return el;
  }

  function makeButton() {
    button = document.createElement("button");
    button.id = PREFIX + "-button";
    button.type = "button";
    button.setAttribute("aria-label", "Open chat");
    button.setAttribute("aria-expanded", "false");
    style(button, {
      position: "fixed", right: "20px", bottom: "20px", width: "56px", height: "56px",
      borderRadius: "50%", border: "0", background: "#4f46e5", color: "#fff", cursor: "pointer",
      boxShadow: "0 4px 14px rgba(0,0,0,.25)", zIndex: "2147483000", padding: "0",
      display: "flex", alignItems: "center", justifyContent: "center"
    });
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    button.appendChild(svg);
    button.addEventListener("click", toggle);
    document.body.appendChild(button);
  }

  function makePanel() {
    panel = document.createElement("div");
    panel.id = PREFIX + "-panel";
    panel.setAttribute("role", "dialog");
    style(panel, {
      position: "fixed", right: "20px", bottom: "88px", width: "380px",
      maxWidth: "calc(100vw - 40px)", height: "600px", maxHeight: "calc(100vh - 120px)",
      background: "#fff", borderRadius: "12px", overflow: "hidden",
      boxShadow: "0 10px 40px rgba(0,0,0,.3)", zIndex: "2147483000", display: "none",
      font: "15px/1.5 system-ui, sans-serif", color: "#1f2937"
    });
    document.body.appendChild(panel);
  }

  function showMessage(text, isError) {
    panel.textContent = "";
    var box = document.createElement("p");
    box.id = PREFIX + (isError ? "-error" : "-status");
    if (isError) box.setAttribute("role", "alert");
    box.textContent = text;
    style(box, {
      margin: "0", padding: "24px", color: isError ? "#991b1b" : "#374151",
      background: isError ? "#fef2f2" : "#fff", height: "100%", boxSizing: "border-box"
    });
    panel.appendChild(box);
  }

  function loadFrame() {
    loading = true;
    showMessage("Loading the chat…", false);
    var url = appOrigin + "/widget/" + encodeURIComponent(key) + "/config";
    fetch(url, { mode: "cors", credentials: "omit" })
      .then(function (response) {
        return response.json().then(
          function (body) { return { ok: response.ok, status: response.status, body: body }; },
          function () { return { ok: false, status: response.status, body: {} }; }
        );
      })
      .then(function (result) {
        loading = false;
        if (!result.ok) {
          var error = (result.body && result.body.error) || {};
          showMessage(
            error.message || "The chat could not be loaded (HTTP " + result.status + ").", true
          );
          return;
        }
        panel.textContent = "";
        iframe = document.createElement("iframe");
        iframe.id = PREFIX + "-frame";
        iframe.title = "Chat with " + (result.body.name || "the assistant");
        iframe.src = appOrigin + result.body.frame_url;
        iframe.setAttribute("allow", "clipboard-write");
        style(iframe, { width: "100%", height: "100%", border: "0", display: "block" });
        panel.appendChild(iframe);
      })
      .catch(function () {
        loading = false;
        showMessage("The chat server could not be reached. Check your connection and retry.", true);
      });
  }

  function sendIdentity() {
    if (iframe && iframe.contentWindow) {
      // Only the GPT Studio origin may read it: the identity never reaches another window.
      iframe.contentWindow.postMessage({ type: "gptstudio:init", identity: identity }, appOrigin);
    }
  }

  function open() {
    if (!panel) makePanel();
    panel.style.display = "block";
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-label", "Close chat");
    if (!iframe && !loading) loadFrame();
  }

  function close() {
    if (panel) panel.style.display = "none";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", "Open chat");
  }

  function toggle() {
    if (panel && panel.style.display !== "none") close();
    else open();
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== appOrigin || !iframe || event.source !== iframe.contentWindow) return;
    var data = event.data || {};
    if (data.type === "gptstudio:ready") sendIdentity();
    else if (data.type === "gptstudio:close") close();
  });

  function start() {
    if (!key) {
      if (window.console) console.error("GPT Studio widget: the <script> tag needs data-key.");
      return;
    }
    makeButton();
  }

  window.GPTStudioWidget = {
    version: 1,
    open: function () { if (button) open(); },
    close: function () { if (button) close(); },
    setIdentity: function (token) {
      identity = typeof token === "string" ? token : "";
      sendIdentity();
    }
  };

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
