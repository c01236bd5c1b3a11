//! The exit codes, as `--help` documents them.

use std::process::ExitCode;

/// Paid and served (or nothing to pay), the command done.
pub const OK: u8 = 0;
/// Anything else: a bad file, an unreadable configuration.
pub const OTHER: u8 = 1;
/// A usage error (clap's own).
pub const USAGE: u8 = 2;
/// Refused by the budget (`--max-cost`, `--allow-origin`): nothing was paid.
pub const BUDGET: u8 = 3;
/// The payment failed, or was not made: an offer the client refuses (bad binding, payee,
/// amount, expiry, network), a wallet that failed, a payment in flight or of unknown outcome, a
/// proof the server refused, a 402 with no `--wallet` to pay it, a deposit, withdrawal or
/// account read refused.
pub const PAYMENT: u8 = 4;
/// The server failed: unreachable, a final answer of 400 or above, or a paid request that never
/// arrived (its proof is printed to send again).
pub const SERVER: u8 = 5;

/// The help text's table.
pub const TABLE: &str = "exit codes: 0 paid and served (or nothing to pay); 1 other error (a \
file that cannot be read or written); 2 usage; 3 refused by the budget (nothing paid); 4 payment \
failed or refused (an offer refused, a wallet failure, a payment in flight, a proof refused, a \
402 with no --wallet to pay it, a deposit, withdrawal or account read refused); 5 server error \
(unreachable, an answer >= 400, or a paid request that never arrived: its proof is printed)";

/// An exit code as a process exit code.
pub fn code(code: u8) -> ExitCode {
    ExitCode::from(code)
}
