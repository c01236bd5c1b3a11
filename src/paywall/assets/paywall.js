// The paywall page's script (x402-lightning): counts the invoice down, pays it with a browser
// wallet (WebLN) or learns by polling that it was paid elsewhere, then requests the page again
// with the preimage as an x402 version 2 `exact`/`lnbtc` payment (PAYMENT-SIGNATURE) and shows
// what it bought. Allowed by its hash in the page's CSP; no external resource, no eval, no
// inline handler.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const challenge = JSON.parse($("x402-challenge").textContent);
  const facts = JSON.parse($("x402-paywall").textContent);
  const accepted = challenge.accepts[0];
  const invoice = accepted.extra.invoice;
  const status = $("status");
  const payButton = $("pay-webln");
  const reload = $("reload");
  const started = performance.now();
  const POLL_FIRST_MS = 1000;
  const POLL_MAX_MS = 10000;
  const SEND_TRIES = 6;
  let polling = true; // until the invoice is paid, cancelled, or expired for good
  let timeUp = false; // the countdown reached zero: a late payment may still land
  let unlocking = false;
  let walletBusy = false; // the browser wallet is asked to pay
  let pollTimer = null;
  let pollDelay = POLL_FIRST_MS;

  const say = (text, kind) => {
    status.textContent = text;
    status.className = kind || "";
  };
  const secondsLeft = () =>
    Math.max(0, Math.ceil(facts.expiresIn - (performance.now() - started) / 1000));
  const clock = (seconds) => {
    const m = Math.floor(seconds / 60);
    const s = seconds % 60;
    return m > 0 ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const stopPolling = () => {
    polling = false;
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  };
  const pollSoon = (ms) => {
    if (!polling) return;
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  };

  // The invoice can no longer be paid. A payment made in its last moments may still land: the
  // page keeps asking until the server says the invoice expired for good (its end plus the
  // grace it gives a late proof), and unlocks if it was paid after all.
  const expire = () => {
    if (unlocking || timeUp) return;
    timeUp = true;
    payButton.disabled = true;
    document.body.classList.add("expired");
    $("countdown").textContent = "0 s";
    say("This invoice expired: reload for a new invoice.", "error");
    reload.hidden = false;
    pollDelay = POLL_FIRST_MS;
    pollSoon(POLL_FIRST_MS);
    setTimeout(stopPolling, (facts.graceSecs + 15) * 1000);
  };

  const tick = () => {
    if (unlocking || timeUp) return;
    const left = secondsLeft();
    $("countdown").textContent = clock(left);
    if (left === 0) expire();
    else setTimeout(tick, 1000);
  };

  // UTF-8 JSON to base64, as the x402 HTTP transport encodes PAYMENT-SIGNATURE.
  const base64 = (text) => {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary);
  };

  const errorOf = async (response) => {
    try {
      const body = await response.json();
      return body.error || body.reason || `HTTP ${response.status}`;
    } catch (_) {
      return `HTTP ${response.status}`;
    }
  };

  const fileName = (response) => {
    const disposition = response.headers.get("content-disposition") || "";
    const named = /filename="?([^";]+)"?/i.exec(disposition);
    if (named) return named[1];
    const last = location.pathname.split("/").filter(Boolean).pop();
    return last || "download";
  };

  // Shows what was bought: HTML replaces the page, JSON is pretty-printed, an image is shown,
  // text is shown as it is, anything else is downloaded.
  const show = async (response) => {
    const type = (response.headers.get("content-type") || "").toLowerCase();
    const content = $("content");
    if (type.startsWith("text/html")) {
      const html = await response.text();
      document.open();
      document.write(html);
      document.close();
      return;
    }
    document.body.classList.add("unlocked");
    content.replaceChildren();
    if (type.includes("json")) {
      const text = await response.text();
      const pre = document.createElement("pre");
      try {
        pre.textContent = JSON.stringify(JSON.parse(text), null, 2);
      } catch (_) {
        pre.textContent = text;
      }
      content.append(pre);
    } else if (type.startsWith("image/")) {
      const img = document.createElement("img");
      img.alt = "What you bought";
      img.src = URL.createObjectURL(await response.blob());
      content.append(img);
    } else if (type.startsWith("text/")) {
      const pre = document.createElement("pre");
      pre.textContent = await response.text();
      content.append(pre);
    } else {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await response.blob());
      link.download = fileName(response);
      link.textContent = `Download ${link.download} again`;
      content.append(link);
      link.click();
    }
    content.hidden = false;
    say(response.ok ? "Paid. Here is what you bought." : `Paid. The server answered ${response.status}.`, "done");
  };

  // Requests this page again with the proof of payment. The same proof is sent again after a
  // network error, or a 409 or 5xx that took no payment (no PAYMENT-RESPONSE): it can be used
  // once, and is never paid twice. A proof from the browser wallet that is refused leaves the
  // page asking the server whether the invoice was paid after all.
  const unlock = async (preimage, fromWallet) => {
    if (unlocking) return;
    unlocking = true;
    stopPolling();
    payButton.disabled = true;
    document.body.classList.remove("expired");
    say("Paid. Loading what you bought…", "busy");
    const payment = {
      x402Version: 2,
      resource: challenge.resource,
      accepted,
      payload: { preimage },
    };
    // The route's bound headers, as the navigation sent them: the payment is bound to them.
    const headers = new Headers();
    for (const [name, value] of Object.entries(facts.headers)) headers.append(name, value);
    headers.set("PAYMENT-SIGNATURE", base64(JSON.stringify(payment)));
    let sentBefore = false;
    for (let attempt = 1; attempt <= SEND_TRIES; attempt += 1) {
      let response;
      try {
        response = await fetch(location.href, {
          method: "GET",
          headers,
          cache: "no-store",
          credentials: "same-origin",
          redirect: "manual",
        });
      } catch (_) {
        sentBefore = true;
        await sleep(1000 * attempt);
        continue;
      }
      if (response.type === "opaqueredirect") {
        // Followed, a redirect would carry the proof to wherever it points.
        say("The server redirected the paid request instead of answering it.", "error");
        return;
      }
      if (response.status === 402 || response.status === 400) {
        const why = await errorOf(response);
        if (sentBefore && /duplicate_settlement/.test(why)) {
          // An earlier try was taken, and its answer lost on the way.
          say("Paid, but the server's answer was lost on the way, and a payment serves once. Reload for a new invoice.", "error");
        } else {
          say(`The payment was refused: ${why}`, "error");
        }
        reload.hidden = false;
        if (fromWallet && !sentBefore) {
          // The wallet's proof was not the invoice's: the server may still see it paid.
          unlocking = false;
          polling = true;
          pollSoon(POLL_FIRST_MS);
        }
        return;
      }
      // Taken and answered (whatever the status): show it. Not taken: send it again.
      const taken = response.headers.has("PAYMENT-RESPONSE");
      if (!taken && (response.status === 409 || response.status >= 500)) {
        sentBefore = true;
        await sleep(1000 * attempt);
        continue;
      }
      await show(response);
      return;
    }
    say(
      "Paid, but the server could not be reached to deliver. Keep this page open and try again.",
      "error",
    );
  };

  const payWithBrowserWallet = async () => {
    if (unlocking || timeUp) return;
    const webln = window.webln;
    if (!webln) {
      say(
        "No browser wallet (WebLN) was found: scan the QR code with a Lightning wallet, or copy the invoice.",
        "error",
      );
      return;
    }
    payButton.disabled = true;
    walletBusy = true;
    say("Waiting for your browser wallet…", "busy");
    try {
      await webln.enable();
      const paid = await webln.sendPayment(invoice);
      const preimage = paid && typeof paid.preimage === "string" ? paid.preimage.toLowerCase() : "";
      if (!/^[0-9a-f]{64}$/.test(preimage)) throw new Error("the wallet returned no preimage");
      walletBusy = false;
      await unlock(preimage, true);
    } catch (error) {
      walletBusy = false;
      if (unlocking || timeUp) return;
      payButton.disabled = false;
      say(`Your browser wallet did not pay: ${(error && error.message) || error}`, "error");
    }
  };

  // Asks the server whether the invoice was paid from another wallet, backing off from 1 s to
  // 10 s between questions, until it is paid, cancelled, or expired for good.
  const poll = async () => {
    pollTimer = null;
    if (!polling) return;
    try {
      const response = await fetch(location.href, {
        headers: { "X402-Invoice-State": invoice },
        cache: "no-store",
        credentials: "same-origin",
        redirect: "manual",
      });
      if (response.ok) {
        const answer = await response.json();
        if (answer.state === "paid" && typeof answer.preimage === "string") {
          await unlock(answer.preimage, false);
          return;
        }
        if (answer.state === "expired") {
          expire();
          stopPolling();
          return;
        }
        if (answer.state === "cancelled") {
          stopPolling();
          timeUp = true;
          payButton.disabled = true;
          say("This invoice was cancelled: reload for a new invoice.", "error");
          reload.hidden = false;
          return;
        }
      } else if (response.status === 404 || response.status === 501) {
        // The server cannot see payments made elsewhere: only a browser wallet unlocks.
        stopPolling();
        if (!timeUp && !walletBusy && !unlocking) {
          say("Pay with a browser wallet: this page cannot see payments made from other wallets.", "");
        }
        return;
      }
    } catch (_) {
      // A network error: ask again later.
    }
    pollDelay = Math.min(pollDelay * 1.5, POLL_MAX_MS);
    pollSoon(pollDelay);
  };

  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(invoice);
      $("copy").textContent = "Copied";
    } catch (_) {
      $("invoice").select();
    }
  });
  payButton.addEventListener("click", payWithBrowserWallet);
  reload.addEventListener("click", () => location.reload());

  for (const id of ["copy", "pay-webln"]) $(id).hidden = false;
  say("Waiting for the payment…", "busy");
  tick();
  pollSoon(POLL_FIRST_MS);
})();
