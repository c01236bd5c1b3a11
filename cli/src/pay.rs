//! `x402-lightning pay URL`: curl's habits, a payment within the budget on a 402.

use std::path::Path;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, Request, Response};
use tokio::io::AsyncWriteExt as _;
use x402_lightning::client::{Offer, PayError, PayEvent, Payer, Quote, Receipt};

use crate::amount::show_msat;
use crate::args::PayArgs;
use crate::exit;
use crate::progress::Spinner;
use crate::wallets;
use crate::{Failure, terminal_safe};

pub async fn run(args: PayArgs) -> Result<(), Failure> {
    let spinner = Spinner::new();
    let verbose = args.verbose;
    // curl's habit, and a proof never follows a redirect to another URL (`-L` is not offered).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| Failure::new(exit::OTHER, format!("no HTTP client: {err}")))?;
    let request = build_request(&http, &args).await?;
    // Where the body goes, opened before anything is paid: a payment never buys a body that
    // cannot be written.
    let mut out = output(&args).await?;
    if verbose {
        eprintln!("> {} {}", request.method(), request.url());
        for (name, value) in request.headers() {
            eprintln!("> {name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
    }
    let payer = if args.wallet.wallet.is_none() && !args.dry_run {
        // No wallet: fetch as curl would, and say so if the server asks for payment.
        None
    } else {
        let payer = wallets::payer(&args.wallet, &args.account, &args.budget)?
            .on_event(observer(spinner.clone(), verbose))
            .build()
            .map_err(|err| Failure::new(exit::USAGE, err.to_string()))?;
        Some(payer)
    };
    let Some(payer) = payer else {
        let response = http.execute(request).await.map_err(|err| {
            Failure::new(exit::SERVER, format!("the request failed: {}", chain(&err)))
        })?;
        if response.status() == reqwest::StatusCode::PAYMENT_REQUIRED {
            return Err(Failure::new(
                exit::PAYMENT,
                "the server asks for payment (402): choose what pays with --wallet lnd, nwc, sim \
                 or account (nothing was paid)",
            ));
        }
        return finish(response, &args, &mut out).await;
    };
    if args.dry_run {
        return dry_run(&payer, &http, request).await;
    }
    let result = payer.client(http).execute(request).await;
    spinner.stop();
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            return Err(match PayError::from_middleware(&err) {
                Some(err) => pay_failure(err),
                None => Failure::new(exit::SERVER, format!("the request failed: {}", chain(&err))),
            });
        }
    };
    if let Some(receipt) = response.extensions().get::<Receipt>() {
        show_receipt(receipt, true);
    }
    finish(response, &args, &mut out).await
}

/// The payer's progress: the spinner while paying, the offer with `-v`, the tries again.
fn observer(spinner: Spinner, verbose: bool) -> impl Fn(&PayEvent<'_>) + Send + Sync + 'static {
    move |event| match event {
        PayEvent::Paying {
            offer,
            max_fee_msat,
        } => {
            if verbose {
                show_offer(offer, *max_fee_msat);
            }
            let amount = show_msat(offer.amount_msat);
            spinner.start(format!("paying {amount} ({})…", offer.flow));
        }
        PayEvent::Paid { .. } => spinner.stop(),
        PayEvent::Delivering { attempt } if *attempt > 1 => {
            eprintln!(
                "x402-lightning: sending the paid request again with the same proof \
                 (try {attempt})"
            );
        }
        _ => {}
    }
}

/// Writes the response out; an answer of 400 or above is a server error (after its body is
/// written, as curl's `--fail-with-body` does).
async fn finish(response: Response, args: &PayArgs, out: &mut Output) -> Result<(), Failure> {
    let status = response.status();
    if args.verbose {
        eprintln!("< {status}");
    }
    write_response(response, args, out).await?;
    if status.as_u16() >= 400 {
        return Err(Failure::new(
            exit::SERVER,
            format!("the server answered {status}"),
        ));
    }
    Ok(())
}

/// An error and its sources, joined: reqwest's own message rarely says why.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The request the options describe.
async fn build_request(http: &reqwest::Client, args: &PayArgs) -> Result<Request, Failure> {
    let usage = |message: String| Failure::new(exit::USAGE, message);
    let body = match (&args.data, &args.data_binary) {
        (Some(data), _) => Some(read_data(data, true).await?),
        (None, Some(data)) => Some(read_data(data, false).await?),
        (None, None) => None,
    };
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.as_bytes())
            .map_err(|_| usage(format!("-X: not a method: {method:?}")))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    // curl's habit: a URL without a scheme is http.
    let url = if args.url.contains("://") {
        args.url.clone()
    } else {
        format!("http://{}", args.url)
    };
    let mut builder = http.request(method, &url);
    let mut has_content_type = false;
    for line in &args.headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| usage(format!("-H: expected `Name: value`, got {line:?}")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| usage(format!("-H: not a header name: {name:?}")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| usage(format!("-H: not a header value for {name}")))?;
        has_content_type |= name == CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    if let Some(body) = body {
        if !has_content_type {
            // curl's default for -d and --data-binary.
            builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        builder = builder.body(body);
    }
    builder
        .build()
        .map_err(|err| usage(format!("not a request: {err}")))
}

/// `-d`/`--data-binary` data: `@FILE`, `@-` (stdin), or the text itself. `-d` drops carriage
/// returns and newlines from a file, as curl does.
async fn read_data(data: &str, strip_newlines: bool) -> Result<Vec<u8>, Failure> {
    let Some(path) = data.strip_prefix('@') else {
        return Ok(data.as_bytes().to_vec());
    };
    let bytes = if path == "-" {
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut bytes)
            .await
            .map_err(|err| Failure::new(exit::OTHER, format!("cannot read stdin: {err}")))?;
        bytes
    } else {
        tokio::fs::read(path)
            .await
            .map_err(|err| Failure::new(exit::OTHER, format!("cannot read {path}: {err}")))?
    };
    Ok(if strip_newlines {
        bytes
            .into_iter()
            .filter(|byte| !matches!(byte, b'\r' | b'\n'))
            .collect()
    } else {
        bytes
    })
}

/// `--dry-run`: the offer the payer would pay, and nothing paid.
async fn dry_run(payer: &Payer, http: &reqwest::Client, request: Request) -> Result<(), Failure> {
    let probe = request
        .try_clone()
        .ok_or_else(|| Failure::new(exit::OTHER, "the request cannot be sent twice"))?;
    let response = http.execute(probe).await.map_err(|err| {
        Failure::new(exit::SERVER, format!("the request failed: {}", chain(&err)))
    })?;
    if response.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
        eprintln!(
            "x402-lightning: nothing to pay: {} answered {} without a 402",
            request.url(),
            response.status()
        );
        return Ok(());
    }
    let Quote {
        offer,
        max_fee_msat,
    } = payer
        .quote(&request, response)
        .await
        .map_err(|err| pay_failure(&err))?;
    show_offer(&offer, max_fee_msat);
    eprintln!(
        "x402-lightning: dry run: would pay {} (+ up to {} of routing fees); nothing paid",
        show_msat(offer.amount_msat),
        show_msat(max_fee_msat)
    );
    Ok(())
}

