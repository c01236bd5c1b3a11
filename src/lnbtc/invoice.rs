//! Strict BOLT11 decoding for the scheme (upstream `scheme_exact_lnbtc.md`, "PaymentRequirements"
//! and "Facilitator Validation" step 5). Decoding works on the raw signed invoice
//! (`SignedRawBolt11Invoice`), not `Bolt11Invoice::from_str`, which refuses invoices without
//! feature bits such as the scheme's own example; the scheme's checks are applied here.
//!
//! "Strict" means, beyond what `lightning-invoice`'s raw parser checks (bech32 checksum, one
//! case, the field grammar):
//!
//! - the invoice must be the canonical encoding of what was parsed. The raw parser drops the
//!   padding bits of byte fields (`p`, `h`, `s`, `n`, `d`, …) and leading zeros of integers
//!   without looking at them, and computes the signed hash from its *re-encoding*, so an invoice
//!   with non-zero padding would otherwise verify under the original signature;
//! - an amount must be a whole number of msat and must not overflow;
//! - exactly one `p`, and at most one `s`, `n` and `x`;
//! - the signature must verify: against the `n` field when there is one, else against the key
//!   recovered from it (which also refuses a high-S signature).

use std::sync::LazyLock;

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, VerifyOnly};
use lightning_invoice::{Currency, RawTaggedField, SignedRawBolt11Invoice, TaggedField};

use super::binding::RequestHash;
use super::reason;
use crate::network::Network;

/// An invoice that decoded strictly and whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedInvoice {
    /// The BOLT11 currency.
    pub currency: Currency,
    /// The amount in msat; `None` when the invoice names none.
    pub amount_msat: Option<u64>,
    /// The payment hash.
    pub payment_hash: [u8; 32],
    /// The description hash when the invoice holds exactly one `h` field and no `d` field;
    /// `None` otherwise.
    pub description_hash: Option<[u8; 32]>,
    /// The signing key: the `n` field (checked against the signature) or the recovered key.
    pub payee: PublicKey,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Expiry in seconds (3600 when the invoice has no `x` field).
    pub expiry_secs: u64,
}

/// The terms an invoice must meet (requirements for one request).
#[derive(Clone, Copy, Debug)]
pub struct InvoiceTerms<'a> {
    /// The network (its BOLT11 currency).
    pub network: Network,
    /// The amount in msat.
    pub amount_msat: u64,
    /// The receiver node (`payTo`).
    pub pay_to: &'a PublicKey,
    /// `maxTimeoutSeconds`: the expiry must equal it.
    pub max_timeout_seconds: u64,
    /// The request hash the description hash must equal.
    pub request_hash: &'a RequestHash,
}

/// The BOLT11 default expiry, for an invoice without an `x` field.
const DEFAULT_EXPIRY_SECS: u64 = 3600;

/// One secp256k1 context for the process (building one per check costs more than the check).
static VERIFIER: LazyLock<Secp256k1<VerifyOnly>> = LazyLock::new(Secp256k1::verification_only);

