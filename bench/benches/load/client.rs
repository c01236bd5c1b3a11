//! The load generator: a fixed number of keep-alive HTTP/1.1 connections, each sending one
//! request at a time, until a deadline or until a fixed set of requests is used up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one round sends.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub method: Method,
    pub path: &'static str,
    /// The status every answer must have.
    pub expect: StatusCode,
    /// How the round ends.
    pub budget: Budget,
    /// One value of this header per request (each used once), e.g. distinct payments.
    pub per_request: Option<(HeaderName, Arc<Vec<HeaderValue>>)>,
}

/// How a round ends.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// After this long (requests in flight at the deadline still complete).
    Time(Duration),
    /// After this many requests (the length of `per_request` when it is shorter).
    Count(usize),
}

/// What one round measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every answered request in nanoseconds, in the order each connection got
    /// them (with one connection: the order requests were sent).
    pub latencies: Vec<u64>,
    /// Answers with another status than expected, and failed connections or requests.
    pub failures: usize,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn requests(&self) -> usize {
        self.latencies.len()
    }

    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        quantile(&sorted, q) / 1e3
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank).
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// Runs `plan` over `connections` connections.
pub async fn run(plan: &Plan, connections: usize) -> Outcome {
    let plan = Arc::new(plan.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(Arc::clone(&plan), Arc::clone(&next), start)))
        .collect();
    let mut outcome = Outcome::default();
    for worker in workers {
        match worker.await {
            Ok(part) => {
                outcome.latencies.extend(part.latencies);
                outcome.failures += part.failures;
                outcome.first_failure = outcome.first_failure.or(part.first_failure);
            }
            Err(err) => {
                outcome.failures += 1;
                outcome
                    .first_failure
                    .get_or_insert(format!("worker panicked: {err}"));
            }
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

/// One connection's share of a round.
async fn connection(plan: Arc<Plan>, next: Arc<AtomicUsize>, start: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let fail = |outcome: &mut Outcome, why: String| {
        outcome.failures += 1;
        outcome.first_failure.get_or_insert(why);
    };
    let mut sender = match connect(plan.addr).await {
        Ok(sender) => sender,
        Err(err) => {
            fail(&mut outcome, format!("connect: {err}"));
            return outcome;
        }
    };
    let host = HeaderValue::from_str(&plan.addr.to_string()).ok();
    loop {
        let index = match plan.budget {
            Budget::Time(limit) if start.elapsed() >= limit => break,
            Budget::Time(_) => next.fetch_add(1, Ordering::Relaxed),
            Budget::Count(count) => {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                index
            }
        };
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.method_mut() = plan.method.clone();
        *request.uri_mut() = http::Uri::from_static(plan.path);
        if let Some(host) = &host {
            request.headers_mut().insert(HOST, host.clone());
        }
        if let Some((name, values)) = &plan.per_request {
            let Some(value) = values.get(index) else {
                break;
            };
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let sent = Instant::now();
        if let Err(err) = sender.ready().await {
            fail(&mut outcome, format!("connection closed: {err}"));
            break;
        }
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(err) => {
                fail(&mut outcome, format!("request: {err}"));
                break;
            }
        };
        let status = response.status();
        if let Err(err) = response.into_body().collect().await {
            fail(&mut outcome, format!("body: {err}"));
            break;
        }
        outcome.latencies.push(sent.elapsed().as_nanos() as u64);
        if status != plan.expect {
            fail(
                &mut outcome,
                format!("{} {}: {status}", plan.method, plan.path),
            );
        }
    }
    outcome
}

async fn connect(
    addr: SocketAddr,
) -> Result<http1::SendRequest<Empty<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
