//! API tokens: create (the secret is shown once), list, revoke. Tokens authenticate uploads
//! from CI (`curl`, `caplens push`) and from the Upload page.

use leptos::prelude::*;

use crate::{
    api::{create_token, list_tokens, revoke_token},
    components::common::{ErrorBox, ListLoader, PageTitle},
    model::ApiTokenRow,
};

#[component]
pub fn TokensPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let tokens = Resource::new(move || version.get(), |_| list_tokens());
    let name = RwSignal::new(String::new());
    let project = RwSignal::new(String::new());
    let scope = RwSignal::new("write".to_owned());
    let expires = RwSignal::new(String::new());
    let session = crate::components::layout::use_session();
    let projects = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .map(|s| s.projects)
            .unwrap_or_default()
    };
    let create = Action::new(move |name: &String| {
        let name = name.clone();
        let project = Some(project.get_untracked()).filter(|p| !p.is_empty());
        let scope = Some(scope.get_untracked());
        let expires = expires.get_untracked().trim().parse::<u32>().ok();
        async move { create_token(name, project, scope, expires).await }
    });
    let revoke = Action::new(|id: &i64| {
        let id = *id;
        async move { revoke_token(id).await }
    });
    Effect::new(move |_| {
        // Read both (no short-circuit), so the effect tracks both actions.
        let created = create.value().get().is_some();
        let revoked = revoke.value().get().is_some();
        if created || revoked {
            version.update(|v| *v += 1);
        }
    });
    let render = move |list: Vec<ApiTokenRow>| view! { <TokenTable list revoke /> };
    view! {
        <PageTitle text="API tokens" />
        <h1>"API tokens"</h1>
        <p class="lede">
            "A token lets a script upload rollouts: send it as "
            <code>"Authorization: Bearer <token>"</code>
            ". caplens keeps only a hash; the secret is shown once, when created. "
            "The command line does the same: " <code>"caplens token create|list|revoke"</code> "."
        </p>
        <form
            class="inline-form"
            on:submit=move |ev| {
                ev.prevent_default();
                create.dispatch(name.get_untracked());
            }
        >
            <label>
                <span>"Name"</span>
                <input
                    type="text"
                    placeholder="what it is for, e.g. ci"
                    data-testid="token-name"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
            </label>
            <Suspense fallback=|| ()>
                <label>
                    <span>"Project"</span>
                    <select data-testid="token-project" on:change=move |ev| project.set(event_target_value(&ev))>
                        {move || projects().into_iter().map(|p| {
                            let selected = p.slug == "default";
                            view! { <option value=p.slug.clone() selected=selected>{p.slug.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
            </Suspense>
            <label>
                <span>"Scope"</span>
                <select data-testid="token-scope" on:change=move |ev| scope.set(event_target_value(&ev))>
                    <option value="write" selected>"write (upload, evaluate)"</option>
                    <option value="read">"read"</option>
                </select>
            </label>
            <label>
                <span>"Expires after (days)"</span>
                <input type="number" min="1" max="3650" placeholder="never" data-testid="token-expires"
                    prop:value=move || expires.get() on:input=move |ev| expires.set(event_target_value(&ev)) />
            </label>
            <button type="submit" class="primary" data-testid="token-create">"Create token"</button>
        </form>
        {move || create.value().get().map(|r| match r {
            Ok(t) => view! {
                <div class="notice secret" data-testid="token-secret">
                    <p><strong>{format!("Token {:?} created.", t.token.name)}</strong> " Copy the secret now; it is not shown again:"</p>
                    <pre><code>{t.secret}</code></pre>
                </div>
            }.into_any(),
            Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
        })}
        <ListLoader resource=tokens loading="Loading tokens…" empty="No tokens yet." render=render />
    }
}

#[component]
fn TokenTable(
    list: Vec<ApiTokenRow>,
    revoke: Action<i64, Result<bool, ServerFnError>>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data-table" data-testid="tokens-table">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Token"</th>
                        <th scope="col">"Project"</th>
                        <th scope="col">"Scope"</th>
                        <th scope="col">"User"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"State"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|t| {
                        let id = t.id;
                        let active = t.revoked_at.is_none();
                        view! {
                            <tr>
                                <td>{t.name}</td>
                                <td><code>{format!("{}…", t.prefix)}</code></td>
                                <td>{t.project.clone().unwrap_or_default()}</td>
                                <td>{t.scope.clone()}</td>
                                <td>{t.user.clone().unwrap_or_else(|| "(local)".into())}</td>
                                <td>{t.created_at}</td>
                                <td>{t.expires_at.clone().unwrap_or_else(|| "never".into())}</td>
                                <td>{t.last_used_at.unwrap_or_else(|| "never".into())}</td>
                                <td>
                                    {if active {
                                        view! { <button type="button" on:click=move |_| { revoke.dispatch(id); }>"Revoke"</button> }.into_any()
                                    } else {
                                        view! { <span>{format!("revoked {}", t.revoked_at.unwrap_or_default())}</span> }.into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
