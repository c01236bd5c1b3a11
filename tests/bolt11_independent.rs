//! The mock facilitator's invoices, read by an independent BOLT 11 decoder.
//!
//! The mock mints its invoices with `lightning-invoice`, and the crate checks them with the same
//! library: a bug shared by both would go unnoticed. The decoder in [`bolt11`] below follows BOLT 11
//! (<https://github.com/lightning/bolts/blob/master/11-payment-encoding.md>) on its own — bech32
//! primitives from the `bech32` crate, hashing and secp256k1 from `bitcoin`, and nothing from
//! `lightning-invoice` — so an invoice it accepts would be accepted by any conforming wallet.
//!
//! It is first checked against the BOLT 11 test vectors, then fed invoices minted by
//! `MockFacilitator` over real HTTP (`HttpFacilitator` → `POST /requirements` on 127.0.0.1).

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use bitcoin::secp256k1::PublicKey;
use x402_lightning::mock::{DEFAULT_INVOICE_EXPIRY, Fault, InvoiceFault, MockFacilitator};
use x402_lightning::{
    Facilitator as _, FacilitatorCall, HttpFacilitator, Network, PaymentRequirements,
    RequirementsRequest, Scheme,
};

use self::bolt11::{Currency, DecodeError, Description};

/// A BOLT 11 decoder written from the specification, independent of `lightning-invoice`.
///
/// What it checks, in order:
/// 1. bech32 (BIP-173, *not* bech32m) checksum, with no length cap (BOLT 11 drops bech32's
///    90-character limit); one case throughout (an all-uppercase invoice is read lowercased);
/// 2. the human-readable part: `ln` + a currency prefix (`bc`, `tb`, `tbs`, `bcrt`) + an
///    optional amount — digits without leading zero and a multiplier `m`/`u`/`n`/`p`, converted
///    to msat; a `p` amount must be a whole number of msat (a multiple of 10);
/// 3. the data part: a 35-bit timestamp, tagged fields (5-bit type, 10-bit length, value),
///    and a final 104-word (65-byte) signature. `p`, `s`, `h` of a length other than 52 words
///    and `n` of a length other than 53 are skipped, as are unknown fields (BOLT 11); `p`, `s`
///    and exactly one of `d`/`h` are required; a field read here may appear only once;
///    `x` defaults to 3600 s and `c` to 18 blocks; a set *even* feature bit (`9`) that is not
///    understood (understood: 8 var_onion_optin, 14 payment_secret, 16 basic_mpp, 48
///    payment_metadata) fails the invoice, unknown odd bits are ignored;
/// 4. the signature: message = SHA-256(hrp UTF-8 bytes ‖ data part without the signature,
///    5-bit words packed into bytes and zero-padded to a byte boundary); the payee key is
///    recovered from the compact signature and recovery id, and the plain ECDSA signature
///    must also verify against it (libsecp256k1's verification requires low-S, as writers
///    produce); when an `n` field is present, the signature must verify against it and it
///    must be the recovered key.
mod bolt11 {
    use std::fmt;

    use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
    use bech32::{Checksum, Fe32};
    use bitcoin::hashes::{Hash as _, sha256};
    use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    use bitcoin::secp256k1::{Message, PublicKey, Secp256k1};

    /// The bech32 checksum of BIP-173 without its length limit: a BOLT 11 invoice is a bech32
    /// string that may be longer than bech32's 90 (or the `bech32` crate's 1023) characters.
    pub enum Bolt11Checksum {}

    impl Checksum for Bolt11Checksum {
        type MidstateRepr = <bech32::Bech32 as Checksum>::MidstateRepr;
        const CODE_LENGTH: usize = usize::MAX;
        const CHECKSUM_LENGTH: usize = bech32::Bech32::CHECKSUM_LENGTH;
        const GENERATOR_SH: [Self::MidstateRepr; 5] = bech32::Bech32::GENERATOR_SH;
        const TARGET_RESIDUE: Self::MidstateRepr = bech32::Bech32::TARGET_RESIDUE;
    }

    /// Tagged-field types, as the value of their bech32 character.
    pub const TAG_P: u8 = 1; // 'p': payment hash
    pub const TAG_9: u8 = 5; // '9': features
    pub const TAG_X: u8 = 6; // 'x': expiry
    pub const TAG_D: u8 = 13; // 'd': description
    pub const TAG_S: u8 = 16; // 's': payment secret
    pub const TAG_N: u8 = 19; // 'n': payee node key
    pub const TAG_H: u8 = 23; // 'h': description hash
    pub const TAG_C: u8 = 24; // 'c': min_final_cltv_expiry_delta

    const TIMESTAMP_WORDS: usize = 7;
    const SIGNATURE_WORDS: usize = 104;
    const DEFAULT_EXPIRY_SECS: u64 = 3600;
    const DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA: u64 = 18;
    const MSAT_PER_BTC: u64 = 100_000_000_000;
    /// Even feature bits this decoder understands (BOLT 9, invoice context).
    const KNOWN_EVEN_FEATURES: [usize; 4] = [8, 14, 16, 48];

