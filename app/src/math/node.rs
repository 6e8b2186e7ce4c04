//! The formula tree (`Node`, `Mo`) and its MathML output: element and attribute names and values
//! are constants, and every text piece is escaped as it is written.

use crate::escape::escape_into;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Row(Vec<Node>),
    /// An identifier; `upright` for multi-letter names and upright letters.
    Mi(String, bool),
    Mn(String),
    Mo(String, Mo),
    Text(String),
    Space(&'static str),
    Frac(Box<Node>, Box<Node>, bool),
    Sqrt(Box<Node>),
    Root(Box<Node>, Box<Node>),
    Scripts {
        base: Box<Node>,
        sub: Option<Box<Node>>,
        sup: Option<Box<Node>>,
        limits: bool,
    },
    /// Accent or over/under content: `under` picks `munder` instead of `mover`.
    Over(Box<Node>, Box<Node>, bool),
    Fenced(&'static str, Box<Node>, &'static str),
    Table(Vec<Vec<Node>>, &'static str),
    Boxed(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mo {
    Plain,
    /// A large operator whose scripts go below/above in display (`\sum`).
    Limits,
    /// An accent (`\hat`): stretchy only for the wide ones.
    Accent(bool),
    /// A fence written by `\left`/`\right` or an environment.
    Fence,
}

impl Node {
    pub(super) fn write(&self, out: &mut String) {
        match self {
            Node::Row(items) => {
                out.push_str("<mrow>");
                items.iter().for_each(|n| n.write(out));
                out.push_str("</mrow>");
            }
            Node::Mi(s, upright) => {
                let single = s.chars().count() == 1;
                out.push_str(if *upright && single {
                    "<mi mathvariant=\"normal\">"
                } else {
                    "<mi>"
                });
                escape_into(out, s);
                out.push_str("</mi>");
            }
            Node::Mn(s) => tag(out, "mn", s),
            Node::Mo(s, kind) => {
                out.push_str(match kind {
                    Mo::Plain | Mo::Limits => "<mo>",
                    Mo::Accent(true) => "<mo stretchy=\"true\">",
                    Mo::Accent(false) => "<mo stretchy=\"false\">",
                    Mo::Fence => "<mo fence=\"true\">",
                });
                escape_into(out, s);
                out.push_str("</mo>");
            }
            Node::Text(s) => tag(out, "mtext", s),
            Node::Space(width) => {
                out.push_str("<mspace width=\"");
                out.push_str(width);
                out.push_str("\"></mspace>");
            }
            Node::Frac(a, b, no_line) => {
                out.push_str(if *no_line {
                    "<mfrac linethickness=\"0\">"
                } else {
                    "<mfrac>"
                });
                a.write(out);
                b.write(out);
                out.push_str("</mfrac>");
            }
            Node::Sqrt(a) => {
                out.push_str("<msqrt>");
                a.write(out);
                out.push_str("</msqrt>");
            }
            Node::Root(a, index) => {
                out.push_str("<mroot>");
                a.write(out);
                index.write(out);
                out.push_str("</mroot>");
            }
            Node::Scripts {
                base,
                sub,
                sup,
                limits,
            } => {
                let name = match (sub.is_some(), sup.is_some(), limits) {
                    (true, true, false) => "msubsup",
                    (true, false, false) => "msub",
                    (false, true, false) => "msup",
                    (true, true, true) => "munderover",
                    (true, false, true) => "munder",
                    (false, true, true) => "mover",
                    (false, false, _) => "mrow",
                };
                open(out, name);
                base.write(out);
                if let Some(s) = sub {
                    s.write(out);
                }
                if let Some(s) = sup {
                    s.write(out);
                }
                close(out, name);
            }
            Node::Over(base, over, under) => {
                let name = if *under { "munder" } else { "mover" };
                let accent = matches!(**over, Node::Mo(_, Mo::Accent(_)));
                out.push('<');
                out.push_str(name);
                if accent {
                    out.push_str(if *under {
                        " accentunder=\"true\""
                    } else {
                        " accent=\"true\""
                    });
                }
                out.push('>');
                base.write(out);
                over.write(out);
                close(out, name);
            }
            Node::Fenced(l, body, r) => {
                out.push_str("<mrow>");
                if !l.is_empty() {
                    Node::Mo(l.to_string(), Mo::Fence).write(out);
                }
                body.write(out);
                if !r.is_empty() {
                    Node::Mo(r.to_string(), Mo::Fence).write(out);
                }
                out.push_str("</mrow>");
            }
            Node::Table(rows, align) => {
                out.push_str("<mtable");
                if !align.is_empty() {
                    out.push_str(" columnalign=\"");
                    out.push_str(align);
                    out.push('"');
                }
                out.push('>');
                for row in rows {
                    out.push_str("<mtr>");
                    for cell in row {
                        out.push_str("<mtd>");
                        cell.write(out);
                        out.push_str("</mtd>");
                    }
                    out.push_str("</mtr>");
                }
                out.push_str("</mtable>");
            }
            Node::Boxed(body) => {
                out.push_str("<mrow class=\"boxed\">");
                body.write(out);
                out.push_str("</mrow>");
            }
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn tag(out: &mut String, name: &str, text: &str) {
    open(out, name);
    escape_into(out, text);
    close(out, name);
}
