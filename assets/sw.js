/* GPT Studio's service worker: keeps the app shell (every page's HTML, the hashed scripts and
   styles, the icons) so that the installed app opens without a network and says it is offline;
   the page then reconnects its WebSocket by itself. Nothing that carries data is cached: the
   API, the event socket, uploads, exports, webhooks and the widget always go to the network. */
"use strict";

const SHELL = "gptstudio-shell-v1";
const PRECACHE = ["/", "/manifest.webmanifest", "/icons/icon-192.png", "/icons/icon-512.png"];
// Never cached: answers that belong to one user or one moment.
const NETWORK_ONLY = /^\/(_[^/]*|api|v1|auth|webhooks|widget|widget\.js|healthz|metrics|ping)(\/|$)/;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) => cache.addAll(PRECACHE)).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

function cacheable(url) {
  return url.origin === self.location.origin && !NETWORK_ONLY.test(url.pathname);
}

// A page's address without its query: /chat?assistant=a and /chat?assistant=b share one shell.
function shellKey(url) {
  return url.origin + url.pathname;
}

async function store(key, response) {
  if (response && response.ok && response.type === "basic") {
    const cache = await caches.open(SHELL);
    await cache.put(key, response.clone());
  }
  return response;
}

// The page sends what it loaded before this worker controlled it (its first visit).
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "cache-shell" || !Array.isArray(data.urls)) return;
  event.waitUntil(
    Promise.all(
      data.urls.map(async (href) => {
        const url = new URL(href, self.location.origin);
        if (!cacheable(url)) return;
        const key = url.pathname.startsWith("/assets/") ? url.href : shellKey(url);
        if (await caches.match(key)) return;
        try {
          await store(key, await fetch(url.href, { credentials: "same-origin" }));
        } catch (error) {
          // offline already: it is cached on the next visit
        }
      })
    )
  );
});

async function page(request) {
  const url = new URL(request.url);
  try {
    return await store(shellKey(url), await fetch(request));
  } catch (error) {
    const cached = (await caches.match(shellKey(url))) || (await caches.match("/"));
    if (cached) return cached;
    return new Response(
      "<!doctype html><meta name=viewport content='width=device-width'><title>Offline</title>" +
        "<p style='font:16px system-ui;padding:1em'>You are offline, and this page has not " +
        "been opened on this device before. Connect and try again.</p>",
      { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } }
    );
  }
}

// Hashed build files never change under one name: the cache answers first.
async function asset(request) {
  const cached = await caches.match(request.url);
  if (cached) return cached;
  return store(request.url, await fetch(request));
}

// Everything else (icons, the manifest, styles without a hash): the network first.
async function other(request) {
  const url = new URL(request.url);
  try {
    return await store(shellKey(url), await fetch(request));
  } catch (error) {
    const cached = await caches.match(shellKey(url));
    if (cached) return cached;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (!cacheable(url)) return;
  if (request.mode === "navigate") event.respondWith(page(request));
  else if (url.pathname.startsWith("/assets/")) event.respondWith(asset(request));
  else event.respondWith(other(request));
});
