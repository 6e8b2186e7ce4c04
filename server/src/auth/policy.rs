//! The one authorisation policy: may this principal do this action on this target? Pure (no
//! I/O): the principal arrives with its grants already loaded (`auth::resolve`), and the target
//! names the project the resource belongs to (`Store::project_of`). Every route's check ends here.

use std::collections::{HashMap, HashSet};

use caplens_app::model::Role;

/// Who is asking, with everything the policy needs to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The user (`None`: local mode or anonymous).
    pub user_id: Option<i64>,
    /// For the audit log and the header: user name, "local", "anonymous".
    pub name: String,
    pub site_admin: bool,
    /// The user's role in each project they are a member of.
    pub roles: HashMap<i64, Role>,
    /// Projects readable by every signed-in user.
    pub open_projects: HashSet<i64>,
    /// Projects whose viewers may comment and label (issue 15).
    pub viewers_comment: HashSet<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalKind {
    /// Local mode: no accounts, one implicit user with every right.
    Local,
    /// Nobody signed in (team mode).
    Anonymous,
    /// A signed-in user (session cookie, single sign-on, or a trusted proxy's header).
    User,
    /// An API token: acts for its user, in its project only, within its scope.
    Token {
        id: i64,
        project_id: i64,
        scope: TokenScope,
    },
    /// Someone without an account who opened a read-only share link: reads one experiment (the
    /// shell checks that each resource is in it), nothing else.
    Share {
        link_id: i64,
        experiment_id: i64,
        project_id: i64,
    },
}

pub use crate::storage::tokens::TokenScope;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See it (pages, REST reads, exports, SSE, traces).
    Read,
    /// Upload, start/cancel/resume evaluations, queue interventions, add datasets and engines,
    /// edit experiments: the editor's rights.
    Edit,
    /// Members, the project's tokens, deletions: the project admin's rights.
    Administer,
    /// Create and list one's own API tokens (in a project the user may read at least).
    ManageOwnTokens,
    /// Comment, label problems, override verdicts, assign the review queue: editors, and viewers
    /// where the project allows it.
    Review,
}

/// What the action is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A resource of this project (a project id; -1 for a row in no project).
    Project(i64),
    /// The site: users, projects, the whole audit log. Only site admins (and local mode).
    Site,
    /// Something every signed-in user may use: the list pages (filtered by project), shared
    /// models, engines available to every project, one's own session.
    SignedIn,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No credentials: sign in (401).
    NotSignedIn,
    /// The principal may not see the resource: answer as if it did not exist (404).
    Hidden,
    /// The principal sees the resource but may not do this (403), with the reason.
    Forbidden(String),
}

impl Principal {
    pub fn local() -> Principal {
        Principal {
            kind: PrincipalKind::Local,
            user_id: None,
            name: "local".into(),
            site_admin: true,
            roles: HashMap::new(),
            open_projects: HashSet::new(),
            viewers_comment: HashSet::new(),
        }
    }

    pub fn anonymous() -> Principal {
        Principal {
            kind: PrincipalKind::Anonymous,
            user_id: None,
            name: "anonymous".into(),
            site_admin: false,
            roles: HashMap::new(),
            open_projects: HashSet::new(),
            viewers_comment: HashSet::new(),
        }
    }

    /// Whoever opened an active share link.
    pub fn share(grant: &crate::storage::review::ShareGrant) -> Principal {
        Principal {
            kind: PrincipalKind::Share {
                link_id: grant.id,
                experiment_id: grant.experiment_id,
                project_id: grant.project_id,
            },
            name: format!("share link {}", grant.id),
            ..Principal::anonymous()
        }
    }

    /// The one experiment a share link opens, if this is one.
    pub fn shared_experiment(&self) -> Option<i64> {
        match self.kind {
            PrincipalKind::Share { experiment_id, .. } => Some(experiment_id),
            _ => None,
        }
    }

    pub fn is_local(&self) -> bool {
        self.kind == PrincipalKind::Local
    }

    pub fn is_token(&self) -> bool {
        matches!(self.kind, PrincipalKind::Token { .. })
    }

    /// The user's own role in a project, ignoring any token limits (site admins: admin
    /// everywhere; an open project: viewer).
    fn user_role(&self, project: i64) -> Option<Role> {
        if self.site_admin {
            return Some(Role::Admin);
        }
        let member = self.roles.get(&project).copied();
        let open = self
            .open_projects
            .contains(&project)
            .then_some(Role::Viewer);
        member.max(open)
    }

