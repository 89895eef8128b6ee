/* The installable app's page side: registers the service worker (sw.js), hands it what this
   first visit loaded so the shell opens offline, and says so while the device is offline. The
   chat's typed message is an uncontrolled field, so it survives the socket's reconnection; it
   is also kept in sessionStorage, so an offline reload of the page does not lose it either. */
(function () {
  "use strict";

  function registerWorker() {
    if (!("serviceWorker" in navigator)) return;
    navigator.serviceWorker
      .register("/sw.js", { scope: "/" })
      .then(function () { return navigator.serviceWorker.ready; })
      .then(function (registration) {
        var urls = [location.href];
        performance.getEntriesByType("resource").forEach(function (entry) {
          if (entry.name.indexOf(location.origin + "/") === 0) urls.push(entry.name);
        });
        if (registration.active) registration.active.postMessage({ type: "cache-shell", urls: urls });
      })
      .catch(function (error) {
        console.warn("GPT Studio: the offline shell is not available:", error);
      });
  }

  var banner = null;

  function showOffline() {
    if (banner) return;
    banner = document.createElement("div");
    banner.id = "offline-banner";
    banner.setAttribute("role", "status");
    banner.textContent =
      "You are offline. What you type stays here; the page reconnects by itself.";
    document.body.appendChild(banner);
    document.documentElement.classList.add("offline");
  }

  function hideOffline() {
    if (banner && banner.parentNode) banner.parentNode.removeChild(banner);
    banner = null;
    document.documentElement.classList.remove("offline");
  }

  // The chat's draft, per page address, until it is sent.
  function draftKey() {
    return "gptstudio:draft:" + location.pathname + location.search;
  }

  function keepDraft(event) {
    var field = event.target;
    if (!field || field.id !== "chat-input") return;
    if (field.value) sessionStorage.setItem(draftKey(), field.value);
    else sessionStorage.removeItem(draftKey());
  }

  function restoreDraft() {
    var saved = sessionStorage.getItem(draftKey());
    var field = document.getElementById("chat-input");
    if (!saved || !field || field.value) return;
    // React owns the field: set it the way a user's typing would.
    var setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value").set;
    setter.call(field, saved);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function start() {
    registerWorker();
    if (!navigator.onLine) showOffline();
    window.addEventListener("offline", showOffline);
    window.addEventListener("online", hideOffline);
    document.addEventListener("input", keepDraft, true);
    document.addEventListener(
      "submit",
      function (event) {
        if (event.target && event.target.querySelector("#chat-input")) {
          sessionStorage.removeItem(draftKey());
        }
      },
      true
    );
    // The field appears once the page has rendered; wait for it a little.
    var tries = 0;
    var timer = setInterval(function () {
      tries += 1;
      if (document.getElementById("chat-input") || tries > 40) {
        clearInterval(timer);
        restoreDraft();
      }
    }, 250);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
