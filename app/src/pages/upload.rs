//! Upload: drop files, see what caplens recognised, fill in the run's metadata (prefilled from
//! the files), upload with a progress bar, follow processing, and get links to the new runs.
//! Also the one-line `curl` and `caplens push` for CI, and the recent imports.
//!
//! Uploading needs JavaScript (the page says so without it); everything else renders on the
//! server. The browser uploads with an API token kept in localStorage, created on request.

use crate::components::layout::ProjectSelect;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    api::{create_token, list_import_formats, list_imports},
    components::common::{ErrorBox, ListLoader, PageTitle},
    model::{verdict_tally_text, ImportView, ImportedRunView},
};

/// What `POST /api/v1/imports/detect` says about one file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Detected {
    pub format: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub hints: Hints,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Hints {
    pub model: Option<String>,
    pub dataset: Option<String>,
    pub step: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub n_per_problem: Option<i64>,
    #[serde(default)]
    pub has_tokens: bool,
}

/// One picked file as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PickedFile {
    pub name: String,
    pub size: f64,
    /// `None` while detection runs.
    pub detected: Option<Detected>,
}

// Constructed only in the browser (the server renders the idle page).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Idle,
    Uploading { loaded: f64, total: f64 },
    Processing(ImportView),
    Finished(ImportView),
    Failed(String),
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The metadata form's values.
#[derive(Clone, Copy)]
struct Form {
    experiment: RwSignal<String>,
    model: RwSignal<String>,
    stage: RwSignal<String>,
    parent: RwSignal<String>,
    step: RwSignal<String>,
    dataset: RwSignal<String>,
    format: RwSignal<String>,
    temperature: RwSignal<String>,
    top_p: RwSignal<String>,
    max_tokens: RwSignal<String>,
    skip_invalid: RwSignal<bool>,
    regrade: RwSignal<bool>,
}

impl Form {
    fn new() -> Self {
        Form {
            experiment: RwSignal::new(String::new()),
            model: RwSignal::new(String::new()),
            stage: RwSignal::new(String::new()),
            parent: RwSignal::new(String::new()),
            step: RwSignal::new(String::new()),
            dataset: RwSignal::new(String::new()),
            format: RwSignal::new(String::new()),
            temperature: RwSignal::new(String::new()),
            top_p: RwSignal::new(String::new()),
            max_tokens: RwSignal::new(String::new()),
            skip_invalid: RwSignal::new(false),
            regrade: RwSignal::new(false),
        }
    }

    /// Fills empty fields from what a file says.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn prefill(&self, h: &Hints) {
        let fill = |sig: RwSignal<String>, v: Option<String>| {
            if let Some(v) = v {
                if sig.get_untracked().is_empty() {
                    sig.set(v);
                }
            }
        };
        fill(self.model, h.model.clone());
        fill(self.dataset, h.dataset.clone());
        fill(self.step, h.step.map(|v| v.to_string()));
        fill(self.temperature, h.temperature.map(|v| v.to_string()));
        fill(self.top_p, h.top_p.map(|v| v.to_string()));
        fill(self.max_tokens, h.max_tokens.map(|v| v.to_string()));
    }

    /// The import metadata as JSON (`POST /api/v1/imports` metadata part); a field that does
    /// not parse is an error naming it.
    fn metadata(&self) -> Result<String, String> {
        let mut m = serde_json::Map::new();
        let text =
            |m: &mut serde_json::Map<String, serde_json::Value>, k: &str, sig: RwSignal<String>| {
                let v = sig.get_untracked().trim().to_owned();
                if !v.is_empty() {
                    m.insert(k.into(), v.into());
                }
            };
        text(&mut m, "experiment", self.experiment);
        text(&mut m, "model", self.model);
        text(&mut m, "stage", self.stage);
        text(&mut m, "parent", self.parent);
        text(&mut m, "dataset", self.dataset);
        text(&mut m, "format", self.format);
        let int = |m: &mut serde_json::Map<String, serde_json::Value>,
                   k: &str,
                   sig: RwSignal<String>|
         -> Result<(), String> {
            let v = sig.get_untracked().trim().to_owned();
            if !v.is_empty() {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("{k}: {v:?} is not a whole number"))?;
                m.insert(k.into(), n.into());
            }
            Ok(())
        };
        int(&mut m, "step", self.step)?;
        int(&mut m, "max_tokens", self.max_tokens)?;
        for (k, sig) in [("temperature", self.temperature), ("top_p", self.top_p)] {
            let v = sig.get_untracked().trim().to_owned();
            if !v.is_empty() {
                let x: f64 = v
                    .parse()
                    .map_err(|_| format!("{k}: {v:?} is not a number"))?;
                m.insert(k.into(), serde_json::json!(x));
            }
        }
        if self.skip_invalid.get_untracked() {
            m.insert("skip_invalid".into(), true.into());
        }
        if self.regrade.get_untracked() {
            m.insert("regrade".into(), true.into());
        }
        Ok(serde_json::Value::Object(m).to_string())
    }
}