/// Decodes `text` strictly; `Err` carries `invalid_exact_lnbtc_invoice_decode_failed`'s detail.
pub fn decode(text: &str) -> Result<DecodedInvoice, String> {
    // bech32 checksum, one case (mixed case refused), HRP and field grammar.
    let signed: SignedRawBolt11Invoice = text.parse().map_err(|err| format!("{err}"))?;

    // The parser ignores padding bits and non-minimal integers and hashes its re-encoding for the
    // signature: only an invoice that is its own canonical encoding is taken. bech32 allows an
    // all-uppercase string, which encodes the same invoice.
    if !signed.to_string().eq_ignore_ascii_case(text) {
        return Err(
            "not the canonical encoding (non-zero padding bits or a non-minimal number)".into(),
        );
    }

    let raw = signed.raw_invoice();
    let amount_msat = match raw.hrp.raw_amount {
        None => None,
        Some(_) => {
            let pico = raw
                .amount_pico_btc()
                .ok_or("the amount overflows 64 bits of pico-bitcoin")?;
            if pico % 10 != 0 {
                return Err(format!(
                    "amount of {pico} pico-BTC is not a whole number of msat"
                ));
            }
            Some(pico / 10)
        }
    };

    let mut payment_hashes = Vec::new();
    let mut description_hashes = Vec::new();
    let mut descriptions = 0usize;
    let mut payees = Vec::new();
    let mut expiries = Vec::new();
    let mut secrets = 0usize;
    for field in &raw.data.tagged_fields {
        // Fields of unknown type or of a length BOLT11 says to skip are `UnknownSemantics`.
        let RawTaggedField::KnownSemantics(field) = field else {
            continue;
        };
        match field {
            TaggedField::PaymentHash(hash) => payment_hashes.push(hash.0.to_byte_array()),
            TaggedField::DescriptionHash(hash) => description_hashes.push(hash.0.to_byte_array()),
            TaggedField::Description(_) => descriptions += 1,
            TaggedField::PayeePubKey(payee) => payees.push(payee.0),
            TaggedField::ExpiryTime(expiry) => expiries.push(expiry.as_seconds()),
            TaggedField::PaymentSecret(_) => secrets += 1,
            _ => {}
        }
    }
    let payment_hash = match payment_hashes.as_slice() {
        [hash] => *hash,
        [] => return Err("no payment hash (p field)".into()),
        _ => return Err("more than one payment hash (p field)".into()),
    };
    if payees.len() > 1 || expiries.len() > 1 || secrets > 1 {
        return Err("a field that may appear once (n, x or s) appears twice".into());
    }
    let description_hash = match (description_hashes.as_slice(), descriptions) {
        ([hash], 0) => Some(*hash),
        _ => None,
    };

    let message = Message::from_digest(*signed.signable_hash());
    let signature = &signed.signature().0;
    let payee = match payees.first() {
        // Verification also refuses a high-S signature.
        Some(payee) => {
            VERIFIER
                .verify_ecdsa(&message, &signature.to_standard(), payee)
                .map_err(|_| "the signature does not verify".to_owned())?;
            *payee
        }
        None => {
            // The recovered key verifies the signature by construction; recovery alone would
            // also take its high-S twin, which verification refuses: refuse it here too.
            let payee = VERIFIER
                .recover_ecdsa(&message, signature)
                .map_err(|err| format!("no key recovers from the signature: {err}"))?;
            let standard = signature.to_standard();
            let mut low_s = standard;
            low_s.normalize_s();
            if low_s != standard {
                return Err("the signature does not verify (high S)".to_owned());
            }
            payee
        }
    };

    Ok(DecodedInvoice {
        currency: raw.currency(),
        amount_msat,
        payment_hash,
        description_hash,
        payee,
        created_at: raw.data.timestamp.as_unix_timestamp(),
        expiry_secs: expiries.first().copied().unwrap_or(DEFAULT_EXPIRY_SECS),
    })
}

impl DecodedInvoice {
    /// `created_at + expiry_secs`: the end of the invoice.
    pub fn end(&self) -> u64 {
        self.created_at.saturating_add(self.expiry_secs)
    }

    /// The payment hash as 64 lowercase hex characters.
    pub fn payment_hash_hex(&self) -> String {
        encode_lower_hex(&self.payment_hash)
    }

    /// Whether SHA-256 of `preimage` is the payment hash.
    pub fn is_paid_by(&self, preimage: &[u8; 32]) -> bool {
        sha256::Hash::hash(preimage).to_byte_array() == self.payment_hash
    }

