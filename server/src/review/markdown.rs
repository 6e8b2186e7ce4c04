//! Comments are markdown with maths, rendered once on the server and stored beside the text.
//! Safe by construction: pulldown-cmark parses, and this module writes every tag itself from an
//! allow-list. Raw HTML in a comment becomes visible text; links keep only `http`, `https`,
//! `mailto` and same-site paths and get `rel="nofollow noopener noreferrer"`; images become
//! links (no remote fetches from a reader's browser); maths goes through the app's MathML
//! converter (broken LaTeX stays literal text); `@name` of a known member becomes a mention.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// A comment's longest accepted text (bytes).
pub const MAX_COMMENT_BYTES: usize = 20_000;

/// A rendered comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub html: String,
    /// The names mentioned with `@name` that `is_member` accepted, in order, once each.
    pub mentions: Vec<String>,
}

fn escape_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (other than newline and tab) are dropped.
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
}

/// The link target kept, or `None` for a scheme we do not link (javascript:, data:, vbscript:,
/// protocol-relative `//host`, anything odd).
pub fn safe_url(url: &str) -> Option<&str> {
    let trimmed = url.trim();
    if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
    {
        return Some(trimmed);
    }
    if (trimmed.starts_with('/') && !trimmed.starts_with("//") && !trimmed.starts_with("/\\"))
        || trimmed.starts_with('#')
    {
        return Some(trimmed);
    }
    None
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Writes text with `@name` mentions of members marked.
fn text_with_mentions(
    out: &mut String,
    text: &str,
    is_member: &dyn Fn(&str) -> bool,
    mentions: &mut Vec<String>,
) {
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let before_ok = rest[..at].chars().last().is_none_or(|c| !is_name_char(c));
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !is_name_char(c))
            .unwrap_or(after.len());
        let name = after[..len].trim_end_matches('.');
        if before_ok && !name.is_empty() && is_member(name) {
            escape_into(out, &rest[..at]);
            out.push_str("<span class=\"mention\">@");
            escape_into(out, name);
            out.push_str("</span>");
            if !mentions.iter().any(|m| m == name) {
                mentions.push(name.to_owned());
            }
            rest = &after[name.len()..];
        } else {
            escape_into(out, &rest[..at + 1]);
            rest = after;
        }
    }
    escape_into(out, rest);
}

fn math_into(out: &mut String, latex: &str, display: bool) {
    match caplens_app::math::to_mathml(latex, display) {
        Ok(mathml) => out.push_str(&mathml),
        Err(_) => {
            let delim = if display { "$$" } else { "$" };
            out.push_str("<code class=\"math-error\">");
            escape_into(out, &format!("{delim}{latex}{delim}"));
            out.push_str("</code>");
        }
    }
}

/// Renders a comment. `is_member(name)` says whether `@name` names someone to notify.
pub fn render_comment(text: &str, is_member: &dyn Fn(&str) -> bool) -> Rendered {
    let written = write_html(text, &Flavour::Comment { is_member });
    Rendered {
        html: written.html,
        mentions: written.mentions,
    }
}

/// A heading of a rendered document: its anchor (GitHub's rule, so links written for the
/// repository resolve here too), its level and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Heading {
    pub anchor: String,
    pub level: u8,
    pub text: String,
}

/// A rendered document: its HTML and its headings in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedDocument {
    pub html: String,
    pub headings: Vec<Heading>,
}

/// Renders one of our own documents (docs/*.md): the comment writer's allow-list, plus headings
/// with anchors and tables; no maths (the docs write formulas as plain text). `link` maps each
/// link target to the address kept (`None` writes the link's text only); what it returns still
/// passes [`safe_url`].
pub fn render_document(text: &str, link: &dyn Fn(&str) -> Option<String>) -> RenderedDocument {
    let written = write_html(text, &Flavour::Document { link });
    RenderedDocument {
        html: written.html,
        headings: written.headings,
    }
}

/// GitHub's heading anchor: lower case; letters, digits, `-` and `_` kept, spaces become `-`,
/// everything else dropped; a repeated anchor gets `-1`, `-2`, ...
pub fn heading_anchor(text: &str, taken: &[Heading]) -> String {
    let base: String = text
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect();
    let mut anchor = base.clone();
    let mut n = 0;
    while taken.iter().any(|h| h.anchor == anchor) {
        n += 1;
        anchor = format!("{base}-{n}");
    }
    anchor
}

enum Flavour<'a> {
    Comment {
        is_member: &'a dyn Fn(&str) -> bool,
    },
    Document {
        link: &'a dyn Fn(&str) -> Option<String>,
    },
}

struct Written {
    html: String,
    mentions: Vec<String>,
    headings: Vec<Heading>,
}