    /// The chain an invoice is for, from its currency prefix.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Currency {
        /// `bc`
        Bitcoin,
        /// `tb`
        Testnet,
        /// `tbs`
        Signet,
        /// `bcrt`
        Regtest,
    }

    /// What the payment is for: the text itself (`d`) or its SHA-256 (`h`).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Description {
        Direct(String),
        Hash([u8; 32]),
    }

    /// A decoded invoice whose checksum and signature are valid.
    #[derive(Clone, Debug)]
    pub struct Invoice {
        pub hrp: String,
        pub currency: Currency,
        pub amount_msat: Option<u64>,
        /// The amount's multiplier character, if any.
        pub multiplier: Option<char>,
        /// Seconds since the Unix epoch.
        pub timestamp: u64,
        pub payment_hash: [u8; 32],
        pub payment_secret: [u8; 32],
        pub description: Description,
        pub expiry_secs: u64,
        pub min_final_cltv_expiry_delta: u64,
        /// The numbers of the set feature bits, ascending.
        pub features: Vec<usize>,
        /// The `n` field, when the writer included one.
        pub explicit_payee: Option<PublicKey>,
        /// The node that signed the invoice: recovered from the signature (and equal to `n`).
        pub payee: PublicKey,
    }

    /// Why an invoice was rejected.
    #[derive(Debug)]
    pub enum DecodeError {
        /// Not a bech32 string, or a wrong checksum.
        Bech32(CheckedHrpstringError),
        /// A malformed human-readable part (prefix, currency or amount).
        Hrp(String),
        /// A malformed data part (timestamp, tagged fields, lengths).
        Data(String),
        /// A signature that is malformed or does not verify.
        Signature(String),
    }

    impl fmt::Display for DecodeError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                DecodeError::Bech32(err) => write!(f, "bech32: {err}"),
                DecodeError::Hrp(msg) => write!(f, "human-readable part: {msg}"),
                DecodeError::Data(msg) => write!(f, "data part: {msg}"),
                DecodeError::Signature(msg) => write!(f, "signature: {msg}"),
            }
        }
    }

    fn data_error(msg: impl Into<String>) -> DecodeError {
        DecodeError::Data(msg.into())
    }

    fn signature_error(err: impl fmt::Display) -> DecodeError {
        DecodeError::Signature(err.to_string())
    }

    /// Splits a bech32 invoice into its lowercase hrp and its data words (checksum removed,
    /// signature kept), after validating the checksum.
    pub fn split(invoice: &str) -> Result<(String, Vec<u8>), DecodeError> {
        // BOLT 11 invoices may be all-uppercase (QR codes); bech32 itself rejects mixed case.
        let lowercase = if invoice.bytes().any(|b| b.is_ascii_lowercase()) {
            invoice.to_owned()
        } else {
            invoice.to_ascii_lowercase()
        };
        let checked =
            CheckedHrpstring::new::<Bolt11Checksum>(&lowercase).map_err(DecodeError::Bech32)?;
        let hrp = checked.hrp().as_str().to_owned();
        let words = checked
            .data_part_ascii_no_checksum()
            .iter()
            .map(|&c| Fe32::from_char(char::from(c)).map(Fe32::to_u8))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|err| data_error(err.to_string()))?;
        Ok((hrp, words))
    }

    /// Decodes and fully validates a BOLT 11 invoice.
    pub fn decode(invoice: &str) -> Result<Invoice, DecodeError> {
        let (hrp, words) = split(invoice)?;
        let (currency, amount_msat, multiplier) = parse_hrp(&hrp)?;

        if words.len() < TIMESTAMP_WORDS + SIGNATURE_WORDS {
            return Err(data_error(format!(
                "{} words is too short for a timestamp and a signature",
                words.len()
            )));
        }
        let (signed, signature) = words.split_at(words.len() - SIGNATURE_WORDS);
        let timestamp = words_to_u64(&signed[..TIMESTAMP_WORDS])?;
        let fields = parse_tagged_fields(&signed[TIMESTAMP_WORDS..])?;

        let payee = check_signature(&hrp, signed, signature, fields.explicit_payee)?;

        let description = match (fields.description, fields.description_hash) {
            (Some(text), None) => Description::Direct(text),
            (None, Some(hash)) => Description::Hash(hash),
            (Some(_), Some(_)) => return Err(data_error("both `d` and `h` fields")),
            (None, None) => return Err(data_error("neither a `d` nor an `h` field")),
        };
        let features = fields.features.unwrap_or_default();
        if let Some(bit) = features
            .iter()
            .find(|&&bit| bit % 2 == 0 && !KNOWN_EVEN_FEATURES.contains(&bit))
        {
            return Err(data_error(format!("unknown required feature bit {bit}")));
        }

        Ok(Invoice {
            hrp,
            currency,
            amount_msat,
            multiplier,
            timestamp,
            payment_hash: fields
                .payment_hash
                .ok_or_else(|| data_error("no `p` (payment hash) field"))?,
            payment_secret: fields
                .payment_secret
                .ok_or_else(|| data_error("no `s` (payment secret) field"))?,
            description,
            expiry_secs: fields.expiry.unwrap_or(DEFAULT_EXPIRY_SECS),
            min_final_cltv_expiry_delta: fields
                .min_final_cltv_expiry_delta
                .unwrap_or(DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA),
            features,
            explicit_payee: fields.explicit_payee,
            payee,
        })
    }

    /// `ln` + currency prefix + optional amount (digits and an optional multiplier).
    fn parse_hrp(hrp: &str) -> Result<(Currency, Option<u64>, Option<char>), DecodeError> {
        let hrp_error = |msg: String| DecodeError::Hrp(msg);
        let rest = hrp
            .strip_prefix("ln")
            .ok_or_else(|| hrp_error(format!("`{hrp}` does not start with `ln`")))?;
        let amount_start = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (prefix, amount) = rest.split_at(amount_start);
        let currency = match prefix {
            "bc" => Currency::Bitcoin,
            "tb" => Currency::Testnet,
            "tbs" => Currency::Signet,
            "bcrt" => Currency::Regtest,
            other => return Err(hrp_error(format!("unknown currency prefix `{other}`"))),
        };
        if amount.is_empty() {
            return Ok((currency, None, None));
        }

        let (digits, multiplier) = match amount.chars().last() {
            Some(m @ ('m' | 'u' | 'n' | 'p')) => (&amount[..amount.len() - 1], Some(m)),
            _ => (amount, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(hrp_error(format!("malformed amount `{amount}`")));
        }
        if digits.starts_with('0') {
            return Err(hrp_error(format!("amount `{amount}` has a leading zero")));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| hrp_error(format!("amount `{amount}` overflows")))?;
        let msat = match multiplier {
            None => value.checked_mul(MSAT_PER_BTC),
            Some('m') => value.checked_mul(MSAT_PER_BTC / 1_000),
            Some('u') => value.checked_mul(MSAT_PER_BTC / 1_000_000),
            Some('n') => value.checked_mul(MSAT_PER_BTC / 1_000_000_000),
            Some(_) => {
                // 'p' (pico-bitcoin) is a tenth of a millisatoshi.
                if value % 10 != 0 {
                    return Err(hrp_error(format!(
                        "amount `{amount}` is not a whole number of millisatoshis"
                    )));
                }
                Some(value / 10)
            }
        }
        .ok_or_else(|| hrp_error(format!("amount `{amount}` overflows")))?;
        Ok((currency, Some(msat), multiplier))
    }

    /// The tagged fields this decoder reads; each at most once.
    #[derive(Default)]
    struct Fields {
        payment_hash: Option<[u8; 32]>,
        payment_secret: Option<[u8; 32]>,
        description: Option<String>,
        description_hash: Option<[u8; 32]>,
        expiry: Option<u64>,
        min_final_cltv_expiry_delta: Option<u64>,
        features: Option<Vec<usize>>,
        explicit_payee: Option<PublicKey>,
    }

    fn parse_tagged_fields(mut rest: &[u8]) -> Result<Fields, DecodeError> {
        let mut fields = Fields::default();
        while !rest.is_empty() {
            let [tag, length_high, length_low, tail @ ..] = rest else {
                return Err(data_error("truncated tagged field header"));
            };
            let length = (usize::from(*length_high) << 5) | usize::from(*length_low);
            if tail.len() < length {
                return Err(data_error(format!(
                    "tagged field of type {tag} claims {length} words, {} remain",
                    tail.len()
                )));
            }
            let (value, next) = tail.split_at(length);
            rest = next;

            match (*tag, length) {
                (TAG_P, 52) => set_once(&mut fields.payment_hash, 'p', bytes32(value))?,
                (TAG_S, 52) => set_once(&mut fields.payment_secret, 's', bytes32(value))?,
                (TAG_H, 52) => set_once(&mut fields.description_hash, 'h', bytes32(value))?,
                (TAG_N, 53) => {
                    let key = PublicKey::from_slice(&words_to_bytes(value, false))
                        .map_err(|err| data_error(format!("`n` field: {err}")))?;
                    set_once(&mut fields.explicit_payee, 'n', key)?;
                }
                (TAG_D, _) => {
                    let text = String::from_utf8(words_to_bytes(value, false))
                        .map_err(|err| data_error(format!("`d` field: {err}")))?;
                    set_once(&mut fields.description, 'd', text)?;
                }
                (TAG_X, _) => set_once(&mut fields.expiry, 'x', words_to_u64(value)?)?,
                (TAG_C, _) => set_once(
                    &mut fields.min_final_cltv_expiry_delta,
                    'c',
                    words_to_u64(value)?,
                )?,
                (TAG_9, _) => set_once(&mut fields.features, '9', feature_bits(value))?,
                // Unknown fields, and p/s/h/n fields of the wrong length, are skipped (BOLT 11).
                _ => {}
            }
        }
        Ok(fields)
    }

    fn set_once<T>(slot: &mut Option<T>, tag: char, value: T) -> Result<(), DecodeError> {
        match slot.replace(value) {
            Some(_) => Err(data_error(format!("more than one `{tag}` field"))),
            None => Ok(()),
        }
    }

    /// Recovers the signer's key and checks the signature against it (and against `n`).
    fn check_signature(
        hrp: &str,
        signed_words: &[u8],
        signature_words: &[u8],
        explicit_payee: Option<PublicKey>,
    ) -> Result<PublicKey, DecodeError> {
        let mut preimage = hrp.as_bytes().to_vec();
        preimage.extend(words_to_bytes(signed_words, true));
        let message = Message::from_digest(sha256::Hash::hash(&preimage).to_byte_array());

        let signature = words_to_bytes(signature_words, false);
        let (compact, recovery_id) = signature.split_at(64);
        let recovery_id =
            RecoveryId::from_i32(i32::from(recovery_id[0])).map_err(signature_error)?;
        let recoverable =
            RecoverableSignature::from_compact(compact, recovery_id).map_err(signature_error)?;

        let secp = Secp256k1::verification_only();
        let recovered = secp
            .recover_ecdsa(&message, &recoverable)
            .map_err(signature_error)?;
        secp.verify_ecdsa(&message, &recoverable.to_standard(), &recovered)
            .map_err(signature_error)?;
        if let Some(payee) = explicit_payee {
            secp.verify_ecdsa(&message, &recoverable.to_standard(), &payee)
                .map_err(signature_error)?;
            if payee != recovered {
                return Err(DecodeError::Signature(
                    "the `n` field is not the signing key".into(),
                ));
            }
        }
        Ok(recovered)
    }

    /// Packs 5-bit words into bytes, most significant bit first. With `pad`, a last partial
    /// byte is completed with zero bits (how the signed data is hashed); without, leftover bits
    /// are dropped (how a field's value is read back: its writer padded it).
    pub fn words_to_bytes(words: &[u8], pad: bool) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(words.len() * 5 / 8 + 1);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for &word in words {
            buffer = (buffer << 5) | u32::from(word);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        if pad && bits > 0 {
            bytes.push((buffer << (8 - bits)) as u8);
        }
        bytes
    }

    fn bytes32(words: &[u8]) -> [u8; 32] {
        let bytes = words_to_bytes(words, false);
        let mut array = [0; 32];
        array.copy_from_slice(&bytes[..32]);
        array
    }

    /// A big-endian unsigned integer of 5-bit words.
    fn words_to_u64(words: &[u8]) -> Result<u64, DecodeError> {
        if words.len() > 12 {
            return Err(data_error(format!(
                "a {}-word integer does not fit 64 bits",
                words.len()
            )));
        }
        Ok(words
            .iter()
            .fold(0, |value, &word| (value << 5) | u64::from(word)))
    }

    /// The set bits of a big-endian feature bitfield; bit 0 is the last word's lowest bit.
    fn feature_bits(words: &[u8]) -> Vec<usize> {
        let mut bits = Vec::new();
        for (index, &word) in words.iter().rev().enumerate() {
            for bit in 0..5 {
                if (word >> bit) & 1 == 1 {
                    bits.push(index * 5 + bit);
                }
            }
        }
        bits
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The node key of the BOLT 11 test vectors.
const SPEC_PAYEE: &str = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad";
/// The payment hash of most BOLT 11 test vectors.
const SPEC_PAYMENT_HASH: &str = "0001020304050607080900010203040506070809000102030405060708090102";
/// The timestamp of most BOLT 11 test vectors.
const SPEC_TIMESTAMP: u64 = 1_496_314_658;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn hex32(hex: &str) -> [u8; 32] {
    <[u8; 32]>::from_hex(hex).expect("32 bytes of hex")
}

fn decode_ok(invoice: &str) -> bolt11::Invoice {
    bolt11::decode(invoice)
        .unwrap_or_else(|err| panic!("independent decoder rejected {invoice}: {err}"))
}

fn currency_of(network: Network) -> Currency {
    match network {
        Network::Bitcoin => Currency::Bitcoin,
        Network::Testnet => Currency::Testnet,
        Network::Signet => Currency::Signet,
        Network::Regtest => Currency::Regtest,
    }
}

fn request(network: Network, amount_msat: u64, description: &str) -> RequirementsRequest {
    RequirementsRequest {
        x402_version: 1,
        scheme: Scheme::Exact,
        network,
        amount: amount_msat,
        resource: "http://127.0.0.1/paid".into(),
        description: description.into(),
        mime_type: "application/json".into(),
        max_timeout_seconds: 60,
        description_hash: None,
    }
}

/// Asks the mock, over HTTP, for requirements (and so a fresh invoice) on its network.
async fn requirements(
    mock: &MockFacilitator,
    amount_msat: u64,
    description: &str,
) -> PaymentRequirements {
    let facilitator = HttpFacilitator::new(mock.url()).expect("facilitator client");
    facilitator
        .requirements(&request(mock.network(), amount_msat, description))
        .await
        .expect("POST /requirements")
}

/// Re-encodes hrp and data words (signature included) with a fresh bech32 checksum.
fn reencode(hrp: &str, words: &[u8]) -> String {
    use bech32::{Fe32, Fe32IterExt as _, Hrp};
    let hrp = Hrp::parse(hrp).expect("valid hrp");
    words
        .iter()
        .map(|&word| Fe32::try_from(word).expect("5-bit word"))
        .with_checksum::<bolt11::Bolt11Checksum>(&hrp)
        .chars()
        .collect()
}

/// Checks everything the decoder can check against what the mock was asked for.
fn assert_matches_requirements(
    invoice: &bolt11::Invoice,
    requirements: &PaymentRequirements,
    mock: &MockFacilitator,
    amount_msat: u64,
) {
    assert_eq!(invoice.currency, currency_of(mock.network()));
    assert_eq!(invoice.amount_msat, Some(amount_msat));
    assert_eq!(requirements.max_amount_required, amount_msat);
    let payee = invoice.payee.serialize().to_lower_hex_string();
    assert_eq!(payee.len(), 66);
    assert_eq!(payee, requirements.pay_to, "signer is not payTo");
    assert_eq!(
        payee,
        mock.pay_to().to_string(),
        "signer is not the mock's node"
    );
    if let Some(explicit) = invoice.explicit_payee {
        assert_eq!(explicit, invoice.payee);
    }
    let now = unix_now();
    assert!(
        invoice.timestamp.abs_diff(now) <= 60,
        "timestamp {} is not within a minute of now ({now})",
        invoice.timestamp
    );
    assert_eq!(invoice.expiry_secs, DEFAULT_INVOICE_EXPIRY.as_secs());
    assert_ne!(invoice.payment_secret, [0; 32]);
    assert_ne!(invoice.payment_secret, invoice.payment_hash);
    // The mock writes LDK's default delta, which is also BOLT 11's default.
    assert_eq!(invoice.min_final_cltv_expiry_delta, 18);
    // var_onion_optin and payment_secret, both required alongside an `s` field.
    assert!(invoice.features.contains(&8), "{:?}", invoice.features);
    assert!(invoice.features.contains(&14), "{:?}", invoice.features);
}

// ---------------------------------------------------------------------------------------------
// The decoder itself, against the BOLT 11 test vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn tag_constants_are_the_bech32_values_of_their_letters() {
    for (letter, tag) in [
        ('p', bolt11::TAG_P),
        ('9', bolt11::TAG_9),
        ('x', bolt11::TAG_X),
        ('d', bolt11::TAG_D),
        ('s', bolt11::TAG_S),
        ('n', bolt11::TAG_N),
        ('h', bolt11::TAG_H),
        ('c', bolt11::TAG_C),
    ] {
        assert_eq!(
            bech32::Fe32::from_char(letter).unwrap().to_u8(),
            tag,
            "{letter}"
        );
    }
    <bolt11::Bolt11Checksum as bech32::Checksum>::sanity_check();
}

#[test]
fn words_pack_into_bytes_most_significant_bit_first() {
    // 0b10000 0b00001 0b11111 = 1000 0000 0111 111(1 pad 0)
    assert_eq!(bolt11::words_to_bytes(&[16, 1, 31], false), vec![0x80]);
    assert_eq!(bolt11::words_to_bytes(&[16, 1, 31], true), vec![0x80, 0x7e]);
    assert_eq!(
        bolt11::words_to_bytes(&[31; 8], false),
        vec![0xff; 5],
        "8 words are exactly 5 bytes"
    );
}

#[test]
fn decoder_accepts_the_bolt11_valid_test_vectors() {
    let chocolate = "One piece of chocolate cake, one icecream cone, one pickle, one slice of \
                     swiss cheese, one slice of salami, one lollypop, one piece of cherry pie, \
                     one sausage, one cupcake, and one slice of watermelon";
    let chocolate_hash = sha256::Hash::hash(chocolate.as_bytes()).to_byte_array();
    let payee = PublicKey::from_slice(&Vec::<u8>::from_hex(SPEC_PAYEE).unwrap()).unwrap();

    /// A valid test vector and what it must decode to.
    struct Valid {
        invoice: &'static str,
        currency: Currency,
        amount_msat: Option<u64>,
        multiplier: Option<char>,
        description: Description,
        expiry_secs: u64,
    }
    let vectors = [
        Valid {
            invoice: "lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7ck6q93dj32dlqnls087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql",
            currency: Currency::Bitcoin,
            amount_msat: None,
            multiplier: None,
            description: Description::Direct("Please consider supporting this project".into()),
            expiry_secs: 3600,
        },
        Valid {
            invoice: "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh",
            currency: Currency::Bitcoin,
            amount_msat: Some(250_000_000),
            multiplier: Some('u'),
            description: Description::Direct("1 cup coffee".into()),
            expiry_secs: 60,
        },
        Valid {
            invoice: "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpu9qrsgqhtjpauu9ur7fw2thcl4y9vfvh4m9wlfyz2gem29g5ghe2aak2pm3ps8fdhtceqsaagty2vph7utlgj48u0ged6a337aewvraedendscp573dxr",
            currency: Currency::Bitcoin,
            amount_msat: Some(250_000_000),
            multiplier: Some('u'),
            description: Description::Direct("ナンセンス 1杯".into()),
            expiry_secs: 60,
        },
        Valid {
            invoice: "lnbc20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqs9qrsgq7ea976txfraylvgzuxs8kgcw23ezlrszfnh8r6qtfpr6cxga50aj6txm9rxrydzd06dfeawfk6swupvz4erwnyutnjq7x39ymw6j38gp7ynn44",
            currency: Currency::Bitcoin,
            amount_msat: Some(2_000_000_000),
            multiplier: Some('m'),
            description: Description::Hash(chocolate_hash),
            expiry_secs: 3600,
        },
        Valid {
            // With an `f` (fallback address) field, which this decoder skips.
            invoice: "lntb20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfpp3x9et2e20v6pu37c5d9vax37wxq72un989qrsgqdj545axuxtnfemtpwkc45hx9d2ft7x04mt8q7y6t0k2dge9e7h8kpy9p34ytyslj3yu569aalz2xdk8xkd7ltxqld94u8h2esmsmacgpghe9k8",
            currency: Currency::Testnet,
            amount_msat: Some(2_000_000_000),
            multiplier: Some('m'),
            description: Description::Hash(chocolate_hash),
            expiry_secs: 3600,
        },
        Valid {
            // An unknown odd feature bit (99), which must be ignored.
            invoice: "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqqsgq2a25dxl5hrntdtn6zvydt7d66hyzsyhqs4wdynavys42xgl6sgx9c4g7me86a27t07mdtfry458rtjr0v92cnmswpsjscgt2vcse3sgpz3uapa",
            currency: Currency::Bitcoin,
            amount_msat: Some(2_500_000_000),
            multiplier: Some('m'),
            description: Description::Direct("coffee beans".into()),
            expiry_secs: 3600,
        },
        Valid {
            // The same, all uppercase.
            invoice: "LNBC25M1PVJLUEZPP5QQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQYPQDQ5VDHKVEN9V5SXYETPDEESSP5ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYGS9Q5SQQQQQQQQQQQQQQQQSGQ2A25DXL5HRNTDTN6ZVYDT7D66HYZSYHQS4WDYNAVYS42XGL6SGX9C4G7ME86A27T07MDTFRY458RTJR0V92CNMSWPSJSCGT2VCSE3SGPZ3UAPA",
            currency: Currency::Bitcoin,
            amount_msat: Some(2_500_000_000),
            multiplier: Some('m'),
            description: Description::Direct("coffee beans".into()),
            expiry_secs: 3600,
        },
        Valid {
            // p, h, s and n fields of the wrong length, which must be skipped.
            invoice: "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqqsgq2qrqqqfppnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqppnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqpp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqhpnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqhp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqspnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnpkqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqz599y53s3ujmcfjp5xrdap68qxymkqphwsexhmhr8wdz5usdzkzrse33chw6dlp3jhuhge9ley7j2ayx36kawe7kmgg8sv5ugdyusdcqzn8z9x",
            currency: Currency::Bitcoin,
            amount_msat: Some(2_500_000_000),
            multiplier: Some('m'),
            description: Description::Direct("coffee beans".into()),
            expiry_secs: 3600,
        },
    ];

    for vector in vectors {
        let Valid {
            invoice,
            currency,
            amount_msat,
            multiplier,
            description,
            expiry_secs,
        } = vector;
        let decoded = decode_ok(invoice);
        assert_eq!(decoded.currency, currency, "{invoice}");
        assert_eq!(decoded.amount_msat, amount_msat, "{invoice}");
        assert_eq!(decoded.multiplier, multiplier, "{invoice}");
        assert_eq!(decoded.description, description, "{invoice}");
        assert_eq!(decoded.expiry_secs, expiry_secs, "{invoice}");
        assert_eq!(decoded.timestamp, SPEC_TIMESTAMP, "{invoice}");
        assert_eq!(decoded.payment_hash, hex32(SPEC_PAYMENT_HASH), "{invoice}");
        assert_eq!(decoded.payment_secret, [0x11; 32], "{invoice}");
        assert_eq!(decoded.min_final_cltv_expiry_delta, 18, "{invoice}");
        assert_eq!(decoded.payee, payee, "{invoice}");
        assert_eq!(decoded.explicit_payee, None, "{invoice}");
        assert!(decoded.hrp.starts_with("ln"), "{invoice}");
        assert!(
            decoded.features.contains(&8) && decoded.features.contains(&14),
            "{invoice}: {:?}",
            decoded.features
        );
    }
}

#[test]
fn decoder_reads_sub_satoshi_amounts_expiry_cltv_and_an_explicit_payee_of_the_test_vectors() {
    let blockstream = decode_ok(
        "lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5gpc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhygrcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsxqyjw5qcqp2rzjq0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9q9qrsgqrvgkpnmps664wgkp43l22qsgdw4ve24aca4nymnxddlnp8vh9v2sdxlu5ywdxefsfvm0fq3sesf08uf6q9a2ke0hc9j6z6wlxg5z5kqpu2v9wz",
    );
    assert_eq!(blockstream.amount_msat, Some(967_878_534));
    assert_eq!(blockstream.multiplier, Some('p'));
    assert_eq!(blockstream.timestamp, 1_572_468_703);
    assert_eq!(
        blockstream.payment_hash,
        hex32("462264ede7e14047e9b249da94fefc47f41f7d02ee9b091815a5506bc8abf75f")
    );
    assert_eq!(blockstream.expiry_secs, 604_800);
    assert_eq!(blockstream.min_final_cltv_expiry_delta, 10);
    assert_eq!(
        blockstream.description,
        Description::Direct(
            "Blockstream Store: 88.85 USD for Blockstream Ledger Nano S x 1, \"Back In My Day\" \
             Sticker x 2, \"I Got Lightning Working\" Sticker x 2 and 1 more items"
                .into()
        )
    );
    assert_eq!(blockstream.payee.to_string(), SPEC_PAYEE);

    // With an `n` field (and an `m` payment-metadata field, skipped; feature 48 required).
    let with_n = decode_ok(
        "lnbc10m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdp9wpshjmt9de6zqmt9w3skgct5vysxjmnnd9jx2mq8q8a04uqnp4q0n326hr8v9zprg8gsvezcch06gfaqqhde2aj730yg0durunfhv66sp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q2gqqqqqqsgqy9gw6ymamd20jumvdgpfphkhp8fzhhdhycw36egcmla5vlrtrmhs9t7psfy3hkkdqzm9eq64fjg558znccds5nhsfmxveha5xe0dykgpspdha0",
    );
    assert_eq!(
        with_n.explicit_payee.map(|key| key.to_string()),
        Some(SPEC_PAYEE.to_owned())
    );
    assert_eq!(with_n.payee.to_string(), SPEC_PAYEE);
    assert_eq!(with_n.amount_msat, Some(1_000_000_000));
    assert_eq!(with_n.features, vec![8, 14, 48]);
}

#[test]
fn decoder_rejects_the_bolt11_invalid_test_vectors() {
    let is_bech32 = |err: &DecodeError| matches!(err, DecodeError::Bech32(_));
    let is_hrp = |err: &DecodeError| matches!(err, DecodeError::Hrp(_));
    let is_data = |err: &DecodeError| matches!(err, DecodeError::Data(_));
    let is_signature = |err: &DecodeError| matches!(err, DecodeError::Signature(_));
    type Check = fn(&DecodeError) -> bool;

    let vectors: [(&str, &str, Check); 8] = [
        (
            "bad bech32 checksum",
            "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt",
            is_bech32,
        ),
        (
            "no separator",
            "pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
            is_bech32,
        ),
        (
            "mixed case",
            "LNBC2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
            is_bech32,
        ),
        (
            "signature not recoverable",
            "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqwgt7mcn5yqw3yx0w94pswkpq6j9uh6xfqqqtsk4tnarugeektd4hg5975x9am52rz4qskukxdmjemg92vvqz8nvmsye63r5ykel43pgz7zq0g2",
            is_signature,
        ),
        (
            "too short for a signature",
            "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6na6hlh",
            is_data,
        ),
        (
            "unknown multiplier",
            "lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqrrzc4cvfue4zp3hggxp47ag7xnrlr8vgcmkjxk3j5jqethnumgkpqp23z9jclu3v0a7e0aruz366e9wqdykw6dxhdzcjjhldxq0w6wgqcnu43j",
            is_hrp,
        ),
        (
            "sub-millisatoshi amount",
            "lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgq0lzc236j96a95uv0m3umg28gclm5lqxtqqwk32uuk4k6673k6n5kfvx3d2h8s295fad45fdhmusm8sjudfhlf6dcsxmfvkeywmjdkxcp99202x",
            is_hrp,
        ),
        (
            "unknown even feature bit",
            "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q4psqqqqqqqqqqqqqqqqsgqtqyx5vggfcsll4wu246hz02kp85x4katwsk9639we5n5yngc3yhqkm35jnjw4len8vrnqnf5ejh0mzj9n3vz2px97evektfm2l6wqccp3y7372",
            is_data,
        ),
    ];

    for (why, invoice, expected) in vectors {
        match bolt11::decode(invoice) {
            Ok(decoded) => panic!("{why}: accepted {decoded:?}"),
            Err(err) => assert!(expected(&err), "{why}: rejected for another reason: {err}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The mock's invoices
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn regtest_requirements_invoice_is_accepted_by_an_independent_bolt11_decoder() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let requirements = requirements(&mock, 10_000, "Weather").await;
    let invoice = &requirements.extra.invoice;

    assert!(invoice.starts_with("lnbcrt"), "{invoice}");
    let decoded = decode_ok(invoice);
    assert_eq!(decoded.hrp, "lnbcrt100n");
    assert_eq!(decoded.currency, Currency::Regtest);
    assert_eq!(decoded.amount_msat, Some(10_000));
    assert_eq!(decoded.payment_hash.len(), 32);
    assert_eq!(decoded.description, Description::Direct("Weather".into()));
    assert_eq!(requirements.network, Network::Regtest);
    assert_matches_requirements(&decoded, &requirements, &mock, 10_000);
}

#[tokio::test]
async fn invoices_on_every_network_decode_to_the_exact_amount_with_every_multiplier() {
    // (msat, the amount part of the hrp: the shortest exact representation)
    let amounts = [
        (1, "10p"),
        (1_000, "10n"),
        (100_000, "1u"),
        (100_000_000, "1m"),
        (250_000, "2500n"),
        (5_000_000, "50u"),
        (1_234_567, "12345670p"),
        // Whole bitcoins: BOLT 11 says a writer SHOULD omit the multiplier ("1"), but
        // lightning-invoice always writes one; both are valid and decode to the same amount.
        (100_000_000_000, "1000m"),
    ];
    for network in Network::ALL {
        let mock = MockFacilitator::builder()
            .network(network)
            .start()
            .await
            .expect("mock starts");
        for (amount_msat, amount_part) in amounts {
            let description = format!("{amount_msat} msat on {network}");
            let requirements = requirements(&mock, amount_msat, &description).await;
            let invoice = &requirements.extra.invoice;
            let decoded = decode_ok(invoice);

            assert!(invoice.starts_with(network.bolt11_prefix()), "{invoice}");
            assert_eq!(
                decoded.hrp,
                format!("{}{amount_part}", network.bolt11_prefix()),
                "{invoice}"
            );
            assert_eq!(
                decoded.multiplier,
                amount_part.chars().last().filter(char::is_ascii_alphabetic)
            );
            assert_eq!(requirements.network, network);
            assert_eq!(decoded.description, Description::Direct(description));
            assert_matches_requirements(&decoded, &requirements, &mock, amount_msat);
        }
    }
}

#[tokio::test]
async fn description_over_639_bytes_becomes_its_sha256_in_an_h_field() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    for length in [640, 700, 4_000] {
        let description: String = "x402 ⚡ ".chars().cycle().take(length).collect();
        assert!(description.len() > 639);
        let requirements = requirements(&mock, 21_000, &description).await;
        let decoded = decode_ok(&requirements.extra.invoice);

        let expected = sha256::Hash::hash(description.as_bytes()).to_byte_array();
        assert_eq!(decoded.description, Description::Hash(expected), "{length}");
        assert_eq!(requirements.description, description);
        assert_matches_requirements(&decoded, &requirements, &mock, 21_000);
    }
}

#[tokio::test]
async fn description_of_639_bytes_is_carried_verbatim_in_an_invoice_past_1023_characters() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let description = "d".repeat(639);
    let requirements = requirements(&mock, 21_000, &description).await;
    let invoice = &requirements.extra.invoice;

    assert!(invoice.len() > 1023, "{} characters", invoice.len());
    let decoded = decode_ok(invoice);
    assert_eq!(decoded.description, Description::Direct(description));
    assert_matches_requirements(&decoded, &requirements, &mock, 21_000);
}

#[tokio::test]
async fn flipping_any_one_character_of_a_minted_invoice_breaks_its_checksum() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let invoice = requirements(&mock, 10_000, "Weather").await.extra.invoice;
    decode_ok(&invoice);

    let middle = invoice.len() / 2;
    let separator = invoice.rfind('1').expect("bech32 separator");
    assert!(
        middle > separator,
        "the middle is in the data part, which is swept"
    );
    const ALPHABET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    for position in separator + 1..invoice.len() {
        let original = invoice.as_bytes()[position];
        let replacement = ALPHABET.bytes().find(|&c| c != original).unwrap();
        let mut tampered = invoice.clone().into_bytes();
        tampered[position] = replacement;
        let tampered = String::from_utf8(tampered).unwrap();
        match bolt11::decode(&tampered) {
            Err(DecodeError::Bech32(_)) => {}
            other => panic!("character {position} changed, expected a checksum error: {other:?}"),
        }
    }

    // A bech32m checksum over the right data is not a BOLT 11 invoice either.
    let (hrp, words) = bolt11::split(&invoice).unwrap();
    let bech32m: String = {
        use bech32::{Fe32, Fe32IterExt as _, Hrp};
        let hrp = Hrp::parse(&hrp).unwrap();
        words
            .iter()
            .map(|&word| Fe32::try_from(word).unwrap())
            .with_checksum::<bech32::Bech32m>(&hrp)
            .chars()
            .collect()
    };
    assert!(matches!(
        bolt11::decode(&bech32m),
        Err(DecodeError::Bech32(_))
    ));
}

#[tokio::test]
async fn signature_binds_amount_network_and_data_so_a_rechecksummed_edit_changes_the_signer() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let requirements = requirements(&mock, 10_000, "Weather").await;
    let invoice = &requirements.extra.invoice;
    let (hrp, words) = bolt11::split(invoice).unwrap();
    assert_eq!(hrp, "lnbcrt100n");
    assert_eq!(&reencode(&hrp, &words), invoice, "re-encoding is faithful");

    let mut later = words.clone();
    later[6] ^= 1; // the timestamp's last word
    let edits = [
        ("amount 10 sat → 20 sat", reencode("lnbcrt200n", &words)),
        ("amount removed", reencode("lnbcrt", &words)),
        ("network regtest → mainnet", reencode("lnbc100n", &words)),
        ("timestamp + 1 s", reencode(&hrp, &later)),
    ];
    for (edit, edited) in edits {
        // The checksum is valid again, so only the signature can tell.
        bolt11::split(&edited).expect("fresh checksum");
        match bolt11::decode(&edited) {
            Ok(decoded) => {
                assert_ne!(
                    decoded.payee.serialize().to_lower_hex_string(),
                    requirements.pay_to,
                    "{edit}: the old signature still names the payee"
                );
                assert_ne!(
                    decoded.payee.to_string(),
                    mock.pay_to().to_string(),
                    "{edit}"
                );
            }
            Err(err) => assert!(matches!(err, DecodeError::Signature(_)), "{edit}: {err}"),
        }
    }
}

