//! The documentation the app serves: docs/*.md and docs/formats/*.md, embedded at build time so
//! a link from a page always reaches the docs of the running version (`/docs/{name}`), and the
//! glossary (`/glossary`): the metric definitions of docs/metrics.md and docs/token-metrics.md
//! under one heading that names the paper. Rendered once, by the same allow-list writer as
//! comments; links between documents become links inside the app, links to anything else in the
//! repository keep only their text.

use std::sync::OnceLock;

use caplens_app::model::{DocumentSection, DocumentView};

use crate::review::markdown::{render_document, RenderedDocument};

/// Every served document: its name (the path under docs/ without `.md`) and its text.
const SOURCES: &[(&str, &str)] = &[
    ("api", include_str!("../../docs/api.md")),
    ("cli", include_str!("../../docs/cli.md")),
    ("deploy", include_str!("../../docs/deploy.md")),
    ("engine-serve", include_str!("../../docs/engine-serve.md")),
    ("evaluations", include_str!("../../docs/evaluations.md")),
    ("fuzzing", include_str!("../../docs/fuzzing.md")),
    ("metrics", include_str!("../../docs/metrics.md")),
    ("performance", include_str!("../../docs/performance.md")),
    ("review", include_str!("../../docs/review.md")),
    ("security", include_str!("../../docs/security.md")),
    ("token-metrics", include_str!("../../docs/token-metrics.md")),
    ("verdicts", include_str!("../../docs/verdicts.md")),
    ("verifier", include_str!("../../docs/verifier.md")),
    (
        "formats/dataset",
        include_str!("../../docs/formats/dataset.md"),
    ),
    (
        "formats/inspect",
        include_str!("../../docs/formats/inspect.md"),
    ),
    (
        "formats/lighteval",
        include_str!("../../docs/formats/lighteval.md"),
    ),
    (
        "formats/lm-eval",
        include_str!("../../docs/formats/lm-eval.md"),
    ),
    (
        "formats/native",
        include_str!("../../docs/formats/native.md"),
    ),
    (
        "formats/openai",
        include_str!("../../docs/formats/openai.md"),
    ),
    (
        "formats/qwen-math",
        include_str!("../../docs/formats/qwen-math.md"),
    ),
    ("formats/verl", include_str!("../../docs/formats/verl.md")),
];

/// The documents the glossary is made of, in order.
const GLOSSARY_SOURCES: [&str; 2] = ["metrics", "token-metrics"];

/// The glossary's opening: what the terms are for and which paper "eq.", "fig.", "sec." and
/// "table" refer to.
const GLOSSARY_INTRO: &str = "Every number caplens shows, defined. caplens follows the technical report \
*From Trial-and-Error to Improvement: A Systematic Analysis of LLM Exploration Mechanisms in RLVR* \
(Jia Deng, Jie Chen et al., RUCAIBox / STILL project): wherever a page says \"eq. 2\", \"fig. 6a\", \
\"sec. 4.4.1\" or \"table 1\", it means that report's equation, figure, section or table. \
\"Item\" numbers refer to caplens' own notes on the report. The same definitions are in \
[metrics](metrics.md) and [token metrics](token-metrics.md); how answers are graded is in \
[the verifier](verifier.md).\n\n";

/// A served document by name (`glossary` included), or `None`.
pub fn document(name: &str) -> Option<DocumentView> {
    rendered().iter().find(|d| d.name == name).cloned()
}

/// The names of the served documents.
pub fn names() -> impl Iterator<Item = &'static str> {
    SOURCES
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once("glossary"))
}

fn rendered() -> &'static [DocumentView] {
    static RENDERED: OnceLock<Vec<DocumentView>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let mut docs: Vec<DocumentView> = SOURCES
            .iter()
            .map(|(name, text)| {
                let (title, body) = split_title(text);
                view(name, title.unwrap_or(name), &render(name, body))
            })
            .collect();
        docs.push(glossary());
        docs
    })
}

/// The glossary: the intro, then each source document under its title as a section, its own
/// sections one level down.
fn glossary() -> DocumentView {
    let mut text = String::from(GLOSSARY_INTRO);
    for name in GLOSSARY_SOURCES {
        let source = SOURCES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .expect("a glossary source is a served document");
        let (title, body) = split_title(source);
        text.push_str(&format!("## {}\n\n", title.unwrap_or(name)));
        text.push_str(&demote_headings(body));
        text.push('\n');
    }
    view("glossary", "Glossary", &render("glossary", &text))
}

fn view(name: &str, title: &str, rendered: &RenderedDocument) -> DocumentView {
    DocumentView {
        name: name.to_owned(),
        title: title.to_owned(),
        html: rendered.html.clone(),
        sections: rendered
            .headings
            .iter()
            .map(|h| DocumentSection {
                anchor: h.anchor.clone(),
                level: h.level,
                title: h.text.clone(),
            })
            .collect(),
    }
}

fn render(name: &str, text: &str) -> RenderedDocument {
    render_document(text, &|target| link_target(name, target))
}

