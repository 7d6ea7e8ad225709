//! Which process owns a temp or lock file, and whether that owner is gone.
//!
//! Several processes (cluster shards, possibly on different hosts sharing a file system)
//! may write into one output folder at once, so a leftover temp or lock file may belong to
//! a live writer. A file is only treated as abandoned when its owner ran on this host and
//! that process no longer exists, or when it has not been touched for longer than a
//! generous age (the only signal we have for owners on other hosts).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// 8 hex digits naming this host (a hash, so the name is safe inside file names).
pub(crate) fn host_id() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .unwrap_or_else(|| "unknown-host".to_owned());
        hex::encode(&Sha256::digest(name.trim().as_bytes())[..4])
    })
}

/// `<host>-<pid>` of the running process.
pub(crate) fn current_tag() -> String {
    format!("{}-{}", host_id(), std::process::id())
}

/// True when a file tagged `<host>-<pid>` and last modified at `modified` is abandoned.
pub(crate) fn is_abandoned(tag: &str, modified: SystemTime, max_age: Duration) -> bool {
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    if age > max_age {
        return true;
    }
    match parse_tag(tag) {
        Some((host, pid)) => host == host_id() && pid != std::process::id() && !process_alive(pid),
        None => false,
    }
}

/// Splits `<8 hex>-<pid>`.
pub(crate) fn parse_tag(tag: &str) -> Option<(&str, u32)> {
    let (host, pid) = tag.split_once('-')?;
    let hex_host = host.len() == 8 && host.bytes().all(|b| b.is_ascii_hexdigit());
    let pid = pid.parse().ok()?;
    hex_host.then_some((host, pid))
}

#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Without /proc we cannot tell; assume alive and rely on the age rule.
#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true
}
