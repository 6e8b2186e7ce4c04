//! Team review for the pages: every `ReviewOp`, authorised per operation in `ops::review`.

use caplens_app::data::{BoxFuture, DataError, ReviewData};
use caplens_app::review::{ReviewOp, ReviewReply};

use super::{refused, StoreSource};
use crate::ops::{self, review, OpError};

impl ReviewData for StoreSource {
    fn review(&self, op: ReviewOp) -> BoxFuture<'_, Result<ReviewReply, DataError>> {
        Box::pin(async move {
            match self.review_op(op).await {
                Ok(reply) => Ok(reply),
                // Hidden or missing: the page shows its "not found".
                Err(OpError::NotFound(_)) => Ok(ReviewReply::NotFound),
                Err(e) => Err(refused(e)),
            }
        })
    }
}

impl StoreSource {
    /// One review operation for the request's principal (`DataSource::review`).
    async fn review_op(&self, op: ReviewOp) -> Result<ReviewReply, OpError> {
        let caller = self.caller();
        let access = caller.access(&self.store);
        let a = &access;
        Ok(match op {
            ReviewOp::ProblemReview { slug, problem } => {
                ReviewReply::ProblemReview(review::problem_review(a, &slug, problem).await?)
            }
            ReviewOp::SetLabels {
                slug,
                problem,
                labels,
            } => ReviewReply::ProblemReview(review::set_labels(a, &slug, problem, &labels).await?),
            ReviewOp::AddOverride { slug, input } => {
                let req = crate::review::OverrideRequest::in_problem(
                    input.problem_id,
                    input.answer,
                    input.rollout,
                    input.verdict,
                    input.reason,
                );
                ReviewReply::Override(review::add_override(a, &slug, &req).await?)
            }
            ReviewOp::Judge { slug, input } => {
                let req = crate::review::JudgementRequest {
                    problem: input
                        .rollout
                        .is_none()
                        .then(|| serde_json::Value::from(input.problem_id)),
                    answer: input.answer,
                    rollout: input.rollout,
                    verdict: input.verdict,
                };
                ReviewReply::Judgements(review::set_judgement(a, &slug, &req).await?)
            }
            ReviewOp::Judgements { slug, problem } => {
                ReviewReply::Judgements(review::judgements(a, &slug, Some(problem)).await?)
            }
            ReviewOp::Agreement { slug } => {
                ReviewReply::Agreement(review::agreement(a, &slug).await?)
            }
            ReviewOp::DeleteOverride { id } => {
                review::delete_override(a, id).await?;
                ReviewReply::Done
            }
            ReviewOp::Threads { slug, filter } => {
                ReviewReply::Threads(review::threads(a, &slug, &filter).await?)
            }
            ReviewOp::PostComment { slug, target, body } => {
                ReviewReply::Thread(review::post_comment(a, &slug, &target, &body).await?)
            }
            ReviewOp::Reply { thread, body } => {
                ReviewReply::Thread(review::reply(a, thread, &body).await?)
            }
            ReviewOp::EditComment { id, body } => {
                ReviewReply::Thread(review::edit_comment(a, id, &body).await?)
            }
            ReviewOp::DeleteComment { id } => {
                ReviewReply::Thread(review::delete_comment(a, id).await?)
            }
            ReviewOp::Resolve { thread, resolved } => {
                ReviewReply::Thread(review::resolve_thread(a, thread, resolved).await?)
            }
            ReviewOp::Inbox => ReviewReply::Inbox(review::inbox(a).await?),
            ReviewOp::CommentCounts { slug } => {
                ReviewReply::CommentCounts(review::comment_counts(a, &slug).await?)
            }
            ReviewOp::DiscussionStamp { slug } => {
                ReviewReply::Stamp(review::discussion_stamp(a, &slug).await?)
            }
            ReviewOp::Queue {
                slug,
                min_share,
                mine,
            } => {
                let share = min_share
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1.0)
                    .unwrap_or(review::DEFAULT_MIN_SHARE);
                ReviewReply::Queue(review::review_queue(a, &self.views, &slug, share, mine).await?)
            }
            ReviewOp::Assign {
                slug,
                problem,
                user,
            } => {
                review::assign(a, &slug, problem, user.as_deref()).await?;
                ReviewReply::Done
            }
            ReviewOp::Settings { slug } => ReviewReply::Settings(review::settings(a, &slug).await?),
            ReviewOp::UpdateExperiment {
                slug,
                name,
                description,
            } => {
                review::update_experiment(a, &slug, &name, &description).await?;
                ReviewReply::Done
            }
            ReviewOp::MoveExperiment { slug, project } => {
                review::move_experiment(a, &slug, &project).await?;
                ReviewReply::Done
            }
            ReviewOp::DeleteExperiment { slug, confirm } => {
                review::delete_experiment(a, &slug, &confirm).await?;
                ReviewReply::Done
            }
            ReviewOp::CreateShareLink {
                slug,
                path,
                expires_in,
            } => {
                let headers = leptos::prelude::use_context::<axum::http::request::Parts>()
                    .map(|p| p.headers)
                    .unwrap_or_default();
                let base = crate::web::review::base_url(self.auth.settings(), &headers);
                ReviewReply::ShareLink(
                    review::create_share_link(a, &slug, &path, expires_in, &base).await?,
                )
            }
            ReviewOp::ProjectReview { project } => {
                ReviewReply::ProjectReview(review::project_review(a, &project).await?)
            }
            ReviewOp::AddLabel {
                project,
                name,
                colour,
            } => {
                review::add_label(a, &project, &name, &colour).await?;
                ReviewReply::Done
            }
            ReviewOp::SetEngineAdmins { project, allowed } => {
                ops::admin::set_engine_admins(&self.store, &caller, &project, allowed).await?;
                ReviewReply::Done
            }
            ReviewOp::SetViewersComment { project, allowed } => {
                review::set_viewers_comment(a, &project, allowed).await?;
                ReviewReply::Done
            }
            ReviewOp::RolloutExperiments { rollout } => {
                ReviewReply::Experiments(review::rollout_experiments(a, rollout).await?)
            }
            ReviewOp::RevokeShareLink { id } => {
                review::revoke_share_link(a, id).await?;
                ReviewReply::Done
            }
        })
    }
}
