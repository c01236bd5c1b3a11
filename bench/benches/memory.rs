//! Memory of the layer's bounded record of settled invoices (`SettledMemory`, stored as
//! `SettledInvoices` in `src/layer/guard.rs`), driven directly, not over HTTP.
//!
//! For the layer's default capacity (100,000) and for 1,000,000, it remembers 1,000,000
//! distinct payment hashes and reports, at checkpoints, how many are remembered, the growth of
//! the process's resident memory (`VmRSS`) and the bytes per remembered invoice. It checks that
//! exactly `min(capacity, inserted)` hashes are remembered, that they are the newest ones, and
//! that the memory stays bounded once full. It exits non-zero when a check fails.
//!
//! What to expect: the record is a `HashSet` (32-byte key + 1 control byte per bucket, buckets
//! a power of two at most 7/8 full) beside a `VecDeque` of the same hashes (32 bytes per slot,
//! a power of two). With capacity 100,000 the set has 131,072 buckets when it first fills up;
//! forgetting leaves tombstones, and at that load (76 %) hashbrown clears them by growing once
//! to 262,144 buckets (about 150,000 inserts in), while the deque's ring touches its spare
//! slots. So a full record of 100,000 settles at about 1.7 times its first-fill memory and then
//! stays flat: the bound checked is "flat after two rounds, at most double the first fill".
//!
//! Run: `cargo bench -p x402-lightning-bench --bench memory` (a release build; takes a few
//! seconds).

use std::process::{Command, ExitCode};
use std::time::Instant;

use x402_lightning::internals::SettledMemory;

/// How many distinct settled invoices each run remembers.
const INVOICES: usize = 1_000_000;
/// The layer's default capacity.
const DEFAULT_CAPACITY: usize = 100_000;
/// When to read the resident memory, in invoices inserted.
const CHECKPOINTS: [usize; 6] = [100_000, 200_000, 300_000, 500_000, 750_000, INVOICES];
/// How much the resident memory of a full record may still grow, in bytes: allocator noise.
const NOISE_BYTES: u64 = 512 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// Each capacity runs in a child process of this binary, so each starts from the same fresh
/// heap: in one process, memory freed by the previous run stays in glibc's arenas (or moves the
/// mmap threshold), which would make the second run look smaller or larger than it is.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let capacity = args
            .get(at + 1)
            .and_then(|arg| arg.parse().ok())
            .expect("--child takes a capacity");
        return run(capacity);
    }

    let exe = std::env::current_exe().expect("path of this benchmark binary");
    println!("settled-invoice memory: {INVOICES} distinct invoices, fresh process per capacity\n");
    println!(
        "{:>9} {:>9} {:>10} {:>10} {:>11} {:>10} {:>12}",
        "capacity", "inserted", "remembered", "RSS (MiB)", "growth MiB", "B/invoice", "ns/insert"
    );
    let mut failed = false;
    for capacity in [DEFAULT_CAPACITY, INVOICES] {
        let status = Command::new(&exe)
            .args(["--child", &capacity.to_string()])
            .status()
            .expect("run the benchmark in a child process");
        failed |= !status.success();
    }
    if failed {
        eprintln!("FAILED: the settled-invoice memory broke its bound");
        return ExitCode::FAILURE;
    }
    println!("\nok: remembered = min(capacity, inserted), newest kept, oldest forgotten");
    ExitCode::SUCCESS
}

/// Remembers `INVOICES` hashes with a memory of `capacity`; prints one row per checkpoint.
fn run(capacity: usize) -> ExitCode {
    let before = rss_bytes("VmRSS:");
    let memory = SettledMemory::new(capacity);
    let mut failures = Vec::new();
    // Resident growth when the record first filled up, and once it had cycled through twice.
    let (mut when_full, mut when_cycled) = (None, None);
    let mut inserted = 0;
    for checkpoint in CHECKPOINTS {
        let start = Instant::now();
        for i in inserted..checkpoint {
            memory.insert(payment_hash(i));
        }
        let ns_per_insert = start.elapsed().as_nanos() as f64 / (checkpoint - inserted) as f64;
        inserted = checkpoint;

        let rss = rss_bytes("VmRSS:");
        let growth = rss.saturating_sub(before);
        let remembered = memory.len();
        println!(
            "{:>9} {:>9} {:>10} {:>10.1} {:>11.1} {:>10.1} {:>12.0}",
            capacity,
            inserted,
            remembered,
            rss as f64 / MIB,
            growth as f64 / MIB,
            growth as f64 / remembered as f64,
            ns_per_insert,
        );
        if remembered != capacity.min(inserted) {
            failures.push(format!(
                "{remembered} remembered after {inserted} inserts, expected {}",
                capacity.min(inserted)
            ));
        }
        if inserted >= capacity {
            when_full.get_or_insert(growth);
        }
        // Once the record has cycled through, forgetting must free as much as remembering takes.
        match when_cycled {
            None if inserted >= 2 * capacity => when_cycled = Some(growth),
            Some(cycled) if growth > cycled + NOISE_BYTES => failures.push(format!(
                "memory kept growing after the record was full: {:.1} MiB after {inserted} \
                 inserts, {:.1} MiB after {}",
                growth as f64 / MIB,
                cycled as f64 / MIB,
                2 * capacity
            )),
            _ => {}
        }
    }

    // Exactly the newest `capacity` hashes are remembered: check every one inserted.
    let first_kept = INVOICES.saturating_sub(capacity);
    let wrong = (0..INVOICES)
        .filter(|&i| memory.contains(&payment_hash(i)) != (i >= first_kept))
        .count();
    if wrong > 0 {
        failures.push(format!(
            "{wrong} hashes remembered or forgotten out of FIFO order"
        ));
    }
    println!(
        "{:>9} RSS before {:.1} MiB, peak {:.1} MiB",
        "",
        before as f64 / MIB,
        rss_bytes("VmHWM:") as f64 / MIB,
    );
    println!(
        "{:>9} all {INVOICES} checked: {first_kept} oldest forgotten, {} newest remembered",
        "",
        INVOICES - first_kept,
    );
    if let (Some(full), Some(_)) = (when_full, when_cycled) {
        let last = rss_bytes("VmRSS:").saturating_sub(before);
        println!(
            "{:>9} after {INVOICES} inserts vs when first full: {:.1} vs {:.1} MiB (x{:.2})",
            "",
            last as f64 / MIB,
            full as f64 / MIB,
            last as f64 / full as f64
        );
        // The one-time growth after filling up (see the note at the top) is at most a doubling.
        if last > 2 * full + NOISE_BYTES {
            failures.push("memory more than doubled after the record was full".to_owned());
        }
    }

    for failure in &failures {
        eprintln!("capacity {capacity}: {failure}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The `i`-th distinct payment hash: four splitmix64 words. The first word alone is a bijection
/// of `i` (an odd multiplier, then an invertible mix), so hashes never repeat, and they look
/// random to the hash set.
fn payment_hash(i: usize) -> [u8; 32] {
    let mut hash = [0u8; 32];
    for (word, bytes) in hash.chunks_exact_mut(8).enumerate() {
        let x = (i as u64)
            .wrapping_mul(4)
            .wrapping_add(word as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        bytes.copy_from_slice(&splitmix_mix(x).to_le_bytes());
    }
    hash
}

/// The output function of splitmix64: a bijection on `u64`.
fn splitmix_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A `kB` line of `/proc/self/status` (`VmRSS:` now, `VmHWM:` peak), in bytes.
fn rss_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .expect("a kB field in /proc/self/status")
}
