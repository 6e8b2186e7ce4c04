//! The blob store's contract, on every backend the test machine offers: the local filesystem,
//! memory, and S3 when `CAPLENS_TEST_S3_URL` names one (the test command starts moto's S3
//! server); the sweeper and `caplens blobs migrate` on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use caplens_server::storage::blobs::{BlobKind, BlobStore};
use caplens_server::storage::sweep::{sweep, SweepOptions};
use common::TestDb;

/// A fresh, empty store of each backend (S3 under a prefix of its own).
fn stores(dir: &std::path::Path) -> Vec<BlobStore> {
    let mut out = vec![
        BlobStore::local(dir.join("local-blobs")).unwrap(),
        BlobStore::from_url("memory://").unwrap(),
    ];
    match std::env::var("CAPLENS_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = &uuid::Uuid::new_v4().simple().to_string()[..12];
            out.push(BlobStore::from_url(&format!("{url}/contract-{prefix}")).unwrap());
        }
        _ => eprintln!("CAPLENS_TEST_S3_URL is not set: the S3 variant is not run"),
    }
    out
}

#[tokio::test]
async fn every_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    for store in stores(dir.path()) {
        let name = store.url().to_owned();
        // put / get / overwrite / delete; missing is None, not an error.
        let key = "traces/imp_x/rollout-42.trace";
        assert_eq!(store.get(key).await.unwrap(), None, "{name}");
        store.put(key, b"abc").await.unwrap();
        store.put(key, b"second").await.unwrap();
        assert_eq!(
            store.get(key).await.unwrap().as_deref(),
            Some(&b"second"[..]),
            "{name}"
        );
        assert_eq!(store.size(key).await.unwrap(), Some(6));
        store.delete(key).await.unwrap();
        store.delete(key).await.unwrap();
        assert_eq!(store.get(key).await.unwrap(), None, "{name}");

        // A pack larger than several parts: invisible until finished, then read by range.
        let pack_key = BlobStore::trace_pack_key("imp_AB12", 7);
        let mut pack = store.create_pack(&pack_key).await.unwrap();
        let record: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let mut ranges = Vec::new();
        for i in 0..20u8 {
            let mut r = record.clone();
            r[0] = i;
            ranges.push(pack.append(&r).await.unwrap());
        }
        let tail = pack.append(b"the last record").await.unwrap();
        assert_eq!(
            store.get(&pack_key).await.unwrap(),
            None,
            "{name}: visible before finish"
        );
        pack.finish().await.unwrap();
        assert_eq!(ranges[3], (3 << 20, 1 << 20));
        let third = store
            .get_range(&pack_key, ranges[3].0, ranges[3].1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((third[0], &third[1..]), (3, &record[1..]), "{name}");
        assert_eq!(
            store
                .get_range(&pack_key, tail.0, tail.1)
                .await
                .unwrap()
                .as_deref(),
            Some(&b"the last record"[..])
        );
        let many = store
            .get_ranges(
                &pack_key,
                &[tail.0..tail.0 + 3, 5..9, ranges[19].0..ranges[19].0 + 1],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&many[0][..], b"the");
        assert_eq!(&many[1][..], &record[5..9]);
        assert_eq!(&many[2][..], &[19]);
        assert!(
            store
                .get_range(&pack_key, tail.0, tail.1 + 10)
                .await
                .is_err(),
            "{name}: a range past the end is an error"
        );
        assert_eq!(
            store.get_range("traces/none/x.pack", 0, 1).await.unwrap(),
            None
        );

        // A file up and down again (kept uploads), listing, folders, prefix deletes.
        let file = dir.path().join("upload.bin");
        let content: Vec<u8> = (0..(9 << 20)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&file, &content).unwrap();
        let up = BlobStore::upload_prefix("imp_up");
        assert_eq!(
            store.put_file(&format!("{up}/0"), &file).await.unwrap(),
            content.len() as u64
        );
        let back = dir.path().join("back.bin");
        assert!(store.get_to_file(&format!("{up}/0"), &back).await.unwrap());
        assert!(
            std::fs::read(&back).unwrap() == content,
            "{name}: the upload came back whole"
        );
        assert!(!store.get_to_file(&format!("{up}/1"), &back).await.unwrap());
        let empty = dir.path().join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            store.put_file("uploads/imp_empty/0", &empty).await.unwrap(),
            0
        );
        assert_eq!(
            store.size("uploads/imp_empty/0").await.unwrap(),
            Some(0),
            "{name}: an empty file is kept too"
        );
        store.delete_prefix("uploads/imp_empty").await.unwrap();
        let mut listed: Vec<(String, u64)> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.key, b.size))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            vec![
                (pack_key.clone(), 20 * (1 << 20) + 15),
                (format!("{up}/0"), content.len() as u64)
            ],
            "{name}"
        );
        let mut folders = store.folders("traces").await.unwrap();
        folders.sort();
        assert_eq!(folders, vec!["traces/imp_ab12".to_owned()], "{name}");
        store
            .delete_prefix(&BlobStore::import_traces_prefix("imp_AB12"))
            .await
            .unwrap();
        store.delete_prefix("traces/never-there").await.unwrap();
        assert_eq!(
            store.get_range(&pack_key, 0, 1).await.unwrap(),
            None,
            "{name}"
        );

        // An abandoned pack leaves nothing visible.
        let mut cut = store
            .create_pack("traces/imp_cut/run-1.pack")
            .await
            .unwrap();
        cut.append(&record).await.unwrap();
        cut.abort().await;
        assert!(store.list("traces").await.unwrap().is_empty(), "{name}");

        // Readiness.
        store.probe().await.unwrap();
        store.delete_prefix(&up).await.unwrap();
        assert!(
            store.list("").await.unwrap().is_empty(),
            "{name}: all cleaned up"
        );
    }
}

