// `exact` scheme on Bitcoin Lightning (`lnbtc`) for the official x402 TypeScript
// client (@x402/core + @x402/fetch 2.27.0).
//
// Spec: scheme_exact_lnbtc.md ("Client Payment Construction", "PaymentPayload",
// "Request Binding" -> http:1). Only Node's standard library is used: JCS (for
// the string/array/object binding object), bech32/BOLT11 decoding and the
// secp256k1 signature check (node:crypto) are implemented here.
//
// The official client does not hand the HTTP request to a scheme client
// (SchemeNetworkClient.createPaymentPayload(x402Version, requirements, context)
// sees only the requirements). The request is needed to recompute the request
// binding, so `createLnbtcFetch` passes a capturing fetch to
// wrapFetchWithPayment and keeps a per-call context in AsyncLocalStorage; the
// scheme's own onBeforePaymentCreation hook records PaymentRequired (for the
// resource.url check). See README.md.

import { AsyncLocalStorage } from "node:async_hooks";
import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";

// ---------------------------------------------------------------------------
// Errors

/** Error carrying one of the spec's stable client reasons. */
export class LnbtcClientError extends Error {
  constructor(reason, detail) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = "LnbtcClientError";
    this.reason = reason;
  }
}

const fail = (reason, detail) => {
  throw new LnbtcClientError(reason, detail);
};

// ---------------------------------------------------------------------------
// Networks

/** Concrete networks and their BOLT11 currency prefixes. */
export const LNBTC_NETWORKS = Object.freeze({
  "lnbtc:000000000019d6689c085ae165831e93": "bc", // mainnet (spec)
  "lnbtc:000000000933ea01ad0ee984209779ba": "tb", // testnet (spec)
  // Project extension: Bitcoin regtest (genesis 0f9188f1...), BOLT11 `bcrt`.
  "lnbtc:0f9188f13cb7b2c71f2a335e3a4fc328": "bcrt",
});

// ---------------------------------------------------------------------------
// Small helpers

const HEX64 = /^[0-9a-f]{64}$/;
const PAYTO = /^0[23][0-9a-f]{64}$/;
const POSITIVE_INT = /^[1-9][0-9]*$/;

export const sha256 = (bytes) => createHash("sha256").update(bytes).digest();
export const sha256Hex = (bytes) => createHash("sha256").update(bytes).digest("hex");

const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// ---------------------------------------------------------------------------
// JCS (RFC 8785) for the values the binding objects hold: strings, arrays,
// objects (plus booleans/null and safe integers for completeness).

export function jcs(value) {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") {
    if (!value.isWellFormed()) fail("invalid_exact_lnbtc_request_binding", "string is not valid Unicode");
    // ECMAScript JSON.stringify escaping equals JCS escaping for well-formed strings.
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) fail("invalid_exact_lnbtc_request_binding", "only safe integers are supported");
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  if (isPlainObject(value)) {
    // Default sort compares UTF-16 code units, which is what JCS requires.
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${jcs(k)}:${jcs(value[k])}`).join(",")}}`;
  }
  fail("invalid_exact_lnbtc_request_binding", `unsupported JSON value of type ${typeof value}`);
}

// ---------------------------------------------------------------------------
// http:1 request binding

export const HTTP_DOMAIN = "x402:exact:lnbtc:bolt11:http:1";
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LOWER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const ABSENT_HASH = sha256Hex(Buffer.from([0x00]));

// RFC 3986 pieces for an absolute http(s) URL without userinfo or fragment.
const UNRESERVED_SUB = "A-Za-z0-9\\-._~!$&'()*+,;=";
const PCT = "%[0-9A-Fa-f]{2}";
const PCHAR = `(?:[${UNRESERVED_SUB}:@]|${PCT})`;
const URL_RE = new RegExp(
  `^([Hh][Tt][Tt][Pp][Ss]?)://` +
    `(\\[[0-9A-Fa-f:.]+\\]|(?:[${UNRESERVED_SUB}]|${PCT})+)` + // host (no '@', no ':')
    `(?::([0-9]*))?` + // port
    `((?:/${PCHAR}*)*)` + // path-abempty
    `(\\?(?:${PCHAR}|[/?])*)?$`, // query
);

