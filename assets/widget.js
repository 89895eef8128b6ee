/*
 * GPT Studio chat widget loader. Put one tag on any page of an allowed site:
 *
 *   <script src="https://STUDIO/widget.js" data-key="pk_..." data-identity="OPTIONAL" async></script>
 *
 * It adds a launcher in the corner, colour and shape the creator chose on the widget settings page
 * (with a greeting beside it, if any); a click opens the assistant in an iframe served by
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
  var DEFAULT_LOOK = {
    color: "#4f46e5", title: "", greeting: "", position: "right", launcher: "icon",
    launcher_text: "Chat"
  };
  var look = DEFAULT_LOOK;
  var config = null; // the /config answer: { ok, status, body }
  var button = null;
  var greeting = null;
  var panel = null;
  var iframe = null;
  var loading = false;

  function style(el, rules) {
    // Property by property (CSSOM), so that a host page's CSP without 'unsafe-inline' allows it.
    for (var name in rules) el.style[name] = rules[name];
    return el;
  }

  function side() {
    return look.position === "left" ? "left" : "right";
  }

  function chatIcon(size) {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", size);
    svg.setAttribute("height", size);
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  function makeButton() {
    button = document.createElement("button");
    button.id = PREFIX + "-button";
    button.type = "button";
    button.setAttribute("aria-label", "Open chat");
    button.setAttribute("aria-expanded", "false");
    var pill = look.launcher === "text";
    var rules = {
      position: "fixed", bottom: "20px", height: "56px", border: "0", background: look.color,
      color: "#fff", cursor: "pointer", boxShadow: "0 4px 14px rgba(0,0,0,.25)",
      zIndex: "2147483000", display: "flex", alignItems: "center", justifyContent: "center",
      gap: "8px", font: "600 15px/1 system-ui, sans-serif",
      borderRadius: pill ? "28px" : "50%", width: pill ? "auto" : "56px",
      padding: pill ? "0 20px" : "0"
    };
    rules[side()] = "20px";
    style(button, rules);
    button.appendChild(chatIcon(pill ? "20" : "26"));
    if (pill) {
      var label = document.createElement("span");
      label.textContent = look.launcher_text || "Chat";
      button.appendChild(label);
    }
    button.addEventListener("click", toggle);
    document.body.appendChild(button);
    if (look.greeting) makeGreeting();
  }

  function makeGreeting() {
    greeting = document.createElement("div");
    greeting.id = PREFIX + "-greeting";
    var rules = {
      position: "fixed", bottom: "88px", maxWidth: "260px", padding: "10px 30px 10px 14px",
      background: "#fff", color: "#1f2937", borderRadius: "12px", cursor: "pointer",
      boxShadow: "0 4px 14px rgba(0,0,0,.2)", zIndex: "2147483000",
      font: "14px/1.4 system-ui, sans-serif", borderTop: "3px solid " + look.color
    };
    rules[side()] = "20px";
    style(greeting, rules);
    var text = document.createElement("span");
    text.textContent = look.greeting;
    greeting.appendChild(text);
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.textContent = "×";
    style(dismiss, {
      position: "absolute", top: "4px", right: "6px", border: "0", background: "transparent",
      color: "#6b7280", cursor: "pointer", font: "18px/1 system-ui, sans-serif", padding: "2px"
    });
    dismiss.addEventListener("click", function (event) {
      event.stopPropagation();
      hideGreeting();
    });
    greeting.appendChild(dismiss);
    greeting.addEventListener("click", open);
    document.body.appendChild(greeting);
  }

  function hideGreeting() {
    if (greeting && greeting.parentNode) greeting.parentNode.removeChild(greeting);
    greeting = null;
  }

  // A phone: the open chat takes the whole screen (the frame's own × closes it).
  var phone = window.matchMedia ? window.matchMedia("(max-width: 480px)") : null;

  function placePanel() {
    if (!panel) return;
    var full = phone && phone.matches;
    var rules = full
      ? {
          top: "0", left: "0", right: "0", bottom: "0", width: "100%", height: "100%",
          maxWidth: "none", maxHeight: "none", borderRadius: "0", boxShadow: "none"
        }
      : {
          top: "auto", left: "auto", right: "auto", bottom: "88px", width: "380px",
          maxWidth: "calc(100vw - 40px)", height: "600px", maxHeight: "calc(100vh - 120px)",
          borderRadius: "12px", boxShadow: "0 10px 40px rgba(0,0,0,.3)"
        };
    if (!full) rules[side()] = "20px";
    style(panel, rules);
    // Over the full-screen panel the launcher would hide the composer's Send button.
    if (button) button.style.display = full && panel.style.display !== "none" ? "none" : "flex";
  }

  function makePanel() {
    panel = document.createElement("div");
    panel.id = PREFIX + "-panel";
    panel.setAttribute("role", "dialog");
    style(panel, {
      position: "fixed", background: "#fff", overflow: "hidden", zIndex: "2147483000",
      display: "none", font: "15px/1.5 system-ui, sans-serif", color: "#1f2937"
    });
    placePanel();
    if (phone && phone.addEventListener) phone.addEventListener("change", placePanel);
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

  function fetchConfig(then) {
    loading = true;
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
        config = result;
        then();
      })
      .catch(function () {
        loading = false;
        config = null; // unreachable: tried again on the next open
        then();
      });
  }

  function showFrame() {
    if (!config) {
      showMessage("The chat server could not be reached. Check your connection and retry.", true);
      return;
    }
    if (!config.ok) {
      var error = (config.body && config.body.error) || {};
      showMessage(
        error.message || "The chat could not be loaded (HTTP " + config.status + ").", true
      );
      return;
    }
    panel.textContent = "";
    iframe = document.createElement("iframe");
    iframe.id = PREFIX + "-frame";
    iframe.title = "Chat with " + (config.body.name || "the assistant");
    iframe.src = appOrigin + config.body.frame_url;
    iframe.setAttribute("allow", "clipboard-write");
    style(iframe, { width: "100%", height: "100%", border: "0", display: "block" });
    panel.appendChild(iframe);
  }

  function loadFrame() {
    if (config && config.ok) {
      showFrame();
      return;
    }
    showMessage("Loading the chat…", false);
    fetchConfig(showFrame);
  }

  function sendIdentity() {
    if (iframe && iframe.contentWindow) {
      // Only the GPT Studio origin may read it: the identity never reaches another window.
      iframe.contentWindow.postMessage({ type: "gptstudio:init", identity: identity }, appOrigin);
    }
  }

  function open() {
    hideGreeting();
    if (!panel) makePanel();
    panel.style.display = "block";
    placePanel();
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-label", "Close chat");
    if (!iframe && !loading) loadFrame();
  }

  function close() {
    if (panel) panel.style.display = "none";
    placePanel();
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
    // The look comes with the config; a config that fails still shows the default launcher,
    // and opening it says why the chat cannot load.
    fetchConfig(function () {
      if (config && config.ok && config.body.look) {
        var chosen = config.body.look;
        look = {};
        for (var name in DEFAULT_LOOK) look[name] = chosen[name] || DEFAULT_LOOK[name];
        if (!/^#[0-9a-fA-F]{6}$/.test(look.color)) look.color = DEFAULT_LOOK.color;
      }
      makeButton();
    });
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
