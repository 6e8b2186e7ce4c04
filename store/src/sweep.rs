//! The sweeper: keeps the blob store and the `imports` table honest when processes die.
//!
//! The database commit is the point of truth. A process killed mid-import leaves a `processing`
//! row, maybe completed packs that no committed row references, and its kept upload. Any replica
//! or worker sweeps, on start and every few minutes ([`spawn_periodic`]); sweeps running at once
//! are harmless (each step is idempotent):
//! 1. imports whose process is gone are marked interrupted ([`Store::fail_abandoned_imports`]);
//! 2. blobs that no commit will come to reference are removed:
//!    - `traces/<import>/…`: when the import failed or was a duplicate, or has no row and its
//!      blobs are older than the grace period; a completed import's or a running one's stay;
//!    - `traces/demo/run-N.*`: when run N does not exist (a demo load that did not commit);
//!    - `traces/interventions/rollout-R-job-J.trace`: when rollout R does not point at it;
//!    - `uploads/<import>/`: when the import ended without being interrupted, or was
//!      interrupted longer than `keep_uploads` ago, or has had no row for a day;
//!    - `readyz/…`: probes left by a process that died between writing and removing one.
//!
//! 3. rate-limit events older than a day (longer than every limit's window) are deleted.
//!
//! Blobs younger than the grace period are left alone (a load, an intervention or an upload may
//! be about to commit them); anything else under the root is not ours and is never touched.

use std::time::Duration;

use super::blobs::BlobMeta;
use super::Store;
use crate::error::StoreError;

/// What a sweep may remove.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Blobs younger than this are never removed.
    pub grace: Duration,
    /// How long an interrupted import's upload is kept for a retry.
    pub keep_uploads: Duration,
    /// "Now", in seconds since the Unix epoch (a parameter, so that tests need no clock luck).
    pub now: i64,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            grace: Duration::from_secs(15 * 60),
            keep_uploads: Duration::from_secs(7 * 86_400),
            now: unix_now(),
        }
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Imports marked interrupted.
    pub interrupted: Vec<String>,
    /// Blob keys removed.
    pub removed: Vec<String>,
}

/// One sweep (see the module doc).
pub async fn sweep(store: &Store, options: &SweepOptions) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport {
        interrupted: store.fail_abandoned_imports().await?,
        ..Default::default()
    };
    // Rate-limit events older than every limit's window (a day is longer than any).
    store
        .prune_rate_events(std::time::Duration::from_secs(86_400))
        .await?;
    let blobs = store.blobs.list("").await?;
    let old = |b: &BlobMeta| options.now - b.modified >= options.grace.as_secs() as i64;
    // Group by the first two segments: `traces/<import>`, `uploads/<import>`, `readyz/<x>`.
    let mut folders: std::collections::BTreeMap<(String, String), Vec<BlobMeta>> =
        Default::default();
    for b in blobs {
        let mut parts = b.key.splitn(3, '/');
        let (Some(top), Some(second)) = (parts.next(), parts.next()) else {
            continue;
        };
        folders
            .entry((top.to_owned(), second.to_owned()))
            .or_default()
            .push(b);
    }
    for ((top, second), items) in folders {
        let remove: Vec<&BlobMeta> = match (top.as_str(), second.as_str()) {
            ("traces", "demo") => {
                let mut out = Vec::new();
                for b in items.iter().filter(|b| old(b)) {
                    if let Some(run) = demo_run_of(&b.key) {
                        if !store.run_exists(run).await? {
                            out.push(b);
                        }
                    }
                }
                out
            }
            ("traces", "interventions") => {
                let mut out = Vec::new();
                for b in items.iter().filter(|b| old(b)) {
                    if let Some(rollout) = intervention_rollout_of(&b.key) {
                        if store.rollout_trace_key(rollout).await?.as_deref() != Some(&b.key) {
                            out.push(b);
                        }
                    }
                }
                out
            }
            ("traces", import) => match store.import_state(import).await? {
                Some(s) if s.status == "completed" || s.running => Vec::new(),
                Some(s) if s.status == "processing" => Vec::new(), // being declared interrupted
                Some(_) => items.iter().collect(),
                None if items.iter().all(old) => {
                    // Looked again right before removing: a retry may have just recreated it.
                    if store.import_state(import).await?.is_none() {
                        items.iter().collect()
                    } else {
                        Vec::new()
                    }
                }
                None => Vec::new(),
            },
            ("uploads", import) => {
                let newest = items.iter().map(|b| b.modified).max().unwrap_or(0);
                let age = options.now - newest;
                match store.import_state(import).await? {
                    Some(s) if s.status == "processing" => Vec::new(),
                    Some(s) if s.interrupted && age < options.keep_uploads.as_secs() as i64 => {
                        Vec::new()
                    }
                    Some(_) => items.iter().collect(),
                    // Queued somewhere, not started yet (or arriving): a day's grace.
                    None if age >= 86_400 => items.iter().collect(),
                    None => Vec::new(),
                }
            }
            ("readyz", _) => items.iter().filter(|b| old(b)).collect(),
            _ => Vec::new(),
        };
        if remove.len() == items.len() && !remove.is_empty() && top != "readyz" {
            let prefix = if matches!(second.as_str(), "demo" | "interventions") {
                None
            } else {
                Some(format!("{top}/{second}"))
            };
            if let Some(prefix) = prefix {
                store.blobs.delete_prefix(&prefix).await?;
                report.removed.extend(remove.iter().map(|b| b.key.clone()));
                continue;
            }
        }
        for b in remove {
            store.blobs.delete(&b.key).await?;
            report.removed.push(b.key.clone());
        }
    }
    Ok(report)
}

/// Sweeps now and then every `every`, until the returned task is aborted. Failures are logged
/// and retried at the next tick.
pub fn spawn_periodic(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sweep(&store, &SweepOptions::default()).await {
                Ok(r) => {
                    for id in &r.interrupted {
                        tracing::warn!(import = %id, "an import's process stopped mid-way; nothing of it was stored (it can be retried)");
                    }
                    if !r.removed.is_empty() {
                        tracing::info!(
                            blobs = r.removed.len(),
                            "sweeper removed blobs no commit references"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sweep failed; will try again"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// `traces/demo/run-12.pack` -> 12.
fn demo_run_of(key: &str) -> Option<i64> {
    let name = key.strip_prefix("traces/demo/run-")?;
    name.split('.').next()?.parse().ok()
}

/// `traces/interventions/rollout-7-job-3.trace` -> 7.
fn intervention_rollout_of(key: &str) -> Option<i64> {
    let name = key.strip_prefix("traces/interventions/rollout-")?;
    name.split('-').next()?.parse().ok()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_run_and_rollout() {
        assert_eq!(demo_run_of("traces/demo/run-12.pack"), Some(12));
        assert_eq!(demo_run_of("traces/demo/run-12.responses"), Some(12));
        assert_eq!(demo_run_of("traces/imp_x/run-12.pack"), None);
        assert_eq!(
            intervention_rollout_of("traces/interventions/rollout-7-job-3.trace"),
            Some(7)
        );
        assert_eq!(
            intervention_rollout_of("traces/interventions/x.trace"),
            None
        );
    }
}