/** Validates an http:1 URL without normalizing it. */
export function checkHttpUrl(url) {
  if (typeof url !== "string" || !/^[\x21-\x7e]*$/.test(url)) {
    fail("invalid_exact_lnbtc_request_binding", "URL must be printable ASCII");
  }
  if (url.includes("#")) fail("invalid_exact_lnbtc_request_binding", "URL must not carry a fragment");
  const m = URL_RE.exec(url);
  if (!m) fail("invalid_exact_lnbtc_request_binding", `not an absolute http(s) URL without user information: ${url}`);
  if (m[3] !== undefined && m[3] !== "" && Number(m[3]) > 65535) {
    fail("invalid_exact_lnbtc_request_binding", "URL port out of range");
  }
  return url;
}

/** Validates extra.requestBindingParams for http:1; returns the header list. */
export function checkHttpBindingParams(params) {
  if (!isPlainObject(params)) fail("invalid_exact_lnbtc_request_binding", "requestBindingParams must be an object");
  const keys = Object.keys(params);
  if (keys.length !== 1 || keys[0] !== "headers") {
    fail("invalid_exact_lnbtc_request_binding", "http:1 requestBindingParams must contain exactly `headers`");
  }
  const names = params.headers;
  if (!Array.isArray(names)) fail("invalid_exact_lnbtc_request_binding", "`headers` must be an array");
  names.forEach((name, i) => {
    if (typeof name !== "string" || !LOWER_TOKEN.test(name)) {
      fail("invalid_exact_lnbtc_request_binding", `bound header name ${JSON.stringify(name)} is not a lowercase token`);
    }
    if (name === "payment-signature") fail("invalid_exact_lnbtc_request_binding", "payment-signature must not be bound");
    if (i > 0 && !(names[i - 1] < name)) {
      fail("invalid_exact_lnbtc_request_binding", "bound header names must be unique and in ascending order");
    }
  });
  return names;
}

/**
 * RFC 9421 section 2.1 value of a header: field lines trimmed of OWS and joined
 * with ", ". `headers` is a fetch `Headers` (which already stores trimmed values
 * and joins repeated lines with ", ") or an array of [name, value] lines.
 * Returns undefined when absent.
 */
function fieldValue(headers, name) {
  let value;
  if (Array.isArray(headers)) {
    const lines = headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v.replace(/^[ \t]+|[ \t]+$/g, ""));
    value = lines.length ? lines.join(", ") : undefined;
  } else {
    const v = headers.get(name);
    value = v === null ? undefined : v;
  }
  if (value !== undefined && !/^[\x20-\x7e\t]*$/.test(value)) {
    fail("invalid_exact_lnbtc_request_binding", `unsupported value in bound header ${name}`);
  }
  return value;
}

/**
 * Builds the http:1 binding object and its hash.
 * @param {{method: string, url: string, body?: Uint8Array|string, headers?: Headers|Array<[string,string]>, boundHeaders: string[]}} req
 * @returns {{binding: object, canonical: string, requestHash: string}}
 */
export function httpRequestBinding({ method, url, body, headers = [], boundHeaders }) {
  if (typeof method !== "string" || !TOKEN.test(method)) fail("invalid_exact_lnbtc_request_binding", "method is not an HTTP token");
  checkHttpUrl(url);
  const names = checkHttpBindingParams({ headers: boundHeaders });
  const bodyBytes = body === undefined || body === null ? Buffer.alloc(0) : typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const binding = {
    domain: HTTP_DOMAIN,
    method,
    url,
    bodyHash: sha256Hex(bodyBytes),
    headers: names.map((name) => {
      const value = fieldValue(headers, name);
      return {
        name,
        valueHash: value === undefined ? ABSENT_HASH : sha256Hex(Buffer.concat([Buffer.from([0x01]), Buffer.from(value, "ascii")])),
      };
    }),
  };
  const canonical = jcs(binding);
  return { binding, canonical, requestHash: sha256Hex(Buffer.from(canonical, "utf8")) };
}

// ---------------------------------------------------------------------------
// BOLT11 decoding (strict enough for the client checks) and signature check

const BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values) {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i];
  }
  return chk >>> 0;
}

