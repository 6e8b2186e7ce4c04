//! Evaluation runs (issue 7): `/evals` (start one, upload a dataset, recent runs) and
//! `/evals/:id` (live progress over server-sent events, cancel / resume, links to the run's
//! views when it completes).

use crate::components::layout::ProjectSelect;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::{
    api::{
        cancel_evaluation, get_eval_form, get_evaluation, list_evaluations, resume_evaluation,
        start_evaluation,
    },
    components::common::{ErrorBox, ListLoader, PageTitle},
    evals::{estimated_tokens, EvalFormOptions, EvalStartRequest, EvaluationView},
};

/// `12.3 s`, `4 min 5 s`, `1 h 2 min`.
pub fn duration_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".into();
    }
    let s = seconds.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// The link to an evaluation's run in its experiment's pass@k view.
fn run_links(v: &EvaluationView) -> Option<(String, String, String)> {
    let run = v.run_id?;
    let slug = crate::urlstate::encode_component(&v.experiment);
    Some((
        format!("/experiments/{slug}/passk?runs={run}"),
        format!("/experiments/{slug}/token-stats?runs={run}"),
        format!("/experiments/{slug}"),
    ))
}

#[component]
pub fn StatusBadge(#[prop(into)] status: String) -> impl IntoView {
    let class = format!("status status-{status}");
    view! { <span class=class data-testid="eval-status">{status}</span> }
}

