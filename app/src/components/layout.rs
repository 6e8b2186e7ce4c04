//! The page frame: header with navigation and theme switch, main content, footer.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use super::theme::ThemeToggle;

const NAV: &[(&str, &str)] = &[
    ("/experiments", "Experiments"),
    ("/models", "Models"),
    ("/datasets", "Datasets"),
    ("/runs", "Runs"),
    ("/evals", "Evaluations"),
    ("/upload", "Upload"),
];

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let location = use_location();
    let current = move |href: &str| {
        let path = location.pathname.get();
        path == href
            || path.starts_with(&format!("{href}/"))
            || (href == "/experiments" && path == "/")
    };
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"◎"</span>
                "caplens"
            </A>
            <nav class="site-nav" aria-label="Main">
                {NAV
                    .iter()
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
            </nav>
            <ThemeToggle />
        </header>
        <main id="main" class="content">
            {children()}
        </main>
        <footer class="site-footer">
            "caplens — what can this checkpoint solve that the last one could not?"
        </footer>
    }
}
