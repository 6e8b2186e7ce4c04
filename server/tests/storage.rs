//! Storage tests, run against SQLite and (when configured) PostgreSQL.

mod common;

use caplens_analysis::passk::{pass_at_k_curve, ProblemCounts};
use caplens_server::demo::{
    self,
    generate::{generate_demo, DemoConfig},
};
use common::TestDb;
use std::path::Path;

fn small_demo() -> DemoConfig {
    DemoConfig {
        problems: 24,
        samples_per_problem: 16,
        checkpoint_samples: 4,
        ..DemoConfig::default()
    }
}

/// Runs, rollouts and models of both demo experiments.
fn demo_sizes(config: &DemoConfig) -> (usize, usize, usize) {
    let checkpoints = caplens_server::demo::generate::CHECKPOINT_STEPS.len();
    (
        3 + checkpoints,
        config.problems
            * (3 * config.samples_per_problem + checkpoints as u32 * config.checkpoint_samples)
                as usize,
        3 + checkpoints,
    )
}

/// Replicas and workers starting together on one fresh database (issue 17): each opens its
/// own pools, migrates, loads the demo if the database is empty and seeds the built-in
/// dataset. All of them start, and the demo and the dataset are stored once.
#[tokio::test]
async fn replicas_starting_together_migrate_and_seed_once() {
    for db in TestDb::all_unmigrated().await {
        let config = db.config();
        let starts = (0..4).map(|_| {
            let (config, dir) = (config.clone(), db.dir().to_path_buf());
            tokio::spawn(async move {
                let store = caplens_server::storage::Store::open(&config, &dir)
                    .await
                    .map_err(|e| e.to_string())?;
                store.migrate().await.map_err(|e| e.to_string())?;
                let demo = demo::load_demo_if_empty(&store, &small_demo())
                    .await
                    .map_err(|e| e.to_string())?;
                caplens_server::evals::datasets::ensure_builtin(&store)
                    .await
                    .map_err(|e| e.to_string())?;
                store.close().await;
                Ok::<bool, String>(demo.is_some())
            })
        });
        let mut loaded = 0;
        for start in starts.collect::<Vec<_>>() {
            match start.await.unwrap() {
                Ok(l) => loaded += l as usize,
                Err(e) => panic!("{}: a replica failed to start: {e}", db.name),
            }
        }
        assert_eq!(
            loaded, 1,
            "{}: the demo is loaded by exactly one replica",
            db.name
        );
        let (runs, _, _) = demo_sizes(&small_demo());
        let stored_runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(stored_runs as usize, runs, "{}", db.name);
        let builtin: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM datasets WHERE source = 'builtin'")
                .fetch_one(db.store.pool())
                .await
                .unwrap();
        assert_eq!(builtin, 1, "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for db in TestDb::all().await {
        db.store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{}: second migrate: {e}", db.name));
        assert_eq!(db.store.experiment_count().await.unwrap(), 0, "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn demo_loads_with_lineage_and_matching_pass_at_1() {
    for db in TestDb::all().await {
        let config = small_demo();
        let loaded = demo::load_demo(&db.store, &config).await.unwrap();
        let data = generate_demo(&config);
        let dynamics = data.dynamics.as_ref().unwrap();
        assert_eq!(
            loaded.rollouts,
            data.rollouts.len() + dynamics.rollouts.len()
        );
        assert_eq!(
            loaded.experiments,
            [
                data.experiment.slug.as_str(),
                dynamics.experiment.slug.as_str()
            ]
        );

        let experiments = db.store.experiments().await.unwrap();
        assert_eq!(experiments.len(), 2, "{}", db.name);
        assert_eq!(
            experiments[0].slug, loaded.slug,
            "{}: the main demo lists first",
            db.name
        );
        assert!(experiments.iter().all(|e| e.is_demo));
        assert_eq!(experiments[0].run_count, 3);
        assert_eq!(experiments[0].model_count, 3);

        let detail = db
            .store
            .experiment(&loaded.slug)
            .await
            .unwrap()
            .expect("demo experiment");
        let stages: Vec<&str> = detail.runs.iter().map(|r| r.stage.as_str()).collect();
        assert_eq!(
            stages,
            ["base", "sft", "rl"],
            "{}: runs in lineage order",
            db.name
        );
        let depths: Vec<u32> = detail.runs.iter().map(|r| r.lineage_depth).collect();
        assert_eq!(depths, [0, 1, 2], "{}: lineage depth", db.name);
        assert_eq!(
            detail.runs[1].parent_model.as_deref(),
            Some(data.models[0].name.as_str())
        );

        // pass@1 stored per run equals the analysis crate's pass@1 over the generated rollouts.
        let n = config.samples_per_problem as usize;
        for (run_index, run) in detail.runs.iter().enumerate() {
            let counts: Vec<ProblemCounts> = (0..config.problems)
                .map(|p| {
                    let start = (run_index * config.problems + p) * n;
                    let c = data.rollouts[start..start + n]
                        .iter()
                        .filter(|r| r.correct)
                        .count();
                    ProblemCounts {
                        n: n as u64,
                        c: c as u64,
                    }
                })
                .collect();
            let expected = pass_at_k_curve(&counts, &[1])[0].pass_at_k;
            let got = run.pass_at_1.expect("pass@1");
            assert!(
                (got - expected).abs() < 1e-12,
                "{}: {} pass@1 {got} vs {expected}",
                db.name,
                run.model
            );
            assert_eq!(run.problems, config.problems as i64);
            assert_eq!(run.rollouts, (config.problems * n) as i64);
        }

        let models = db.store.models().await.unwrap();
        assert_eq!(models.len(), demo_sizes(&config).2);
        let sft = models.iter().find(|m| m.stage == "sft").unwrap();
        assert!(
            models
                .iter()
                .filter(|m| m.stage == "rl")
                .all(|m| m.parent_id == Some(sft.id)),
            "{}",
            db.name
        );
        let dynamics_detail = db
            .store
            .experiment(&dynamics.experiment.slug)
            .await
            .unwrap()
            .unwrap();
        let steps: Vec<Option<i64>> = dynamics_detail
            .runs
            .iter()
            .map(|r| r.training_step)
            .collect();
        assert_eq!(steps.len(), 12);
        assert!(
            steps.iter().all(Option::is_some),
            "{}: checkpoints carry their step",
            db.name
        );

        let datasets = db.store.datasets().await.unwrap();
        assert_eq!(datasets[0].problem_count, config.problems as i64);
        assert!(db.store.experiment("no-such-slug").await.unwrap().is_none());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn demo_reset_replaces_without_duplicating() {
    for db in TestDb::all().await {
        let config = small_demo();
        demo::load_demo(&db.store, &config).await.unwrap();
        demo::reset_demo(&db.store, &config).await.unwrap();
        demo::reset_demo(&db.store, &config).await.unwrap();
        assert_eq!(
            db.store.experiments().await.unwrap().len(),
            2,
            "{}",
            db.name
        );
        let (runs, rollouts, models) = demo_sizes(&config);
        assert_eq!(
            db.store.models().await.unwrap().len(),
            models,
            "{}",
            db.name
        );
        assert_eq!(db.store.runs().await.unwrap().len(), runs, "{}", db.name);
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollouts")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(stored as usize, rollouts);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_failed_load_leaves_nothing_behind() {
    for db in TestDb::all().await {
        let config = small_demo();
        demo::load_demo(&db.store, &config).await.unwrap();
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollouts")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        // Loading again without reset hits unique names midway: the transaction must roll back.
        let err = demo::load_demo(&db.store, &config).await;
        assert!(err.is_err(), "{}: duplicate load must fail", db.name);
        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollouts")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(before, after, "{}", db.name);
        assert_eq!(db.store.datasets().await.unwrap().len(), 1, "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn load_if_empty_only_loads_into_an_empty_database() {
    for db in TestDb::all().await {
        let first = demo::load_demo_if_empty(&db.store, &small_demo())
            .await
            .unwrap();
        assert!(first.is_some(), "{}", db.name);
        let second = demo::load_demo_if_empty(&db.store, &small_demo())
            .await
            .unwrap();
        assert!(second.is_none(), "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn text_is_stored_verbatim_including_hostile_content() {
    for db in TestDb::all().await {
        let hostile = "<script>alert(1)</script> \\boxed{\\frac{1}{2}} 答案 end";
        let mut tx = db.store.begin_bulk().await.unwrap();
        let ds = tx.insert_dataset("d", hostile, "", None).await.unwrap();
        let pid = tx
            .insert_problem(ds, "p1", hostile, "1/2", "", &["t".into()])
            .await
            .unwrap();
        assert!(pid > 0);
        tx.commit().await.unwrap();
        let datasets = db.store.datasets().await;
        assert_eq!(datasets.unwrap()[0].description, hostile, "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn demo_reset_explains_when_demo_models_are_used_elsewhere() {
    use caplens_server::storage::bulk::NewRun;
    for db in TestDb::all().await {
        let config = small_demo();
        demo::load_demo(&db.store, &config).await.unwrap();
        // A user's own run on the demo's rl model, outside the demo experiment.
        let (model_id, dataset_id, project_id): (i64, i64, i64) = sqlx::query_as("SELECT r.model_id, r.dataset_id, r.project_id FROM runs r JOIN models m ON m.id = r.model_id WHERE m.stage = 'rl'")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        let mut tx = db.store.begin_bulk().await.unwrap();
        let run = NewRun {
            project_id,
            model_id,
            dataset_id,
            label: "mine",
            temperature: None,
            top_p: None,
            max_tokens: None,
            n_per_problem: None,
            seed: None,
            prompt_template: None,
            status: "completed",
            origin: "upload",
            import_id: None,
        };
        tx.insert_run(&run).await.unwrap();
        tx.commit().await.unwrap();
        let err = demo::reset_demo(&db.store, &config)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("used by runs outside the demo"),
            "{}: {err}",
            db.name
        );
        assert_eq!(
            db.store.experiments().await.unwrap().len(),
            2,
            "{}: the failed reset changed nothing",
            db.name
        );
        db.cleanup().await;
    }
}

/// Migration 0010 on a database of the version before: a dataset (with its problems), a model
/// lineage and their runs used by two projects become one copy per project, every row of a
/// project pointing at its own copy; the built-in dataset stays shared; nothing is lost.
#[tokio::test]
async fn existing_databases_give_each_project_its_own_rows() {
    use sqlx::migrate::Migrator;
    for db in TestDb::all_unmigrated().await {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(if db.name == "sqlite" {
            "../migrations/sqlite"
        } else {
            "../migrations/postgres"
        });
        let mut before = Migrator::new(dir.as_path()).await.unwrap();
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < 10)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(db.store.pool()).await.unwrap();
        let pool = db.store.pool();
        let exec = |sql: &'static str| async move { sqlx::query(sql).execute(pool).await.unwrap() };
        let one = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(pool)
                .await
                .unwrap()
        };
        exec("INSERT INTO projects (slug, name, created_at) VALUES ('p1', 'P1', 'x'), ('p2', 'P2', 'x')").await;
        let p1 = one("SELECT id FROM projects WHERE slug = 'p1'").await;
        let p2 = one("SELECT id FROM projects WHERE slug = 'p2'").await;
        exec("INSERT INTO datasets (name, created_at, source) VALUES ('aime', 'x', 'upload'), ('arith-calibrated', 'x', 'builtin')").await;
        exec("INSERT INTO problems (dataset_id, problem_key, prompt, reference_answer) SELECT id, 'q1', 'secret', '42' FROM datasets WHERE name = 'aime'").await;
        exec("INSERT INTO problems (dataset_id, problem_key, prompt, reference_answer) SELECT id, 'a1', '1+1', '2' FROM datasets WHERE name = 'arith-calibrated'").await;
        exec("INSERT INTO models (name, stage, created_at) VALUES ('base', 'base', 'x')").await;
        exec("INSERT INTO models (name, stage, parent_id, created_at) SELECT 'rl', 'rl', id, 'x' FROM models WHERE name = 'base'").await;
        let experiments = "INSERT INTO experiments (slug, name, created_at, project_id) SELECT 'e-' || slug, slug, 'x', id FROM projects WHERE slug IN ('p1', 'p2')";
        exec(experiments).await;
        for (project, dataset) in [("p1", "aime"), ("p2", "aime"), ("p2", "arith-calibrated")] {
            sqlx::query(
                "INSERT INTO runs (model_id, dataset_id, status, origin, created_at, project_id)
                 SELECT (SELECT id FROM models WHERE name = 'rl'), d.id, 'completed', 'upload', 'x', p.id
                 FROM datasets d, projects p WHERE d.name = $1 AND p.slug = $2",
            )
            .bind(dataset)
            .bind(project)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO experiment_runs (experiment_id, run_id)
                 SELECT e.id, (SELECT MAX(id) FROM runs) FROM experiments e WHERE e.slug = 'e-' || $1",
            )
            .bind(project)
            .execute(pool)
            .await
            .unwrap();
        }
        exec("INSERT INTO rollouts (run_id, problem_id, sample_index, correct) SELECT r.id, p.id, 0, 1 FROM runs r JOIN problems p ON p.dataset_id = r.dataset_id").await;
        exec("INSERT INTO run_problem_stats (run_id, problem_id, n, c) SELECT r.id, p.id, 1, 1 FROM runs r JOIN problems p ON p.dataset_id = r.dataset_id").await;
        exec("INSERT INTO verdict_overrides (experiment_id, problem_id, answer, verdict, reason, created_by, created_at)
              SELECT e.id, p.id, '42', 1, 'ok', 'x', 'x' FROM experiments e, problems p WHERE e.slug = 'e-p2' AND p.problem_key = 'q1'").await;
        let rollouts_before = one("SELECT COUNT(*) FROM rollouts").await;

        db.store.migrate().await.unwrap();

        // aime: one per project; the built-in dataset: still one, shared.
        assert_eq!(
            one("SELECT COUNT(*) FROM datasets WHERE name = 'aime'").await,
            2,
            "{}",
            db.name
        );
        assert_eq!(one("SELECT COUNT(*) FROM datasets WHERE name = 'arith-calibrated' AND project_id IS NULL").await, 1, "{}", db.name);
        // Every run reads its own project's dataset, problems and models.
        let crossing = one(
            "SELECT COUNT(*) FROM runs r JOIN datasets d ON d.id = r.dataset_id JOIN models m ON m.id = r.model_id
             WHERE (d.project_id IS NOT NULL AND d.project_id <> r.project_id) OR m.project_id <> r.project_id",
        )
        .await;
        assert_eq!(
            crossing, 0,
            "{}: a run reads another project's dataset or model",
            db.name
        );
        let crossing = one(
            "SELECT COUNT(*) FROM rollouts o JOIN runs r ON r.id = o.run_id JOIN problems p ON p.id = o.problem_id
             JOIN datasets d ON d.id = p.dataset_id WHERE d.project_id IS NOT NULL AND d.project_id <> r.project_id",
        )
        .await;
        assert_eq!(
            crossing, 0,
            "{}: a rollout reads another project's problem",
            db.name
        );
        let crossing = one(
            "SELECT COUNT(*) FROM verdict_overrides o JOIN experiments e ON e.id = o.experiment_id JOIN problems p ON p.id = o.problem_id
             JOIN datasets d ON d.id = p.dataset_id WHERE d.project_id <> e.project_id",
        )
        .await;
        assert_eq!(
            crossing, 0,
            "{}: an override points at another project's problem",
            db.name
        );
        // Lineages stay whole within each project.
        for p in [p1, p2] {
            let parents: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM models c JOIN models par ON par.id = c.parent_id
                 WHERE c.name = 'rl' AND c.project_id = $1 AND par.project_id = $1 AND par.name = 'base'",
            )
            .bind(p)
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(parents, 1, "{}: project {p}'s rl lost its parent", db.name);
        }
        assert_eq!(
            one("SELECT COUNT(*) FROM rollouts").await,
            rollouts_before,
            "{}: rollouts lost",
            db.name
        );
        assert_eq!(
            one("SELECT COUNT(*) FROM problems WHERE prompt = 'secret'").await,
            2,
            "{}",
            db.name
        );
        db.cleanup().await;
    }
}