#[component]
pub fn EvalsPage() -> impl IntoView {
    let options = Resource::new(|| (), |_| get_eval_form());
    let can_edit = crate::components::layout::can_edit_somewhere();
    let options_refetch = move || options.refetch();
    let version = RwSignal::new(0u32);
    let evaluations = Resource::new(move || version.get(), |_| list_evaluations());
    let render = move |list: Vec<EvaluationView>| view! { <EvaluationTable list /> };
    view! {
        <PageTitle text="Evaluations" />
        <h1>"Evaluations"</h1>
        <p class="lede">
            "Sample a dataset with a model and grade every answer with caplens' verifier. "
            "The built-in engine runs SmolLM2-135M-Instruct on this machine's CPU; a site admin "
            "adds your vLLM or SGLang server with " <code>"POST /api/v1/engines"</code> " or "
            <code>"caplens engine add"</code> ". The same runs start from the command line ("
            <code>"caplens eval"</code> ") and the REST API (" <code>"POST /api/v1/evals"</code> ")."
        </p>
        <Suspense fallback=|| view! { <p class="loading">"Loading engines and datasets…"</p> }>
            {move || Suspend::new(async move {
                let options = options.await;
                // Only those who may start evaluations see the forms (the server checks anyway).
                if !can_edit.get() {
                    return view! {
                        <p class="notice" data-testid="no-eval-rights">"Starting evaluations and uploading datasets needs the editor role in a project; ask a project admin."</p>
                    }.into_any();
                }
                match options {
                    Ok(o) => view! { <NewEvaluation options=o /> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
        // Outside the form's Suspense: refetching the options after an upload must not
        // re-create this component (it holds the upload's outcome).
        <Suspense fallback=|| ()>
            <Show when=move || can_edit.get()>
                <DatasetUpload on_done=options_refetch />
            </Show>
        </Suspense>
        <section class="panel" aria-labelledby="recent-h">
            <h2 id="recent-h">"Recent evaluations"</h2>
            <ListLoader resource=evaluations loading="Loading evaluations…" empty="No evaluation yet: start one above." render=render />
        </section>
    }
}

#[component]
fn NewEvaluation(options: EvalFormOptions) -> impl IntoView {
    let d = options.defaults.clone();
    let project = RwSignal::new(String::new());
    let engine = RwSignal::new(d.engine.clone());
    let dataset = RwSignal::new(d.dataset.clone());
    let n = RwSignal::new(d.n.to_string());
    let temperature = RwSignal::new(d.temperature.to_string());
    let top_p = RwSignal::new(d.top_p.to_string());
    let max_tokens = RwSignal::new(d.max_tokens.to_string());
    let top_logprobs = RwSignal::new(d.top_logprobs.to_string());
    let seed = RwSignal::new(String::from("0"));
    let experiment = RwSignal::new(d.experiment.clone());
    let model = RwSignal::new(String::new());
    let limit = RwSignal::new(String::new());
    let template = RwSignal::new(d.prompt_template.clone());
    let system = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let datasets = options.datasets.clone();
    let engines = options.engines.clone();

    let problems = {
        let datasets = datasets.clone();
        move || {
            let name = dataset.get();
            let all = datasets
                .iter()
                .find(|x| x.name == name)
                .map(|x| x.problems)
                .unwrap_or(0);
            match limit.get().trim().parse::<i64>() {
                Ok(l) if l > 0 => all.min(l),
                _ => all,
            }
        }
    };
    let estimate = {
        let problems = problems.clone();
        move || {
            let n = n.get().trim().parse::<u64>().unwrap_or(0);
            let m = max_tokens.get().trim().parse::<u64>().unwrap_or(0);
            let p = problems().max(0) as u64;
            format!(
                "{p} problems × {n} samples = {} samples; at most {} tokens to generate",
                p * n,
                estimated_tokens(p, n, m)
            )
        }
    };
    let start = Action::new(|r: &EvalStartRequest| {
        let r = r.clone();
        async move { start_evaluation(r).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(Ok(ids))) = start.value().get() {
            if let Some(id) = ids.first() {
                let navigate = leptos_router::hooks::use_navigate();
                navigate(&format!("/evals/{id}"), Default::default());
            }
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        local_error.set(None);
        fn num<T: std::str::FromStr>(field: &str, s: String) -> Result<Option<T>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse()
                .map(Some)
                .map_err(|_| format!("{field}: {s:?} is not a number"))
        }
        let text = |s: RwSignal<String>| Some(s.get_untracked()).filter(|v| !v.trim().is_empty());
        let request = (|| -> Result<EvalStartRequest, String> {
            Ok(EvalStartRequest {
                project: text(project),
                engine: text(engine),
                dataset: text(dataset),
                experiment: text(experiment),
                model: text(model),
                n: num("samples per problem", n.get_untracked())?,
                temperature: num("temperature", temperature.get_untracked())?,
                top_p: num("top-p", top_p.get_untracked())?,
                max_tokens: num("max tokens", max_tokens.get_untracked())?,
                top_logprobs: num("alternatives per token", top_logprobs.get_untracked())?,
                seed: num("seed", seed.get_untracked())?,
                limit: num("first problems only", limit.get_untracked())?,
                prompt_template: text(template),
                system_prompt: text(system),
                ..Default::default()
            })
        })();
        match request {
            Ok(r) => {
                start.dispatch(r);
            }
            Err(m) => local_error.set(Some(m)),
        }
    };
    let field = |label: &'static str,
                 name: &'static str,
                 sig: RwSignal<String>,
                 hint: &'static str| {
        view! {
            <label>
                <span>{label}</span>
                <input type="text" name=name inputmode="decimal" data-testid=format!("eval-{name}")
                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
                <small class="hint">{hint}</small>
            </label>
        }
    };
    view! {
        <section class="panel" aria-labelledby="new-eval-h">
            <h2 id="new-eval-h">"New evaluation"</h2>
            <noscript><p class="notice">"Starting an evaluation from this page needs JavaScript; use "
                <code>"caplens eval"</code> " or " <code>"POST /api/v1/evals"</code> " without it."</p></noscript>
            <form class="eval-form" on:submit=submit data-testid="eval-form">
                <fieldset class="form-grid">
                    <legend>"What"</legend>
                    <ProjectSelect project label="Project" />
                    <label>
                        <span>"Engine"</span>
                        <select name="engine" data-testid="eval-engine" prop:value=move || engine.get()
                            on:change=move |ev| engine.set(event_target_value(&ev))>
                            {engines.iter().map(|e| {
                                let label = format!("{} — {} ({})", e.name, e.model, if e.kind == "embedded" { "CPU, built in".to_string() } else { e.base_url.clone() });
                                view! { <option value=e.name.clone()>{label}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label>
                        <span>"Dataset"</span>
                        <select name="dataset" data-testid="eval-dataset" prop:value=move || dataset.get()
                            on:change=move |ev| dataset.set(event_target_value(&ev))>
                            {datasets.iter().map(|x| {
                                let label = format!("{} ({} problems)", x.name, x.problems);
                                view! { <option value=x.name.clone()>{label}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    {field("First problems only", "limit", limit, "empty = all")}
                    {field("Experiment", "experiment", experiment, "the run joins this experiment")}
                    <label>
                        <span>"Model name"</span>
                        <input type="text" name="model" placeholder="the engine's model" data-testid="eval-model"
                            prop:value=move || model.get() on:input=move |ev| model.set(event_target_value(&ev)) />
                        <small class="hint">"how the run is labelled"</small>
                    </label>
                </fieldset>
                <fieldset class="form-grid">
                    <legend>"Sampling"</legend>
                    {field("Samples per problem", "n", n, "n in pass@k; k goes up to n")}
                    {field("Temperature", "temperature", temperature, "0 = greedy")}
                    {field("Top-p", "top_p", top_p, "nucleus sampling")}
                    {field("Max tokens", "max_tokens", max_tokens, "per sample")}
                    {field("Alternatives per token", "top_logprobs", top_logprobs, "top logprobs kept (0 = no token data)")}
                    {field("Seed", "seed", seed, "sample i of a problem uses its own derived seed")}
                </fieldset>
                <fieldset class="form-grid">
                    <legend>"Prompt"</legend>
                    <label class="wide">
                        <span>"Template"</span>
                        <input type="text" name="prompt_template" data-testid="eval-template"
                            prop:value=move || template.get() on:input=move |ev| template.set(event_target_value(&ev)) />
                        <small class="hint">"{prompt} is replaced by the problem"</small>
                    </label>
                    <label class="wide">
                        <span>"System message"</span>
                        <input type="text" name="system_prompt" placeholder="optional (chat engines)"
                            prop:value=move || system.get() on:input=move |ev| system.set(event_target_value(&ev)) />
                    </label>
                </fieldset>
                <p class="estimate" data-testid="eval-estimate">{estimate}</p>
                <button type="submit" class="primary" data-testid="eval-run"
                    disabled=move || start.pending().get()>
                    {move || if start.pending().get() { "Queueing…" } else { "Run" }}
                </button>
            </form>
            {move || local_error.get().map(|m| view! { <ErrorBox message=m /> })}
            {move || match start.value().get() {
                Some(Err(e)) => Some(server_message(&e)),
                Some(Ok(Err(m))) => Some(m),
                _ => None,
            }.map(|m| view! { <ErrorBox message=m /> })}
        </section>
    }
}

/// A server function error without the framework's prefix.
fn server_message(e: &ServerFnError) -> String {
    let s = e.to_string();
    for prefix in ["error running server function: ", "ServerFnError: "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    s
}

#[component]
fn DatasetUpload(on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let project = RwSignal::new(String::new());
    // Optional field names (empty = detected from the common names).
    let id_field = RwSignal::new(String::new());
    let prompt_field = RwSignal::new(String::new());
    let answer_field = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let busy = RwSignal::new(false);
    let file_input = NodeRef::<leptos::html::Input>::new();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let Some(input) = file_input.get_untracked() else {
                return;
            };
            let files = crate::browser::file_list(input.files());
            let Some(file) = files.into_iter().next() else {
                outcome.set(Some(Err("pick a JSON Lines or parquet file first".into())));
                return;
            };
            let file_name = file.name();
            let dataset_name = Some(name.get_untracked())
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| {
                    file_name
                        .trim_end_matches(".jsonl")
                        .trim_end_matches(".parquet")
                        .to_owned()
                });
            let optional = |s: RwSignal<String>| {
                Some(s.get_untracked().trim().to_owned()).filter(|f| !f.is_empty())
            };
            let fields = crate::evals::DatasetFields {
                id: optional(id_field),
                prompt: optional(prompt_field),
                answer: optional(answer_field),
                tags: None,
            };
            let on_done = on_done.clone();
            busy.set(true);
            leptos::task::spawn_local(async move {
                let result = match crate::browser::file_bytes(&file).await {
                    Ok(bytes) => match crate::api::upload_dataset(
                        dataset_name.clone(),
                        String::new(),
                        file_name,
                        crate::heat::base64_encode(&bytes),
                        fields,
                        Some(project.get_untracked()).filter(|p| !p.is_empty()),
                    )
                    .await
                    {
                        Ok(Ok(count)) => Ok(format!(
                            "Dataset {dataset_name:?} stored: {count} problems."
                        )),
                        Ok(Err(m)) => Err(m),
                        Err(e) => Err(server_message(&e)),
                    },
                    Err(e) => Err(e),
                };
                if result.is_ok() {
                    on_done();
                }
                outcome.set(Some(result));
                busy.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (
                &file_input,
                &on_done,
                &id_field,
                &prompt_field,
                &answer_field,
            );
        }
    };
    view! {
        <section class="panel" aria-labelledby="dataset-h">
            <h2 id="dataset-h">"Upload a dataset"</h2>
            <p>"JSON Lines or parquet, one problem per record: " <code>"{\"id\": \"p1\", \"prompt\": \"…\", \"answer\": \"42\", \"tags\": [\"algebra\"]}"</code>
                ". The common names are recognised (MATH-500's " <code>"problem"</code> "/" <code>"answer"</code> "/" <code>"unique_id"</code>
                ", GSM8K's " <code>"question"</code> "/" <code>"answer"</code> " with its " <code>"#### 72"</code>
                "); name other fields below (" <a href="/docs/formats/dataset">"format"</a>
                "). Every record is checked before anything is stored."</p>
            <form class="inline-form" on:submit=submit data-testid="dataset-form">
                <ProjectSelect project label="Project" />
                <label>
                    <span>"File"</span>
                    <input type="file" accept=".jsonl,.json,.txt,.parquet" node_ref=file_input data-testid="dataset-file" />
                </label>
                <label>
                    <span>"Name"</span>
                    <input type="text" placeholder="default: the file name" data-testid="dataset-name"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <label>
                    <span>"Prompt field"</span>
                    <input type="text" placeholder="detected" size="10" data-testid="dataset-prompt-field"
                        prop:value=move || prompt_field.get() on:input=move |ev| prompt_field.set(event_target_value(&ev)) />
                </label>
                <label>
                    <span>"Answer field"</span>
                    <input type="text" placeholder="detected" size="10" data-testid="dataset-answer-field"
                        prop:value=move || answer_field.get() on:input=move |ev| answer_field.set(event_target_value(&ev)) />
                </label>
                <label>
                    <span>"Id field"</span>
                    <input type="text" placeholder="detected" size="10" data-testid="dataset-id-field"
                        prop:value=move || id_field.get() on:input=move |ev| id_field.set(event_target_value(&ev)) />
                </label>
                <button type="submit" disabled=move || busy.get() data-testid="dataset-upload">"Upload dataset"</button>
            </form>
            {move || outcome.get().map(|r| match r {
                Ok(m) => view! { <p class="notice" data-testid="dataset-ok">{m}</p> }.into_any(),
                Err(m) => view! { <pre class="error-lines" role="alert" data-testid="dataset-error">{m}</pre> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn EvaluationTable(list: Vec<EvaluationView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data-table" data-testid="evals-table">
                <thead>
                    <tr>
                        <th scope="col">"#"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Model"</th>
                        <th scope="col">"Engine"</th>
                        <th scope="col">"Dataset"</th>
                        <th scope="col" class="num">"Samples"</th>
                        <th scope="col" class="num">"pass@1"</th>
                        <th scope="col">"Created"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|v| {
                        let href = format!("/evals/{}", v.id);
                        let pass1 = v.pass_at_k.first().map(|p| format!("{:.3}", p.value)).unwrap_or_else(|| "–".into());
                        view! {
                            <tr>
                                <td><a href=href>{format!("#{}", v.id)}</a></td>
                                <td><StatusBadge status=v.status.clone() /></td>
                                <td>{v.model.clone()}{v.step.map(|s| format!(" (step {s})"))}</td>
                                <td>{v.engine.clone()}</td>
                                <td>{v.dataset.clone()}</td>
                                <td class="num">{format!("{}/{}", v.samples_done, v.samples_total)}</td>
                                <td class="num">{pass1}</td>
                                <td>{v.created_at.clone()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
pub fn EvaluationPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let initial = Resource::new(id, |id| async move {
        match id {
            Some(id) => get_evaluation(id).await,
            None => Ok(None),
        }
    });
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading the evaluation…"</p> }>
            {move || Suspend::new(async move {
                match initial.await {
                    Ok(Some(v)) => view! { <LiveEvaluation initial=v /> }.into_any(),
                    Ok(None) => {
                        crate::components::detail::set_not_found();
                        view! {
                        <PageTitle text="Evaluation not found" />
                        <h1>"Evaluation not found"</h1>
                        <p class="empty">"There is no such evaluation. " <a href="/evals">"All evaluations"</a></p>
                    }.into_any()
                    }
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn LiveEvaluation(initial: EvaluationView) -> impl IntoView {
    let id = initial.id;
    let live = RwSignal::new(initial);
    let acted = RwSignal::new(None::<Result<(), String>>);
    // Follow the progress stream while the page is open (browser only).
    #[cfg(feature = "hydrate")]
    {
        let stream = StoredValue::new_local(None::<crate::browser::EventStream>);
        Effect::new(move |_| {
            let finished = live.with_untracked(|v| v.is_finished());
            if finished || stream.with_value(|s| s.is_some()) {
                return;
            }
            let url = format!("/api/v1/evals/{id}/events");
            let opened = crate::browser::follow_events(&url, &["progress", "done"], move |data| {
                if let Ok(v) = serde_json::from_str::<EvaluationView>(&data) {
                    live.set(v);
                }
            });
            stream.set_value(opened);
        });
        Effect::new(move |_| {
            // Close the stream once the run is finished (the server ends it too).
            if live.with(|v| v.is_finished()) {
                stream.set_value(None);
            }
        });
        on_cleanup(move || stream.set_value(None));
    }
    let cancel = Action::new(move |_: &()| async move { cancel_evaluation(id).await });
    let resume = Action::new(move |_: &()| async move { resume_evaluation(id).await });
    Effect::new(move |_| {
        let c = cancel.value().get();
        let r = resume.value().get();
        for outcome in [c, r].into_iter().flatten() {
            acted.set(Some(outcome.map(|_| ()).map_err(|e| server_message(&e))));
            // Reload so the stream restarts after a resume.
            #[cfg(feature = "hydrate")]
            if let Some(w) = web_sys::window() {
                let _ = w.location().reload();
            }
        }
    });
    let title =
        move || live.with(|v| format!("Evaluation #{} — {} on {}", v.id, v.model, v.dataset));
    view! {
        <PageTitle text=live.with_untracked(|v| format!("Evaluation #{} — {}", v.id, v.model)) />
        <p class="crumbs"><a href="/evals">"Evaluations"</a></p>
        <h1>{title}</h1>
        <div class="eval-head">
            {move || view! { <StatusBadge status=live.with(|v| v.status.clone()) /> }}
            <Show when=move || live.with(|v| matches!(v.status.as_str(), "queued" | "running"))>
                <button type="button" data-testid="eval-cancel" on:click=move |_| { cancel.dispatch(()); }>"Cancel"</button>
            </Show>
            <Show when=move || live.with(|v| matches!(v.status.as_str(), "cancelled" | "failed"))>
                <button type="button" class="primary" data-testid="eval-resume" on:click=move |_| { resume.dispatch(()); }>"Resume"</button>
            </Show>
        </div>
        {move || acted.get().and_then(|r| r.err()).map(|m| view! { <ErrorBox message=m /> })}
        {move || live.with(|v| v.error.clone()).map(|m| view! {
            <div class="error-box" role="alert" data-testid="eval-error"><strong>"The evaluation stopped: "</strong>{m}</div>
        })}
        <section class="panel" aria-labelledby="progress-h">
            <h2 id="progress-h">"Progress"</h2>
            <div class="progress-block"><progress data-testid="eval-progress"
                max=move || live.with(|v| v.samples_total.max(1).to_string())
                value=move || live.with(|v| v.samples_done.to_string())></progress></div>
            <dl class="facts-grid" data-testid="eval-facts">
                <dt>"Problems"</dt><dd data-testid="eval-problems">{move || live.with(|v| format!("{} of {} done", v.problems_done, v.problems))}</dd>
                <dt>"Samples"</dt><dd data-testid="eval-samples">{move || live.with(|v| format!("{} of {} ({:.0} %)", v.samples_done, v.samples_total, v.fraction() * 100.0))}</dd>
                <dt>"Correct"</dt><dd>{move || live.with(|v| v.correct.to_string())}</dd>
                <dt>"Tokens"</dt><dd>{move || live.with(|v| v.tokens.to_string())}</dd>
                <dt>"Speed"</dt><dd data-testid="eval-speed">{move || live.with(|v| if v.is_finished() { "–".to_string() } else { format!("{:.0} tokens/s", v.tokens_per_second) })}</dd>
                <dt>"Time left"</dt><dd>{move || live.with(|v| v.eta_seconds.map(duration_text).unwrap_or_else(|| "–".into()))}</dd>
            </dl>
        </section>
        <section class="panel" aria-labelledby="passk-h">
            <h2 id="passk-h">"pass@k so far"</h2>
            <p class="hint">"Unbiased estimator over the problems with at least k samples."</p>
            <table class="data-table" data-testid="eval-passk">
                <thead><tr><th scope="col" class="num">"k"</th><th scope="col" class="num">"pass@k"</th><th scope="col" class="num">"Problems"</th><th scope="col">""</th></tr></thead>
                <tbody>
                    {move || live.with(|v| v.pass_at_k.clone()).into_iter().map(|p| {
                        let width = format!("width: {:.1}%", p.value * 100.0);
                        view! {
                            <tr>
                                <td class="num">{p.k}</td>
                                <td class="num">{format!("{:.3}", p.value)}</td>
                                <td class="num">{p.problems}</td>
                                <td class="bar-cell"><span class="bar" style=width></span></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        {move || live.with(run_links).map(|(passk, tokens, overview)| view! {
            <section class="panel" aria-labelledby="run-h" data-testid="eval-run-links">
                <h2 id="run-h">"The run"</h2>
                <p>"Every sample is stored with its token trace. Browse it: "
                    <a href=passk data-testid="eval-passk-link">"pass@k curve"</a> " · "
                    <a href=tokens>"token statistics"</a> " · "
                    <a href=overview>"experiment overview"</a> " (problems, rollouts and token heatmaps from there)."</p>
            </section>
        })}
        <section class="panel" aria-labelledby="settings-h">
            <h2 id="settings-h">"Settings"</h2>
            {move || live.with(|v| view! {
                <dl class="facts-grid">
                    <dt>"Engine"</dt><dd>{format!("{} ({})", v.engine, v.engine_kind)}</dd>
                    <dt>"Experiment"</dt><dd>{v.experiment.clone()}</dd>
                    <dt>"Samples per problem"</dt><dd>{v.n}</dd>
                    <dt>"Temperature / top-p"</dt><dd>{format!("{} / {}", v.temperature, v.top_p)}</dd>
                    <dt>"Max tokens"</dt><dd>{v.max_tokens}</dd>
                    <dt>"Alternatives per token"</dt><dd>{v.top_logprobs}</dd>
                    <dt>"Created"</dt><dd>{v.created_at.clone()}</dd>
                </dl>
            })}
        </section>
    }
}