    /// The role this principal acts with in a project: the user's, capped by a token's project
    /// and scope (a token never grants more than its user has).
    pub fn role_in(&self, project: i64) -> Option<Role> {
        match &self.kind {
            PrincipalKind::Local => Some(Role::Admin),
            PrincipalKind::Anonymous => None,
            PrincipalKind::Share { project_id, .. } => {
                (*project_id == project).then_some(Role::Viewer)
            }
            PrincipalKind::User => self.user_role(project),
            PrincipalKind::Token {
                project_id, scope, ..
            } => {
                if *project_id != project {
                    return None;
                }
                let cap = match scope {
                    TokenScope::Read => Role::Viewer,
                    // A write token uploads and starts evaluations; it never administers.
                    TokenScope::Write => Role::Editor,
                };
                self.user_role(project).map(|r| r.min(cap))
            }
        }
    }

    /// Which projects this principal may read: `None` means every project.
    pub fn readable_projects(&self) -> Option<HashSet<i64>> {
        match &self.kind {
            PrincipalKind::Local => None,
            // A share link lists nothing: it opens its one experiment's views only.
            PrincipalKind::Anonymous | PrincipalKind::Share { .. } => Some(HashSet::new()),
            PrincipalKind::User if self.site_admin => None,
            PrincipalKind::User => Some(
                self.roles
                    .keys()
                    .chain(self.open_projects.iter())
                    .copied()
                    .collect(),
            ),
            PrincipalKind::Token { project_id, .. } => Some(
                self.role_in(*project_id)
                    .map(|_| HashSet::from([*project_id]))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// The policy. Local mode may do everything; nobody else may do anything without signing in;
/// a resource the principal may not read is hidden (404), an action beyond its role forbidden.
pub fn authorize(p: &Principal, action: Action, target: Target) -> Result<(), Denial> {
    if p.is_local() {
        return Ok(());
    }
    if p.kind == PrincipalKind::Anonymous {
        return Err(Denial::NotSignedIn);
    }
    if let PrincipalKind::Share { project_id, .. } = p.kind {
        return match (action, target) {
            (Action::Read, Target::Project(project)) if project == project_id => Ok(()),
            (Action::Read, Target::Project(_)) => Err(Denial::Hidden),
            _ => Err(Denial::Forbidden(
                "a read-only share link may only look; sign in to do more".into(),
            )),
        };
    }
    match target {
        Target::Site => {
            if p.is_token() {
                Err(Denial::Forbidden(
                    "API tokens cannot manage users or projects; sign in as a site admin".into(),
                ))
            } else if p.site_admin {
                Ok(())
            } else {
                Err(Denial::Forbidden("only site admins may do this".into()))
            }
        }
        Target::SignedIn => match action {
            Action::Read => Ok(()),
            Action::ManageOwnTokens if p.is_token() => Err(Denial::Forbidden(
                "an API token cannot create or revoke tokens; sign in".into(),
            )),
            Action::ManageOwnTokens => Ok(()),
            Action::Edit | Action::Administer | Action::Review => Err(Denial::Forbidden(
                "this needs a project: name one the user may edit".into(),
            )),
        },
        Target::Project(project) => {
            let Some(role) = p.role_in(project) else {
                return Err(Denial::Hidden);
            };
            let (needed, what) = match action {
                Action::Read => (Role::Viewer, "read"),
                Action::ManageOwnTokens if p.is_token() => {
                    return Err(Denial::Forbidden(
                        "an API token cannot create or revoke tokens; sign in".into(),
                    ))
                }
                Action::ManageOwnTokens => (Role::Viewer, "make tokens"),
                Action::Edit => (Role::Editor, "change anything"),
                Action::Review if p.viewers_comment.contains(&project) => {
                    (Role::Viewer, "comment or label")
                }
                Action::Review => (Role::Editor, "comment or label"),
                Action::Administer => (Role::Admin, "administer"),
            };
            if role >= needed {
                Ok(())
            } else if let PrincipalKind::Token { scope, .. } = &p.kind {
                Err(Denial::Forbidden(format!(
                    "this API token ({} scope, acting as {}) may not {what} here",
                    scope.as_str(),
                    role.as_str()
                )))
            } else {
                Err(Denial::Forbidden(format!(
                    "{} is {} in this project and may not {what}; ask a project admin for the {} role",
                    p.name,
                    role.as_str(),
                    needed.as_str()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[(i64, Role)], open: &[i64], site_admin: bool) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            user_id: Some(7),
            name: "ann".into(),
            site_admin,
            roles: roles.iter().copied().collect(),
            open_projects: open.iter().copied().collect(),
            viewers_comment: HashSet::new(),
        }
    }

    fn token(of: Principal, project_id: i64, scope: TokenScope) -> Principal {
        Principal {
            kind: PrincipalKind::Token {
                id: 1,
                project_id,
                scope,
            },
            ..of
        }
    }

    #[test]
    fn roles_order_the_rights_in_a_project() {
        let viewer = user(&[(1, Role::Viewer)], &[], false);
        let editor = user(&[(1, Role::Editor)], &[], false);
        let admin = user(&[(1, Role::Admin)], &[], false);
        let t = Target::Project(1);
        assert!(authorize(&viewer, Action::Read, t).is_ok());
        assert!(matches!(
            authorize(&viewer, Action::Edit, t),
            Err(Denial::Forbidden(_))
        ));
        assert!(authorize(&editor, Action::Edit, t).is_ok());
        assert!(matches!(
            authorize(&editor, Action::Administer, t),
            Err(Denial::Forbidden(_))
        ));
        assert!(authorize(&admin, Action::Administer, t).is_ok());
        // Another project is hidden, not forbidden.
        assert_eq!(
            authorize(&admin, Action::Read, Target::Project(2)),
            Err(Denial::Hidden)
        );
        assert!(matches!(
            authorize(&admin, Action::Read, Target::Site),
            Err(Denial::Forbidden(_))
        ));
    }

    #[test]
    fn open_projects_are_readable_by_everyone_signed_in_only() {
        let outsider = user(&[], &[5], false);
        assert!(authorize(&outsider, Action::Read, Target::Project(5)).is_ok());
        assert!(matches!(
            authorize(&outsider, Action::Edit, Target::Project(5)),
            Err(Denial::Forbidden(_))
        ));
        assert_eq!(
            authorize(&Principal::anonymous(), Action::Read, Target::Project(5)),
            Err(Denial::NotSignedIn)
        );
        assert!(authorize(&Principal::local(), Action::Administer, Target::Site).is_ok());
    }

    #[test]
    fn a_token_never_grants_more_than_its_user_or_its_scope() {
        let editor = user(&[(1, Role::Editor), (2, Role::Admin)], &[3], false);
        let write = token(editor.clone(), 1, TokenScope::Write);
        assert!(authorize(&write, Action::Edit, Target::Project(1)).is_ok());
        assert!(matches!(
            authorize(&write, Action::Administer, Target::Project(1)),
            Err(Denial::Forbidden(_))
        ));
        // Only its own project, even where the user could do more.
        assert_eq!(
            authorize(&write, Action::Read, Target::Project(2)),
            Err(Denial::Hidden)
        );
        assert_eq!(
            authorize(&write, Action::Read, Target::Project(3)),
            Err(Denial::Hidden)
        );
        let read = token(editor.clone(), 1, TokenScope::Read);
        assert!(authorize(&read, Action::Read, Target::Project(1)).is_ok());
        assert!(matches!(
            authorize(&read, Action::Edit, Target::Project(1)),
            Err(Denial::Forbidden(_))
        ));
        // A write token of a viewer writes nothing.
        let viewer = user(&[(1, Role::Viewer)], &[], false);
        let write = token(viewer, 1, TokenScope::Write);
        assert!(matches!(
            authorize(&write, Action::Edit, Target::Project(1)),
            Err(Denial::Forbidden(_))
        ));
        // A site admin's token is still one project's, and never manages the site or tokens.
        let admin_token = token(user(&[], &[], true), 1, TokenScope::Write);
        assert!(authorize(&admin_token, Action::Edit, Target::Project(1)).is_ok());
        assert_eq!(
            authorize(&admin_token, Action::Read, Target::Project(9)),
            Err(Denial::Hidden)
        );
        assert!(authorize(&admin_token, Action::Read, Target::Site).is_err());
        assert!(authorize(&admin_token, Action::ManageOwnTokens, Target::SignedIn).is_err());
        assert_eq!(admin_token.readable_projects(), Some(HashSet::from([1])));
    }
}