    /// Checks the terms in the scheme's order: description (exactly one hash, no inline text),
    /// request hash, payee, currency, amount, expiry, creation time no later than `now + skew`.
    /// `Err` is the reason.
    pub fn check_terms(
        &self,
        terms: &InvoiceTerms<'_>,
        now: u64,
        skew: u64,
    ) -> Result<(), &'static str> {
        let Some(description_hash) = self.description_hash else {
            return Err(reason::INVOICE_DESCRIPTION);
        };
        if description_hash != terms.request_hash.0 {
            return Err(reason::INVOICE_REQUEST_MISMATCH);
        }
        if self.payee != *terms.pay_to {
            return Err(reason::INVOICE_PAYEE_MISMATCH);
        }
        if self.currency != terms.network.currency() {
            return Err(reason::INVOICE_CURRENCY_MISMATCH);
        }
        if self.amount_msat != Some(terms.amount_msat) {
            return Err(reason::INVOICE_AMOUNT_MISMATCH);
        }
        if self.expiry_secs != terms.max_timeout_seconds {
            return Err(reason::INVOICE_EXPIRY_MISMATCH);
        }
        if self.created_at > now.saturating_add(skew) {
            return Err(reason::INVOICE_CREATED_IN_FUTURE);
        }
        Ok(())
    }
}

/// Parses `payTo`: a valid compressed secp256k1 public key as exactly 66 lowercase hex
/// characters; `None` for anything else.
pub fn parse_pay_to(text: &str) -> Option<PublicKey> {
    let bytes: [u8; 33] = decode_lower_hex(text).ok()?;
    if !matches!(bytes[0], 0x02 | 0x03) {
        return None;
    }
    PublicKey::from_slice(&bytes).ok()
}

/// Parses an `amount`: a positive decimal integer of msat, digits only, without a leading zero,
/// that fits in 64 bits; `None` for anything else.
pub fn parse_amount_msat(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits_only || text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

/// Why a hex string is not `N` bytes of lowercase hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HexError {
    /// A character other than `0-9a-f`.
    Malformed,
    /// Only lowercase hex, but not `2 * N` characters.
    Length,
}

