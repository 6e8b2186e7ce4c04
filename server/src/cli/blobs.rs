//! `caplens blobs`: where the blob store is, moving it to object storage, sweeping it.

use std::collections::HashMap;
use std::time::Duration;

use clap::Subcommand;

use crate::storage::blobs::BlobStore;
use crate::storage::sweep::{sweep, SweepOptions};
use crate::storage::Store;

/// The settings rows `blobs migrate` writes and every process reads at start.
pub const BLOB_URL_SETTING: &str = "blob_url";
pub const PREVIOUS_BLOB_URL_SETTING: &str = "blob_url_previous";

#[derive(Debug, Clone, Subcommand)]
pub enum BlobsCommand {
    /// Say which blob store this process uses and what the database records.
    Where,
    /// Copy every blob of the current store into another (e.g. s3://bucket/prefix) and record
    /// it in the database as the deployment's store. Reads never stop: the copy runs while
    /// replicas serve, and a process on the new store reads what it lacks from the old one.
    /// Run it again after restarting the replicas: it copies only what is missing.
    Migrate {
        /// The new store's URL: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX,
        /// or file:///PATH.
        #[arg(long)]
        to: String,
    },
    /// Mark imports whose process died as interrupted and remove blobs no commit references
    /// (serve and worker do this on start and every few minutes).
    Sweep {
        /// Remove unreferenced blobs older than this many seconds (default 900).
        #[arg(long, default_value_t = 900)]
        grace_secs: u64,
    },
}

pub async fn blobs(store: &Store, command: &BlobsCommand) -> i32 {
    match command {
        BlobsCommand::Where => {
            println!("this process: {}", store.blobs.url());
            match store.setting(BLOB_URL_SETTING).await {
                Ok(Some(url)) => println!("recorded in the database: {url}"),
                Ok(None) => println!("recorded in the database: none (each process uses its --blob-url, default <data-dir>/blobs)"),
                Err(e) => {
                    eprintln!("caplens blobs: {e}");
                    return 1;
                }
            }
            0
        }
        BlobsCommand::Migrate { to } => match migrate(store, to).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("caplens blobs migrate: {e}");
                1
            }
        },
        BlobsCommand::Sweep { grace_secs } => {
            let options = SweepOptions {
                grace: Duration::from_secs(*grace_secs),
                ..Default::default()
            };
            match sweep(store, &options).await {
                Ok(r) => {
                    println!(
                        "{} import(s) marked interrupted, {} blob(s) removed",
                        r.interrupted.len(),
                        r.removed.len()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("caplens blobs sweep: {e}");
                    1
                }
            }
        }
    }
}

async fn migrate(store: &Store, to: &str) -> Result<(), crate::error::StoreError> {
    let target = BlobStore::from_url(to)?;
    // Run again after the switch, this process is on the new store already: the source is the
    // one recorded as previous.
    let previous;
    let source = if target.url() == store.blobs.url() {
        let Some(url) = store.setting(PREVIOUS_BLOB_URL_SETTING).await? else {
            return Err(crate::error::StoreError::Invalid(format!(
                "this process already uses {} and no earlier store is recorded",
                target.url()
            )));
        };
        previous = BlobStore::from_url(&url)?;
        &previous
    } else {
        &store.blobs
    };
    println!("copying {} -> {}", source.url(), target.url());
    let copied = copy_missing(source, &target).await?;
    println!("{copied} blob(s) copied");
    // The switch: every process that starts from now on uses the new store, reading what it
    // lacks from the old one.
    store
        .set_setting(PREVIOUS_BLOB_URL_SETTING, source.url())
        .await?;
    store
        .set_setting(BLOB_URL_SETTING, &recorded_url(to, &target))
        .await?;
    println!("recorded {} as the deployment's blob store", target.url());
    // Imports running now write to the old store: copy once more after they end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while store.processing_import_count().await? > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let late = copy_missing(source, &target).await?;
    println!(
        "{late} more blob(s) copied after running imports ended. Restart the replicas and workers (rolling) without --blob-url, or with --blob-url {}; then run this once more to copy what they wrote meanwhile.",
        target.url()
    );
    Ok(())
}

/// The URL as recorded: a local path made absolute (other processes start elsewhere).
fn recorded_url(given: &str, target: &BlobStore) -> String {
    match target.local_root() {
        Some(_) => target.url().to_owned(),
        None => given.trim().trim_end_matches('/').to_owned(),
    }
}

/// Copies every blob of `from` that `to` lacks (or holds with another size); readiness probes
/// are not copied. Returns how many were copied.
async fn copy_missing(from: &BlobStore, to: &BlobStore) -> Result<u64, crate::error::StoreError> {
    let have: HashMap<String, u64> = to
        .list("")
        .await?
        .into_iter()
        .map(|b| (b.key, b.size))
        .collect();
    let mut copied = 0;
    for blob in from.list("").await? {
        if blob.key.starts_with("readyz/") || have.get(&blob.key) == Some(&blob.size) {
            continue;
        }
        match from.copy_to(to, &blob.key).await {
            Ok(_) => copied += 1,
            // Removed meanwhile (a failed import's packs): nothing to copy.
            Err(crate::error::StoreError::Blob { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(copied)
}
