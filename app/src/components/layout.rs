//! The page frame: header with navigation, who is signed in (or "local mode"), theme switch,
//! main content, footer. The session is loaded once per page here and shared through context
//! ([`use_session`]), so pages can hide controls the user's role would not allow.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use super::theme::ThemeToggle;
use crate::model::SessionView;

const NAV: &[(&str, &str)] = &[
    ("/experiments", "Experiments"),
    ("/models", "Models"),
    ("/datasets", "Datasets"),
    ("/runs", "Runs"),
    ("/evals", "Evaluations"),
    ("/upload", "Upload"),
];

/// The session resource the layout provides.
pub type SessionResource = Resource<Result<SessionView, ServerFnError>>;

/// Who is looking (loaded by the layout).
pub fn use_session() -> SessionResource {
    use_context::<SessionResource>()
        .unwrap_or_else(|| Resource::new(|| (), |_| crate::api::get_session()))
}

/// The signed-in user may change things (upload, evaluate) somewhere; `true` while unknown
/// would flash controls, so unknown counts as no.
pub fn can_edit_somewhere() -> Signal<bool> {
    let session = use_session();
    Signal::derive(move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| s.can_edit_somewhere())
    })
}

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let location = use_location();
    let current = move |href: &str| {
        let path = location.pathname.get();
        path == href
            || path.starts_with(&format!("{href}/"))
            || (href == "/experiments" && path == "/")
    };
    let session: SessionResource = Resource::new(|| (), |_| crate::api::get_session());
    provide_context(session);
    let view_of = move || session.get().and_then(|s| s.ok());
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"◎"</span>
                "caplens"
            </A>
            <Suspense fallback=|| ()>
                {move || {
                    let s = view_of();
                    let signed_in = s.as_ref().is_some_and(|s| s.local_mode || s.user.is_some());
                    let editor = s.as_ref().is_some_and(|s| s.can_edit_somewhere());
                    let admin = s.as_ref().is_some_and(|s| s.site_admin || s.local_mode);
                    let project_admin = s.as_ref().is_some_and(|s| s.administers_somewhere());
                    signed_in.then(|| view! {
                        <nav class="site-nav" aria-label="Main">
                            {NAV
                                .iter()
                                .filter(|(href, _)| editor || *href != "/upload")
                                .map(|&(href, label)| {
                                    view! {
                                        <A
                                            href=href
                                            attr:aria-current=move || current(href).then_some("page")
                                        >
                                            {label}
                                        </A>
                                    }
                                })
                                .collect_view()}
                            <A href="/projects" attr:aria-current=move || current("/projects").then_some("page")>"Projects"</A>
                            {s.as_ref().is_some_and(|s| s.user.is_some()).then(|| view! {
                                <A href="/inbox" attr:aria-current=move || current("/inbox").then_some("page")>"Inbox"</A>
                            })}
                            {admin.then(|| view! {
                                <A href="/admin/users" attr:aria-current=move || current("/admin/users").then_some("page")>"Users"</A>
                            })}
                            {project_admin.then(|| view! {
                                <A href="/admin/audit" attr:aria-current=move || current("/admin/audit").then_some("page")>"Audit"</A>
                            })}
                        </nav>
                    })
                }}
                {move || view! { <SessionBadge session=view_of() /> }}
            </Suspense>
            <ThemeToggle />
        </header>
        <main id="main" class="content">
            <Suspense fallback=|| ()>
                {move || view_of().and_then(|s| s.shared_experiment).map(|slug| view! {
                    <p class="notice read-only-banner" role="note" data-testid="read-only-banner">
                        <strong>"Read-only shared view. "</strong>
                        {format!("This link opens the experiment “{slug}” for reading: you can browse its views, problems and rollouts; commenting, reviewing and changes need an account in its project.")}
                    </p>
                })}
            </Suspense>
            {children()}
        </main>
        <footer class="site-footer">
            "caplens — what can this checkpoint solve that the last one could not?"
            <nav class="footer-links" aria-label="Documentation">
                <a href="/glossary" data-testid="glossary-link">"Glossary"</a>
                <a href="/docs/api">"REST API"</a>
                <a href="/docs/cli">"CLI"</a>
                <a href="/docs/formats/native">"Upload formats"</a>
                <a href="/docs/verifier">"How answers are graded"</a>
            </nav>
        </footer>
    }
}

/// "local mode", or the user's name with sign-out buttons (plain forms: they work without
/// JavaScript, and a sign-out ends the session on the server, so every tab is signed out).
#[component]
fn SessionBadge(session: Option<SessionView>) -> impl IntoView {
    match session {
        Some(s) if s.local_mode => view! {
            <span class="session-badge local" data-testid="local-mode" title="No accounts: everyone who can reach this server has every right. `caplens user create NAME --admin` starts team mode.">"local mode"</span>
        }
        .into_any(),
        Some(SessionView { user: Some(name), .. }) => view! {
            <span class="session-badge" data-testid="signed-in-as">
                <span class="user">{name}</span>
                <a href="/tokens">"Tokens"</a>
                <form method="post" action="/auth/logout" class="sign-out">
                    <button type="submit" data-testid="sign-out">"Sign out"</button>
                </form>
                <form method="post" action="/auth/logout" class="sign-out">
                    <input type="hidden" name="everywhere" value="1" />
                    <button type="submit" class="link" title="End every session of this account, on every device">"Sign out everywhere"</button>
                </form>
            </span>
        }
        .into_any(),
        _ => view! { <a class="session-badge" href="/login" data-testid="sign-in-link">"Sign in"</a> }.into_any(),
    }
}

/// The projects the signed-in user may edit (upload to, evaluate in): site admins every
/// project they see, others those where they are editor or admin.
pub fn editable_projects() -> Signal<Vec<String>> {
    let session = use_session();
    Signal::derive(move || {
        session
            .get()
            .and_then(|s| s.ok())
            .map(|s| {
                s.projects
                    .iter()
                    .filter(|p| {
                        s.site_admin || s.local_mode || p.role >= Some(crate::model::Role::Editor)
                    })
                    .map(|p| p.slug.clone())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// A select of the projects the user may edit, in team mode (local mode has no choice to
/// make: everything goes to `default`). `project` starts empty (the server's default) and
/// follows the choice.
#[component]
pub fn ProjectSelect(project: RwSignal<String>, #[prop(into)] label: String) -> impl IntoView {
    let session = use_session();
    let team = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| !s.local_mode)
    };
    let editable = editable_projects();
    Effect::new(move |_| {
        if project.get_untracked().is_empty() {
            if let Some(first) = editable.get().into_iter().next() {
                project.set(first);
            }
        }
    });
    view! {
        <Suspense fallback=|| ()>
            {move || team().then(|| view! {
                <label>
                    <span>{label.clone()}</span>
                    <select data-testid="project-select" on:change=move |ev| project.set(event_target_value(&ev))>
                        {editable.get().into_iter().map(|slug| {
                            let selected = slug == project.get_untracked();
                            view! { <option value=slug.clone() selected=selected>{slug.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
            })}
        </Suspense>
    }
}
