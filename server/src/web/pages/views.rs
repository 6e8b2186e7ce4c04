//! The analysis views of one experiment for the pages (one `ops::views::view` call each).

use caplens_app::data::{BoxFuture, DataError, ViewData};
use caplens_app::views::*;

use super::{refused, StoreSource};
use crate::ops::{self, views::View, views::ViewRequest, Caller};

impl StoreSource {
    /// One of an experiment's analysis views for the request's caller.
    async fn view(
        &self,
        caller: Caller,
        slug: String,
        request: ViewRequest,
    ) -> Result<Option<View>, DataError> {
        ops::views::view(&caller.access(&self.store), &self.views, &slug, request)
            .await
            .map_err(refused)
    }
}

macro_rules! view_method {
    ($name:ident, $request:ty, $variant:ident, $out:ty) => {
        fn $name(
            &self,
            slug: String,
            request: $request,
        ) -> BoxFuture<'_, Result<Option<$out>, DataError>> {
            let caller = self.caller();
            Box::pin(async move {
                Ok(
                    match self
                        .view(caller, slug, ViewRequest::$variant(request))
                        .await?
                    {
                        Some(View::$variant(v)) => Some(*v),
                        _ => None,
                    },
                )
            })
        }
    };
}

impl ViewData for StoreSource {
    fn overview_view(
        &self,
        slug: String,
        verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
        unreviewed: bool,
    ) -> BoxFuture<'_, Result<Option<OverviewView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            Ok(
                match self
                    .view(
                        caller,
                        slug,
                        ViewRequest::Overview {
                            verdicts,
                            unreviewed,
                        },
                    )
                    .await?
                {
                    Some(View::Overview(v)) => Some(*v),
                    _ => None,
                },
            )
        })
    }
    view_method!(passk_view, PasskRequest, Passk, PasskView);
    view_method!(
        unsolvable_view,
        UnsolvableRequest,
        Unsolvable,
        UnsolvableView
    );
    fn problem_neighbours(
        &self,
        slug: String,
        list: TriageList,
        problem_id: i64,
    ) -> BoxFuture<'_, Result<Option<ProblemNeighbours>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::views::problem_neighbours(
                &caller.access(&self.store),
                &self.views,
                &slug,
                list,
                problem_id,
            )
            .await
            .map_err(refused)
        })
    }
    fn problems_view(
        &self,
        slug: String,
        request: ProblemsRequest,
    ) -> BoxFuture<'_, Result<Option<ProblemsView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::views::problems(
                &caller.access(&self.store),
                &self.views,
                &slug,
                request,
                true,
            )
            .await
            .map_err(refused)
        })
    }
    view_method!(compare_view, CompareRequest, Compare, CompareView);
    view_method!(dynamics_view, DynamicsRequest, Dynamics, DynamicsView);
    view_method!(rft_view, RftRequest, Rft, RftView);
    view_method!(
        token_stats_view,
        TokenStatsRequest,
        TokenStats,
        TokenStatsView
    );
}