/// The lowercase hex of `bytes` (a lookup per nibble: payment and request hashes are written
/// on every priced request's path).
pub(crate) fn encode_lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes exactly `N` bytes from `2 * N` lowercase hex characters (upper case is malformed).
pub(crate) fn decode_lower_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    fn nibble(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.iter().any(|&byte| nibble(byte).is_none()) {
        return Err(HexError::Malformed);
    }
    if bytes.len() != 2 * N {
        return Err(HexError::Length);
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (Some(high), Some(low)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(HexError::Malformed);
        };
        *slot = (high << 4) | low;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_INVOICE: &str = "lnbc250n1pj48ugqpp54y3u9s8ylemsv8l3ewyzzu0klhujvuvmkl6llchq23vy8rzjsf0qsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp5p4nz8am4uqj4q8a87z3sk4x6yk4dv2mvel34epw68qqkwy0xcqvqxqzfvcqpjr4rx6ls6j5rpwknuea64evlk7yfx56wmqcer5eerekdsn9tlv6v4ex9mlz5dtm9qapl3svwlqcf7837dmjkru9z9w4h2rvm0md52w2sqxrwu5f";

    #[test]
    fn the_spec_example_decodes_with_its_published_facts() {
        let invoice = decode(SPEC_INVOICE).expect("the spec's invoice decodes");
        assert_eq!(invoice.currency, Currency::Bitcoin);
        assert_eq!(invoice.amount_msat, Some(25_000));
        assert_eq!(
            invoice.payment_hash_hex(),
            "a923c2c0e4fe77061ff1cb882171f6fdf926719bb7f5ffe2e05458438c52825e"
        );
        assert_eq!(
            invoice.description_hash.map(|hash| encode_lower_hex(&hash)),
            Some("0d6623f775e025501fa7f0a30b54da25aad62b6ccfe35c85da38016711e6c018".to_owned())
        );
        assert_eq!(
            invoice.payee.to_string(),
            "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
        assert_eq!(
            (invoice.created_at, invoice.expiry_secs),
            (1_700_000_000, 300)
        );
        assert_eq!(invoice.end(), 1_700_000_300);
    }

    /// Upstream vector `payee-field-present`: the spec's terms with an `n` field.
    const PAYEE_FIELD_INVOICE: &str = "lnbc250n1pj48ugqpp5gf0dfe9rdvcw5gdepcsuwykxf85zznpfkl40dqyf6ypecmj48pxqsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp5p4nz8am4uqj4q8a87z3sk4x6yk4dv2mvel34epw68qqkwy0xcqvqnp4qfumuen7l8wthtz45p3ftn58pvrs9xlumvkuu2xet8egzkcklqtesxqzfvcqpjyf6xmg6wrfgmucwurqdd8s453jvezshh4apvk2krtxm034rz02f5ru0t23ye05nm8s2k3zepx6xmcmz0tlg3nve4mam3tuvu20jyckcqcy9t5e";
    /// Upstream vector `invoice-nonzero-padding`: the spec's invoice with padding bits set in `p`.
    const NONZERO_PADDING_INVOICE: &str = "lnbc250n1pj48ugqpp54y3u9s8ylemsv8l3ewyzzu0klhujvuvmkl6llchq23vy8rzjsf0psp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp5p4nz8am4uqj4q8a87z3sk4x6yk4dv2mvel34epw68qqkwy0xcqvqxqzfvcqpjr4rx6ls6j5rpwknuea64evlk7yfx56wmqcer5eerekdsn9tlv6v4ex9mlz5dtm9qapl3svwlqcf7837dmjkru9z9w4h2rvm0md52w2sqavc4a0";
    /// Upstream vector `invoice-duplicate-description-hash`: a second `h` field.
    const DUPLICATE_H_INVOICE: &str = "lnbc250n1pj48ugqpp54y3u9s8ylemsv8l3ewyzzu0klhujvuvmkl6llchq23vy8rzjsf0qsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp5p4nz8am4uqj4q8a87z3sk4x6yk4dv2mvel34epw68qqkwy0xcqvqxqzfvcqpjhp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqr4rx6ls6j5rpwknuea64evlk7yfx56wmqcer5eerekdsn9tlv6v4ex9mlz5dtm9qapl3svwlqcf7837dmjkru9z9w4h2rvm0md52w2sqms554k";
    /// BOLT11's first example: no amount, an inline description, signed by `03e7156a…`.
    const BOLT11_DONATION_INVOICE: &str = "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq8rkx3yf5tcsyz3d73gafnh3cax9rn449d9p5uxz9ezhhypd0elx87sjle52x86fux2ypatgddc6k63n7erqz25le42c4u4ecky03ylcqca784w";
    /// BOLT11's valid examples signed by its test key `03e7156a…` (the pico-BTC one is not).
    const BOLT11_VALID: [&str; 12] = [
        "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq8rkx3yf5tcsyz3d73gafnh3cax9rn449d9p5uxz9ezhhypd0elx87sjle52x86fux2ypatgddc6k63n7erqz25le42c4u4ecky03ylcqca784w",
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp",
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
        "lnbc20m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqscc6gd6ql3jrc5yzme8v4ntcewwz5cnw92tz0pc8qcuufvq7khhr8wpald05e92xw006sq94mg8v2ndf4sefvf9sygkshp5zfem29trqq2yxxz7",
        "lntb20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfpp3x9et2e20v6pu37c5d9vax37wxq72un98kmzzhznpurw9sgl2v0nklu2g4d0keph5t7tj9tcqd8rexnd07ux4uv2cjvcqwaxgj7v4uwn5wmypjd5n69z2xm3xgksg28nwht7f6zspwp3f9t",
        "lnbc20m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqsfpp3qjmp7lwpagxun9pygexvgpjdc4jdj85fr9yq20q82gphp2nflc7jtzrcazrra7wwgzxqc8u7754cdlpfrmccae92qgzqvzq2ps8pqqqqqqpqqqqq9qqqvpeuqafqxu92d8lr6fvg0r5gv0heeeqgcrqlnm6jhphu9y00rrhy4grqszsvpcgpy9qqqqqqgqqqqq7qqzqj9n4evl6mr5aj9f58zp6fyjzup6ywn3x6sk8akg5v4tgn2q8g4fhx05wf6juaxu9760yp46454gpg5mtzgerlzezqcqvjnhjh8z3g2qqdhhwkj",
        "lnbc20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfppj3a24vwu6r8ejrss3axul8rxldph2q7z9kmrgvr7xlaqm47apw3d48zm203kzcq357a4ls9al2ea73r8jcceyjtya6fu5wzzpe50zrge6ulk4nvjcpxlekvmxl6qcs9j3tz0469gq5g658y",
        "lnbc20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfppqw508d6qejxtdg4y5r3zarvary0c5xw7kepvrhrm9s57hejg0p662ur5j5cr03890fa7k2pypgttmh4897d3raaq85a293e9jpuqwl0rnfuwzam7yr8e690nd2ypcq9hlkdwdvycqa0qza8",
        "lnbc20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfp4qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q28j0v3rwgy9pvjnd48ee2pl8xrpxysd5g44td63g6xcjcu003j3qe8878hluqlvl3km8rm92f5stamd3jw763n3hck0ct7p8wwj463cql26ava",
        "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqpqsq67gye39hfg3zd8rgc80k32tvy9xk2xunwm5lzexnvpx6fd77en8qaq424dxgt56cag2dpt359k3ssyhetktkpqh24jqnjyw6uqd08sgptq44qu",
        "LNBC25M1PVJLUEZPP5QQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQYPQDQ5VDHKVEN9V5SXYETPDEESSP5ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYGS9Q5SQQQQQQQQQQQQQQQPQSQ67GYE39HFG3ZD8RGC80K32TVY9XK2XUNWM5LZEXNVPX6FD77EN8QAQ424DXGT56CAG2DPT359K3SSYHETKTKPQH24JQNJYW6UQD08SGPTQ44QU",
        "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqpqsq2qrqqqfppnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqppnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqpp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqhpnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqhp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqspnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnpkqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq2jxxfsnucm4jf4zwtznpaxphce606fvhvje5x7d4gw7n73994hgs7nteqvenq8a4ml8aqtchv5d9pf7l558889hp4yyrqv6a7zpq9fgpskqhza",
    ];
    const BOLT11_PICO: &str = "lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5gpc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhygrcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxxqyjw5qcqp2rzjq0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9qn07ytgrxxzad9hc4xt3mawjjt8znfv8xzscs7007v9gh9j569lencxa8xeujzkxs0uamak9aln6ez02uunw6rd2ht2sqe4hz8thcdagpleym0j";
    /// BOLT11's invalid examples: checksum, no separator, mixed case, unrecoverable signature,
    /// too short, unknown multiplier, sub-msat amount.
    const BOLT11_INVALID: [&str; 7] = [
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt",
        "pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
        "LNBC2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaxtrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspk28uwq",
        "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6na6hlh",
        "lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpujr6jxr9gq9pv6g46y7d20jfkegkg4gljz2ea2a3m9lmvvr95tq2s0kvu70u3axgelz3kyvtp2ywwt0y8hkx2869zq5dll9nelr83zzqqpgl2zg",
        "lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu7hqtk93pkf7sw55rdv4k9z2vj050rxdr6za9ekfs3nlt5lr89jqpdmxsmlj9urqumg0h9wzpqecw7th56tdms40p2ny9q4ddvjsedzcplva53s",
    ];
    const PAY_TO: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    fn pay_to() -> PublicKey {
        parse_pay_to(PAY_TO).expect("the test key parses")
    }

    /// Re-signs the raw part of `text` with the signature `sign` makes.
    fn resign(
        text: &str,
        sign: impl FnOnce(&Message) -> bitcoin::secp256k1::ecdsa::RecoverableSignature,
    ) -> String {
        let signed: SignedRawBolt11Invoice = text.parse().expect("the invoice parses");
        let (raw, _, _) = signed.into_parts();
        raw.sign::<_, ()>(|message| Ok(sign(message)))
            .expect("signing cannot fail")
            .to_string()
    }

    fn secret_key(last_byte: u8) -> bitcoin::secp256k1::SecretKey {
        let mut bytes = [0u8; 32];
        bytes[31] = last_byte;
        bitcoin::secp256k1::SecretKey::from_slice(&bytes).expect("a valid test key")
    }

    #[test]
    fn lightning_invoice_alone_accepts_nonzero_padding_but_decode_refuses_it() {
        // The raw parser drops the padding bits and hashes its zero-padded re-encoding, so the
        // tampered invoice still "verifies" under payTo's original signature.
        let signed: SignedRawBolt11Invoice = NONZERO_PADDING_INVOICE
            .parse()
            .expect("the raw parser takes it");
        assert_eq!(
            signed.recover_payee_pub_key().map(|key| key.0),
            Ok(pay_to())
        );
        assert_ne!(signed.to_string(), NONZERO_PADDING_INVOICE);
        let err = decode(NONZERO_PADDING_INVOICE).expect_err("strict decoding refuses it");
        assert!(err.contains("canonical"), "{err}");
    }

    #[test]
    fn a_second_description_hash_leaves_no_description_hash() {
        let invoice = decode(DUPLICATE_H_INVOICE).expect("it decodes");
        assert_eq!(invoice.description_hash, None);
    }

    #[test]
    fn an_n_field_is_the_payee_and_must_have_signed() {
        let invoice = decode(PAYEE_FIELD_INVOICE).expect("it decodes");
        assert_eq!(invoice.payee, pay_to());

        let secp = Secp256k1::new();
        let by_pay_to = resign(PAYEE_FIELD_INVOICE, |message| {
            secp.sign_ecdsa_recoverable(message, &secret_key(1))
        });
        assert_eq!(
            decode(&by_pay_to).map(|invoice| invoice.payee),
            Ok(pay_to())
        );
        let by_other = resign(PAYEE_FIELD_INVOICE, |message| {
            secp.sign_ecdsa_recoverable(message, &secret_key(2))
        });
        let err = decode(&by_other).expect_err("n names a key that did not sign");
        assert!(err.contains("does not verify"), "{err}");
    }

    #[test]
    fn a_high_s_signature_is_refused_though_it_recovers_pay_to() {
        use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};

        // secp256k1's group order n.
        const ORDER: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
            0xd0, 0x36, 0x41, 0x41,
        ];
        let signed: SignedRawBolt11Invoice = SPEC_INVOICE.parse().expect("it parses");
        let (recovery_id, compact) = signed.signature().0.serialize_compact();
        // (r, n - s) with the other recovery id recovers the same key.
        let mut high = compact;
        let mut borrow = 0i16;
        for index in (0..32).rev() {
            let difference = i16::from(ORDER[index]) - i16::from(compact[32 + index]) - borrow;
            borrow = i16::from(difference < 0);
            high[32 + index] = (difference + 256 * borrow) as u8;
        }
        let flipped = RecoveryId::from_i32(recovery_id.to_i32() ^ 1).expect("0 to 3");
        let high_s = RecoverableSignature::from_compact(&high, flipped).expect("in range");
        let malleated = resign(SPEC_INVOICE, |_| high_s);
        let reparsed: SignedRawBolt11Invoice = malleated.parse().expect("it parses");
        assert_eq!(
            reparsed.recover_payee_pub_key().map(|key| key.0),
            Ok(pay_to())
        );
        let err = decode(&malleated).expect_err("high S is refused");
        assert!(err.contains("does not verify"), "{err}");
    }

    #[test]
    fn bolt11_first_example_decodes_without_amount_or_description_hash() {
        let invoice = decode(BOLT11_DONATION_INVOICE).expect("BOLT11's example decodes");
        assert_eq!(invoice.amount_msat, None);
        assert_eq!(invoice.description_hash, None);
        assert_eq!(
            invoice.payee.to_string(),
            "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"
        );
        assert_eq!(
            invoice.payment_hash_hex(),
            "0001020304050607080900010203040506070809000102030405060708090102"
        );
        assert_eq!(
            (invoice.created_at, invoice.expiry_secs),
            (1_496_314_658, 3600)
        );
    }

    #[test]
    fn terms_are_checked_in_the_scheme_order_and_a_missing_amount_is_a_mismatch() {
        let invoice = decode(SPEC_INVOICE).expect("it decodes");
        let pay_to = pay_to();
        let request_hash = RequestHash(invoice.description_hash.expect("one h field"));
        let terms = InvoiceTerms {
            network: Network::Bitcoin,
            amount_msat: 25_000,
            pay_to: &pay_to,
            max_timeout_seconds: 300,
            request_hash: &request_hash,
        };
        let now = 1_700_000_000;
        assert_eq!(invoice.check_terms(&terms, now, 60), Ok(()));
        assert_eq!(invoice.check_terms(&terms, now - 60, 60), Ok(()));
        assert_eq!(
            invoice.check_terms(&terms, now - 61, 60),
            Err(reason::INVOICE_CREATED_IN_FUTURE)
        );

        let no_amount = DecodedInvoice {
            amount_msat: None,
            ..invoice.clone()
        };
        assert_eq!(
            no_amount.check_terms(&terms, now, 60),
            Err(reason::INVOICE_AMOUNT_MISMATCH)
        );
        let testnet = Network::Testnet;
        let all_wrong = InvoiceTerms {
            network: testnet,
            amount_msat: 1,
            max_timeout_seconds: 1,
            ..terms
        };
        assert_eq!(
            no_amount.check_terms(&all_wrong, now, 60),
            Err(reason::INVOICE_CURRENCY_MISMATCH)
        );
        let no_description = DecodedInvoice {
            description_hash: None,
            ..no_amount
        };
        assert_eq!(
            no_description.check_terms(&all_wrong, 0, 0),
            Err(reason::INVOICE_DESCRIPTION)
        );
    }

    #[test]
    fn bolt11_examples_decode_strictly_and_its_invalid_ones_fail() {
        for text in BOLT11_VALID {
            let invoice = decode(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(
                invoice.payee.to_string(),
                "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad",
                "{text}"
            );
        }
        let pico = decode(BOLT11_PICO).expect("the pico-BTC example decodes");
        assert_eq!(pico.amount_msat, Some(967_878_534));
        assert_eq!(pico.expiry_secs, 604_800);
        for text in BOLT11_INVALID {
            assert!(decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn an_all_uppercase_invoice_is_the_same_invoice() {
        let upper = SPEC_INVOICE.to_ascii_uppercase();
        assert_eq!(decode(&upper), decode(SPEC_INVOICE));
    }

    #[test]
    fn truncated_and_garbage_inputs_fail_without_panicking() {
        for end in 0..SPEC_INVOICE.len() {
            assert!(
                decode(&SPEC_INVOICE[..end]).is_err(),
                "prefix of {end} chars"
            );
        }
        for text in [
            "",
            "1",
            "ln1",
            "lnbc1",
            "lnbc99999999999999999991p",
            "\u{0}",
            "ln\u{e9}",
        ] {
            assert!(decode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn pay_to_and_amount_parsers_are_strict() {
        let key = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        assert!(parse_pay_to(key).is_some());
        assert!(parse_pay_to(&key.to_ascii_uppercase()).is_none());
        assert!(parse_pay_to(&format!("04{}", &key[2..])).is_none());
        assert!(parse_pay_to("bad").is_none());
        assert!(parse_pay_to(&format!("02{}", "0".repeat(64))).is_none());
        assert_eq!(parse_amount_msat("25000"), Some(25_000));
        for bad in [
            "",
            "0",
            "025000",
            "+25000",
            "25000.0",
            "2.5e4",
            "25 000",
            "99999999999999999999",
        ] {
            assert_eq!(parse_amount_msat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lower_hex_decoding_tells_malformed_from_length() {
        assert_eq!(decode_lower_hex::<2>("0aff"), Ok([0x0a, 0xff]));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(
            encode_lower_hex(&all),
            bitcoin::hex::DisplayHex::to_lower_hex_string(&all[..])
        );
        assert_eq!(decode_lower_hex::<2>("0AFF"), Err(HexError::Malformed));
        assert_eq!(decode_lower_hex::<2>("0af"), Err(HexError::Length));
        assert_eq!(decode_lower_hex::<2>("0aff00"), Err(HexError::Length));
        assert_eq!(decode_lower_hex::<2>("é0af"), Err(HexError::Malformed));
    }
}
