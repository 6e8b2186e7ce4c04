//! Team review (issue 15) on SQLite and PostgreSQL: verdict overrides change pass@k exactly as
//! the estimator on the corrected counts (pages, read API and `caplens passk` on the corrected
//! file agree; `reviewed=0` gives the unreviewed numbers); labels and overrides survive re-import
//! of the same data and go with the experiment; comments render inert and notify members;
//! who may comment; share links open one experiment read-only and stop when revoked.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use caplens_analysis::passk::{pass_at_k_curve, ProblemCounts};
use caplens_analysis::verifier::normalize_answer;
use caplens_app::review::{CommentTarget, ThreadFilter};
use caplens_app::views::PasskRequest;
use caplens_server::{
    auth::{password, Auth, AuthSettings, Principal},
    ingest::{
        pipeline::{new_import_id, run_import, ImportFile, ImportParams, ImportProgress},
        service::ImportService,
        InputFile,
    },
    ops::{review, Caller},
    review::OverrideRequest,
    storage::{access::Role, Store},
    views::ViewService,
    web,
};
use common::TestDb;
use http_body_util::BodyExt;
use tower::ServiceExt;

const SLUG: &str = "rev";

/// The demo generator's rollouts as native JSON Lines (small).
fn write_rollouts(dir: &Path) -> PathBuf {
    write_rollouts_seeded(
        dir,
        "rollouts.jsonl",
        caplens_server::demo::generate::DemoConfig::default().seed,
    )
}

/// Another sampling of the same problems (another seed): not a duplicate import.
fn write_rollouts_seeded(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let file = dir.join(name);
    let data = caplens_server::demo::generate::generate_demo(
        &caplens_server::demo::generate::DemoConfig {
            seed,
            problems: 12,
            samples_per_problem: 8,
            traced_samples: 0,
            checkpoint_samples: 0,
        },
    );
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    caplens_server::demo::write_native_jsonl(&data, &mut out).unwrap();
    drop(out);
    file
}

async fn import(
    store: &Store,
    file: &Path,
    experiment: &str,
) -> caplens_server::ingest::pipeline::ImportReport {
    let input = InputFile::new(file, "rollouts.jsonl".to_string());
    run_import(
        store,
        &new_import_id(),
        vec![ImportFile {
            input: input.clone(),
            sha256: None,
        }],
        ImportParams {
            experiment: Some(experiment.into()),
            project: Some("default".into()),
            ..Default::default()
        },
        std::sync::Arc::new(ImportProgress::for_files(&[input])),
        None,
    )
    .await
}

/// One JSON line of the file, as the test reads it back.
#[derive(serde::Deserialize, serde::Serialize, Clone)]
struct Line {
    model: String,
    dataset: String,
    problem_id: String,
    sample: u32,
    correct: bool,
    #[serde(default)]
    answer: Option<String>,
    reference: String,
    response: String,
}

fn lines(file: &Path) -> Vec<Line> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A wrong answer given by several rollouts of some problem: (problem key, answer).
fn a_wrong_cluster(lines: &[Line]) -> (String, String) {
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for l in lines.iter().filter(|l| !l.correct) {
        if let Some(a) = &l.answer {
            *counts
                .entry((l.problem_id.clone(), normalize_answer(a)))
                .or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|((_, a), _)| !a.is_empty())
        .max_by_key(|(k, n)| (*n, k.clone()))
        .unwrap()
        .0
}

async fn get(
    app: &Router,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let mut req = Request::builder()
        .uri(uri)
        .header(header::HOST, "localhost");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let set_cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body =
        String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, body, set_cookie.or(location))
}

