//! Team review (issue 15), the operations the pages (`web::pages::StoreSource`) and the REST
//! API (`web::review`) share: comment threads, labels, verdict overrides, the review queue,
//! assignments, share links and experiment settings. Every operation asks `Access` first
//! (reads: `Read`; comments and labels: `Review`; overrides, assignments, renames, share links:
//! `Edit`; moving and deleting: `Administer`), then calls `Store` methods, then audits.
//!
//! This file holds what every area starts from (the experiment, the caller's name, a problem's
//! membership, the project's members); each area is in its own file:
//!
//! | file | operations |
//! |---|---|
//! | `threads` | comments and threads, the inbox, comment counts, the discussion stamp |
//! | `labels` | a problem's review panel, its labels, a project's label list |
//! | `overrides` | verdict overrides (and the target a request names, shared with judgements) |
//! | `judgements` | reviewers' independent judgements, their agreement, blind review |
//! | `export` | export and import of labels and overrides |
//! | `queue` | the review queue and its assignments |
//! | `share_links` | share links |
//! | `settings` | a project's review settings; an experiment's settings, rename, move, delete |

mod export;
mod judgements;
mod labels;
mod overrides;
mod queue;
mod settings;
mod share_links;
mod threads;

use std::collections::HashMap;

use super::catalog::open_experiment;
use super::{Access, OpError};
use crate::storage::review::ExperimentRef;
pub use export::{export_review, import_review};
pub use judgements::{agreement, judgements, set_blind_review, set_judgement};
pub use labels::{add_label, problem_review, set_labels, set_labels_by_key};
pub use overrides::{add_override, delete_override, list_overrides};
pub use queue::{assign, review_queue, DEFAULT_MIN_SHARE};
pub use settings::{
    delete_experiment, move_experiment, project_review, set_viewers_comment, settings,
    update_experiment,
};
pub use share_links::{create_share_link, revoke_share_link};
pub use threads::{
    comment_counts, delete_comment, discussion_stamp, edit_comment, inbox, open_thread,
    post_comment, reply, resolve_thread, rollout_experiments, thread_view, threads,
};

fn actor(access: &Access<'_>) -> String {
    access.principal.name.clone()
}

async fn problem_in(access: &Access<'_>, e: ExperimentRef, problem_id: i64) -> Result<(), OpError> {
    if access.store.problem_in_experiment(e.id, problem_id).await? {
        Ok(())
    } else {
        Err(OpError::not_found(format!(
            "no problem {problem_id} in this experiment"
        )))
    }
}

/// The users `@name` may notify in a project: its members (local mode: nobody).
async fn member_names(access: &Access<'_>, project: i64) -> Result<HashMap<String, i64>, OpError> {
    Ok(access
        .store
        .members(project)
        .await?
        .into_iter()
        .map(|m| (m.user, m.user_id))
        .collect())
}