/// The one markdown writer: every tag written here from pulldown-cmark's events.
fn write_html(text: &str, flavour: &Flavour) -> Written {
    let document = matches!(flavour, Flavour::Document { .. });
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut mentions = Vec::new();
    let mut headings: Vec<Heading> = Vec::new();
    let options = if document {
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES
    } else {
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_MATH
    };
    // Inside a code block or a dropped link, text is written plainly.
    let mut in_code_block = false;
    let mut open_links: Vec<bool> = Vec::new();
    // A document heading: where its HTML starts and its plain text so far (the anchor needs
    // the whole text before the opening tag can be written).
    let mut heading: Option<(usize, u8, String)> = None;
    let mut in_table_head = false;
    for event in Parser::new_ext(text, options) {
        if let (Some((_, _, plain)), Event::Text(t) | Event::Code(t)) = (&mut heading, &event) {
            plain.push_str(t);
        }
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph => out.push_str("<p>"),
                Tag::Heading { level, .. } if document => {
                    heading = Some((out.len(), level as u8, String::new()));
                }
                Tag::Heading { .. } => out.push_str("<p class=\"heading\"><strong>"),
                Tag::BlockQuote(_) => out.push_str("<blockquote>"),
                Tag::CodeBlock(_) => {
                    in_code_block = true;
                    out.push_str("<pre><code>");
                }
                Tag::List(Some(start)) if start != 1 => {
                    out.push_str(&format!("<ol start=\"{}\">", start.min(1_000_000)));
                }
                Tag::List(Some(_)) => out.push_str("<ol>"),
                Tag::List(None) => out.push_str("<ul>"),
                Tag::Item => out.push_str("<li>"),
                Tag::Emphasis => out.push_str("<em>"),
                Tag::Strong => out.push_str("<strong>"),
                Tag::Strikethrough => out.push_str("<del>"),
                Tag::Table(_) => out.push_str("<div class=\"table-wrap\"><table>"),
                Tag::TableHead => {
                    in_table_head = true;
                    out.push_str("<thead><tr>");
                }
                Tag::TableRow => out.push_str("<tr>"),
                Tag::TableCell => out.push_str(if in_table_head { "<th>" } else { "<td>" }),
                Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                    let kept = match flavour {
                        Flavour::Comment { .. } => safe_url(&dest_url).map(str::to_owned),
                        Flavour::Document { link } => {
                            link(&dest_url).filter(|url| safe_url(url).is_some())
                        }
                    };
                    match kept {
                        Some(url) => {
                            out.push_str("<a href=\"");
                            escape_into(&mut out, &url);
                            out.push_str(if document {
                                "\">"
                            } else {
                                "\" rel=\"nofollow noopener noreferrer\">"
                            });
                            open_links.push(true);
                        }
                        None => open_links.push(false),
                    }
                }
                // Raw HTML blocks, footnotes, metadata (and tables in comments): their text only.
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph => out.push_str("</p>"),
                TagEnd::Heading(_) if document => {
                    if let Some((at, level, plain)) = heading.take() {
                        let anchor = heading_anchor(&plain, &headings);
                        let level = level.clamp(1, 6);
                        out.insert_str(at, &format!("<h{level} id=\"{anchor}\">"));
                        out.push_str(&format!("</h{level}>"));
                        headings.push(Heading {
                            anchor,
                            level,
                            text: plain,
                        });
                    }
                }
                TagEnd::Heading(_) => out.push_str("</strong></p>"),
                TagEnd::BlockQuote(_) => out.push_str("</blockquote>"),
                TagEnd::CodeBlock => {
                    in_code_block = false;
                    out.push_str("</code></pre>");
                }
                TagEnd::List(true) => out.push_str("</ol>"),
                TagEnd::List(false) => out.push_str("</ul>"),
                TagEnd::Item => out.push_str("</li>"),
                TagEnd::Emphasis => out.push_str("</em>"),
                TagEnd::Strong => out.push_str("</strong>"),
                TagEnd::Strikethrough => out.push_str("</del>"),
                TagEnd::Table => out.push_str("</tbody></table></div>"),
                TagEnd::TableHead => {
                    in_table_head = false;
                    out.push_str("</tr></thead><tbody>");
                }
                TagEnd::TableRow => out.push_str("</tr>"),
                TagEnd::TableCell => out.push_str(if in_table_head { "</th>" } else { "</td>" }),
                TagEnd::Link | TagEnd::Image if open_links.pop() == Some(true) => {
                    out.push_str("</a>");
                }
                _ => {}
            },
            Event::Text(t) if in_code_block => escape_into(&mut out, &t),
            Event::Text(t) => match flavour {
                Flavour::Comment { is_member } => {
                    text_with_mentions(&mut out, &t, *is_member, &mut mentions)
                }
                Flavour::Document { .. } => escape_into(&mut out, &t),
            },
            Event::Code(t) => {
                out.push_str("<code>");
                escape_into(&mut out, &t);
                out.push_str("</code>");
            }
            Event::InlineMath(t) => math_into(&mut out, &t, false),
            Event::DisplayMath(t) => math_into(&mut out, &t, true),
            // Raw HTML is shown as the text it is.
            Event::Html(t) | Event::InlineHtml(t) => escape_into(&mut out, &t),
            Event::FootnoteReference(t) => escape_into(&mut out, &format!("[^{t}]")),
            Event::SoftBreak => out.push('\n'),
            Event::HardBreak => out.push_str("<br>"),
            Event::Rule => out.push_str("<hr>"),
            Event::TaskListMarker(done) => out.push_str(if done { "[x] " } else { "[ ] " }),
        }
    }
    Written {
        html: out,
        mentions,
        headings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str) -> String {
        render_comment(text, &|n| n == "bob" || n == "ann").html
    }

    /// Every tag in the HTML (text is escaped, so each `<` starts one) is on the allow-list, no
    /// attribute is an event handler or a style, and every link target is a safe one.
    fn assert_inert(html: &str) {
        const TAGS: [&str; 16] = [
            "p",
            "strong",
            "em",
            "del",
            "code",
            "pre",
            "blockquote",
            "ol",
            "ul",
            "li",
            "a",
            "br",
            "hr",
            "span",
            "math",
            "semantics",
        ];
        let mut rest = html;
        while let Some(at) = rest.find('<') {
            let end = rest[at..]
                .find('>')
                .map(|e| at + e)
                .unwrap_or_else(|| panic!("unclosed tag in {html}"));
            let tag = rest[at + 1..end].trim_start_matches('/');
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            // MathML from app::math: m* elements (mi, mn, mo, mrow, mfrac, msup, ...) and annotation.
            assert!(
                TAGS.contains(&name.as_str()) || name.starts_with('m') || name == "annotation",
                "tag <{name}> in {html}"
            );
            let attrs = tag[name.len()..].to_ascii_lowercase();
            for attr in attrs.split_whitespace() {
                let key = attr.split('=').next().unwrap_or("");
                assert!(
                    !key.starts_with("on") && key != "style" && key != "src",
                    "attribute {attr} in {html}"
                );
            }
            if let Some(h) = attrs.find("href=\"") {
                let url = attrs[h + 6..].split('"').next().unwrap_or("");
                assert!(safe_url(url).is_some(), "href {url} in {html}");
                assert!(
                    !url.contains("javascript") && !url.starts_with("//"),
                    "href {url} in {html}"
                );
            }
            rest = &rest[end + 1..];
        }
    }

    #[test]
    fn xss_corpus_renders_inert() {
        let corpus = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "[click](JaVaScRiPt:alert(1))",
            "[click]( javascript:alert(1))",
            "[x](vbscript:msgbox(1))",
            "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "![img](https://evil.example/x.png\" onerror=\"alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<svg/onload=alert(1)>",
            "<iframe src=//evil.example>",
            "[x](//evil.example/path)",
            "`<script>` and ```\n<script>alert(1)</script>\n```",
            "$\\href{javascript:alert(1)}{x}$ and $$<script>$$",
            "<style>body{display:none}</style>",
            "[a](<javascript:alert(1)>)",
            "&lt;script&gt; &#x3C;script&#x3E;",
            "<form action=/auth/logout method=post><button>x</button></form>",
            "@bob<script>alert(1)</script>",
        ];
        for text in corpus {
            let html = render(text);
            assert_inert(&html);
        }
    }

    #[test]
    fn markdown_maths_links_and_mentions() {
        let r = render_comment(
            "**bold** and $x^2$ see [the run](https://example.org/a?b=1&c=2) @bob @carol @ann.",
            &|n| n == "bob" || n == "ann",
        );
        assert!(r.html.contains("<strong>bold</strong>"), "{}", r.html);
        assert!(r.html.contains("<math"), "{}", r.html);
        assert!(
            r.html.contains("<a href=\"https://example.org/a?b=1&amp;c=2\" rel=\"nofollow noopener noreferrer\">the run</a>"),
            "{}",
            r.html
        );
        assert!(r.html.contains("<span class=\"mention\">@bob</span>"));
        assert!(r.html.contains("@carol") && !r.html.contains(">@carol<"));
        assert_eq!(r.mentions, vec!["bob".to_string(), "ann".to_string()]);
        // an e-mail address is not a mention
        assert!(render_comment("mail ann@bob.org", &|n| n == "bob")
            .mentions
            .is_empty());
    }

    #[test]
    fn broken_latex_stays_literal_and_raw_html_is_text() {
        let html = render("$\\frac{1}{$ and <b>hi</b>");
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>"));
        let html = render("$$\\frac{1}{2$$");
        assert!(
            html.contains("math-error") || html.contains("\\frac"),
            "{html}"
        );
    }
}
