//! The pages' data source: the app's `DataSource` (one trait per feature) that server
//! functions call, over the authorised operations. One file per feature: `catalog`, `views`,
//! `review`, `evals`, `access`; each method takes the request's caller, calls an operation and
//! maps its refusal once ([`refused`], [`found`]).

mod access;
mod catalog;
mod evals;
mod review;
mod views;

use std::sync::Arc;

use caplens_analysis::trace::TokenTrace;
use caplens_app::data::DataError;

use crate::{
    auth::Auth,
    ingest::service::ImportService,
    ops::{Caller, OpError},
    storage::{
        rollouts::{TraceError, TraceRef},
        Store,
    },
};

type TraceCell = Arc<tokio::sync::OnceCell<Arc<TokenTrace>>>;

pub struct StoreSource {
    pub store: Store,
    pub imports: ImportService,
    pub views: crate::views::ViewService,
    pub auth: Auth,
    /// Who calls come from outside an HTTP request (nobody, unless a test says otherwise).
    outside_requests: crate::auth::Principal,
    /// The last trace decoded: the rollout page, its `pos=` token and the hover card's
    /// alternatives all read the same trace, which is megabytes for a long response. Requests
    /// arriving together (the page and its `pos=` token) share one read through the cell.
    last_trace: std::sync::Mutex<Option<(TraceRef, TraceCell)>>,
}

impl StoreSource {
    pub fn new(
        store: Store,
        imports: ImportService,
        views: crate::views::ViewService,
        auth: Auth,
    ) -> Self {
        StoreSource {
            store,
            imports,
            views,
            auth,
            outside_requests: crate::auth::Principal::anonymous(),
            last_trace: std::sync::Mutex::new(None),
        }
    }

    /// Acts as `principal` when called outside an HTTP request (tests and tools calling the
    /// data source directly). Inside a request the request's principal always decides.
    pub fn outside_requests(mut self, principal: crate::auth::Principal) -> Self {
        self.outside_requests = principal;
        self
    }

    /// The principal of the page or server function being answered, read from Leptos' context
    /// synchronously, before the method's future starts.
    fn caller(&self) -> Caller {
        match leptos::prelude::use_context::<axum::http::request::Parts>() {
            Some(_) => Caller {
                principal: super::middleware::current_principal(),
                peer: super::middleware::current_peer(),
            },
            None => Caller {
                principal: self.outside_requests.clone(),
                peer: None,
            },
        }
    }

    /// A rollout's decoded trace, from the one-entry cache when it is the last one asked for
    /// (traces never change once stored: a key and byte range name one trace forever).
    async fn trace(&self, trace_ref: &TraceRef) -> Result<Arc<TokenTrace>, TraceError> {
        let cell = {
            let mut last = self.last_trace.lock().expect("not poisoned");
            match &*last {
                Some((r, cell)) if r == trace_ref => cell.clone(),
                _ => {
                    let cell = TraceCell::default();
                    *last = Some((trace_ref.clone(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_try_init(|| async { self.store.read_trace(trace_ref).await.map(Arc::new) })
            .await
            .cloned()
    }
}

/// A refusal or failure as the pages show it: storage failures are logged and said plainly.
fn refused(e: OpError) -> DataError {
    if let OpError::Store(s) = &e {
        tracing::error!(error = %s, "storage error while rendering a page");
    }
    let message = e.public_message();
    DataError::new(super::error::ApiError::from(e).status.as_u16(), message)
}

/// Hidden and missing read the same to a page: `None` (its "not found", with a 404 status).
fn found<T>(r: Result<T, OpError>) -> Result<Option<T>, DataError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(OpError::NotFound(_)) => Ok(None),
        Err(e) => Err(refused(e)),
    }
}
