// Stripe's embedded Checkout as a React component (wrapped for Reflex in
// gptstudio/components/stripe_checkout.py).
//
// It loads Stripe.js itself from `scriptUrl` (https://js.stripe.com/v3 in production) and uses
// Stripe's own API: Stripe(publishableKey).initEmbeddedCheckout({fetchClientSecret}).mount(el).
// @stripe/stripe-js's loadStripe cannot take another URL (it hard-codes js.stripe.com/v3), and
// @react-stripe-js's EmbeddedCheckout only wraps the same two calls, so no npm package is needed.
//
// `onReady` fires once Stripe.js is there; `onUnavailable(reason)` when it cannot load (blocked,
// offline, refused by a CSP): the page then falls back to Stripe's hosted Checkout.
import { createElement, useEffect, useRef } from "react";

const loading = {};

function loadStripeJs(url) {
  if (typeof window.Stripe === "function") return Promise.resolve(window.Stripe);
  if (!loading[url]) {
    loading[url] = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.async = true;
      script.onload = () =>
        typeof window.Stripe === "function"
          ? resolve(window.Stripe)
          : reject(new Error("Stripe.js loaded but defined no Stripe"));
      script.onerror = () => {
        delete loading[url]; // a later page may try again
        script.remove();
        reject(new Error("Stripe.js could not be loaded from " + url));
      };
      document.head.appendChild(script);
    });
  }
  return loading[url];
}

export function EmbeddedCheckout({
  scriptUrl,
  publishableKey,
  clientSecret,
  onReady,
  onUnavailable,
  ...rest
}) {
  const host = useRef(null);
  const handlers = useRef({});
  handlers.current = { onReady, onUnavailable };

  useEffect(() => {
    let cancelled = false;
    let checkout = null;
    loadStripeJs(scriptUrl)
      .then((Stripe) => {
        if (cancelled) return null;
        handlers.current.onReady?.();
        if (!clientSecret) return null;
        return Stripe(publishableKey)
          .initEmbeddedCheckout({ fetchClientSecret: () => Promise.resolve(clientSecret) })
          .then((made) => {
            if (cancelled) {
              made.destroy();
              return;
            }
            checkout = made;
            made.mount(host.current);
          });
      })
      .catch((error) => {
        if (!cancelled) handlers.current.onUnavailable?.(String(error?.message ?? error));
      });
    return () => {
      cancelled = true;
      checkout?.destroy(); // Stripe allows one embedded Checkout at a time
    };
  }, [scriptUrl, publishableKey, clientSecret]);

  return createElement("div", { ...rest, ref: host }); // our ref: Stripe mounts into it
}
