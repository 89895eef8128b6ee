/*
 * GPT Studio chat widget: the chat inside the iframe. The conversation lives here (not on the
 * server); each question is sent with the history, the parent page's origin (from the
 * postMessage handshake with widget.js), the visitor id (issued by /session, kept in
 * localStorage) and the optional signed identity; the answer streams back as server-sent events.
 */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("gptstudio-config").textContent);
  var look = config.look || {};
  if (/^#[0-9a-f]{6}$/.test(look.color || "")) {
    // CSSOM, not a style attribute: the frame's CSP allows no inline style.
    document.documentElement.style.setProperty("--accent", look.color);
  }
  var $ = function (id) { return document.getElementById(id); };
  var els = {
    who: $("who"), notice: $("notice"), messages: $("messages"), empty: $("empty"),
    form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"), close: $("close")
  };
  var HISTORY_SENT = 40;
  var history = [];
  var parentOrigin = "";
  var identity = "";
  var controller = null;
  var blocked = true;
  var visitorId = loadVisitorId();

  // The visitor id is issued (and signed) by the server's /session answer; it is kept here so
  // that the same visitor keeps the same limit across page loads.
  var VISITOR_KEY = "gptstudio:visitor";

  function loadVisitorId() {
    try {
      return window.localStorage.getItem(VISITOR_KEY) || "";
    } catch (error) {
      return ""; // storage blocked (third-party iframe): /session issues one for this page view
    }
  }

  function keepVisitorId(id) {
    visitorId = id || "";
    try {
      window.localStorage.setItem(VISITOR_KEY, visitorId);
    } catch (error) {
      // storage blocked: the id lives as long as this page view
    }
  }

  function showNotice(text, link) {
    els.notice.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link.href;
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = link.label;
      els.notice.appendChild(document.createTextNode(" "));
      els.notice.appendChild(a);
    }
    els.notice.hidden = false;
  }

  function clearNotice() {
    els.notice.hidden = true;
    els.notice.textContent = "";
  }

  function setBusy(busy) {
    els.send.hidden = busy;
    els.stop.hidden = !busy;
    els.send.disabled = busy || blocked;
    els.input.disabled = blocked;
  }

  function setEmpty(text) {
    els.empty.textContent = text;
    els.empty.hidden = history.length > 0 || !text;
  }

  function bubble(role, text) {
    var div = document.createElement("div");
    div.className = "message " + role;
    div.textContent = text;
    els.messages.appendChild(div);
    els.messages.scrollTop = els.messages.scrollHeight;
    return div;
  }

  function errorText(status, error) {
    var text = (error && error.message) || "The chat failed (HTTP " + status + "). Try again.";
    if (status === 429 && error && error.retry_after && text.indexOf("Try again") < 0) {
      text += " Try again in " + error.retry_after + " s.";
    }
    return text;
  }

  function post(url, body, signal) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      signal: signal
    });
  }

  function readError(response) {
    return response.json().then(
      function (body) { return (body && body.error) || {}; },
      function () { return {}; }
    );
  }

  function who() {
    return { parent_origin: parentOrigin, visitor_id: visitorId, identity: identity };
  }

  // --- the session: origin, identity and plan checked before the first question ------------

  function startSession() {
    clearNotice();
    blocked = true;
    setBusy(false);
    setEmpty("Connecting…");
    post(config.sessionUrl, who())
      .then(function (response) {
        if (!response.ok) {
          return readError(response).then(function (error) {
            els.who.textContent = "";
            setEmpty("");
            showNotice(errorText(response.status, error));
          });
        }
        return response.json().then(function (body) {
          keepVisitorId(body.visitor_id);
          blocked = false;
          setBusy(false);
          var name = body.signed_in_as ? "Signed in as " + body.signed_in_as : "Guest";
          els.who.textContent = name + " · " + body.plan;
          setEmpty(config.welcome ? "" : "Ask " + body.assistant + " anything.");
          welcome();
          if (!body.allowed && body.message) {
            showNotice(body.message, body.upgrade_url
              ? { href: body.upgrade_url, label: "See plans" } : null);
          } else if (body.link_url) {
            // The site signed an identity this widget may not use yet: the person links it
            // once, signed in to GPT Studio, and chats as a guest until then.
            showNotice("To chat on your own GPT Studio plan here, link your account once.",
              { href: body.link_url, label: "Link account" });
          }
          els.input.focus();
        });
      })
      .catch(function () {
        setEmpty("");
        showNotice("The chat server could not be reached. Check your connection and reload.");
      });
  }

  // --- the creator's welcome message and conversation starters (a new chat only) -----------

  var opening = null;

  function welcome() {
    if (opening || history.length || (!config.welcome && !(config.starters || []).length)) return;
    opening = document.createElement("div");
    opening.id = "opening";
    if (config.welcome) {
      var greeting = bubble("assistant welcome", config.welcome);
      opening.appendChild(greeting);
    }
    var starters = document.createElement("div");
    starters.className = "starters";
    (config.starters || []).forEach(function (text) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "starter";
      button.textContent = text;
      button.addEventListener("click", function () {
        if (blocked || controller) return;
        els.input.value = text;
        send();
      });
      starters.appendChild(button);
    });
    opening.appendChild(starters);
    els.messages.appendChild(opening);
  }

  function dropStarters() {
    // The greeting stays above the conversation; the starters go once it begins.
    var starters = opening && opening.querySelector(".starters");
    if (starters) starters.remove();
  }

  // --- sending and streaming ----------------------------------------------------------------

  function send(event) {
    if (event) event.preventDefault();
    var text = els.input.value.trim();
    if (!text || blocked || controller) return;
    clearNotice();
    history.push({ role: "user", content: text });
    dropStarters();
    setEmpty("");
    var question = bubble("user", text);
    els.input.value = "";
    var answer = bubble("assistant streaming", "");
    var received = "";
    controller = new AbortController();
    setBusy(true);

    function restore(message, link) {
      // A refused question is put back in the box: nothing typed is lost.
      history.pop();
      question.remove();
      answer.remove();
      if (!els.input.value) els.input.value = text;
      setEmpty(history.length ? "" : "Ask " + config.name + " anything.");
      showNotice(message, link);
    }

    function finish(stopped) {
      answer.classList.remove("streaming");
      if (stopped) answer.classList.add("stopped");
      if (received.trim()) history.push({ role: "assistant", content: received });
      else if (!stopped) {
        // The model ended at once (or wrote only spaces): say so rather than show nothing.
        answer.classList.add("no-answer");
        answer.textContent = "(No answer this time. Try asking again or rephrasing.)";
      }
    }

    var body = who();
    body.messages = history.slice(-HISTORY_SENT);
    post(config.chatUrl, body, controller.signal)
      .then(function (response) {
        if (!response.ok) {
          return readError(response).then(function (error) {
            var link = error.upgrade_url ? { href: error.upgrade_url, label: "See plans" } : null;
            restore(errorText(response.status, error), link);
          });
        }
        return stream(response, function (text) {
          received += text;
          answer.textContent = received;
          els.messages.scrollTop = els.messages.scrollHeight;
        }).then(function (failure) {
          // An error before any text: the question goes back to the box, as when refused.
          if (failure && !received.trim()) restore(failure);
          else {
            finish(false);
            if (failure) showNotice(failure);
          }
        });
      })
      .catch(function (error) {
        if (error && error.name === "AbortError") finish(true);
        else if (received) {
          finish(false);
          showNotice("The connection was lost before the answer finished.");
        } else restore("The chat server could not be reached. Check your connection and retry.");
      })
      .then(function () {
        controller = null;
        setBusy(false);
        els.input.focus();
      });
  }

  function stream(response, onText) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var failure = "";

    function handle(block) {
      block.split("\n").forEach(function (line) {
        if (line.indexOf("data: ") !== 0) return;
        var event;
        try { event = JSON.parse(line.slice(6)); } catch (error) { return; }
        if (event.type === "delta") onText(event.content);
        else if (event.type === "error") failure = event.message;
      });
    }

    function pump() {
      return reader.read().then(function (part) {
        if (part.done) {
          if (buffer.trim()) handle(buffer);
          return failure;
        }
        buffer += decoder.decode(part.value, { stream: true });
        var blocks = buffer.split("\n\n");
        buffer = blocks.pop();
        blocks.forEach(handle);
        return pump();
      });
    }
    return pump();
  }

  els.form.addEventListener("submit", send);
  els.input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  els.stop.addEventListener("click", function () {
    if (controller) controller.abort();
  });

  // --- the handshake with widget.js in the parent page ---------------------------------------

  if (window.parent === window) {
    setEmpty("");
    showNotice(
      "This is the chat window of " + config.name + "'s widget; it works inside a site that " +
      "embeds the widget's <script> tag."
    );
    els.close.hidden = true;
    return;
  }

  var greeted = false;
  window.addEventListener("message", function (event) {
    // The browser vouches for event.origin: it is the embedding page's real origin.
    if (event.source !== window.parent) return;
    var data = event.data || {};
    if (data.type !== "gptstudio:init") return;
    greeted = true;
    parentOrigin = event.origin;
    identity = typeof data.identity === "string" ? data.identity : "";
    startSession();
  });
  els.close.addEventListener("click", function () {
    if (parentOrigin) window.parent.postMessage({ type: "gptstudio:close" }, parentOrigin);
  });
  window.parent.postMessage({ type: "gptstudio:ready" }, "*");

  // Embedded without widget.js (a bare iframe): fall back to what the browser says embeds us.
  window.setTimeout(function () {
    if (greeted) return;
    var ancestors = window.location.ancestorOrigins;
    if (ancestors && ancestors.length) parentOrigin = ancestors[0];
    else if (document.referrer) parentOrigin = new URL(document.referrer).origin;
    startSession();
  }, 3000);
})();
