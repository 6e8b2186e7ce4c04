//! `caplens user`, `caplens project`, `caplens token`, `caplens audit`: accounts, projects and
//! tokens from the command line. The command line has the database itself, so it acts as the
//! server's operator (a site admin); every change is written to the audit log as `cli`, except a
//! token, which is made as its user would make it on the Tokens page (`ops::tokens`).

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;

use crate::auth::{password, policy::TokenScope, Principal};
use crate::ops::Caller;
use crate::storage::access::{AuditRecord, Owned, Role};
use crate::storage::Store;

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is prompted for, or read from stdin when it is not a
    /// terminal (`echo "$PW" | caplens user create ci-bot`).
    Create {
        name: String,
        /// Site admin: manages users and projects.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
    },
    /// List accounts.
    List,
    /// Disable an account (its sessions end; its tokens stop working).
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Set a new password (prompted, or read from stdin); ends the user's sessions.
    ResetPassword { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// Readable by every signed-in user.
        #[arg(long)]
        open: bool,
    },
    /// List projects.
    List,
    /// List a project's members.
    Members { slug: String },
    /// Add a member or change their role.
    AddMember {
        slug: String,
        user: String,
        #[arg(long, value_parser = ["viewer", "editor", "admin"], default_value = "viewer")]
        role: String,
    },
    /// Remove a member.
    RemoveMember { slug: String, user: String },
    /// Let the project's viewers comment on and label problems (`on`), or not (`off`).
    ViewersComment {
        slug: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Make reviewers' judgements blind in the project (`on`: a reviewer sees only their own
    /// until an editor decides), or not (`off`, the default).
    BlindReview {
        slug: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Let the project's admins add and change its engines (`on`), or leave that to site
    /// admins (`off`, the default: an engine makes the server open connections).
    EngineAdmins {
        slug: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Add a review label the project's problems may carry (beside the built-in ones).
    AddLabel {
        slug: String,
        name: String,
        /// `#rrggbb`.
        #[arg(long, default_value = "#56B4E9")]
        colour: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown only this once). Once accounts exist, a
    /// token belongs to a user (`--user`), who must be allowed what it allows.
    Create {
        /// What the token is for, e.g. "ci" or "alice-laptop".
        name: String,
        /// The user it acts for (needed once accounts exist).
        #[arg(long)]
        user: Option<String>,
        /// The project it may act in (default: `default`).
        #[arg(long)]
        project: Option<String>,
        /// `write` (upload, start evaluations) or `read`.
        #[arg(long, value_parser = ["read", "write"], default_value = "write")]
        scope: String,
        /// Expires after this many days (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

fn cli_audit(
    action: &'static str,
    target: String,
    project_id: Option<i64>,
    detail: String,
) -> AuditRecord {
    AuditRecord {
        actor: "cli".into(),
        action,
        target,
        project_id,
        detail,
        address: Some("command line".into()),
        ..Default::default()
    }
}

/// A password from the terminal (not echoed) or from the first line of stdin.
fn read_password(prompt: &str) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    password::check_strength(&password)?;
    Ok(password)
}

async fn hash_password(prompt: &str) -> Result<String, String> {
    let pw = read_password(prompt)?;
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| e.to_string())
}

pub async fn user(store: &Store, command: &UserCommand) -> i32 {
    let result: Result<(), String> = async {
        match command {
            UserCommand::Create { name, admin, email } => {
                let hash = hash_password(&format!("password for {name}: ")).await?;
                let user = store
                    .create_user(name, email.as_deref(), Some(&hash), *admin)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .audit(cli_audit("user_created", format!("user {}", user.name), None, if *admin { "site admin".into() } else { String::new() }))
                    .await;
                println!(
                    "user {} created{}; sign in at /login",
                    user.name,
                    if *admin { " (site admin)" } else { "" }
                );
                if !*admin {
                    eprintln!("add them to a project: caplens project add-member PROJECT {} --role editor", user.name);
                }
            }
            UserCommand::List => {
                let users = store.users().await.map_err(|e| e.to_string())?;
                if users.is_empty() {
                    println!("no accounts (local mode); create the first admin with `caplens user create NAME --admin`");
                }
                for u in users {
                    println!(
                        "{:>4}  {:<24} {:<28} {}{}{}  last sign-in {}",
                        u.id,
                        u.name,
                        u.email.as_deref().unwrap_or("-"),
                        if u.is_admin { "site-admin " } else { "" },
                        if u.single_sign_on { "sso " } else { "" },
                        if u.disabled { "DISABLED" } else { "" },
                        u.last_login_at.as_deref().unwrap_or("never")
                    );
                }
            }
            UserCommand::Disable { name } | UserCommand::Enable { name } => {
                let disable = matches!(command, UserCommand::Disable { .. });
                let user = store
                    .user_by_name(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user named {name:?}"))?;
                store
                    .set_user_disabled(user.row.id, disable)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .audit(cli_audit(if disable { "user_disabled" } else { "user_enabled" }, format!("user {name}"), None, String::new()))
                    .await;
                println!("user {name} {}", if disable { "disabled; their sessions ended" } else { "enabled" });
            }
            UserCommand::ResetPassword { name } => {
                let user = store
                    .user_by_name(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user named {name:?}"))?;
                let hash = hash_password(&format!("new password for {name}: ")).await?;
                store
                    .set_password_hash(user.row.id, &hash)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .audit(cli_audit("password_reset", format!("user {name}"), None, String::new()))
                    .await;
                println!("password of {name} changed; their sessions ended");
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("caplens user: {e}");
            1
        }
    }
}

pub async fn project(store: &Store, command: &ProjectCommand) -> i32 {
    let result: Result<(), String> = async {
        let find = |slug: String| async move {
            store
                .project_by_slug(&slug)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no project {slug:?}; `caplens project list` shows them"))
        };
        match command {
            ProjectCommand::Create { slug, name, open } => {
                let p = store
                    .create_project(slug, name.as_deref().unwrap_or(slug), *open)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .audit(cli_audit(
                        "project_created",
                        format!("project {}", p.slug),
                        Some(p.id),
                        String::new(),
                    ))
                    .await;
                println!("project {} created", p.slug);
            }
            ProjectCommand::List => {
                for p in store.projects().await.map_err(|e| e.to_string())? {
                    let members = store.members(p.id).await.map_err(|e| e.to_string())?.len();
                    println!(
                        "{:<24} {:<32} {} members{}",
                        p.slug,
                        p.name,
                        members,
                        if p.open_to_all {
                            ", open to every signed-in user"
                        } else {
                            ""
                        }
                    );
                }
            }
            ProjectCommand::Members { slug } => {
                let p = find(slug.clone()).await?;
                for m in store.members(p.id).await.map_err(|e| e.to_string())? {
                    println!("{:<24} {}", m.user, m.role.as_str());
                }
            }
            ProjectCommand::AddMember { slug, user, role } => {
                let p = find(slug.clone()).await?;
                let u = store
                    .user_by_name(user)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user named {user:?}"))?;
                let role = Role::parse(role).expect("clap checked the role");
                store
                    .set_member(p.id, u.row.id, role)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .audit(cli_audit(
                        "role_changed",
                        format!("user {user} in project {slug}"),
                        Some(p.id),
                        format!("now {}", role.as_str()),
                    ))
                    .await;
                println!("{user} is {} in {slug}", role.as_str());
            }
            ProjectCommand::ViewersComment { slug, state } => {
                let p = find(slug.clone()).await?;
                let on = state == "on";
                store
                    .set_viewers_comment(p.id, on)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .audit(cli_audit(
                        "viewers_comment",
                        format!("project {slug}"),
                        Some(p.id),
                        state.clone(),
                    ))
                    .await;
                println!(
                    "viewers of {slug} {} comment and label",
                    if on { "may" } else { "may not" }
                );
            }
            ProjectCommand::BlindReview { slug, state } => {
                let on = state == "on";
                crate::ops::review::set_blind_review(&Caller::operator().access(store), slug, on)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "judgements in {slug} are {}",
                    if on { "blind" } else { "open" }
                );
            }
            ProjectCommand::EngineAdmins { slug, state } => {
                let on = state == "on";
                crate::ops::admin::set_engine_admins(store, &Caller::operator(), slug, on)
                    .await
                    .map_err(|e| e.public_message())?;
                println!(
                    "admins of {slug} {} add and change its engines",
                    if on { "may" } else { "may not" }
                );
            }
            ProjectCommand::AddLabel { slug, name, colour } => {
                let p = find(slug.clone()).await?;
                let operator = Caller::operator();
                crate::ops::review::add_label(&operator.access(store), &p.slug, name, colour)
                    .await
                    .map_err(|e| e.public_message())?;
                println!("label {name:?} added to {slug}");
            }
            ProjectCommand::RemoveMember { slug, user } => {
                let p = find(slug.clone()).await?;
                let u = store
                    .user_by_name(user)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user named {user:?}"))?;
                if !store
                    .remove_member(p.id, u.row.id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("{user} is not a member of {slug}"));
                }
                store
                    .audit(cli_audit(
                        "role_changed",
                        format!("user {user} in project {slug}"),
                        Some(p.id),
                        "removed".into(),
                    ))
                    .await;
                println!("{user} removed from {slug}");
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("caplens project: {e}");
            1
        }
    }
}

pub async fn token(store: &Store, command: &TokenCommand) -> i32 {
    let result: Result<(), String> = async {
        match command {
            TokenCommand::Create { name, user, project, scope, expires_days } => {
                let slug = project.as_deref().unwrap_or(crate::storage::access::DEFAULT_PROJECT);
                // Said here, before whose rights: a missing project is not a missing role.
                store
                    .project_of(&Owned::Project(slug.to_owned()))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no project {slug:?}; `caplens project list` shows them"))?;
                let has_users = store.user_count().await.map_err(|e| e.to_string())? > 0;
                // The same rules as the Tokens page (ops::tokens), acting as the token's user:
                // a token never grants more than its user has.
                let principal = match (user, has_users) {
                    (None, false) => Principal::local(),
                    (None, true) => return Err("accounts exist: say whose token it is with --user NAME".into()),
                    (Some(name), _) => {
                        let u = store
                            .user_by_name(name)
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| format!("no user named {name:?}"))?;
                        if u.row.disabled {
                            return Err(format!("user {name} is disabled"));
                        }
                        crate::auth::user_principal(store, &u.row).await.map_err(|e| e.to_string())?
                    }
                };
                let caller = Caller { principal, peer: Some("command line".into()) };
                let t = crate::ops::tokens::create_token(store, &caller, name, Some(slug), Some(scope), *expires_days)
                    .await
                    .map_err(|e| match (user, &e) {
                        (Some(name), crate::ops::OpError::Forbidden(_) | crate::ops::OpError::NotFound(_)) => {
                            let write = scope == "write";
                            format!(
                                "{name} may not {} in project {slug} ({}); add them first: caplens project add-member {slug} {name} --role {}",
                                if write { "write" } else { "read" },
                                e.public_message(),
                                if write { "editor" } else { "viewer" }
                            )
                        }
                        _ => e.public_message(),
                    })?;
                let scope = TokenScope::parse(scope).expect("clap checked the scope");
                println!("{}", t.secret);
                eprintln!(
                    "token {} ({:?}) created: {} scope in project {slug}{}; the secret above is shown only now. Use it as: Authorization: Bearer <secret>",
                    t.token.id,
                    t.token.name,
                    scope.as_str(),
                    t.token.expires_at.as_deref().map(|e| format!(", expires {e}")).unwrap_or_default()
                );
            }
            TokenCommand::List => {
                let tokens = store.tokens(None).await.map_err(|e| e.to_string())?;
                if tokens.is_empty() {
                    println!("no tokens; create one with `caplens token create NAME`");
                }
                for t in tokens {
                    println!(
                        "{:>4}  {:<24} {}…  {} {:<5} user {}  created {}  last used {}{}{}",
                        t.id,
                        t.name,
                        t.prefix,
                        t.project.as_deref().unwrap_or("-"),
                        t.scope,
                        t.user.as_deref().unwrap_or("(local)"),
                        t.created_at,
                        t.last_used_at.as_deref().unwrap_or("never"),
                        t.expires_at.map(|e| format!("  expires {e}")).unwrap_or_default(),
                        t.revoked_at.map(|r| format!("  REVOKED {r}")).unwrap_or_default()
                    );
                }
            }
            TokenCommand::Revoke { id } => {
                if !store.revoke_token(*id).await.map_err(|e| e.to_string())? {
                    return Err(format!("no active token with id {id}"));
                }
                store
                    .audit(cli_audit("token_revoked", format!("token {id}"), None, String::new()))
                    .await;
                println!("token {id} revoked");
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("caplens token: {e}");
            1
        }
    }
}

/// `caplens audit`: the newest audit entries.
pub async fn audit(store: &Store, limit: i64) -> i32 {
    match store.audit_entries(limit, None, None).await {
        Ok(entries) => {
            for e in entries.iter().rev() {
                println!(
                    "{}  {:<7} {:<22} {:<28} {:<32} {}{}",
                    e.at,
                    e.outcome,
                    e.action,
                    e.actor,
                    e.target,
                    e.detail,
                    e.address
                        .as_deref()
                        .map(|a| format!("  from {a}"))
                        .unwrap_or_default()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("caplens audit: {e}");
            1
        }
    }
}
