//! Every evaluation run, newest first.

use leptos::prelude::*;

use crate::{
    api::list_runs,
    components::common::{opt, percent, ListLoader, PageTitle, StageBadge},
    model::RunRow,
};

#[component]
pub fn RunsPage() -> impl IntoView {
    let runs = Resource::new(|| (), |_| list_runs());
    let render_list = |list: Vec<RunRow>| {
        view! {
            <div class="table-wrap">
                <table class="data-table" data-testid="all-runs-table">
                    <thead>
                        <tr>
                            <th scope="col" class="num">"#"</th>
                            <th scope="col">"Model"</th>
                            <th scope="col">"Stage"</th>
                            <th scope="col">"Dataset"</th>
                            <th scope="col" class="num">"n"</th>
                            <th scope="col" class="num">"Rollouts"</th>
                            <th scope="col" class="num">"pass@1"</th>
                            <th scope="col">"Origin"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"Created"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {list
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <tr>
                                        <td class="num">{r.id}</td>
                                        <td>{r.model}</td>
                                        <td><StageBadge stage=r.stage /></td>
                                        <td>{r.dataset}</td>
                                        <td class="num">{opt(r.n_per_problem)}</td>
                                        <td class="num">{r.rollouts}</td>
                                        <td class="num">{percent(r.pass_at_1)}</td>
                                        <td>{r.origin}</td>
                                        <td>{r.status}</td>
                                        <td>{r.created_at}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        }
    };
    view! {
        <PageTitle text="Runs" />
        <h1>"Runs"</h1>
        <ListLoader
            resource=runs
            loading="Loading runs…"
            empty="No runs yet."
            render=render_list
        />
    }
}