#[component]
pub fn UploadPage() -> impl IntoView {
    let token = RwSignal::new(None::<String>);
    let hydrated = RwSignal::new(false);
    let origin = RwSignal::new("$CAPLENS_URL".to_owned());
    let picked = RwSignal::new(Vec::<PickedFile>::new());
    let phase = RwSignal::new(Phase::Idle);
    let form = Form::new();
    let imports_version = RwSignal::new(0u32);
    let imports = Resource::new(move || imports_version.get(), |_| list_imports());
    // The format choices are the server's registry of importers, not a list of our own.
    let formats = Resource::new(|| (), |_| list_import_formats());
    // Team mode: the page uploads with the session (no token in the browser), into a project
    // the user edits. Local mode: with an API token kept in localStorage, as before accounts.
    let session = crate::components::layout::use_session();
    let team = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| !s.local_mode)
    };
    let project = RwSignal::new(String::new());

    Effect::new(move |_| {
        hydrated.set(true);
        #[cfg(feature = "hydrate")]
        {
            token.set(crate::browser::stored_token());
            origin.set(crate::browser::origin());
        }
    });

    let make_token = Action::new(|_: &()| async move {
        create_token(
            format!("browser upload ({})", "Upload page"),
            None,
            None,
            None,
        )
        .await
    });
    Effect::new(move |_| {
        if let Some(Ok(created)) = make_token.value().get() {
            #[cfg(feature = "hydrate")]
            crate::browser::store_token(&created.secret);
            token.set(Some(created.secret));
        }
    });

    // Picking files: remember them, show them, detect each one's format.
    #[cfg(feature = "hydrate")]
    let pick = move |files: Vec<web_sys::File>| {
        use leptos::task::spawn_local;
        picked.set(
            files
                .iter()
                .map(|f| PickedFile {
                    name: f.name(),
                    size: f.size(),
                    detected: None,
                })
                .collect(),
        );
        phase.set(Phase::Idle);
        crate::browser::set_files(files.clone());
        for (i, file) in files.into_iter().enumerate() {
            spawn_local(async move {
                let head = file.slice_with_f64_and_f64(0.0, 262_144.0).ok();
                let url = format!(
                    "/api/v1/imports/detect?filename={}",
                    js_sys::encode_uri_component(&file.name())
                );
                let detected = match head {
                    Some(blob) => {
                        crate::browser::request("POST", &url, Some(&blob.into()), None, None)
                            .await
                            .ok()
                            .and_then(|a| serde_json::from_str::<Detected>(&a.body).ok())
                    }
                    None => None,
                }
                .unwrap_or(Detected {
                    message: Some("could not read the start of the file".into()),
                    ..Default::default()
                });
                form.prefill(&detected.hints);
                picked.update(|list| {
                    if let Some(p) = list.get_mut(i) {
                        p.detected = Some(detected);
                    }
                });
            });
        }
    };
    #[cfg(not(feature = "hydrate"))]
    let pick = |_: ()| {};

    let on_change = move |_ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let input = _ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
            pick(crate::browser::file_list(input.and_then(|i| i.files())));
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        pick(crate::browser::file_list(
            ev.data_transfer().and_then(|d| d.files()),
        ));
    };
    let _ = &pick;

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let metadata = match form.metadata() {
            Ok(m) => m,
            Err(e) => {
                phase.set(Phase::Failed(e));
                return;
            }
        };
        let _ = &metadata;
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::browser;
            let files = browser::files();
            if files.is_empty() {
                phase.set(Phase::Failed("choose at least one file".into()));
                return;
            }
            let in_team = team();
            let secret = token.get_untracked();
            if secret.is_none() && !in_team {
                phase.set(Phase::Failed(
                    "create an API token for this browser first".into(),
                ));
                return;
            }
            let chosen = project.get_untracked();
            let url = if in_team && !chosen.is_empty() {
                format!(
                    "/api/v1/imports?project={}",
                    js_sys::encode_uri_component(&chosen)
                )
            } else {
                "/api/v1/imports".to_owned()
            };
            let data = web_sys::FormData::new().expect("FormData");
            for f in &files {
                let _ = data.append_with_blob_and_filename("file", f, &f.name());
            }
            let _ = data.append_with_str("metadata", &metadata);
            let total: f64 = files.iter().map(|f| f.size()).sum();
            phase.set(Phase::Uploading { loaded: 0.0, total });
            let progress = Box::new(move |loaded: f64, total: f64| {
                phase.set(Phase::Uploading { loaded, total });
            });
            let answer = browser::request(
                "POST",
                &url,
                Some(&data.into()),
                if in_team { None } else { secret.as_deref() },
                Some(progress),
            )
            .await;
            let mut view = match answer {
                Ok(a) if a.status == 202 => match serde_json::from_str::<ImportView>(&a.body) {
                    Ok(v) => v,
                    Err(e) => {
                        phase.set(Phase::Failed(format!("unexpected answer: {e}")));
                        return;
                    }
                },
                Ok(a) if a.status == 401 => {
                    browser::forget_token();
                    token.set(None);
                    phase.set(Phase::Failed(browser::api_message(&a.body)));
                    return;
                }
                Ok(a) => {
                    phase.set(Phase::Failed(browser::api_message(&a.body)));
                    return;
                }
                Err(e) => {
                    phase.set(Phase::Failed(e));
                    return;
                }
            };
            loop {
                let finished = matches!(view.status.as_str(), "completed" | "failed" | "duplicate");
                if finished {
                    phase.set(Phase::Finished(view));
                    imports_version.update(|v| *v += 1);
                    return;
                }
                phase.set(Phase::Processing(view.clone()));
                browser::sleep_ms(400).await;
                let url = format!("/api/v1/imports/{}", view.id);
                if let Ok(a) = browser::request("GET", &url, None, None, None).await {
                    if let Ok(next) = serde_json::from_str::<ImportView>(&a.body) {
                        view = next;
                    }
                }
            }
        });
    };

    let busy = move || matches!(phase.get(), Phase::Uploading { .. } | Phase::Processing(_));
    let example_query = move || {
        let e = form.experiment.get();
        let m = form.model.get();
        format!(
            "experiment={}&model={}",
            if e.is_empty() {
                "my-experiment".into()
            } else {
                e
            },
            if m.is_empty() { "my-model".into() } else { m }
        )
    };
    let render_imports = |list: Vec<ImportView>| view! { <ImportsTable list /> };

    view! {
        <PageTitle text="Upload" />
        <h1>"Upload rollouts"</h1>
        <p class="lede">
            "Drop evaluation outputs as they are: caplens reads its native JSON Lines, "
            "lm-evaluation-harness samples, Qwen2.5-Math JSONL, Inspect AI logs, verl dumps, "
            "OpenAI-compatible responses with logprobs (plain, .gz or .zst) and lighteval details "
            "(parquet). Re-uploading the same "
            "file for the same model adds nothing."
        </p>
        // Shown by the server and until hydration: without JavaScript it stays.
        <Show when=move || !hydrated.get()>
            <p class="notice" data-testid="needs-js">
                "Uploading from this page needs JavaScript. Without it, use "
                <code>"caplens push"</code> " or the " <code>"curl"</code> " line below."
            </p>
        </Show>

        <Suspense fallback=|| ()>
        {move || team().then(|| view! {
            <section class="panel" aria-labelledby="project-h">
                <h2 id="project-h">"Project"</h2>
                <ProjectSelect project label="The runs go to project" />
            </section>
        })}
        <Show when=move || !team()>
        <section class="panel" aria-labelledby="token-h">
            <h2 id="token-h">"API token"</h2>
            {move || match token.get() {
                Some(t) => view! {
                    <p data-testid="token-state">
                        "This browser uploads with token " <code>{t.chars().take(10).collect::<String>()} "…"</code> ". "
                        <a href="/tokens">"Manage tokens"</a>
                    </p>
                }.into_any(),
                None => view! {
                    <p data-testid="token-state">
                        "Uploads need an API token. "
                        <button
                            type="button"
                            data-testid="create-token"
                            disabled=move || !hydrated.get() || make_token.pending().get()
                            on:click=move |_| { make_token.dispatch(()); }
                        >
                            "Create a token for this browser"
                        </button>
                        " · " <a href="/tokens">"Manage tokens"</a>
                    </p>
                }.into_any(),
            }}
            {move || make_token.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=e.to_string() /> })}
        </section>
        </Show>
        </Suspense>

        <form class="upload-form" on:submit=submit data-testid="upload-form">
            <label
                class="dropzone"
                on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=on_drop
            >
                <span class="dropzone-title">"Drop files here, or click to choose"</span>
                <span class="dropzone-hint">"several files make one import"</span>
                <input
                    type="file"
                    multiple
                    data-testid="file-input"
                    disabled=move || !hydrated.get()
                    on:change=on_change
                />
            </label>
            <Show when=move || !picked.get().is_empty()>
                <div class="table-wrap">
                    <table class="data-table" data-testid="picked-files">
                        <thead>
                            <tr>
                                <th scope="col">"File"</th>
                                <th scope="col" class="num">"Size"</th>
                                <th scope="col">"Detected format"</th>
                                <th scope="col">"The file says"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {move || picked.get().into_iter().map(|f| {
                                let (format, says) = match &f.detected {
                                    None => ("detecting…".to_owned(), String::new()),
                                    Some(d) => (
                                        d.title.clone().or(d.message.clone()).unwrap_or_default(),
                                        describe_hints(&d.hints),
                                    ),
                                };
                                view! {
                                    <tr>
                                        <td>{f.name}</td>
                                        <td class="num">{human_bytes(f.size)}</td>
                                        <td data-testid="detected-format">{format}</td>
                                        <td>{says}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </Show>

            <fieldset class="form-grid">
                <legend>"Where the runs go"</legend>
                <TextField label="Experiment" name="experiment" sig=form.experiment placeholder="uploads (slug: a-z, 0-9, -)" />
                <TextField label="Model" name="model" sig=form.model placeholder="from the file" />
                <label>
                    <span>"Stage"</span>
                    <select name="stage" on:change=move |ev| form.stage.set(event_target_value(&ev)) prop:value=move || form.stage.get()>
                        <option value="">"guess from the name"</option>
                        <option value="base">"base"</option>
                        <option value="sft">"sft"</option>
                        <option value="rl">"rl"</option>
                        <option value="tir">"tir"</option>
                        <option value="other">"other"</option>
                    </select>
                </label>
                <TextField label="Parent model" name="parent" sig=form.parent placeholder="trained from (must exist)" />
                <TextField label="Training step" name="step" sig=form.step placeholder="" />
                <TextField label="Dataset" name="dataset" sig=form.dataset placeholder="from the file" />
            </fieldset>
            <fieldset class="form-grid">
                <legend>"How it was sampled and read"</legend>
                <TextField label="Temperature" name="temperature" sig=form.temperature placeholder="" />
                <TextField label="top-p" name="top_p" sig=form.top_p placeholder="" />
                <TextField label="Max tokens" name="max_tokens" sig=form.max_tokens placeholder="" />
                <label>
                    <span>"Format"</span>
                    <select name="format" on:change=move |ev| form.format.set(event_target_value(&ev)) prop:value=move || form.format.get()>
                        <option value="">"detect from the content"</option>
                        <Suspense fallback=|| ()>
                            {move || formats.get().map(|listed| {
                                listed.unwrap_or_default().into_iter().map(|f| view! {
                                    <option value=f.name>{f.title}</option>
                                }).collect_view()
                            })}
                        </Suspense>
                    </select>
                </label>
                <label class="check">
                    <input type="checkbox" prop:checked=move || form.skip_invalid.get() on:change=move |ev| form.skip_invalid.set(event_target_checked(&ev)) />
                    <span>"Skip invalid rows (and list them) instead of failing"</span>
                </label>
                <label class="check">
                    <input type="checkbox" prop:checked=move || form.regrade.get() on:change=move |ev| form.regrade.set(event_target_checked(&ev)) />
                    <span>"Regrade every answer with caplens' verifier"</span>
                </label>
            </fieldset>
            <button
                type="submit"
                class="primary"
                data-testid="upload-button"
                disabled=move || !hydrated.get() || busy() || picked.get().is_empty() || (token.get().is_none() && !team())
            >
                "Upload"
            </button>
        </form>

        <section aria-live="polite" data-testid="upload-status">
            {move || match phase.get() {
                Phase::Idle => ().into_any(),
                Phase::Uploading { loaded, total } => view! {
                    <Progress label="Uploading" value=loaded max=total detail=format!("{} of {}", human_bytes(loaded), human_bytes(total)) />
                }.into_any(),
                Phase::Processing(v) => view! {
                    <Progress
                        label="Processing"
                        value=v.bytes_read as f64
                        max=v.bytes_total.max(1) as f64
                        detail=format!("{}: {} rows read, {} stored", v.status, v.rows_read, v.rows_stored)
                    />
                }.into_any(),
                Phase::Finished(v) => view! { <ImportResult view=v /> }.into_any(),
                Phase::Failed(e) => view! { <ErrorBox message=e /> }.into_any(),
            }}
        </section>

        <section class="panel" aria-labelledby="ci-h">
            <h2 id="ci-h">"From CI"</h2>
            <p>"Upload each checkpoint's results with one line (a token from " <a href="/tokens">"Tokens"</a> " in " <code>"CAPLENS_TOKEN"</code> "):"</p>
            <pre data-testid="curl-line"><code>{move || format!(
                "curl -fsS -H \"Authorization: Bearer $CAPLENS_TOKEN\" --data-binary @results.jsonl \"{}/api/v1/imports?{}\"",
                origin.get(), example_query()
            )}</code></pre>
            <p>"or with the caplens binary (progress bar, waits for the result):"</p>
            <pre><code>{move || format!(
                "caplens push results.jsonl --url {} --token \"$CAPLENS_TOKEN\" --experiment {}",
                origin.get(),
                { let e = form.experiment.get(); if e.is_empty() { "my-experiment".to_owned() } else { e } }
            )}</code></pre>
        </section>

        <section aria-labelledby="recent-h">
            <h2 id="recent-h">"Recent imports"</h2>
            <ListLoader resource=imports loading="Loading imports…" empty="No imports yet." render=render_imports />
        </section>
    }
}

fn describe_hints(h: &Hints) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &h.model {
        parts.push(format!("model {m}"));
    }
    if let Some(d) = &h.dataset {
        parts.push(format!("dataset {d}"));
    }
    if let Some(s) = h.step {
        parts.push(format!("step {s}"));
    }
    if let Some(n) = h.n_per_problem {
        parts.push(format!("{n} samples per problem"));
    }
    if let Some(t) = h.temperature {
        parts.push(format!("temperature {t}"));
    }
    if h.has_tokens {
        parts.push("token logprobs".into());
    }
    parts.join(", ")
}

#[component]
fn TextField(
    label: &'static str,
    name: &'static str,
    sig: RwSignal<String>,
    placeholder: &'static str,
) -> impl IntoView {
    view! {
        <label>
            <span>{label}</span>
            <input
                type="text"
                name=name
                placeholder=placeholder
                prop:value=move || sig.get()
                on:input=move |ev| sig.set(event_target_value(&ev))
            />
        </label>
    }
}

#[component]
fn Progress(
    label: &'static str,
    value: f64,
    max: f64,
    #[prop(into)] detail: String,
) -> impl IntoView {
    let pct = if max > 0.0 {
        (value / max * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    view! {
        <div class="progress-block" data-testid="progress">
            <span class="progress-label">{label} " " {format!("{pct:.0}%")}</span>
            <progress value=value max=max>{format!("{pct:.0}%")}</progress>
            <span class="progress-detail">{detail}</span>
        </div>
    }
}

#[component]
fn ImportResult(view: ImportView) -> impl IntoView {
    let heading = match view.status.as_str() {
        "completed" => "Imported",
        "duplicate" => "Already imported",
        _ => "Import failed",
    };
    let experiment = view.experiment.clone();
    let runs = view.runs.clone();
    let has_runs = !runs.is_empty();
    view! {
        <div class=format!("result result-{}", view.status) data-testid="import-result">
            <h3>{heading}</h3>
            <p>
                {format!("{} rows read, {} stored, {} rejected.", view.rows_read, view.rows_stored, view.rows_rejected)}
                {experiment.filter(|_| view.status == "completed").map(|e| view! {
                    " " <a href=format!("/experiments/{e}") data-testid="experiment-link">{format!("Open experiment {e}")}</a>
                })}
            </p>
            {view.message.clone().map(|m| view! { <p class="message">{m}</p> })}
            <Show when={let has = !runs.is_empty(); move || has}>
                <ul class="run-list">
                    {runs.iter().map(|r: &ImportedRunView| {
                        let pct = |p: Option<f64>| p.map_or("–".into(), |p| format!("{:.1}%", p * 100.0));
                        let both = (r.pass_at_1_file != r.pass_at_1_caplens).then(|| format!(
                            " (the file's verdicts: {}, caplens': {})", pct(r.pass_at_1_file), pct(r.pass_at_1_caplens)));
                        view! {
                            <li>
                                {format!("Run {}: {} on {} — {} problems, {} rollouts, pass@1 {}",
                                    r.id, r.model, if r.dataset.is_empty() { "(no dataset)" } else { &r.dataset },
                                    r.problems, r.rollouts, pct(r.pass_at_1))}
                                {both}
                                {r.source.status.clone().map(|s| view! {
                                    <span class="notice-inline" data-testid="tool-status">
                                        {format!(" — the {} run in this file ended as “{s}”", r.source.tool.clone().unwrap_or_else(|| "tool's".into()))}
                                    </span>
                                })}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </Show>
            {view.verdicts.filter(|_| has_runs).map(|t| view! {
                <p class="meta" data-testid="import-verdicts">{format!("Graded: {}.", verdict_tally_text(&t))}</p>
            })}
            {(!view.warnings.is_empty()).then(|| view! {
                <div class="notice" role="status" data-testid="import-warnings">
                    <strong>"Warnings"</strong>
                    <ul>{view.warnings.iter().map(|w| view! { <li>{w.clone()}</li> }).collect_view()}</ul>
                </div>
            })}
            <Show when={let has = !view.errors.is_empty(); move || has}>
                <details open>
                    <summary>"Rejected rows (first ones)"</summary>
                    <ul class="error-list">
                        {view.errors.iter().map(|e| view! { <li><code>{e.clone()}</code></li> }).collect_view()}
                    </ul>
                </details>
            </Show>
        </div>
    }
}

#[component]
fn ImportsTable(list: Vec<ImportView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data-table" data-testid="imports-table">
                <thead>
                    <tr>
                        <th scope="col">"Import"</th>
                        <th scope="col">"Files"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col" class="num">"Stored"</th>
                        <th scope="col" class="num">"Rejected"</th>
                        <th scope="col">"Experiment"</th>
                        <th scope="col">"When"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|i| {
                        let files = i.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", ");
                        let title = i.message.clone().unwrap_or_default();
                        view! {
                            <tr>
                                <td><code>{i.id.clone()}</code></td>
                                <td>{files}</td>
                                <td title=title>{i.status.clone()}</td>
                                <td class="num">{i.rows_stored}</td>
                                <td class="num">{i.rows_rejected}</td>
                                <td>{i.experiment.clone().filter(|_| i.status == "completed").map(|e| view! { <a href=format!("/experiments/{e}")>{e.clone()}</a> })}</td>
                                <td>{i.created_at.clone()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
