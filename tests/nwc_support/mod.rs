//! A local Nostr relay and a NIP-47 wallet service simulator for `tests/client_nwc.rs`.
//!
//! The relay is rust-nostr's `nostr-relay-builder` on 127.0.0.1 (a random port). The wallet
//! service is a Nostr client on that relay holding the service's key: it takes kind-23194
//! requests addressed to it (`#p`), decrypts them (NIP-04, what `nwc` 0.44 sends), and answers
//! kind-23195 responses tagged with the client's key and the request's id. It pays for real by
//! calling the mock facilitator's `POST /pay`, so the preimage it answers is the invoice's.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr_relay_builder::MockRelay;
use nwc::nostr::nips::nip04;
use nwc::nostr::nips::nip47::{Request, RequestParams};
use nwc::nostr::{Event, EventBuilder, JsonUtil as _, Keys, Kind, RelayMessage, Tag, Timestamp};
// `nwc` re-exports the relay pool it is built on; the simulator uses the same one.
use nwc::prelude::{RelayOptions, RelayPool, RelayPoolNotification, SubscribeOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The routing fee the simulated wallet service reports for a payment, in msat.
pub const FEE_MSAT: u64 = 1_234;

/// How long the helpers wait for the relay or the simulator before failing a test.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// How the simulated wallet service answers `pay_invoice`.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Pays through the mock's `POST /pay` and answers its preimage and [`FEE_MSAT`].
    Pay,
    /// Pays nothing and answers this NIP-47 error code.
    Refuse(&'static str),
    /// Takes the request and never answers.
    Silent,
    /// Pays nothing and answers a preimage that does not hash to the payment hash.
    WrongPreimage,
}

/// A relay on 127.0.0.1, running until dropped.
pub struct LocalRelay {
    relay: MockRelay,
    /// Its `ws://127.0.0.1:<port>` URL.
    pub url: String,
}

impl LocalRelay {
    pub async fn start() -> Self {
        let relay = MockRelay::run().await.expect("the local relay starts");
        let url = relay.url().await.to_string();
        Self { relay, url }
    }
}

/// A payment the simulator made, for `lookup_invoice`.
#[derive(Clone, Debug)]
struct Paid {
    invoice: String,
    preimage: String,
    amount_msat: u64,
}

/// The simulated wallet service: answers NIP-47 requests on one relay until dropped.
pub struct WalletService {
    /// The connection URI a client uses (the client's secret included).
    pub uri: String,
    /// The method of every request it decrypted, in order of arrival.
    requests: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<()>,
    pool: RelayPool,
}

impl WalletService {
    /// Starts a service on `relay_url` that pays through `pay_url` (the mock's `/pay`). Returns
    /// once its subscription is live (the relay sent EOSE), so no request can be missed.
    pub async fn start(relay_url: &str, pay_url: String, mode: Mode) -> Self {
        let service = Keys::generate();
        let client = Keys::generate();
        let uri = format!(
            "nostr+walletconnect://{}?relay={}&secret={}",
            service.public_key().to_hex(),
            relay_url,
            client.secret_key().to_secret_hex(),
        );

        let pool = RelayPool::default();
        pool.add_relay(relay_url, RelayOptions::default())
            .await
            .expect("the relay is added");
        pool.connect().await;
        let mut notifications = pool.notifications();
        let filter = nwc::nostr::Filter::new()
            .kind(Kind::WalletConnectRequest)
            .pubkey(service.public_key())
            .since(Timestamp::now());
        let subscription = pool
            .subscribe(filter, SubscribeOptions::default())
            .await
            .expect("the service subscribes")
            .val;
        tokio::time::timeout(SETUP_TIMEOUT, async {
            loop {
                if let Ok(RelayPoolNotification::Message {
                    message: RelayMessage::EndOfStoredEvents(id),
                    ..
                }) = notifications.recv().await
                {
                    if *id == subscription {
                        break;
                    }
                }
            }
        })
        .await
        .expect("the relay ends the stored events of the service's subscription");

        let (seen, requests) = mpsc::unbounded_channel();
        let answering = Answering {
            keys: service,
            pool: pool.clone(),
            pay_url,
            http: reqwest::Client::new(),
            mode,
            paid: Arc::new(Mutex::new(HashMap::new())),
            seen,
        };
        let task = tokio::spawn(async move {
            while let Ok(notification) = notifications.recv().await {
                if let RelayPoolNotification::Event { event, .. } = notification {
                    answering.answer(&event).await;
                }
            }
        });
        Self {
            uri,
            requests,
            task,
            pool,
        }
    }

    /// Waits for the next request the service decrypted and returns its method
    /// (`pay_invoice`), failing the test after a few seconds.
    pub async fn next_request(&mut self) -> String {
        tokio::time::timeout(SETUP_TIMEOUT, self.requests.recv())
            .await
            .expect("a request reaches the wallet service")
            .expect("the wallet service is running")
    }
}

impl Drop for WalletService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Answering {
    keys: Keys,
    pool: RelayPool,
    pay_url: String,
    http: reqwest::Client,
    mode: Mode,
    /// Payment hash (hex) -> the payment.
    paid: Arc<Mutex<HashMap<String, Paid>>>,
    seen: mpsc::UnboundedSender<String>,
}

impl Answering {
    async fn answer(&self, request: &Event) {
        if request.kind != Kind::WalletConnectRequest {
            return;
        }
        let plain = nip04::decrypt(self.keys.secret_key(), &request.pubkey, &request.content)
            .expect("the request decrypts with NIP-04");
        let parsed = Request::from_json(&plain).expect("a NIP-47 request");
        let method = json!(parsed.method).as_str().unwrap_or_default().to_owned();
        let _ = self.seen.send(method.clone());

        let response = match parsed.params {
            RequestParams::PayInvoice(pay) => self.pay(&pay.invoice).await,
            RequestParams::LookupInvoice(lookup) => {
                self.lookup(lookup.payment_hash.as_deref().unwrap_or_default())
            }
            _ => Some(error(
                &method,
                "NOT_IMPLEMENTED",
                "the simulator answers pay and lookup only",
            )),
        };
        let Some(response) = response else {
            return;
        };
        let content = nip04::encrypt(
            self.keys.secret_key(),
            &request.pubkey,
            response.to_string(),
        )
        .expect("the response encrypts");
        let event = EventBuilder::new(Kind::WalletConnectResponse, content)
            .tags([Tag::public_key(request.pubkey), Tag::event(request.id)])
            .sign_with_keys(&self.keys)
            .expect("the response signs");
        self.pool
            .send_event(&event)
            .await
            .expect("the relay takes the response");
    }

    /// The `pay_invoice` answer, `None` for silence.
    async fn pay(&self, invoice: &str) -> Option<Value> {
        match &self.mode {
            Mode::Silent => None,
            Mode::Refuse(code) => Some(error("pay_invoice", code, "the simulator refuses")),
            Mode::WrongPreimage => Some(json!({
                "result_type": "pay_invoice",
                "result": { "preimage": "00".repeat(32), "fees_paid": FEE_MSAT },
            })),
            Mode::Pay => {
                let reply: Value = self
                    .http
                    .post(&self.pay_url)
                    .json(&json!({ "invoice": invoice }))
                    .send()
                    .await
                    .expect("the mock's /pay answers")
                    .json()
                    .await
                    .expect("the mock's /pay answers JSON");
                let (Some(preimage), Some(payment_hash), Some(amount)) = (
                    reply["preimage"].as_str(),
                    reply["paymentHash"].as_str(),
                    reply["amountMsat"].as_str(),
                ) else {
                    return Some(error(
                        "pay_invoice",
                        "PAYMENT_FAILED",
                        "the mock did not pay",
                    ));
                };
                let paid = Paid {
                    invoice: invoice.to_owned(),
                    preimage: preimage.to_owned(),
                    amount_msat: amount.parse().expect("an amount in msat"),
                };
                self.paid
                    .lock()
                    .expect("the book of payments")
                    .insert(payment_hash.to_owned(), paid);
                Some(json!({
                    "result_type": "pay_invoice",
                    "result": { "preimage": preimage, "fees_paid": FEE_MSAT },
                }))
            }
        }
    }

    /// The `lookup_invoice` answer for a payment hash: the payment made, or `NOT_FOUND`.
    fn lookup(&self, payment_hash: &str) -> Option<Value> {
        let paid = self
            .paid
            .lock()
            .expect("the book of payments")
            .get(payment_hash)
            .cloned();
        let now = Timestamp::now().as_secs();
        Some(match paid {
            None => error("lookup_invoice", "NOT_FOUND", "no payment with this hash"),
            Some(paid) => json!({
                "result_type": "lookup_invoice",
                "result": {
                    "type": "outgoing",
                    "state": "settled",
                    "invoice": paid.invoice,
                    "preimage": paid.preimage,
                    "payment_hash": payment_hash,
                    "amount": paid.amount_msat,
                    "fees_paid": FEE_MSAT,
                    "created_at": now,
                    "settled_at": now,
                },
            }),
        })
    }
}

/// A NIP-47 error response to `method`.
fn error(method: &str, code: &str, message: &str) -> Value {
    json!({
        "result_type": method,
        "error": { "code": code, "message": message },
    })
}
