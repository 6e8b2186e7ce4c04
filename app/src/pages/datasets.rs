//! Datasets and their sizes.

use leptos::prelude::*;

use crate::components::common::PageTitle;

use crate::{api::list_datasets, components::common::ErrorBox};

#[component]
pub fn DatasetsPage() -> impl IntoView {
    let datasets = Resource::new(|| (), |_| list_datasets());
    view! {
        <PageTitle text="Datasets" />
        <h1>"Datasets"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading datasets…"</p> }>
            {move || Suspend::new(async move {
                match datasets.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="empty">"No datasets yet."</p> }.into_any(),
                    Ok(list) => {
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
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}