#[tokio::test]
async fn overrides_change_passk_exactly_as_the_estimator_on_corrected_counts() {
    for db in TestDb::all().await {
        let store = db.store.clone();
        let file = write_rollouts(db.dir());
        let report = import(&store, &file, SLUG).await;
        assert!(report.runs.len() >= 2, "{}: {:?}", db.name, report.message);
        let all = lines(&file);
        let (problem_key, answer) = a_wrong_cluster(&all);
        let dataset = all[0].dataset.clone();
        let local = Caller::new(Principal::local(), None);
        let access = local.access(&store);
        let views = ViewService::new(store.clone());
        let before = views
            .passk(
                SLUG,
                PasskRequest {
                    band: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();

        // Reviewers: this wrong answer is in fact correct.
        let o = review::add_override(
            &access,
            SLUG,
            &OverrideRequest {
                problem: Some(serde_json::Value::from(format!("{dataset}/{problem_key}"))),
                answer: Some(answer.clone()),
                rollout: None,
                verdict: "correct".into(),
                reason: "equivalent to the reference".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(o.verdict, "correct");

        // The corrected file: exactly the rollouts of that problem with that answer flip.
        let corrected: Vec<Line> = all
            .iter()
            .cloned()
            .map(|mut l| {
                if l.problem_id == problem_key
                    && l.answer.as_deref().map(normalize_answer).as_deref() == Some(answer.as_str())
                {
                    l.correct = true;
                }
                l
            })
            .collect();
        let flipped = corrected
            .iter()
            .zip(&all)
            .filter(|(a, b)| a.correct != b.correct)
            .count();
        assert!(flipped > 0);

        // The estimator on the corrected counts, per model.
        let mut models: Vec<String> = Vec::new();
        let mut counts: HashMap<(String, String), (u64, u64)> = HashMap::new();
        for l in &corrected {
            if !models.contains(&l.model) {
                models.push(l.model.clone());
            }
            let e = counts
                .entry((l.model.clone(), l.problem_id.clone()))
                .or_default();
            e.0 += 1;
            e.1 += l.correct as u64;
        }
        let ks = [1u64, 2, 4, 8];
        let expected: HashMap<String, Vec<f64>> = models
            .iter()
            .map(|m| {
                let problems: Vec<ProblemCounts> = counts
                    .iter()
                    .filter(|((mm, _), _)| mm == m)
                    .map(|(_, (n, c))| ProblemCounts { n: *n, c: *c })
                    .collect();
                (
                    m.clone(),
                    pass_at_k_curve(&problems, &ks)
                        .into_iter()
                        .map(|p| p.pass_at_k)
                        .collect(),
                )
            })
            .collect();

        // The pages' view counts the override...
        let after = views
            .passk(
                SLUG,
                PasskRequest {
                    band: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.frame.verdicts.overrides, 1, "{}", db.name);
        assert_eq!(
            after.frame.verdicts.overridden_rollouts, flipped as u64,
            "{}",
            db.name
        );
        assert!(after.frame.verdicts.reviewed);
        assert_ne!(
            after.table, before.table,
            "{}: the override changed nothing",
            db.name
        );
        // ...and reviewed=0 gives back the unreviewed numbers.
        let unreviewed = views
            .passk(
                SLUG,
                PasskRequest {
                    band: false,
                    unreviewed: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(unreviewed.table, before.table, "{}", db.name);
        assert!(!unreviewed.frame.verdicts.reviewed);

        // The read API: reviewed numbers = the estimator on the corrected counts, and = `caplens
        // passk` on the corrected file; reviewed=0 = `caplens passk` on the original file.
        let app = web::router(
            ImportService::new(store.clone(), db.dir(), 1 << 30),
            Path::new("/nonexistent"),
            "127.0.0.1:0".parse().unwrap(),
        );
        let (status, api_reviewed, _) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/passk?k=1,2,4,8"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{api_reviewed}");
        let (_, api_unreviewed, _) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/passk?k=1,2,4,8&reviewed=0"),
            None,
        )
        .await;
        let doc: serde_json::Value = serde_json::from_str(&api_reviewed).unwrap();
        for (m, values) in &expected {
            let got: Vec<f64> = doc["models"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["model"] == m.as_str())
                .unwrap_or_else(|| panic!("{m} in {api_reviewed}"))["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["pass_at_k"].as_f64().unwrap())
                .collect();
            for (g, e) in got.iter().zip(values) {
                assert!(
                    (g - e).abs() < 1e-12,
                    "{}: {m}: {got:?} vs {values:?}",
                    db.name
                );
            }
        }
        let cli = |path: &Path| {
            let mut out = Vec::new();
            caplens_server::cli::analysis::passk(
                &[path.to_path_buf()],
                "1,2,4,8".parse().unwrap(),
                true,
                false,
                &mut out,
            )
            .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let corrected_file = db.dir().join("corrected.jsonl");
        std::fs::write(
            &corrected_file,
            corrected
                .iter()
                .map(|l| serde_json::to_string(l).unwrap() + "\n")
                .collect::<String>(),
        )
        .unwrap();
        assert_eq!(cli(&corrected_file), doc, "{}", db.name);
        assert_eq!(
            cli(&file),
            serde_json::from_str::<serde_json::Value>(&api_unreviewed).unwrap(),
            "{}",
            db.name
        );
        assert_ne!(api_reviewed, api_unreviewed);
        let (status, _, _) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/passk?reviewed=yes"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Removing the override restores the numbers.
        review::delete_override(&access, o.id).await.unwrap();
        let restored = views
            .passk(
                SLUG,
                PasskRequest {
                    band: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(restored.table, before.table, "{}", db.name);
        assert_eq!(restored.frame.verdicts.overrides, 0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn review_work_survives_reimport_and_goes_with_the_experiment() {
    for db in TestDb::all().await {
        let store = db.store.clone();
        let file = write_rollouts(db.dir());
        import(&store, &file, SLUG).await;
        let local = Caller::new(Principal::local(), None);
        let access = local.access(&store);
        let experiment = store.experiment_ref(SLUG).await.unwrap().unwrap();
        let all = lines(&file);
        let (problem_key, answer) = a_wrong_cluster(&all);
        let key = format!("{}/{problem_key}", all[0].dataset);
        let problem = store
            .experiment_problem_by_key(experiment.id, &key)
            .await
            .unwrap()
            .unwrap();
        let views = ViewService::new(store.clone());
        let queue_before = review::review_queue(&access, &views, SLUG, 0.3, false)
            .await
            .unwrap();
        assert_eq!(queue_before.reviewed, 0);
        review::set_labels(
            &access,
            SLUG,
            problem,
            &["verifier wrong".into(), "ambiguous problem".into()],
        )
        .await
        .unwrap();
        let bad = review::set_labels(&access, SLUG, problem, &["no such label".into()])
            .await
            .unwrap_err();
        assert!(bad.to_string().contains("labels[0]"), "{bad}");
        review::add_override(
            &access,
            SLUG,
            &OverrideRequest {
                problem: Some(serde_json::Value::from(key.clone())),
                answer: Some(answer.clone()),
                rollout: None,
                verdict: "correct".into(),
                reason: "r".into(),
            },
        )
        .await
        .unwrap();
        let rollout: i64 = sqlx::query_scalar("SELECT MIN(id) FROM rollouts")
            .fetch_one(store.pool())
            .await
            .unwrap();
        review::add_override(
            &access,
            SLUG,
            &OverrideRequest {
                rollout: Some(rollout),
                verdict: "wrong".into(),
                reason: "truncated".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        review::post_comment(
            &access,
            SLUG,
            &CommentTarget::Problem { problem },
            "looks fine",
        )
        .await
        .unwrap();
        // The queue keeps its entries; the reviewed problem is marked (labels and overrides).
        let queue_after = review::review_queue(&access, &views, SLUG, 0.3, false)
            .await
            .unwrap();
        assert_eq!(queue_after.total, queue_before.total, "{}", db.name);
        let rollout_problem: i64 =
            sqlx::query_scalar("SELECT problem_id FROM rollouts WHERE id = $1")
                .bind(rollout)
                .fetch_one(store.pool())
                .await
                .unwrap();
        let expected = queue_before
            .entries
            .iter()
            .filter(|e| e.problem_id == problem || e.problem_id == rollout_problem)
            .count() as u64;
        assert_eq!(queue_after.reviewed, expected, "{}", db.name);
        assert!(queue_after
            .entries
            .iter()
            .filter(|e| e.problem_id == problem)
            .all(|e| e.reviewed && e.comments == 1));
        assert!(queue_after
            .entries
            .iter()
            .filter(|e| e.problem_id != problem && e.problem_id != rollout_problem)
            .all(|e| !e.reviewed));

        // The same data again: a duplicate, nothing of the review is lost.
        let again = import(&store, &file, SLUG).await;
        assert!(
            again.duplicate_of.is_some(),
            "{}: {:?}",
            db.name,
            again.message
        );
        assert_eq!(
            review::list_overrides(&access, SLUG).await.unwrap().len(),
            2,
            "{}",
            db.name
        );
        assert_eq!(
            store.problem_labels(experiment).await.unwrap()[&problem].len(),
            2
        );

        // Export and import into another experiment over the same problems.
        let records = review::export_review(&access, SLUG).await.unwrap();
        assert_eq!(records.iter().filter(|r| r.kind == "label").count(), 2);
        let csv = caplens_server::review::review_csv(&records);
        let other = write_rollouts_seeded(db.dir(), "other.jsonl", 77);
        let copy = import(&store, &other, "rev-copy").await;
        assert!(copy.duplicate_of.is_none(), "{:?}", copy.message);
        let report = review::import_review(&access, "rev-copy", "review.csv", &csv)
            .await
            .unwrap();
        assert_eq!(
            (report.labels, report.overrides),
            (2, 1),
            "{}: {report:?}",
            db.name
        );
        // The rollout override names a rollout of the other experiment: skipped, with why.
        assert_eq!(report.skipped.len(), 1, "{report:?}");
        assert!(report.skipped[0].starts_with("review.csv:"), "{report:?}");

        // Deleting the experiment removes its review data, and nothing of the other one.
        review::delete_experiment(&access, SLUG, "wrong")
            .await
            .unwrap_err();
        review::delete_experiment(&access, SLUG, SLUG)
            .await
            .unwrap();
        let count = |sql: &'static str| {
            let pool = store.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert!(store.experiment_ref(SLUG).await.unwrap().is_none());
        assert_eq!(
            count("SELECT COUNT(*) FROM comments").await,
            0,
            "{}",
            db.name
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM verdict_overrides").await,
            1,
            "{}: only rev-copy's",
            db.name
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM problem_labels").await,
            2,
            "{}: only rev-copy's",
            db.name
        );
        // Its runs' rollouts go too (PostgreSQL has no foreign key to cascade them), and their
        // response packs; the other experiment's rollouts still read back.
        assert_eq!(
            count("SELECT COUNT(*) FROM rollouts WHERE run_id NOT IN (SELECT id FROM runs)").await,
            0,
            "{}: no rollout outlives its run",
            db.name
        );
        let packs: Vec<String> =
            sqlx::query_scalar("SELECT response_pack FROM runs WHERE response_pack IS NOT NULL")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert!(
            !packs.is_empty(),
            "{}: imported runs keep their responses in packs",
            db.name
        );
        let one: i64 = count("SELECT MIN(id) FROM rollouts").await;
        let kept = store.rollout(one).await.unwrap().unwrap();
        assert!(kept.response.is_some_and(|r| !r.is_empty()), "{}", db.name);
        db.cleanup().await;
    }
}

async fn session(auth: &Auth, store: &Store, name: &str) -> (i64, String) {
    let id = store
        .create_user(
            name,
            None,
            Some(&password::hash("a long enough password")),
            false,
        )
        .await
        .unwrap()
        .id;
    let set = auth.start_session(id, None).await.unwrap();
    (
        id,
        set.to_str().unwrap().split(';').next().unwrap().to_owned(),
    )
}

async fn send_json(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: &str,
    body: serde_json::Value,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, "http://localhost")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, cookie)
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    (
        status,
        String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned(),
    )
}

#[tokio::test]
async fn comments_render_inert_mentions_notify_and_viewers_comment_only_when_allowed() {
    for db in TestDb::all().await {
        let store = db.store.clone();
        let file = write_rollouts(db.dir());
        import(&store, &file, SLUG).await;
        let auth = Auth::new(store.clone(), AuthSettings::default());
        let (_, ann) = session(&auth, &store, "ann").await;
        let (bob_id, bob) = session(&auth, &store, "bob").await;
        let (_, vic) = session(&auth, &store, "vic").await;
        let project = store.project_by_slug("default").await.unwrap().unwrap();
        for (name, role) in [
            ("ann", Role::Editor),
            ("bob", Role::Editor),
            ("vic", Role::Viewer),
        ] {
            let id = store.user_by_name(name).await.unwrap().unwrap().row.id;
            store.set_member(project.id, id, role).await.unwrap();
        }
        let app = web::router_with_auth(
            ImportService::new(store.clone(), db.dir(), 1 << 30),
            Path::new("/nonexistent"),
            "127.0.0.1:0".parse().unwrap(),
            auth.clone(),
        );
        let rollout: i64 = sqlx::query_scalar("SELECT MIN(id) FROM rollouts")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let corpus = [
            "@bob look at $\\frac{1}{2}$ <script>alert(1)</script>",
            "<script>alert(1)</script> a raw HTML block",
            "<img src=x onerror=alert(1)>",
            "[x](javascript:alert(1)) and [y](https://example.org)",
            "$\\frac{1}{$ broken",
        ];
        let uri = format!("/api/v1/experiments/{SLUG}/comments");
        let mut thread = 0;
        for text in corpus {
            let (status, body) = send_json(
                &app,
                "POST",
                &uri,
                &ann,
                serde_json::json!({"target": {"kind": "token", "rollout": rollout, "index": 3}, "body": text}),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{}: {body}", db.name);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            thread = v["id"].as_i64().unwrap();
            for c in v["comments"].as_array().unwrap() {
                let html = c["html"].as_str().unwrap().to_ascii_lowercase();
                // Raw tags and live links only: the same words as escaped text are harmless.
                for bad in ["<script", "<img", "href=\"javascript:"] {
                    assert!(!html.contains(bad), "{}: {bad} in {html}", db.name);
                }
            }
        }
        // All five went to one thread on that token.
        let (_, listed) = get(&app, &format!("{uri}?target=token:{rollout}:3"), Some(&ann))
            .await
            .map_first();
        let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(v["threads"].as_array().unwrap().len(), 1);
        assert_eq!(v["threads"][0]["comments"].as_array().unwrap().len(), 5);
        assert!(v["threads"][0]["comments"][0]["html"]
            .as_str()
            .unwrap()
            .contains("<span class=\"mention\">@bob</span>"));
        assert!(v["threads"][0]["comments"][0]["html"]
            .as_str()
            .unwrap()
            .contains("<math"));
        // Bob is mentioned: the thread is in his inbox; he replies and resolves.
        let bob_principal = caplens_server::auth::user_principal(
            &store,
            &store.user(bob_id).await.unwrap().unwrap().row,
        )
        .await
        .unwrap();
        let bob_caller = Caller::new(bob_principal, None);
        let bob_access = bob_caller.access(&store);
        let inbox = review::inbox(&bob_access).await.unwrap();
        assert_eq!(inbox.len(), 1, "{}", db.name);
        assert_eq!(
            (inbox[0].why.as_str(), inbox[0].thread.id),
            ("mention", thread)
        );
        let (status, _) = send_json(
            &app,
            "POST",
            &format!("/api/v1/threads/{thread}/comments"),
            &bob,
            serde_json::json!({"body": "agreed"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = send_json(
            &app,
            "POST",
            &format!("/api/v1/threads/{thread}/resolve"),
            &bob,
            serde_json::json!({"resolved": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"resolved\":true"));
        let unresolved = review::threads(
            &bob_access,
            SLUG,
            &ThreadFilter {
                unresolved: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(unresolved.is_empty());
        // Bob cannot edit Ann's comment.
        let first = v["threads"][0]["comments"][0]["id"].as_i64().unwrap();
        assert!(review::edit_comment(&bob_access, first, "mine now")
            .await
            .is_err());

        // A viewer may not comment, until the project allows viewers to.
        let body = serde_json::json!({"target": {"kind": "experiment"}, "body": "hi"});
        let (status, text) = send_json(&app, "POST", &uri, &vic, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}: {text}", db.name);
        store.set_viewers_comment(project.id, true).await.unwrap();
        let (status, text) = send_json(&app, "POST", &uri, &vic, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {text}", db.name);
        // Overrides stay an editor's right.
        let (status, _) = send_json(
            &app,
            "POST",
            &format!("/api/v1/experiments/{SLUG}/overrides"),
            &vic,
            serde_json::json!({"rollout": rollout, "verdict": "wrong", "reason": "x"}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        db.cleanup().await;
    }
}

trait MapFirst {
    fn map_first(self) -> (StatusCode, String);
}
impl MapFirst for (StatusCode, String, Option<String>) {
    fn map_first(self) -> (StatusCode, String) {
        (self.0, self.1)
    }
}

#[tokio::test]
async fn a_share_link_opens_one_experiment_read_only_until_revoked() {
    for db in TestDb::all().await {
        let store = db.store.clone();
        let file = write_rollouts(db.dir());
        import(&store, &file, SLUG).await;
        // Another experiment of the same project (other samples: not a duplicate).
        let other = import(
            &store,
            &write_rollouts_seeded(db.dir(), "other.jsonl", 77),
            "other",
        )
        .await;
        assert!(
            other.duplicate_of.is_none() && !other.runs.is_empty(),
            "{:?}",
            other.message
        );
        let auth = Auth::new(store.clone(), AuthSettings::default());
        let (_, ann) = session(&auth, &store, "ann").await;
        let project = store.project_by_slug("default").await.unwrap().unwrap();
        let ann_id = store.user_by_name("ann").await.unwrap().unwrap().row.id;
        store
            .set_member(project.id, ann_id, Role::Editor)
            .await
            .unwrap();
        let app = web::router_with_auth(
            ImportService::new(store.clone(), db.dir(), 1 << 30),
            Path::new("/nonexistent"),
            "127.0.0.1:0".parse().unwrap(),
            auth.clone(),
        );
        let uri = format!("/api/v1/experiments/{SLUG}/share-links");
        // Only views of this experiment can be shared.
        let (status, _) = send_json(
            &app,
            "POST",
            &uri,
            &ann,
            serde_json::json!({"path": "/experiments/other/passk"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = send_json(
            &app,
            "POST",
            &uri,
            &ann,
            serde_json::json!({"path": "https://evil.example/"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let path = format!("/experiments/{SLUG}/passk?band=0");
        let (status, body) = send_json(
            &app,
            "POST",
            &uri,
            &ann,
            serde_json::json!({"path": path, "expires_in": 3600}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let link: serde_json::Value = serde_json::from_str(&body).unwrap();
        let url = link["url"].as_str().unwrap();
        assert!(url.starts_with("http://localhost/s/"), "{url}");
        assert!(link["expires_at"].is_string());
        let secret_path = url.trim_start_matches("http://localhost");

        // A visitor without an account opens it: redirected to the view, with the share cookie.
        let res = app
            .clone()
            .oneshot(
                Request::builder()
                    .uri(secret_path)
                    .header(header::HOST, "localhost")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[header::LOCATION], path.as_str());
        let cookie = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert!(cookie.starts_with("caplens_share="));
        let (status, _, _) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/passk"),
            Some(&cookie),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", db.name);
        // The experiment's problems and rollouts open too (their pages).
        let (problem, rollout): (i64, i64) = sqlx::query_as(
            "SELECT o.problem_id, o.id FROM rollouts o JOIN experiment_runs er ON er.run_id = o.run_id
             JOIN experiments e ON e.id = er.experiment_id WHERE e.slug = $1 ORDER BY o.id LIMIT 1",
        )
        .bind(SLUG)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let (status, _, _) = get(
            &app,
            &format!("/problems/{problem}?experiment={SLUG}"),
            Some(&cookie),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", db.name);
        let (status, _, _) = get(&app, &format!("/rollouts/{rollout}"), Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{}", db.name);
        // A rollout of the other experiment does not.
        let other_rollout: i64 = sqlx::query_scalar(
            "SELECT o.id FROM rollouts o JOIN experiment_runs er ON er.run_id = o.run_id
             JOIN experiments e ON e.id = er.experiment_id WHERE e.slug = 'other' ORDER BY o.id LIMIT 1",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let (status, _, _) = get(&app, &format!("/rollouts/{other_rollout}"), Some(&cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}", db.name);
        // Nothing else: another experiment of the same project, the lists, any change.
        let (status, _, _) = get(&app, "/api/v1/experiments/other/passk", Some(&cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}", db.name);
        let (_, list, _) = get(&app, "/api/v1/experiments", Some(&cookie)).await;
        assert!(!list.contains(SLUG) && !list.contains("other"), "{list}");
        let (status, _) = send_json(
            &app,
            "POST",
            &format!("/api/v1/experiments/{SLUG}/comments"),
            &cookie,
            serde_json::json!({"target": {"kind": "experiment"}, "body": "hi"}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", db.name);
        // Opening was audited.
        let opened: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'share_link_opened'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(opened, 1);

        // Revoked: the link and the cookie stop working, with a page that says so.
        let (status, _) = send_json(
            &app,
            "DELETE",
            &format!("/api/v1/share-links/{}", link["id"]),
            &ann,
            serde_json::json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body, _) = get(&app, secret_path, None).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(body.contains("revoked"), "{body}");
        let (status, body, _) = get(&app, &path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::GONE, "{}: {body}", db.name);
        let (status, _, _) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/passk"),
            Some(&cookie),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        db.cleanup().await;
    }
}

/// Issue 27: reviewers judge independently (blind in the project); κ per pair and Fleiss' κ equal
/// a computation from the judgements; a unanimous judgement counts like an override in reviewed
/// numbers; a split one waits in the queue until an editor decides; a blind non-editor sees only
/// their own judgements.
#[tokio::test]
async fn blind_judgements_agreement_and_the_queue() {
    use caplens_analysis::agreement::{cohen_kappa, fleiss_kappa};
    for db in TestDb::all().await {
        let store = db.store.clone();
        let file = write_rollouts(db.dir());
        import(&store, &file, SLUG).await;
        let all = lines(&file);
        // Four wrong answer clusters (problem key, normalised answer).
        let mut targets: Vec<(String, String)> = Vec::new();
        for l in all.iter().filter(|l| !l.correct) {
            let Some(a) = &l.answer else { continue };
            let t = (
                format!("{}/{}", l.dataset, l.problem_id),
                normalize_answer(a),
            );
            if !t.1.is_empty() && !targets.iter().any(|x| x.0 == t.0) {
                targets.push(t);
            }
        }
        let targets = &targets[..4];
        let auth = Auth::new(store.clone(), AuthSettings::default());
        let (_, ann) = session(&auth, &store, "ann").await;
        let (_, bob) = session(&auth, &store, "bob").await;
        let project = store.project_by_slug("default").await.unwrap().unwrap();
        for (name, role) in [("ann", Role::Editor), ("bob", Role::Viewer)] {
            let id = store.user_by_name(name).await.unwrap().unwrap().row.id;
            store.set_member(project.id, id, role).await.unwrap();
        }
        store.set_viewers_comment(project.id, true).await.unwrap();
        let operator = Caller::operator();
        review::set_blind_review(&operator.access(&store), "default", true)
            .await
            .unwrap();
        let app = web::router_with_auth(
            ImportService::new(store.clone(), db.dir(), 1 << 30),
            Path::new("/nonexistent"),
            "127.0.0.1:0".parse().unwrap(),
            auth.clone(),
        );
        let uri = format!("/api/v1/experiments/{SLUG}/judgements");
        let ann_says = [true, true, false, false];
        let bob_says = [true, false, false, false];
        for (who, says) in [(&ann, ann_says), (&bob, bob_says)] {
            for ((problem, answer), correct) in targets.iter().zip(says) {
                let verdict = if correct { "correct" } else { "wrong" };
                let (status, body) = send_json(
                    &app,
                    "POST",
                    &uri,
                    who,
                    serde_json::json!({"problem": problem, "answer": answer, "verdict": verdict}),
                )
                .await;
                assert_eq!(status, StatusCode::CREATED, "{}: {body}", db.name);
            }
        }
        // A second post replaces the first (bob changes his mind twice, ending where he was).
        for verdict in ["correct", "wrong"] {
            let (status, _) = send_json(
                &app,
                "POST",
                &uri,
                &bob,
                serde_json::json!({"problem": targets[3].0, "answer": targets[3].1, "verdict": verdict}),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        assert_eq!(
            store
                .judgements(store.experiment_ref(SLUG).await.unwrap().unwrap().id, None)
                .await
                .unwrap()
                .len(),
            8
        );

        // Blind: bob (a viewer) sees his own four; ann (an editor) all eight.
        let count = |body: &str| {
            serde_json::from_str::<serde_json::Value>(body).unwrap()["judgements"]
                .as_array()
                .unwrap()
                .len()
        };
        let (_, body) = get(&app, &uri, Some(&bob)).await.map_first();
        assert_eq!(count(&body), 4, "{}: {body}", db.name);
        assert!(!body.contains("\"ann\""));
        let (_, body) = get(&app, &uri, Some(&ann)).await.map_first();
        assert_eq!(count(&body), 8);

        // Agreement equals the hand computation.
        let (status, body) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/agreement"),
            Some(&ann),
        )
        .await
        .map_first();
        assert_eq!(status, StatusCode::OK, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let pairs: Vec<(bool, bool)> = ann_says.into_iter().zip(bob_says).collect();
        let kappa = cohen_kappa(&pairs).unwrap();
        assert_eq!(
            doc["pairs"][0]["reviewers"],
            serde_json::json!(["ann", "bob"])
        );
        assert_eq!(doc["pairs"][0]["items"], 4);
        assert!((doc["pairs"][0]["kappa"].as_f64().unwrap() - kappa).abs() < 1e-12);
        let counts: Vec<(u64, u64)> = pairs
            .iter()
            .map(|&(a, b)| (a as u64 + b as u64, 2 - a as u64 - b as u64))
            .collect();
        let fleiss = fleiss_kappa(&counts).unwrap();
        assert!((doc["fleiss_kappa"].as_f64().unwrap() - fleiss).abs() < 1e-12);
        assert_eq!(doc["disagreements"].as_array().unwrap().len(), 1);
        assert_eq!(doc["disagreements"][0]["problem"], targets[1].0.as_str());
        assert_eq!(
            doc["disagreements"][0]["judgements"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "an editor sees who"
        );
        let (_, body) = get(
            &app,
            &format!("/api/v1/experiments/{SLUG}/agreement"),
            Some(&bob),
        )
        .await
        .map_first();
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["blind"], true);
        assert_eq!(
            doc["disagreements"][0]["judgements"]
                .as_array()
                .unwrap()
                .len(),
            0,
            "blind: counts only"
        );

        // The unanimous "correct" counts in reviewed numbers; the split one waits in the queue.
        let views = ViewService::new(store.clone());
        let local = Caller::new(Principal::local(), None);
        let access = local.access(&store);
        let problems = |reviewed: &'static str| {
            let views = views.clone();
            let access = local.access(&store);
            async move {
                let request = caplens_app::views::ProblemsRequest::try_from_query(|k| match k {
                    "reviewed" => Some(reviewed.to_string()),
                    "limit" => Some("500".to_string()),
                    _ => None,
                })
                .unwrap();
                caplens_server::ops::views::problems(&access, &views, SLUG, request, false)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let (with, without) = (problems("1").await, problems("0").await);
        let c_of = |v: &caplens_app::views::ProblemsView, key: &str| -> u64 {
            v.rows
                .iter()
                .find(|r| r.key == key)
                .unwrap()
                .cells
                .iter()
                .flatten()
                .map(|(c, _)| c)
                .sum()
        };
        let reviewed_gain = c_of(&with, &targets[0].0) - c_of(&without, &targets[0].0);
        let selected_models: Vec<&str> = with
            .frame
            .runs
            .iter()
            .filter(|r| with.frame.selected.contains(&r.id))
            .map(|r| r.model.as_str())
            .collect();
        let answered = all
            .iter()
            .filter(|l| {
                !l.correct
                    && selected_models.contains(&l.model.as_str())
                    && format!("{}/{}", l.dataset, l.problem_id) == targets[0].0
                    && l.answer.as_deref().map(normalize_answer).as_deref()
                        == Some(targets[0].1.as_str())
            })
            .count() as u64;
        assert_eq!(
            reviewed_gain, answered,
            "{}: the unanimous judgement counts",
            db.name
        );
        assert_eq!(
            c_of(&with, &targets[1].0),
            c_of(&without, &targets[1].0),
            "a split one does not"
        );
        let queue = review::review_queue(&access, &views, SLUG, 0.3, false)
            .await
            .unwrap();
        let entry = queue
            .entries
            .iter()
            .find(|q| q.key == targets[1].0)
            .expect("the disagreement is in the queue");
        assert!(
            entry.kinds.iter().any(|k| k == "reviewers-disagree"),
            "{:?}",
            entry.kinds
        );
        let stored = store.problem_prompts(&[entry.problem_id]).await.unwrap();
        assert_eq!(
            Some(&entry.prompt),
            stored.get(&entry.problem_id),
            "queue entries carry their prompt"
        );
        // An editor decides: it leaves the "reviewers disagree" reason.
        review::add_override(
            &access,
            SLUG,
            &OverrideRequest {
                problem: Some(serde_json::Value::from(targets[1].0.clone())),
                answer: Some(targets[1].1.clone()),
                rollout: None,
                verdict: "wrong".into(),
                reason: "decided".into(),
            },
        )
        .await
        .unwrap();
        let queue = review::review_queue(&access, &views, SLUG, 0.3, false)
            .await
            .unwrap();
        assert!(!queue
            .entries
            .iter()
            .any(|q| q.key == targets[1].0 && q.kinds.iter().any(|k| k == "reviewers-disagree")));
        db.cleanup().await;
    }
}