#[tokio::test]
async fn independent_decoder_notices_the_mocks_deliberately_wrong_invoices() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let facilitator = HttpFacilitator::new(mock.url()).expect("facilitator client");
    let ask = request(Network::Regtest, 10_000, "Weather");

    mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Invoice(InvoiceFault::WrongPayee),
    );
    let wrong_payee = facilitator.requirements(&ask).await.unwrap();
    let decoded = decode_ok(&wrong_payee.extra.invoice);
    assert_ne!(decoded.payee.to_string(), wrong_payee.pay_to);

    mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Invoice(InvoiceFault::WrongAmount),
    );
    let wrong_amount = facilitator.requirements(&ask).await.unwrap();
    let decoded = decode_ok(&wrong_amount.extra.invoice);
    assert_ne!(decoded.amount_msat, Some(wrong_amount.max_amount_required));

    mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Invoice(InvoiceFault::WrongNetwork),
    );
    let wrong_network = facilitator.requirements(&ask).await.unwrap();
    let decoded = decode_ok(&wrong_network.extra.invoice);
    assert_ne!(decoded.currency, currency_of(wrong_network.network));

    mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Invoice(InvoiceFault::Expired),
    );
    let expired = facilitator.requirements(&ask).await.unwrap();
    let decoded = decode_ok(&expired.extra.invoice);
    assert!(decoded.timestamp + decoded.expiry_secs < unix_now());
}

