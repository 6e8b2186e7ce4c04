//! Datasets and their sizes.

use leptos::prelude::*;

use crate::{
    api::list_datasets,
    components::common::{ListLoader, PageTitle},
    model::DatasetRow,
};

#[component]
pub fn DatasetsPage() -> impl IntoView {
    let datasets = Resource::new(|| (), |_| list_datasets());
    let render_list = |list: Vec<DatasetRow>| {
        view! {
            <div class="table-wrap">
                <table class="data-table" data-testid="datasets-table">
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col" class="num">"Problems"</th>
                            <th scope="col">"Source"</th>
                            <th scope="col">"Description"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {list
                            .into_iter()
                            .map(|d| {
                                view! {
                                    <tr>
                                        <td>{d.name}</td>
                                        <td class="num">{d.problem_count}</td>
                                        <td>{d.source}</td>
                                        <td>{d.description}</td>
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
        <PageTitle text="Datasets" />
        <h1>"Datasets"</h1>
        <ListLoader
            resource=datasets
            loading="Loading datasets…"
            empty="No datasets yet."
            render=render_list
        />
    }
}
