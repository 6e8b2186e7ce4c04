//! caplens' documents inside the app: `/docs/{name}` (docs/*.md of the running version) and the
//! glossary `/glossary` (every metric's definition, naming the paper the "eq."/"fig." mentions
//! refer to). The HTML is written on the server by the allow-list markdown writer from our own
//! files; a table of contents on the side.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::{api::get_document, components::common::PageTitle, model::DocumentView};

#[component]
pub fn DocsPage() -> impl IntoView {
    let params = use_params_map();
    let name = Signal::derive(move || params.with(|p| p.get("name").unwrap_or_default()));
    view! { <DocumentBody name /> }
}

#[component]
pub fn GlossaryPage() -> impl IntoView {
    view! { <DocumentBody name=Signal::derive(|| "glossary".to_string()) /> }
}

#[component]
fn DocumentBody(name: Signal<String>) -> impl IntoView {
    let document = Resource::new(move || name.get(), get_document);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                document
                    .get()
                    .map(|result| match result {
                        Ok(Some(doc)) => view! { <Document doc /> }.into_any(),
                        Ok(None) => view! { <DocumentMissing name=name.get_untracked() /> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
fn Document(doc: DocumentView) -> impl IntoView {
    let glossary = doc.name == "glossary";
    // The glossary lists its entries (level 3) under their document; other pages their sections.
    let deepest = if glossary { 3 } else { 2 };
    let toc = doc
        .sections
        .iter()
        .filter(|s| s.level >= 2 && s.level <= deepest)
        .map(|s| {
            view! {
                <li class=format!("toc-level-{}", s.level)>
                    <a href=format!("#{}", s.anchor)>{s.title.clone()}</a>
                </li>
            }
        })
        .collect_view();
    view! {
        <PageTitle text=doc.title.clone() />
        <nav class="breadcrumbs" aria-label="Breadcrumbs">
            <a href="/glossary">"Glossary"</a>
            " · "
            <a href="/docs/api">"REST API"</a>
            " · "
            <a href="/docs/cli">"CLI"</a>
            " · "
            <a href="/docs/formats/native">"Formats"</a>
        </nav>
        <h1>{doc.title.clone()}</h1>
        <div class="doc-layout">
            <nav class="doc-toc" aria-label="Contents">
                <ul>{toc}</ul>
            </nav>
            <article class="doc" data-testid="document" inner_html=doc.html />
        </div>
    }
}

#[component]
fn DocumentMissing(name: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <PageTitle text="Document not found" />
        <h1>"Document not found"</h1>
        <p>"There is no document called “" {name} "”. " <a href="/glossary">"The glossary"</a></p>
    }
}