#[tokio::test]
async fn independent_decoder_agrees_with_lightning_invoice_on_minted_invoices() {
    let cases = [
        (Network::Regtest, 10_000, "Weather"),
        (Network::Regtest, 1, "one millisatoshi"),
        (Network::Bitcoin, 5_000_000, "Batch AI inference request"),
        (Network::Testnet, 250_000, ""),
        (Network::Signet, 123_456_789, "ナンセンス 1杯"),
    ];
    for (network, amount_msat, description) in cases {
        let mock = MockFacilitator::builder()
            .network(network)
            .start()
            .await
            .expect("mock starts");
        let invoice = requirements(&mock, amount_msat, description)
            .await
            .extra
            .invoice;
        let ours = decode_ok(&invoice);
        let theirs = invoice
            .parse::<lightning_invoice::Bolt11Invoice>()
            .expect("lightning-invoice parses it");

        assert_eq!(ours.payment_hash, theirs.payment_hash().to_byte_array());
        assert_eq!(ours.payment_secret, theirs.payment_secret().0);
        assert_eq!(ours.amount_msat, theirs.amount_milli_satoshis());
        assert_eq!(ours.payee, theirs.get_payee_pub_key());
        assert_eq!(ours.timestamp, theirs.duration_since_epoch().as_secs());
        assert_eq!(ours.expiry_secs, theirs.expiry_time().as_secs());
        assert_eq!(
            ours.min_final_cltv_expiry_delta,
            theirs.min_final_cltv_expiry_delta()
        );
        assert_eq!(
            Some(currency_of(network)),
            Network::from_currency(&theirs.currency()).map(currency_of)
        );
        assert_eq!(ours.currency, currency_of(network));
        assert_eq!(ours.description, Description::Direct(description.into()));
    }
}
