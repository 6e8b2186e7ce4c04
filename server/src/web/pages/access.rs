//! Access control for the pages: the session, API tokens, users, projects, members, audit.

use caplens_app::data::{AccessData, BoxFuture, DataError};
use caplens_app::model::*;

use super::{refused, StoreSource};
use crate::ops;

impl AccessData for StoreSource {
    fn session(&self) -> BoxFuture<'_, Result<SessionView, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::session_view(&self.store, &self.auth, &caller)
                .await
                .map_err(refused)
        })
    }
    fn tokens(&self) -> BoxFuture<'_, Result<Vec<ApiTokenRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::tokens::tokens(&self.store, &caller)
                .await
                .map_err(refused)
        })
    }
    fn create_token(
        &self,
        name: String,
        project: Option<String>,
        scope: Option<String>,
        expires_in_days: Option<u32>,
    ) -> BoxFuture<'_, Result<CreatedToken, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::tokens::create_token(
                &self.store,
                &caller,
                &name,
                project.as_deref(),
                scope.as_deref(),
                expires_in_days,
            )
            .await
            .map_err(refused)
        })
    }
    fn revoke_token(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::tokens::revoke_token(&self.store, &caller, id)
                .await
                .map_err(refused)
        })
    }
    fn users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::users(&self.store, &caller)
                .await
                .map_err(refused)
        })
    }
    fn create_user(
        &self,
        name: String,
        password: String,
        admin: bool,
    ) -> BoxFuture<'_, Result<UserRow, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::create_user(&self.store, &caller, &name, &password, admin)
                .await
                .map_err(refused)
        })
    }
    fn set_user_disabled(&self, id: i64, disabled: bool) -> BoxFuture<'_, Result<(), DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::set_user_disabled(&self.store, &caller, id, disabled)
                .await
                .map_err(refused)
        })
    }
    fn projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::projects(&self.store, &caller)
                .await
                .map_err(refused)
        })
    }
    fn create_project(
        &self,
        slug: String,
        name: String,
        open_to_all: bool,
    ) -> BoxFuture<'_, Result<ProjectRow, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::create_project(&self.store, &caller, &slug, &name, open_to_all)
                .await
                .map_err(refused)
        })
    }
    fn members(&self, project: String) -> BoxFuture<'_, Result<Vec<MemberRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::members(&self.store, &caller, &project)
                .await
                .map_err(refused)
        })
    }
    fn set_member(
        &self,
        project: String,
        user: String,
        role: Option<Role>,
    ) -> BoxFuture<'_, Result<(), DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::set_member(&self.store, &caller, &project, &user, role)
                .await
                .map_err(refused)
        })
    }
    fn audit(&self, before: Option<i64>) -> BoxFuture<'_, Result<Vec<AuditEntry>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::audit(&self.store, &caller, 100, before)
                .await
                .map_err(refused)
        })
    }
}
