//! Upload: how rollouts get into caplens.

use leptos::prelude::*;

use crate::components::common::PageTitle;

#[component]
pub fn UploadPage() -> impl IntoView {
    view! {
        <PageTitle text="Upload" />
        <h1>"Upload rollouts"</h1>
        <p class="lede">
            "caplens reads rollouts in its native JSON Lines format (one object per rollout, or "
            "per-problem counts). See "
            <a href="https://github.com/caplens/caplens/blob/main/docs/formats/native.md">"docs/formats/native.md"</a>
            "."
        </p>
        <div class="notice" role="note">
            <p>
                <strong>"Not available yet: "</strong>
                "uploading from the browser, the REST import endpoint and "
                <code>"caplens import"</code>
                " are being built (the ingest work). Until then, the analysis commands work on "
                "files directly:"
            </p>
            <pre><code>"caplens passk rollouts.jsonl --json\ncaplens unsolvable rollouts.jsonl --k 64\ncaplens summary rollouts.jsonl"</code></pre>
        </div>
    }
}