/// The offer, on stderr.
fn show_offer(offer: &Offer, max_fee_msat: u64) {
    eprintln!("x402-lightning: offer ({} flow)", offer.flow);
    eprintln!("  resource:     {}", terminal_safe(&offer.resource));
    if let Some(description) = &offer.description {
        eprintln!("  description:  {}", terminal_safe(description));
    }
    eprintln!("  network:      {}", terminal_safe(&offer.network));
    eprintln!(
        "  amount:       {} ({} msat)",
        show_msat(offer.amount_msat),
        offer.amount_msat
    );
    eprintln!("  fee cap:      {max_fee_msat} msat");
    eprintln!("  payee:        {}", terminal_safe(&offer.pay_to));
    eprintln!("  payment hash: {}", offer.payment_hash_hex());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_secs());
    eprintln!("  expires in:   {} s", offer.expires_at.saturating_sub(now));
    eprintln!("  invoice:      {}", terminal_safe(&offer.invoice));
}

/// The receipt, on stderr.
/// The receipt, on stderr: `served` after a paid answer; otherwise the proof was sent and
/// refused or lost, and whether money moved is not known here.
fn show_receipt(receipt: &Receipt, served: bool) {
    let what = if served { "paid" } else { "sent a proof for" };
    eprintln!(
        "x402-lightning: {what} {} + {} msat fee ({} flow, {})",
        show_msat(receipt.amount_msat),
        receipt.fee_msat,
        receipt.flow,
        terminal_safe(&receipt.network)
    );
    eprintln!("  payment hash: {}", receipt.payment_hash);
    match &receipt.settlement {
        Some(settled) if settled.success => {
            let payer = settled
                .payer
                .as_deref()
                .map(|payer| format!(", payer {}", terminal_safe(payer)))
                .unwrap_or_default();
            eprintln!(
                "  settled:      transaction {} on {}{payer}",
                terminal_safe(&settled.transaction),
                terminal_safe(&settled.network)
            );
        }
        Some(settled) => eprintln!(
            "  not settled:  {}",
            terminal_safe(settled.error_reason.as_deref().unwrap_or("no reason given"))
        ),
        None => eprintln!("  settled:      the server sent no settlement header"),
    }
}

/// A payment error as an exit code and message.
fn pay_failure(err: &PayError) -> Failure {
    let code = match err {
        PayError::Budget(_) => exit::BUDGET,
        PayError::Undelivered { .. } => exit::SERVER,
        PayError::BodyNotReplayable => exit::OTHER,
        _ => exit::PAYMENT,
    };
    if let Some(receipt) = err.receipt() {
        show_receipt(receipt, false);
    }
    let mut message = err.to_string();
    if let PayError::Undelivered { proof, .. } = err {
        message.push_str(&format!(
            "\n  resend the same request with this header to get what was paid for:\n  -H '{}: {}'",
            proof.header, proof.value
        ));
    }
    if !err.may_have_paid() {
        message.push_str(" (nothing was paid)");
    }
    Failure::new(code, message)
}

/// Where the body goes: stdout, or the file of `-o`.
type Output = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// Opens `-o FILE` (created now), or stdout.
async fn output(args: &PayArgs) -> Result<Output, Failure> {
    Ok(match &args.output {
        Some(path) if path != Path::new("-") => {
            Box::new(tokio::fs::File::create(path).await.map_err(|err| {
                Failure::new(
                    exit::OTHER,
                    format!("cannot create {}: {err} (nothing was paid)", path.display()),
                )
            })?)
        }
        _ => Box::new(tokio::io::stdout()),
    })
}

/// The body (with the status line and headers for `-i`) to `out`.
async fn write_response(
    mut response: Response,
    args: &PayArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let mut head = Vec::new();
    if args.include {
        head.extend_from_slice(
            format!("{:?} {}\r\n", response.version(), response.status()).as_bytes(),
        );
        for (name, value) in response.headers() {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
    }
    let failed =
        |err: std::io::Error| Failure::new(exit::OTHER, format!("cannot write the body: {err}"));
    out.write_all(&head).await.map_err(failed)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| Failure::new(exit::SERVER, format!("the body was cut short: {err}")))?
    {
        out.write_all(&chunk).await.map_err(failed)?;
    }
    out.flush().await.map_err(failed)?;
    Ok(())
}
