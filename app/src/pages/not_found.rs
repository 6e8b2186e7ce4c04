//! The 404 page.

use leptos::prelude::*;

use crate::components::common::PageTitle;
use leptos_router::hooks::use_location;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    let location = use_location();
    view! {
        <PageTitle text="Page not found" />
        <div class="not-found" data-testid="not-found">
            <h1>"Page not found"</h1>
            <p>"Nothing lives at " <code>{move || location.pathname.get()}</code> "."</p>
            <p><a href="/experiments">"Back to the experiments"</a></p>
        </div>
    }
}
