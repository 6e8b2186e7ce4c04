//! caplens-app: the web UI. Pages render on the server (feature `ssr`) and hydrate in the browser
//! (feature `hydrate`, built to wasm). Data comes through server functions (`api`) that call the
//! server's [`data::DataSource`]; this crate never touches the database itself.

#![recursion_limit = "256"]

// The plain data types live in caplens-model (built beside this crate); their old paths stay.
pub use caplens_model::{escape, evals, heat, model, review};

pub mod api;
#[cfg(feature = "hydrate")]
pub mod browser;
pub mod charts;
pub mod components;
pub mod data;
pub mod math;
pub mod pages;
pub mod tables;
pub mod urlstate;
pub mod views;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use components::layout::Layout;
use pages::{
    compare::ComparePage, datasets::DatasetsPage, dynamics::DynamicsPage,
    experiment::ExperimentPage, experiments::ExperimentsPage, models::ModelsPage,
    not_found::NotFound, passk::PasskPage, runs::RunsPage, token_stats::TokenStatsPage,
    tokens::TokensPage, unsolvable::UnsolvablePage, upload::UploadPage,
};
use pages::{problem::ProblemPage, rollout::RolloutPage};

/// The HTML document around the app; used by the server for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.ico" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The application: layout, navigation and routes.
///
/// Every route renders with `SsrMode::Async`: the server waits for the page's data and sends the
/// complete HTML, so pages are readable with JavaScript disabled (out-of-order streaming would
/// need JS to swap the content in).
/// The Content-Security-Policy of a page: scripts only with this response's nonce (Leptos puts
/// it on the hydration and resource scripts) and what they load (`strict-dynamic`), wasm, no
/// framing, forms only to this site.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        response.insert_header(
            http::header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_str(&page_csp(&nonce.to_string())).expect("ASCII policy"),
        );
    }
    view! {
        <Stylesheet id="caplens-css" href="/pkg/caplens.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "caplens".to_string() } else { format!("{page} · caplens") }
        } />
        <Router>
            <Layout>
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/") view=ExperimentsPage ssr=SsrMode::Async />
                    <Route path=path!("/experiments") view=ExperimentsPage ssr=SsrMode::Async />
                    <Route
                        path=path!("/experiments/:slug")
                        view=ExperimentPage
                        ssr=SsrMode::Async
                    />
                    <Route path=path!("/experiments/:slug/passk") view=PasskPage ssr=SsrMode::Async />
                    <Route
                        path=path!("/experiments/:slug/unsolvable")
                        view=UnsolvablePage
                        ssr=SsrMode::Async
                    />
                    <Route path=path!("/experiments/:slug/problems") view=pages::problems::ProblemsPage ssr=SsrMode::Async />
                    <Route path=path!("/experiments/:slug/compare") view=ComparePage ssr=SsrMode::Async />
                    <Route
                        path=path!("/experiments/:slug/token-stats")
                        view=TokenStatsPage
                        ssr=SsrMode::Async
                    />
                    <Route
                        path=path!("/experiments/:slug/dynamics")
                        view=DynamicsPage
                        ssr=SsrMode::Async
                    />
                    <Route path=path!("/experiments/:slug/rft") view=pages::rft::RftPage ssr=SsrMode::Async />
                    <Route path=path!("/experiments/:slug/review") view=pages::review::ReviewQueuePage ssr=SsrMode::Async />
                    <Route path=path!("/experiments/:slug/discussion") view=pages::review::DiscussionPage ssr=SsrMode::Async />
                    <Route path=path!("/experiments/:slug/agreement") view=pages::review::AgreementPage ssr=SsrMode::Async />
                    <Route path=path!("/experiments/:slug/settings") view=pages::review::ExperimentSettingsPage ssr=SsrMode::Async />
                    <Route path=path!("/glossary") view=pages::docs::GlossaryPage ssr=SsrMode::Async />
                    <Route path=path!("/docs/*name") view=pages::docs::DocsPage ssr=SsrMode::Async />
                    <Route path=path!("/inbox") view=pages::review::InboxPage ssr=SsrMode::Async />
                    <Route path=path!("/models") view=ModelsPage ssr=SsrMode::Async />
                    <Route path=path!("/datasets") view=DatasetsPage ssr=SsrMode::Async />
                    <Route path=path!("/datasets/:id") view=pages::datasets::DatasetPage ssr=SsrMode::Async />
                    <Route path=path!("/runs") view=RunsPage ssr=SsrMode::Async />
                    <Route path=path!("/upload") view=UploadPage ssr=SsrMode::Async />
                    <Route path=path!("/evals") view=pages::evals::EvalsPage ssr=SsrMode::Async />
                    <Route path=path!("/evals/:id") view=pages::evals::EvaluationPage ssr=SsrMode::Async />
                    <Route path=path!("/tokens") view=TokensPage ssr=SsrMode::Async />
                    <Route path=path!("/problems/:id") view=ProblemPage ssr=SsrMode::Async />
                    <Route path=path!("/rollouts/:id") view=RolloutPage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=pages::access::LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/setup") view=pages::access::SetupPage ssr=SsrMode::Async />
                    <Route path=path!("/projects") view=pages::access::ProjectsPage ssr=SsrMode::Async />
                    <Route path=path!("/projects/:slug") view=pages::access::ProjectPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/users") view=pages::access::UsersPage ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view=pages::access::AuditPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}

/// Browser entry point: hydrate the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // A marker for browser tests (and curious users): the wasm has taken over the page.
    if let Some(html) = document().document_element() {
        let _ = html.set_attribute("data-hydrated", "true");
    }
}