function wordsToBytes(words, { pad }) {
  let acc = 0;
  let bits = 0;
  const out = [];
  for (const w of words) {
    acc = (acc << 5) | w;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out.push((acc >>> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad && bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return Buffer.from(out);
}

const wordsToInt = (words) => words.reduce((n, w) => n * 32 + w, 0);

const MSAT_PER_UNIT = { "": 100_000_000_000n, m: 100_000_000n, u: 100_000n, n: 100n };

/**
 * Decodes a BOLT11 invoice. Throws invalid_exact_lnbtc_invoice_decode_failed on
 * malformed input. Does not check the signature (see verifyInvoiceSignature).
 */
export function decodeBolt11(invoice) {
  const bad = (d) => fail("invalid_exact_lnbtc_invoice_decode_failed", d);
  if (typeof invoice !== "string" || invoice.length === 0) bad("empty invoice");
  if (invoice !== invoice.toLowerCase() && invoice !== invoice.toUpperCase()) bad("mixed case");
  const s = invoice.toLowerCase();
  const sep = s.lastIndexOf("1");
  if (sep < 1 || s.length - sep - 1 < 6) bad("no bech32 separator");
  const hrp = s.slice(0, sep);
  if (!/^[\x21-\x7e]+$/.test(hrp)) bad("bad human-readable part");
  const words = [];
  for (const c of s.slice(sep + 1)) {
    const v = BECH32.indexOf(c);
    if (v < 0) bad("bad bech32 character");
    words.push(v);
  }
  const hrpExpand = [...hrp].map((c) => c.charCodeAt(0) >> 5).concat([0], [...hrp].map((c) => c.charCodeAt(0) & 31));
  if (polymod(hrpExpand.concat(words)) !== 1) bad("bech32 checksum mismatch");
  const data = words.slice(0, -6);

  const hm = /^ln(bcrt|bc|tbs|tb|sb)(?:([1-9][0-9]*)([munp]?))?$/.exec(hrp);
  if (!hm) bad(`unsupported human-readable part ${hrp}`);
  const currency = hm[1];
  let amountMsat;
  if (hm[2] !== undefined) {
    const n = BigInt(hm[2]);
    if (hm[3] === "p") {
      if (n % 10n !== 0n) bad("sub-millisatoshi amount");
      amountMsat = n / 10n;
    } else {
      amountMsat = n * MSAT_PER_UNIT[hm[3]];
    }
  }

  if (data.length < 7 + 104) bad("too short");
  const sigWords = data.slice(-104);
  const body = data.slice(0, -104);
  const timestamp = wordsToInt(body.slice(0, 7));
  const fields = [];
  let i = 7;
  while (i < body.length) {
    if (i + 3 > body.length) bad("truncated tagged field");
    const type = body[i];
    const len = body[i + 1] * 32 + body[i + 2];
    if (i + 3 + len > body.length) bad("truncated tagged field");
    fields.push({ type, words: body.slice(i + 3, i + 3 + len) });
    i += 3 + len;
  }
  const T = { p: 1, s: 16, d: 13, h: 23, n: 19, x: 6 };
  const of = (t, len) => fields.filter((f) => f.type === t && (len === undefined || f.words.length === len));
  const p = of(T.p, 52);
  if (p.length !== 1) bad("invoice must have exactly one payment hash");
  const n = of(T.n, 53);
  if (n.length > 1) bad("more than one payee field");
  const x = of(T.x);
  if (x.length > 1) bad("more than one expiry field");
  const sigBytes = wordsToBytes(sigWords, { pad: false });
  const recoveryId = sigBytes[64];
  if (recoveryId > 3) bad("bad recovery id");

  return {
    invoice,
    hrp,
    currency,
    amountMsat, // BigInt or undefined
    timestamp,
    expiry: x.length ? wordsToInt(x[0].words) : 3600,
    paymentHash: wordsToBytes(p[0].words, { pad: false }).subarray(0, 32).toString("hex"),
    descriptionHashes: of(T.h).map((f) => (f.words.length === 52 ? wordsToBytes(f.words, { pad: false }).subarray(0, 32).toString("hex") : null)),
    descriptionCount: of(T.d).length,
    payee: n.length ? wordsToBytes(n[0].words, { pad: false }).subarray(0, 33).toString("hex") : undefined,
    signature: sigBytes.subarray(0, 64),
    recoveryId,
    signedBytes: Buffer.concat([Buffer.from(hrp, "utf8"), wordsToBytes(body, { pad: true })]),
  };
}

const SPKI_SECP256K1_PREFIX = Buffer.from("3036301006072a8648ce3d020106052b8104000a032200", "hex");

/** Parses a compressed secp256k1 key (66 lowercase hex) into a KeyObject, or throws. */
export function payToKey(payTo) {
  if (typeof payTo !== "string" || !PAYTO.test(payTo)) return null;
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_SECP256K1_PREFIX, Buffer.from(payTo, "hex")]), format: "der", type: "spki" });
  } catch {
    return null; // not a point on the curve
  }
}

