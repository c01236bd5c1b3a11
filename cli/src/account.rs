//! `deposit`, `balance` and `withdraw`: the seed flow's account at the facilitator service
//! (`PROTOCOL.md` Part 3).

use x402_lightning::client::AccountError;
use x402_lightning::client::budget::default_max_fee_msat;
use x402_lightning::client::wallet::PaymentOutcome;
use x402_lightning::v1::AccountKey;
use x402_lightning::v1::accounts::{DepositState, WithdrawalState};

use crate::amount::show_msat;
use crate::args::{BalanceArgs, DepositArgs, WalletKind, WithdrawArgs};
use crate::exit;
use crate::progress::Spinner;
use crate::wallets;
use crate::{Failure, terminal_safe};

/// An account call's failure: a refusal is a payment failure (4), the rest a server error (5).
fn account_failure(err: AccountError) -> Failure {
    let code = match err {
        AccountError::Refused { status, .. } if (400..500).contains(&status) => exit::PAYMENT,
        AccountError::Url(_) => exit::USAGE,
        _ => exit::SERVER,
    };
    Failure::new(code, err.to_string())
}

pub async fn deposit(args: DepositArgs) -> Result<(), Failure> {
    let account = wallets::account(&args.at.account)?;
    let wallet = match args.wallet.wallet {
        Some(WalletKind::None) => None,
        _ => Some(wallets::lightning_wallet(&args.wallet)?),
    };
    let deposit = account
        .deposit(&args.at.network, args.amount_msat)
        .await
        .map_err(account_failure)?;
    eprintln!(
        "x402-lightning: deposit of {} to account {} on {}",
        show_msat(deposit.amount),
        terminal_safe(&deposit.account),
        terminal_safe(&deposit.network)
    );
    eprintln!("  payment hash: {}", terminal_safe(&deposit.payment_hash));
    let Some(wallet) = wallet else {
        eprintln!("  pay this invoice before {} (unix):", deposit.expires_at);
        println!("{}", terminal_safe(&deposit.invoice));
        return Ok(());
    };
    let max_fee_msat = args
        .max_fee_msat
        .unwrap_or_else(|| default_max_fee_msat(deposit.amount));
    let spinner = Spinner::new();
    spinner.start(format!(
        "paying the deposit invoice ({})…",
        show_msat(deposit.amount)
    ));
    let outcome = wallet.pay(&deposit.invoice, max_fee_msat).await;
    spinner.stop();
    match outcome {
        Ok(PaymentOutcome::Paid { fee_msat, .. }) => {
            eprintln!("  paid (+{fee_msat} msat fee)");
        }
        Ok(PaymentOutcome::Failed { reason }) => {
            return Err(Failure::new(
                exit::PAYMENT,
                format!("the deposit payment failed: {reason}"),
            ));
        }
        Ok(PaymentOutcome::InFlight) => {
            return Err(Failure::new(
                exit::PAYMENT,
                "the deposit payment is in flight: not paid again; `x402-lightning balance` shows it once credited",
            ));
        }
        Err(err) => {
            return Err(Failure::new(
                exit::PAYMENT,
                format!(
                    "the wallet failed; the deposit's outcome is unknown, not paid again: {err}"
                ),
            ));
        }
    }
    let status = account
        .deposit_status(&deposit.payment_hash)
        .await
        .map_err(account_failure)?;
    let state = match status.state {
        DepositState::Pending => "pending (the facilitator has not seen the payment yet)",
        DepositState::Credited => "credited",
        DepositState::Expired => "expired",
    };
    eprintln!("  deposit:      {state}");
    println!(
        "{}",
        serde_json::json!({
            "paymentHash": status.payment_hash,
            "state": status.state,
            "amount": status.amount.to_string(),
        })
    );
    Ok(())
}

pub async fn balance(args: BalanceArgs) -> Result<(), Failure> {
    let account = wallets::account(&args.at.account)?;
    let balance = account
        .balance(&args.at.network)
        .await
        .map_err(account_failure)?;
    eprintln!(
        "x402-lightning: account {} on {}: {} available ({} held)",
        terminal_safe(&balance.account),
        terminal_safe(&balance.network),
        show_msat(balance.available),
        show_msat(balance.held)
    );
    println!(
        "{}",
        serde_json::to_string(&balance)
            .map_err(|err| Failure::new(exit::OTHER, err.to_string()))?
    );
    Ok(())
}

pub async fn withdraw(args: WithdrawArgs) -> Result<(), Failure> {
    let account = wallets::account(&args.at.account)?;
    let spinner = Spinner::new();
    spinner.start("withdrawing…".into());
    let result = account
        .withdraw(&args.at.network, &args.invoice, args.max_fee_msat)
        .await;
    spinner.stop();
    let withdrawal = result.map_err(account_failure)?;
    println!(
        "{}",
        serde_json::to_string(&withdrawal)
            .map_err(|err| Failure::new(exit::OTHER, err.to_string()))?
    );
    match withdrawal.state {
        WithdrawalState::Succeeded => {
            eprintln!(
                "x402-lightning: withdrew {} + {} msat fee",
                show_msat(withdrawal.amount),
                withdrawal.fee_msat
            );
            Ok(())
        }
        WithdrawalState::Pending => Err(Failure::new(
            exit::PAYMENT,
            format!(
                "the withdrawal {} is in flight: not paid again; the facilitator resolves it",
                withdrawal.payment_hash
            ),
        )),
        WithdrawalState::Failed => Err(Failure::new(
            exit::PAYMENT,
            format!(
                "the withdrawal failed (nothing debited): {}",
                withdrawal.reason.as_deref().unwrap_or("no reason given")
            ),
        )),
    }
}

/// `new-key`: a fresh secret from the operating system's randomness.
pub fn new_key() -> Result<(), Failure> {
    use rand::RngCore as _;
    loop {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let hex: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
        // A 32-byte string is a valid secp256k1 secret but for about 1 in 2^128 of them.
        if let Ok(key) = AccountKey::from_secret_hex(&hex) {
            eprintln!(
                "x402-lightning: a new account key; its account is {}",
                key.account()
            );
            println!("{hex}");
            return Ok(());
        }
    }
}
