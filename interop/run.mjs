// Pays the x402-lightning demo through the official x402 client
// (@x402/fetch wrapFetchWithPayment + our exact/lnbtc scheme client).
//
// env:
//   X402_DEMO_URL         demo origin, e.g. http://127.0.0.1:3000 (required)
//   X402_PAY_URL          pay endpoint: POST {"invoice"} -> {"preimage","paymentHash","amountMsat"} (required)
//   X402_MAX_AMOUNT_MSAT  per-payment cap in msat (default 1000000 = 1000 sat)
//   X402_TIMEOUT_MS       per-request timeout (default 60000)
//
// Exit status 0 only if (a) GET /weather and (b) POST /ai/infer both return 200
// with a PAYMENT-RESPONSE whose decoded JSON has success: true, and (c) replaying
// the PAYMENT-SIGNATURE of (a) with plain fetch is not answered 200.
import { decodePaymentResponseHeader } from "@x402/fetch";

import { createLnbtcFetch } from "./lnbtc-scheme.mjs";

const demo = process.env.X402_DEMO_URL?.replace(/\/+$/, "");
const payUrl = process.env.X402_PAY_URL;
const maxAmountMsat = process.env.X402_MAX_AMOUNT_MSAT ?? "1000000";
const timeoutMs = Number(process.env.X402_TIMEOUT_MS ?? 60_000);

class Failure extends Error {}
const die = (msg) => {
  throw new Failure(msg);
};

// Underlying fetch: records the PAYMENT-SIGNATURE header each paid request carries.
const sentSignatures = [];
const recordingFetch = (request) => {
  const sig = request.headers.get("payment-signature");
  if (sig) sentSignatures.push({ method: request.method, url: request.url, sig });
  return fetch(request);
};

let payFetch;

async function paid(method, path, init = {}) {
  const url = `${demo}${path}`;
  const before = sentSignatures.length;
  let res;
  try {
    res = await payFetch(url, { method, ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    die(`${method} ${path}: official client failed: ${e?.message ?? e}${e?.cause ? ` (cause: ${e.cause.message ?? e.cause})` : ""}`);
  }
  const body = await res.text();
  const header = res.headers.get("payment-response");
  let settlement;
  if (header) {
    try {
      settlement = decodePaymentResponseHeader(header);
    } catch (e) {
      die(`${method} ${path}: undecodable PAYMENT-RESPONSE header ${JSON.stringify(header)}: ${e.message}`);
    }
  }
  const sent = sentSignatures.slice(before);
  if (res.status !== 200 || settlement?.success !== true) {
    const required = res.headers.get("payment-required");
    let why = "";
    if (required) {
      try {
        why = ` payment-required.error=${JSON.stringify(JSON.parse(Buffer.from(required, "base64").toString("utf8")).error)}`;
      } catch {
        why = " (undecodable PAYMENT-REQUIRED)";
      }
    }
    die(
      `${method} ${path}: expected 200 with PAYMENT-RESPONSE success=true, got ${res.status}` +
        ` payment-response=${settlement ? JSON.stringify(settlement) : "<none>"}${why}` +
        ` paid-retries-sent=${sent.length} body=${JSON.stringify(body.slice(0, 500))}`,
    );
  }
  if (sent.length !== 1) die(`${method} ${path}: expected exactly one paid retry, saw ${sent.length}`);
  console.log(`OK ${method} ${path} ${res.status} payment-response=${JSON.stringify(settlement)}`);
  console.log(body);
  return { res, body, settlement, signature: sent[0].sig };
}

async function main() {
  if (!demo) die("X402_DEMO_URL is not set (e.g. http://127.0.0.1:3000)");
  if (!payUrl) die("X402_PAY_URL is not set");
  payFetch = createLnbtcFetch({ payUrl, maxAmountMsat, fetch: recordingFetch }).fetch;
  // (a)
  const a = await paid("GET", "/weather");
  // (b)
  await paid("POST", "/ai/infer", {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "hello lightning world" }),
  });
  // (c) replay (a)'s exact PAYMENT-SIGNATURE with plain fetch
  const replay = await fetch(`${demo}/weather`, {
    headers: { "PAYMENT-SIGNATURE": a.signature },
    signal: AbortSignal.timeout(timeoutMs),
  });
  await replay.arrayBuffer();
  if (replay.status === 200) die("replay of the GET /weather PAYMENT-SIGNATURE was answered 200: the proof was accepted twice");
  console.log(`OK replay refused ${replay.status}`);
}

try {
  await main();
} catch (e) {
  console.error(`FAIL ${e instanceof Failure ? e.message : e?.stack ?? e}`);
  process.exit(1);
}