/// The first line's `# Title` (the page shows it as its heading) and the rest.
fn split_title(text: &str) -> (Option<&str>, &str) {
    match text.strip_prefix("# ") {
        Some(rest) => {
            let (title, body) = rest.split_once('\n').unwrap_or((rest, ""));
            (Some(title.trim()), body)
        }
        None => (None, text),
    }
}

/// Every ATX heading outside fenced code one level deeper.
fn demote_headings(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with('#') && line.trim_start_matches('#').starts_with(' ') {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Where a link in document `from` goes in the app: web and mail addresses and anchors as
/// written; a relative link to another served document becomes `/docs/{name}` (the glossary's
/// sources keep pointing at their own pages); anything else (source files, folders) `None`.
fn link_target(from: &str, target: &str) -> Option<String> {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("mailto:")
        || target.starts_with('#')
    {
        return Some(target.to_owned());
    }
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let path = path.strip_suffix(".md")?;
    // Resolve against the folder of `from` (the glossary lives beside metrics.md).
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    let name = parts.join("/");
    SOURCES
        .iter()
        .any(|(n, _)| *n == name)
        .then(|| match fragment {
            Some(f) => format!("/docs/{name}#{f}"),
            None => format!("/docs/{name}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_docs_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let mut on_disk = Vec::new();
        for sub in ["", "formats"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "md") {
                    let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                    on_disk.push(if sub.is_empty() {
                        stem
                    } else {
                        format!("{sub}/{stem}")
                    });
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = SOURCES.iter().map(|(n, _)| n.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served, "docs/ and docs::SOURCES differ");
    }

    #[test]
    fn links_between_documents_resolve_inside_the_app() {
        assert_eq!(
            link_target("formats/native", "../verifier.md").as_deref(),
            Some("/docs/verifier")
        );
        assert_eq!(
            link_target("review", "security.md#share-links").as_deref(),
            Some("/docs/security#share-links")
        );
        assert_eq!(
            link_target("api", "formats/dataset.md").as_deref(),
            Some("/docs/formats/dataset")
        );
        assert_eq!(link_target("api", "formats/"), None);
        assert_eq!(link_target("api", "../server/src/main.rs"), None);
        assert_eq!(link_target("api", "../../../etc/passwd.md"), None);
        assert_eq!(
            link_target("api", "https://example.org/x").as_deref(),
            Some("https://example.org/x")
        );
    }

    /// Every in-document link to an anchor of a served document names a heading that exists.
    #[test]
    fn every_link_between_documents_reaches_a_heading() {
        for doc in rendered() {
            let mut rest = doc.html.as_str();
            while let Some(at) = rest.find("href=\"") {
                let url = rest[at + 6..].split('"').next().unwrap();
                rest = &rest[at + 6..];
                let (target, anchor) = if let Some(a) = url.strip_prefix('#') {
                    (doc.name.clone(), a)
                } else if let Some(local) = url.strip_prefix("/docs/") {
                    match local.split_once('#') {
                        Some((n, a)) => (n.to_owned(), a),
                        None => {
                            assert!(document(local).is_some(), "{} links to {url}", doc.name);
                            continue;
                        }
                    }
                } else {
                    continue;
                };
                let target = document(&target)
                    .unwrap_or_else(|| panic!("{} links to {url}: no such document", doc.name));
                assert!(
                    target.sections.iter().any(|s| s.anchor == anchor),
                    "{} links to {url}: no such heading",
                    doc.name
                );
            }
        }
    }

    /// The pages link terms to glossary anchors (`components::glossary::Term`): each one exists,
    /// so renaming a heading in docs/ cannot leave a dead link.
    #[test]
    fn every_term_the_pages_link_has_a_definition() {
        let glossary = document("glossary").unwrap();
        for term in caplens_app::components::glossary::Term::ALL {
            assert!(
                glossary.sections.iter().any(|s| s.anchor == term.anchor()),
                "{term:?}: no heading #{} in the glossary; headings: {:?}",
                term.anchor(),
                glossary
                    .sections
                    .iter()
                    .map(|s| &s.anchor)
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn the_glossary_names_the_paper_and_holds_every_metric_section() {
        let glossary = document("glossary").unwrap();
        assert!(glossary
            .html
            .contains("From Trial-and-Error to Improvement"));
        for title in [
            "Metrics implemented",
            "Token-level and training-level metrics",
        ] {
            assert!(
                glossary
                    .sections
                    .iter()
                    .any(|s| s.level == 2 && s.title.starts_with(title)),
                "{title}"
            );
        }
        let entropy = glossary
            .sections
            .iter()
            .find(|s| s.title.starts_with("Token entropy"))
            .unwrap();
        assert_eq!(entropy.level, 3);
        assert!(glossary
            .html
            .contains(&format!("<h3 id=\"{}\">", entropy.anchor)));
        // Headings are real headings with anchors, tables are tables, raw HTML stays text.
        let api = document("api").unwrap();
        assert!(api.html.contains("<table>") && api.html.contains("<h2 id=\""));
        assert!(!api.html.contains("<script"));
    }
}
