//! Signing in and administration: `/login` and `/setup` (plain HTML forms posting to the
//! server's `/auth/*` routes, so they work without JavaScript), `/projects` and
//! `/projects/:slug` (members), `/admin/users`, `/admin/audit`. The server decides every
//! request; these pages only offer what the signed-in user's role allows.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::{
        create_project, create_user, get_audit, list_members, list_projects, list_users,
        set_member, set_user_disabled,
    },
    components::common::{ErrorBox, ListLoader, PageTitle},
    components::detail::set_not_found,
    components::layout::use_session,
    model::{AuditEntry, MemberRow, ProjectRow, Role, UserRow},
};

/// What an `/auth/*` redirect's `error=` code means. Codes, never text from the URL: a link
/// cannot make the sign-in page say something caplens did not write.
fn sign_in_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "bad" => "Wrong name or password.",
        "disabled" => "This account is disabled; ask a site admin.",
        "limited" => "Too many failed sign-ins; wait a quarter of an hour and try again.",
        "server" => "caplens could not check the sign-in; the server log has the details.",
        "setup" => "That setup link is not valid (it works once, and only until an admin exists).",
        "sso" => "Single sign-on failed: the answer from the provider did not match this sign-in (state or nonce); start again.",
        "sso_denied" => "Single sign-on worked, but this account may not use caplens (email domain not allowed, or the account is disabled).",
        "sso_provider" => "The single sign-on provider refused or could not be reached; try again or ask an admin.",
        "no_sso" => "Single sign-on is not configured on this server.",
        "expired" => "Your session ended; sign in again.",
        _ => return None,
    })
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || {
        query
            .with(|q| q.get("error"))
            .and_then(|c| sign_in_message(&c))
    };
    let signed_out = move || query.with(|q| q.get("signed_out")).is_some();
    let next = move || query.with(|q| q.get("next")).unwrap_or_else(|| "/".into());
    let session = use_session();
    let sso = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| s.single_sign_on)
    };
    let passwords = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_none_or(|s| s.passwords)
    };
    view! {
        <PageTitle text="Sign in" />
        <section class="sign-in panel">
            <h1>"Sign in to caplens"</h1>
            {move || signed_out().then(|| view! {
                <p class="notice" data-testid="signed-out">"You are signed out."</p>
            })}
            {move || error().map(|m| view! { <p class="error" role="alert" data-testid="sign-in-error">{m}</p> })}
            <Suspense fallback=|| ()>
                {move || sso().then(|| view! {
                    <p>
                        <a
                            class="button primary"
                            data-testid="sso"
                            rel="external"
                            href=move || format!("/auth/oidc/start?next={}", crate::urlstate::encode_component(&next()))
                        >"Sign in with single sign-on"</a>
                    </p>
                })}
                {move || passwords().then(|| view! {
                    <form method="post" action="/auth/login" class="stacked-form" data-testid="login-form">
                        <input type="hidden" name="next" value=next />
                        <label>
                            <span>"Name"</span>
                            <input type="text" name="name" autocomplete="username" required autofocus />
                        </label>
                        <label>
                            <span>"Password"</span>
                            <input type="password" name="password" autocomplete="current-password" required />
                        </label>
                        <button type="submit" class="primary">"Sign in"</button>
                    </form>
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let secret = move || query.with(|q| q.get("secret")).unwrap_or_default();
    let error = move || {
        query.with(|q| q.get("error")).map(|e| match e.as_str() {
            "weak" => "A password needs at least 10 characters.",
            "name" => "Use 1-64 letters, digits, '.', '_', '-' or '@' for the name.",
            _ => "The setup failed; see the server log.",
        })
    };
    view! {
        <PageTitle text="Set up caplens" />
        <section class="sign-in panel">
            <h1>"Create the first admin"</h1>
            <p class="lede">"This link was printed by " <code>"caplens serve"</code> " and works once."</p>
            {move || error().map(|m| view! { <p class="error" role="alert">{m}</p> })}
            <form method="post" action="/auth/setup" class="stacked-form">
                <input type="hidden" name="secret" value=secret />
                <label><span>"Name"</span><input type="text" name="name" autocomplete="username" required /></label>
                <label><span>"Password (10+ characters)"</span><input type="password" name="password" autocomplete="new-password" required minlength="10" /></label>
                <button type="submit" class="primary">"Create admin and sign in"</button>
            </form>
        </section>
    }
}

fn role_options(selected: Role) -> impl IntoView {
    [Role::Viewer, Role::Editor, Role::Admin]
        .into_iter()
        .map(|r| view! { <option value=r.as_str() selected=r == selected>{r.as_str()}</option> })
        .collect_view()
}

#[component]
pub fn ProjectsPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let projects = Resource::new(move || version.get(), |_| list_projects());
    let session = use_session();
    let is_admin = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| s.site_admin || s.local_mode)
    };
    let slug = RwSignal::new(String::new());
    let open = RwSignal::new(false);
    let create = Action::new(move |_: &()| {
        let (slug, open) = (slug.get_untracked(), open.get_untracked());
        async move { create_project(slug.clone(), slug, open).await }
    });
    Effect::new(move |_| {
        if create.value().get().is_some() {
            version.update(|v| *v += 1);
        }
    });
    let render = |list: Vec<ProjectRow>| {
        view! {
            <table class="data-table" data-testid="projects-table">
                <thead><tr><th>"Project"</th><th>"Name"</th><th>"Readable by"</th></tr></thead>
                <tbody>
                    {list.into_iter().map(|p| view! {
                        <tr>
                            <td><a href=format!("/projects/{}", p.slug)>{p.slug.clone()}</a></td>
                            <td>{p.name}</td>
                            <td>{if p.open_to_all { "everyone signed in" } else { "members" }}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
    };
    view! {
        <PageTitle text="Projects" />
        <h1>"Projects"</h1>
        <p class="lede">"Experiments, datasets, engines and evaluations belong to a project; members are viewers, editors or admins."</p>
        <Suspense fallback=|| ()>
            {move || is_admin().then(|| view! {
                <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); create.dispatch(()); }>
                    <label><span>"New project"</span>
                        <input type="text" placeholder="slug, e.g. rl-team" prop:value=move || slug.get() on:input=move |ev| slug.set(event_target_value(&ev)) />
                    </label>
                    <label class="check"><input type="checkbox" prop:checked=move || open.get() on:change=move |ev| open.set(event_target_checked(&ev)) />" readable by everyone signed in"</label>
                    <button type="submit" class="primary">"Create"</button>
                </form>
            })}
        </Suspense>
        {move || create.value().get().and_then(|r| match r {
            Ok(Err(e)) => Some(view! { <ErrorBox message=e /> }.into_any()),
            Err(e) => Some(view! { <ErrorBox message=e.to_string() /> }.into_any()),
            _ => None,
        })}
        <ListLoader resource=projects loading="Loading projects…" empty="No projects you can see." render=render />
    }
}

#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.with(|p| p.get("slug")).unwrap_or_default();
    let version = RwSignal::new(0u32);
    let members = Resource::new(move || (slug(), version.get()), |(s, _)| list_members(s));
    let session = use_session();
    let administers = move || {
        session.get().and_then(|s| s.ok()).is_some_and(|s| {
            s.local_mode
                || s.site_admin
                || s.projects
                    .iter()
                    .any(|p| p.slug == slug() && p.role == Some(Role::Admin))
        })
    };
    let user = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let change = Action::new(move |(user, role): &(String, Option<Role>)| {
        let (user, role, project) = (user.clone(), *role, slug());
        async move { set_member(project, user, role).await }
    });
    Effect::new(move |_| {
        if change.value().get().is_some() {
            version.update(|v| *v += 1);
        }
    });
    view! {
        <PageTitle text=format!("Project {}", slug()) />
        <h1>"Project " <code>{slug}</code></h1>
        <Suspense fallback=|| view! { <p>"Loading members…"</p> }>
            {move || members.get().map(|r| match r {
                Err(_) => {
                    set_not_found();
                    view! { <ErrorBox message="No such project." /> }.into_any()
                }
                Ok(list) => view! { <MemberTable list administers=administers() change /> }.into_any(),
            })}
            {move || administers().then(|| view! {
                <form class="inline-form" data-testid="add-member" on:submit=move |ev| { ev.prevent_default(); change.dispatch((user.get_untracked(), Some(role.get_untracked()))); }>
                    <label><span>"User"</span>
                        <input type="text" name="user" placeholder="user name" prop:value=move || user.get() on:input=move |ev| user.set(event_target_value(&ev)) />
                    </label>
                    <label><span>"Role"</span>
                        <select on:change=move |ev| role.set(Role::parse(&event_target_value(&ev)).unwrap_or(Role::Viewer))>
                            {role_options(Role::Viewer)}
                        </select>
                    </label>
                    <button type="submit" class="primary">"Add or change"</button>
                </form>
            })}
        </Suspense>
        {move || change.value().get().and_then(|r| match r {
            Ok(Err(e)) => Some(view! { <ErrorBox message=e /> }.into_any()),
            Err(e) => Some(view! { <ErrorBox message=e.to_string() /> }.into_any()),
            _ => None,
        })}
        <p><a href=move || format!("/experiments?project={}", slug())>"This project's experiments"</a></p>
        {move || view! { <crate::components::review::ProjectReviewPanel project=slug() /> }}
    }
}

#[component]
fn MemberTable(
    list: Vec<MemberRow>,
    administers: bool,
    change: Action<(String, Option<Role>), Result<Result<(), String>, ServerFnError>>,
) -> impl IntoView {
    view! {
        <table class="data-table" data-testid="members-table">
            <thead><tr><th>"Member"</th><th>"Role"</th><th>"Since"</th><th></th></tr></thead>
            <tbody>
                {list.into_iter().map(|m| {
                    let user = m.user.clone();
                    view! {
                        <tr>
                            <td>{m.user.clone()}</td>
                            <td>{m.role.as_str()}</td>
                            <td>{m.added_at}</td>
                            <td>{administers.then(|| view! {
                                <button type="button" on:click=move |_| { change.dispatch((user.clone(), None)); }>"Remove"</button>
                            })}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let users = Resource::new(move || version.get(), |_| list_users());
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let admin = RwSignal::new(false);
    let create = Action::new(move |_: &()| {
        let (n, p, a) = (
            name.get_untracked(),
            password.get_untracked(),
            admin.get_untracked(),
        );
        async move { create_user(n, p, a).await }
    });
    let toggle = Action::new(|(id, disabled): &(i64, bool)| {
        let (id, disabled) = (*id, *disabled);
        async move { set_user_disabled(id, disabled).await }
    });
    Effect::new(move |_| {
        let a = create.value().get().is_some();
        let b = toggle.value().get().is_some();
        if a || b {
            version.update(|v| *v += 1);
        }
    });
    view! {
        <PageTitle text="Users" />
        <h1>"Users"</h1>
        <Suspense fallback=|| view! { <p>"Loading users…"</p> }>
            {move || users.get().map(|r| match r {
                Err(_) => {
                    set_not_found();
                    view! { <ErrorBox message="Page not found." /> }.into_any()
                }
                Ok(list) => view! {
                    <form class="inline-form" data-testid="create-user" on:submit=move |ev| { ev.prevent_default(); create.dispatch(()); }>
                        <label><span>"Name"</span><input type="text" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) /></label>
                        <label><span>"Password"</span><input type="password" autocomplete="new-password" prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) /></label>
                        <label class="check"><input type="checkbox" prop:checked=move || admin.get() on:change=move |ev| admin.set(event_target_checked(&ev)) />" site admin"</label>
                        <button type="submit" class="primary">"Create user"</button>
                    </form>
                    <UserTable list toggle />
                }.into_any(),
            })}
        </Suspense>
        {move || create.value().get().and_then(|r| match r {
            Ok(Err(e)) => Some(view! { <ErrorBox message=e /> }.into_any()),
            Err(e) => Some(view! { <ErrorBox message=e.to_string() /> }.into_any()),
            _ => None,
        })}
        {move || toggle.value().get().and_then(|r| match r {
            Ok(Err(e)) => Some(view! { <ErrorBox message=e /> }.into_any()),
            _ => None,
        })}
    }
}

#[component]
fn UserTable(
    list: Vec<UserRow>,
    toggle: Action<(i64, bool), Result<Result<(), String>, ServerFnError>>,
) -> impl IntoView {
    view! {
        <table class="data-table" data-testid="users-table">
            <thead><tr><th>"Name"</th><th>"Email"</th><th>"Kind"</th><th>"Last sign-in"</th><th>"State"</th><th></th></tr></thead>
            <tbody>
                {list.into_iter().map(|u| {
                    let (id, disabled) = (u.id, u.disabled);
                    view! {
                        <tr>
                            <td>{u.name}</td>
                            <td>{u.email.unwrap_or_default()}</td>
                            <td>{match (u.is_admin, u.single_sign_on) { (true, _) => "site admin", (false, true) => "single sign-on", _ => "password" }}</td>
                            <td>{u.last_login_at.unwrap_or_else(|| "never".into())}</td>
                            <td>{if disabled { "disabled" } else { "active" }}</td>
                            <td><button type="button" on:click=move |_| { toggle.dispatch((id, !disabled)); }>{if disabled { "Enable" } else { "Disable" }}</button></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let before = move || {
        query
            .with(|q| q.get("before"))
            .and_then(|b| b.parse::<i64>().ok())
    };
    let entries = Resource::new(before, get_audit);
    view! {
        <PageTitle text="Audit log" />
        <h1>"Audit log"</h1>
        <p class="lede">"Sign-ins, failed sign-ins, tokens, imports, evaluations, role changes and every refused change: who, what, when, from where. Also " <code>"GET /api/v1/audit"</code> " and " <code>"caplens audit"</code> "."</p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || entries.get().map(|r| match r {
                Err(_) => {
                    set_not_found();
                    view! { <ErrorBox message="Page not found." /> }.into_any()
                }
                Ok(list) => view! { <AuditTable list /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn AuditTable(list: Vec<AuditEntry>) -> impl IntoView {
    let older = list.last().map(|e| e.id).filter(|_| list.len() >= 100);
    view! {
        <table class="data-table" data-testid="audit-table">
            <thead><tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"On"</th><th>"Project"</th><th>"Outcome"</th><th>"Detail"</th><th>"From"</th></tr></thead>
            <tbody>
                {list.into_iter().map(|e| {
                    let class = if e.outcome == "refused" { "refused" } else { "" };
                    view! {
                    <tr class=class>
                        <td>{e.at}</td>
                        <td>{e.actor}</td>
                        <td>{e.action}</td>
                        <td>{e.target}</td>
                        <td>{e.project.unwrap_or_default()}</td>
                        <td>{e.outcome}</td>
                        <td>{e.detail}</td>
                        <td>{e.address.unwrap_or_default()}</td>
                    </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        {older.map(|id| view! { <p><a href=format!("/admin/audit?before={id}")>"Older entries"</a></p> })}
    }
}
