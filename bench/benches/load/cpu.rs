//! CPU time of chosen threads of this process, read from `/proc` (no unsafe, no libc).

use std::fs;
use std::time::Duration;

/// A thread of this process, by its kernel thread id.
#[derive(Clone, Copy, Debug)]
pub struct Thread(u32);

impl Thread {
    /// The calling thread (`/proc/thread-self` links to `<pid>/task/<tid>`).
    pub fn current() -> Option<Self> {
        let link = fs::read_link("/proc/thread-self").ok()?;
        link.file_name()?.to_str()?.parse().ok().map(Self)
    }

    /// CPU time the thread has used so far: nanoseconds on CPU from `schedstat`, or
    /// user + system ticks from `stat` where the kernel keeps no schedstat.
    pub fn cpu_time(self) -> Option<Duration> {
        let task = format!("/proc/self/task/{}", self.0);
        if let Ok(schedstat) = fs::read_to_string(format!("{task}/schedstat")) {
            let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(nanos));
        }
        let stat = fs::read_to_string(format!("{task}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(Duration::from_millis(ticks * 10))
    }
}

/// The summed CPU time of `threads` (threads that ended are skipped).
pub fn cpu_time(threads: &[Thread]) -> Duration {
    threads.iter().filter_map(|thread| thread.cpu_time()).sum()
}