/** True when the invoice's signature verifies under `key` (the payTo key). */
export function verifyInvoiceSignature(decoded, key) {
  try {
    return cryptoVerify("sha256", decoded.signedBytes, { key, dsaEncoding: "ieee-p1363" }, decoded.signature);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Client checks ("Client Payment Construction")

/**
 * Checks one payment requirement against the intended request before paying.
 *
 * @param {object} args
 * @param {object} args.requirements  PaymentRequirements as received
 * @param {string|undefined} args.resourceUrl  PaymentRequired.resource.url
 * @param {{profile: string, method?: string, url?: string, body?: Uint8Array, headers?: Headers|Array}} args.request
 *        the intended request (profile "http:1" for HTTP requests)
 * @param {number} [args.now]  validation time, Unix seconds
 * @param {number} [args.skew] clock-skew allowance, seconds (default 60)
 * @param {object} [args.networks] network -> BOLT11 currency map
 * @returns decoded invoice plus computed binding
 */
export function validateChallenge({ requirements: r, resourceUrl, request, now = Math.floor(Date.now() / 1000), skew = 60, networks = LNBTC_NETWORKS }) {
  if (!isPlainObject(r)) fail("unsupported_scheme", "requirements must be an object");
  // 1. core fields
  if (r.scheme !== "exact") fail("unsupported_scheme", `scheme ${JSON.stringify(r.scheme)}`);
  if (!Object.prototype.hasOwnProperty.call(networks, r.network)) fail("unsupported_network", `network ${JSON.stringify(r.network)}`);
  if (r.asset !== "BTC") fail("invalid_exact_lnbtc_asset", `asset ${JSON.stringify(r.asset)}`);
  if (typeof r.amount !== "string" || !POSITIVE_INT.test(r.amount)) fail("invalid_exact_lnbtc_amount", `amount ${JSON.stringify(r.amount)}`);
  if (!Number.isSafeInteger(r.maxTimeoutSeconds) || r.maxTimeoutSeconds <= 0) {
    fail("invalid_exact_lnbtc_max_timeout", `maxTimeoutSeconds ${JSON.stringify(r.maxTimeoutSeconds)}`);
  }
  const key = payToKey(r.payTo);
  if (!key) fail("invalid_exact_lnbtc_pay_to_malformed", `payTo ${JSON.stringify(r.payTo)}`);
  // 2. flow, transfer method, invoice
  const extra = isPlainObject(r.extra) ? r.extra : {};
  if (extra.paymentFlow !== "upfront") fail("invalid_exact_lnbtc_payment_flow", `paymentFlow ${JSON.stringify(extra.paymentFlow)}`);
  if (extra.assetTransferMethod !== undefined && extra.assetTransferMethod !== "bolt11") {
    fail("invalid_exact_lnbtc_asset_transfer_method", `assetTransferMethod ${JSON.stringify(extra.assetTransferMethod)}`);
  }
  if (typeof extra.invoice !== "string" || extra.invoice.length === 0) fail("invalid_exact_lnbtc_invoice_missing");
  // 3. strict decode + signature
  const inv = decodeBolt11(extra.invoice);
  if (!verifyInvoiceSignature(inv, key)) fail("invalid_exact_lnbtc_invoice_payee_mismatch", "invoice signature does not verify under payTo");
  // 4. request binding
  if (typeof extra.requestHash !== "string" || !HEX64.test(extra.requestHash)) {
    fail("invalid_exact_lnbtc_request_binding", "requestHash must be 64 lowercase hex characters");
  }
  const profile = extra.requestBindingProfile;
  if (profile !== "http:1" && profile !== "mcp:1") fail("invalid_exact_lnbtc_request_binding", `unsupported profile ${JSON.stringify(profile)}`);
  if (!request || profile !== request.profile) {
    fail("invalid_exact_lnbtc_request_mismatch", `profile ${profile} does not match the intended ${request?.profile} request`);
  }
  if (profile !== "http:1") fail("invalid_exact_lnbtc_request_binding", "this client binds only http:1 requests");
  const boundHeaders = checkHttpBindingParams(extra.requestBindingParams);
  const computed = httpRequestBinding({ ...request, boundHeaders });
  if (resourceUrl !== request.url) {
    fail("invalid_exact_lnbtc_request_mismatch", `resource.url ${JSON.stringify(resourceUrl)} is not the request URL ${JSON.stringify(request.url)}`);
  }
  if (extra.requestHash !== computed.requestHash) {
    fail("invalid_exact_lnbtc_request_mismatch", `requestHash ${extra.requestHash} != computed ${computed.requestHash} (${computed.canonical})`);
  }
  if (inv.descriptionCount !== 0 || inv.descriptionHashes.length !== 1 || inv.descriptionHashes[0] === null) {
    fail("invalid_exact_lnbtc_invoice_description", "invoice must carry exactly one description hash and no inline description");
  }
  if (inv.descriptionHashes[0] !== computed.requestHash) {
    fail("invalid_exact_lnbtc_invoice_request_mismatch", "invoice description hash does not commit to this request");
  }
  // 5. payee
  if (inv.payee !== undefined && inv.payee !== r.payTo) fail("invalid_exact_lnbtc_invoice_payee_mismatch", "invoice n field differs from payTo");
  // 6. currency
  if (inv.currency !== networks[r.network]) {
    fail("invalid_exact_lnbtc_invoice_currency_mismatch", `invoice currency ${inv.currency} on ${r.network}`);
  }
  // 7. amount
  if (inv.amountMsat === undefined || inv.amountMsat !== BigInt(r.amount)) {
    fail("invalid_exact_lnbtc_invoice_amount_mismatch", `invoice amount ${inv.amountMsat} msat, required ${r.amount}`);
  }
  // 8. expiry and creation time
  if (inv.expiry !== r.maxTimeoutSeconds) {
    fail("invalid_exact_lnbtc_invoice_expiry_mismatch", `invoice expiry ${inv.expiry} != maxTimeoutSeconds ${r.maxTimeoutSeconds}`);
  }
  if (inv.timestamp > now + skew) fail("invalid_exact_lnbtc_invoice_created_in_future", `created ${inv.timestamp}, now ${now}`);
  // 9. unexpired (an invoice is treated as expired from created + expiry on)
  if (now >= inv.timestamp + inv.expiry) fail("invalid_exact_lnbtc_invoice_expired", `expired at ${inv.timestamp + inv.expiry}, now ${now}`);
  return { invoice: inv, binding: computed };
}

/**
 * Checks a payer adapter result: {status, invoice, paymentHash, amountMsat, preimage}.
 * Returns the preimage.
 */
export function checkPayerResult(result, { invoice, paymentHash, amountMsat }) {
  if (!isPlainObject(result)) fail("exact_lnbtc_payment_not_paid", "no payer result");
  if (result.status === "in_flight") fail("exact_lnbtc_payment_in_flight");
  if (result.status !== "paid") fail("exact_lnbtc_payment_not_paid", `status ${JSON.stringify(result.status)}`);
  if (result.invoice !== invoice) fail("invalid_exact_lnbtc_payer_invoice_mismatch");
  if (result.paymentHash !== paymentHash) fail("invalid_exact_lnbtc_payer_payment_hash_mismatch");
  if (String(result.amountMsat) !== String(amountMsat)) {
    fail("invalid_exact_lnbtc_payer_amount_mismatch", `paid ${result.amountMsat} msat, invoice ${amountMsat}`);
  }
  const pre = result.preimage;
  if (pre === undefined || pre === null || pre === "") fail("invalid_exact_lnbtc_payer_preimage_required");
  if (typeof pre !== "string" || !HEX64.test(pre)) fail("invalid_exact_lnbtc_payer_preimage_malformed");
  if (sha256Hex(Buffer.from(pre, "hex")) !== paymentHash) fail("invalid_exact_lnbtc_payer_preimage_hash_mismatch");
  return pre;
}

// ---------------------------------------------------------------------------
// Payer adapter: the project's pay endpoint

/**
 * Payer adapter for `POST payUrl {"invoice"}` -> 200 {"preimage","paymentHash","amountMsat"}.
 * @returns {(invoice: string) => Promise<{status, invoice, paymentHash, amountMsat, preimage}>}
 */
export function httpPayer(payUrl, { fetch: fetchImpl = globalThis.fetch, timeoutMs = 60_000 } = {}) {
  if (!payUrl) throw new Error("httpPayer: payUrl is required");
  return async (invoice) => {
    const res = await fetchImpl(payUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ invoice }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.status !== 200) {
      fail("exact_lnbtc_payment_not_paid", `pay endpoint answered ${res.status}: ${json?.error ?? text.slice(0, 200)}`);
    }
    if (!isPlainObject(json)) fail("exact_lnbtc_payment_not_paid", "pay endpoint answered 200 without a JSON object");
    return {
      status: json.status ?? "paid",
      invoice: json.invoice ?? invoice,
      paymentHash: json.paymentHash,
      amountMsat: json.amountMsat,
      preimage: json.preimage,
    };
  };
}

// ---------------------------------------------------------------------------
// Scheme client for the official x402Client

const requestContext = new AsyncLocalStorage();

/**
 * SchemeNetworkClient for scheme `exact` on `lnbtc:*` (x402 v2).
 * Register it with `client.register("lnbtc:*", scheme)`; it only pays inside a
 * call made through `createLnbtcFetch` (which supplies the request).
 */
export class ExactLnbtcScheme {
  /**
   * @param {object} opts
   * @param {(invoice: string) => Promise<object>} [opts.payer] payer adapter
   * @param {string} [opts.payUrl] shortcut for payer = httpPayer(payUrl)
   * @param {string|bigint} [opts.maxAmountMsat] refuse challenges above this
   * @param {number} [opts.skewSeconds] clock-skew allowance (default 60)
   * @param {object} [opts.networks] network -> currency map (default LNBTC_NETWORKS)
   */
  constructor({ payer, payUrl, maxAmountMsat, skewSeconds = 60, networks = LNBTC_NETWORKS } = {}) {
    this.scheme = "exact";
    this.payer = payer ?? (payUrl ? httpPayer(payUrl) : undefined);
    if (!this.payer) throw new Error("ExactLnbtcScheme: payer or payUrl is required");
    this.maxAmountMsat = maxAmountMsat === undefined ? undefined : BigInt(maxAmountMsat);
    this.skewSeconds = skewSeconds;
    this.networks = networks;
    // Scheme hook: record the PaymentRequired (resource.url) for this call.
    this.schemeHooks = {
      onBeforePaymentCreation: async ({ paymentRequired }) => {
        const ctx = requestContext.getStore();
        if (ctx) ctx.paymentRequired = paymentRequired;
      },
    };
  }

  /**
   * SchemeNetworkClient.createPaymentPayload. Validates, pays, checks the payer
   * result and returns the scheme part of the payload; x402Client adds
   * `accepted` (the requirements as received), `resource` and `extensions`.
   */
  async createPaymentPayload(x402Version, requirements, context = {}) {
    if (x402Version !== 2) fail("unsupported_scheme", `x402Version ${x402Version}: lnbtc is defined for v2 only`);
    const ctx = requestContext.getStore();
    if (!ctx?.request) {
      throw new Error("ExactLnbtcScheme: no request context; make the request through createLnbtcFetch() so the request binding can be checked");
    }
    if (ctx.paid) throw new Error("ExactLnbtcScheme: refusing to pay a second invoice for the same request");
    if (ctx.responseUrl && ctx.responseUrl !== ctx.request.url) {
      fail("invalid_exact_lnbtc_request_mismatch", `request was redirected to ${ctx.responseUrl}; redirected requests cannot be bound`);
    }
    const amount = BigInt(/^[0-9]+$/.test(requirements?.amount ?? "") ? requirements.amount : "0");
    for (const cap of [context.maxAmountPerPayment, this.maxAmountMsat]) {
      if (cap !== undefined && amount > BigInt(cap)) fail("invalid_exact_lnbtc_amount", `amount ${amount} msat is above the cap ${cap}`);
    }
    const { invoice } = validateChallenge({
      requirements,
      resourceUrl: ctx.paymentRequired?.resource?.url,
      request: ctx.request,
      now: Math.floor(Date.now() / 1000),
      skew: this.skewSeconds,
      networks: this.networks,
    });
    ctx.paid = true;
    const result = await this.payer(invoice.invoice);
    const preimage = checkPayerResult(result, {
      invoice: invoice.invoice,
      paymentHash: invoice.paymentHash,
      amountMsat: invoice.amountMsat.toString(),
    });
    return { x402Version: 2, payload: { preimage } };
  }
}

// Headers that Node's fetch (undici) adds on the wire when the request lacks
// them: a bound header among these must be set explicitly, or the client
// would hash "absent" while the server sees undici's default.
const IMPLICIT_WIRE_HEADERS = new Set(["accept", "accept-encoding", "accept-language", "sec-fetch-mode", "user-agent", "host", "connection", "content-length"]);

/**
 * fetch-compatible function that captures the original request (method, URL
 * without fragment, header snapshot, body bytes) into the per-call context.
 */
function capturingFetch(baseFetch) {
  return async (request) => {
    const ctx = requestContext.getStore();
    if (ctx && !ctx.request && !request.headers.has("payment-signature")) {
      const body = new Uint8Array(await request.clone().arrayBuffer());
      const url = request.url.split("#")[0];
      const headers = new Headers(request.headers);
      const get = headers.get.bind(headers);
      ctx.request = {
        profile: "http:1",
        method: request.method,
        url,
        body,
        headers: {
          get(name) {
            const v = get(name);
            if (v === null && IMPLICIT_WIRE_HEADERS.has(name)) {
              fail("invalid_exact_lnbtc_request_binding", `bound header '${name}' is not set on the request and fetch would send a default value; set it explicitly`);
            }
            return v;
          },
        },
      };
      const response = await baseFetch(request);
      ctx.responseUrl = response.url ? response.url.split("#")[0] : undefined;
      return response;
    }
    return baseFetch(request);
  };
}

/**
 * Builds the official client with our scheme and returns a paying fetch.
 *
 * @param {object} opts
 * @param {string} [opts.payUrl] pay endpoint (or pass opts.payer)
 * @param {Function} [opts.payer] payer adapter
 * @param {string|bigint} opts.maxAmountMsat per-payment cap in msat (required; x402Client spend control)
 * @param {typeof fetch} [opts.fetch] underlying fetch (default globalThis.fetch)
 * @param {x402Client} [opts.client] existing x402Client to register into
 * @returns {{fetch: (input, init?) => Promise<Response>, client: x402Client, scheme: ExactLnbtcScheme}}
 */
export function createLnbtcFetch({ payUrl, payer, maxAmountMsat, fetch: baseFetch = globalThis.fetch, client, skewSeconds, networks } = {}) {
  if (maxAmountMsat === undefined) throw new Error("createLnbtcFetch: maxAmountMsat is required");
  const scheme = new ExactLnbtcScheme({ payUrl, payer, maxAmountMsat, skewSeconds, networks });
  const x402 = client ?? new x402Client();
  x402.register("lnbtc:*", scheme);
  // x402Client 2.27.0 spend controls drop every asset its scheme cannot map to
  // a USD default asset, so BTC must be opted in (with an atomic msat cap).
  // Merge with controls already set on a caller-supplied client.
  const prev = x402.spendControls;
  if (prev !== false) {
    const entry = { network: "lnbtc:*", asset: "BTC", maxAmountPerPayment: BigInt(maxAmountMsat).toString() };
    const allowed = prev?.allowedAssets === true ? true : [...(prev?.allowedAssets ?? []), entry];
    x402.setSpendControls({ ...prev, allowedAssets: allowed });
  }
  const wrapped = wrapFetchWithPayment(capturingFetch(baseFetch), x402);
  const payingFetch = (input, init) => requestContext.run({}, () => wrapped(input, init));
  return { fetch: payingFetch, client: x402, scheme };
}
