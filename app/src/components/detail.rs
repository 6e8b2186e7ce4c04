//! Pieces shared by the problem and rollout pages: text with maths, a formula-or-text answer,
//! links that carry the view state in the query string, and the "not found" status.

use leptos::prelude::*;

use crate::math::{segments, to_mathml, Segment};

/// Text with its LaTeX formulas rendered as MathML (see [`crate::math`]). Plain text goes in as
/// Leptos text nodes (escaped); formulas are MathML our converter built with every text piece
/// escaped, the one kind of markup inserted as HTML.
#[component]
pub fn MathText(
    #[prop(into)] text: String,
    #[prop(optional)] class: &'static str,
) -> impl IntoView {
    let parts = segments(&text)
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) => t.into_any(),
            Segment::Math { mathml, display } => view! {
                <span class=if display { "math display" } else { "math" } inner_html=mathml></span>
            }
            .into_any(),
        })
        .collect_view();
    view! { <span class=format!("math-text {class}")>{parts}</span> }
}

/// An answer (LaTeX without delimiters, e.g. `\frac{1}{2}`): as a formula when it converts,
/// else as text.
#[component]
pub fn MathAnswer(#[prop(into)] text: String) -> impl IntoView {
    match to_mathml(&text, false) {
        Ok(mathml) if !text.trim().is_empty() => {
            view! { <span class="math answer" title=text inner_html=mathml></span> }.into_any()
        }
        _ => view! { <span class="answer">{text}</span> }.into_any(),
    }
}

/// `path?k=v&...` from the pairs whose value is not empty, in the order given. Values are
/// encoded in full (`1,2` as `1%2C2`), the same on the server and in the browser.
pub fn href(path: &str, pairs: &[(&str, String)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", crate::urlstate::encode_component(v)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// A comma-separated list of ids (`runs=1,2`, `open=5`); bad entries are dropped.
pub fn parse_ids(s: Option<String>) -> Vec<i64> {
    s.unwrap_or_default()
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// Marks the response 404: the page's whole subject is missing.
pub fn set_not_found() {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
}

/// A number with `digits` decimals, or an em dash.
pub fn fixed(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(v) if v.is_infinite() => "∞".to_string(),
        _ => "—".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urlstate::{encode_component, join_ids};

    #[test]
    fn links_encode_values_and_skip_empty_ones() {
        assert_eq!(
            href(
                "/problems/3",
                &[
                    ("runs", "1,2".into()),
                    ("run", String::new()),
                    ("answer", "\\frac{1}{2} & <x>".into())
                ]
            ),
            "/problems/3?runs=1%2C2&answer=%5Cfrac%7B1%7D%7B2%7D%20%26%20%3Cx%3E"
        );
        assert_eq!(
            href("/rollouts/1", &[("pos", String::new())]),
            "/rollouts/1"
        );
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn id_lists_parse_leniently() {
        assert_eq!(parse_ids(Some("1, 2,x,,3".into())), [1, 2, 3]);
        assert_eq!(parse_ids(None), Vec::<i64>::new());
        assert_eq!(join_ids(&[4, 5]), "4,5");
    }

    #[test]
    fn fixed_formats_missing_and_infinite_values() {
        assert_eq!(fixed(Some(1.23456), 2), "1.23");
        assert_eq!(fixed(None, 2), "—");
        assert_eq!(fixed(Some(f64::INFINITY), 2), "∞");
    }
}