#[tokio::test]
async fn a_migrated_store_reads_what_it_lacks_from_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = BlobStore::local(dir.path().join("old")).unwrap();
    let new = BlobStore::from_url("memory://").unwrap();
    old.put("traces/a/run-1.pack", b"old bytes").await.unwrap();
    assert_eq!(old.copy_to(&new, "traces/a/run-1.pack").await.unwrap(), 9);
    old.put("traces/b/run-2.pack", b"written after the copy")
        .await
        .unwrap();
    let reading = new.clone().with_fallback(old.clone());
    assert_eq!(
        reading
            .get_range("traces/a/run-1.pack", 4, 5)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"bytes"[..])
    );
    assert_eq!(
        reading
            .get_range("traces/b/run-2.pack", 0, 7)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"written"[..]),
        "a blob not yet copied reads from the old store"
    );
    assert_eq!(reading.get("traces/c/none").await.unwrap(), None);
    assert_eq!(reading.kind(), BlobKind::Memory);
}

/// A row of `imports` as a crashed or finished process left it.
async fn import_row(
    store: &caplens_server::storage::Store,
    id: &str,
    status: &str,
    message: Option<&str>,
    owner: Option<&str>,
    until: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO imports (id, status, content_hash, created_at, message, lease_owner, lease_until)
         VALUES ($1, $2, '', '2026-12-01T00:00:00Z', $3, $4, $5)",
    )
    .bind(id)
    .bind(status)
    .bind(message)
    .bind(owner)
    .bind(until)
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn the_sweeper_removes_what_no_commit_references_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    for base in TestDb::all().await {
        for blobs in stores(dir.path())
            .into_iter()
            .filter(|s| s.kind() != BlobKind::Memory)
        {
            let name = format!("{} + {}", base.name, blobs.url());
            let store = base.store.clone().with_blobs(blobs.clone());
            let me = caplens_server::storage::instance_id();
            let mut dead = std::process::Command::new("true").spawn().unwrap();
            let dead_pid = dead.id();
            dead.wait().unwrap();
            let host = me.rsplit_once('@').unwrap().1;
            let dead_owner = format!("pid-{dead_pid}-1-dead@{host}");
            import_row(&store, "imp_done", "completed", None, Some(me), None).await;
            import_row(
                &store,
                "imp_live",
                "processing",
                None,
                Some(me),
                Some("2999-01-01T00:00:00Z"),
            )
            .await;
            import_row(
                &store,
                "imp_dead",
                "processing",
                None,
                Some(&dead_owner),
                None,
            )
            .await;
            import_row(
                &store,
                "imp_expired",
                "processing",
                None,
                Some("pid-1-1-x@elsewhere"),
                Some("2000-01-01T00:00:00Z"),
            )
            .await;
            import_row(
                &store,
                "imp_failed",
                "failed",
                Some("the file is not JSON"),
                None,
                None,
            )
            .await;
            import_row(
                &store,
                "imp_intr",
                "failed",
                Some("interrupted: the server stopped"),
                None,
                None,
            )
            .await;
            let keys = [
                "traces/imp_done/run-1.pack",
                "traces/imp_live/run-2.pack",
                "traces/imp_dead/run-3.pack",
                "traces/imp_expired/run-4.responses",
                "traces/imp_failed/run-5.pack",
                "traces/imp_gone/run-6.pack",
                "traces/demo/run-999999.pack",
                "traces/interventions/rollout-999999-job-1.trace",
                "uploads/imp_intr/request.json",
                "uploads/imp_done/0",
                "uploads/imp_live/0",
                "uploads/imp_queued/0",
                "readyz/probe-pid-1",
                "elsewhere/not-ours.bin",
            ];
            for key in keys {
                blobs.put(key, b"x").await.unwrap();
            }
            // Right after being written, nothing a commit might still reference goes.
            let fresh = SweepOptions {
                now: now(),
                ..Default::default()
            };
            let r = sweep(&store, &fresh).await.unwrap();
            let mut interrupted = r.interrupted.clone();
            interrupted.sort();
            assert_eq!(interrupted, vec!["imp_dead", "imp_expired"], "{name}");
            let mut removed = r.removed.clone();
            removed.sort();
            assert_eq!(
                removed,
                vec![
                    "traces/imp_dead/run-3.pack",
                    "traces/imp_expired/run-4.responses",
                    "traces/imp_failed/run-5.pack",
                    "uploads/imp_done/0"
                ],
                "{name}"
            );
            // A day later: the orphans of commits that never came go too; the kept upload of an
            // interrupted import stays for a retry (a week), the live import's blobs stay.
            let later = SweepOptions {
                now: now() + 86_400 + 60,
                ..Default::default()
            };
            let r = sweep(&store, &later).await.unwrap();
            let mut removed = r.removed.clone();
            removed.sort();
            assert_eq!(
                removed,
                vec![
                    "readyz/probe-pid-1",
                    "traces/demo/run-999999.pack",
                    "traces/imp_gone/run-6.pack",
                    "traces/interventions/rollout-999999-job-1.trace",
                    "uploads/imp_queued/0",
                ],
                "{name}"
            );
            let mut left: Vec<String> = blobs
                .list("")
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.key)
                .collect();
            left.sort();
            assert_eq!(
                left,
                vec![
                    "elsewhere/not-ours.bin",
                    "traces/imp_done/run-1.pack",
                    "traces/imp_live/run-2.pack",
                    "uploads/imp_intr/request.json",
                    "uploads/imp_live/0",
                ],
                "{name}"
            );
            let week = SweepOptions {
                now: now() + 8 * 86_400,
                grace: Duration::from_secs(60),
                ..Default::default()
            };
            let r = sweep(&store, &week).await.unwrap();
            assert_eq!(r.removed, vec!["uploads/imp_intr/request.json"], "{name}");
            blobs.delete_prefix("traces").await.unwrap();
            blobs.delete_prefix("uploads").await.unwrap();
            blobs.delete_prefix("elsewhere").await.unwrap();
            sqlx::query("DELETE FROM imports")
                .execute(store.pool())
                .await
                .unwrap();
        }
        base.cleanup().await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn caplens(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_caplens"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CAPLENS_BLOB_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `caplens blobs migrate`: a local installation moved to object storage (S3 when the test
/// machine has it, else another folder), every blob copied, the store recorded in the database
/// and taken by the next process; a second run copies only what was written meanwhile.
#[tokio::test]
async fn blobs_migrate_moves_an_installation_and_the_next_process_takes_the_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let file = dir.path().join("run.jsonl");
    let mut lines = String::new();
    for p in 0..5 {
        for s in 0..3 {
            lines.push_str(&format!(
                "{{\"model\":\"m\",\"dataset\":\"d\",\"problem_id\":\"p{p}\",\"sample\":{s},\"correct\":{},\"response\":\"so \\\\boxed{{{p}}}\",\"tokens\":[\"so\",\" it\"],\"token_logprobs\":[-0.5,-0.1]}}\n",
                s == 0
            ));
        }
    }
    std::fs::write(&file, lines).unwrap();
    ok(&caplens(
        &[
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            data,
            "--experiment",
            "moved",
        ],
        &[],
    ));
    let old = BlobStore::local(dir.path().join("data/blobs")).unwrap();
    let before = old.list("").await.unwrap();
    assert!(
        before.iter().any(|b| b.key.ends_with(".pack")),
        "{before:?}"
    );
    let target = match std::env::var("CAPLENS_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => {
            format!(
                "{url}/migrate-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        }
        _ => format!("file://{}", dir.path().join("bucket").display()),
    };
    let out = ok(&caplens(
        &["blobs", "migrate", "--to", &target, "--data-dir", data],
        &[],
    ));
    assert!(
        out.contains(&format!("{} blob(s) copied", before.len())),
        "{out}"
    );
    let new = BlobStore::from_url(&target).unwrap();
    for b in &before {
        assert_eq!(new.size(&b.key).await.unwrap(), Some(b.size), "{}", b.key);
    }
    // The next process takes the recorded store without being told.
    let shown = ok(&caplens(&["blobs", "where", "--data-dir", data], &[]));
    assert!(
        shown.starts_with(&format!("this process: {}", new.url())),
        "{shown}"
    );
    // A replica still on the old store wrote meanwhile: the second run copies just that.
    old.put("traces/imp_late/run-9.pack", b"late")
        .await
        .unwrap();
    let out = ok(&caplens(
        &["blobs", "migrate", "--to", &target, "--data-dir", data],
        &[],
    ));
    assert!(out.contains("1 blob(s) copied"), "{out}");
    assert_eq!(
        new.get("traces/imp_late/run-9.pack")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"late"[..])
    );
    new.delete_prefix("traces").await.unwrap();
}
