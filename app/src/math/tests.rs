//! Tests of the whole converter through its public functions: constructs, broken LaTeX,
//! delimiters in running text, and hostile input coming out inert.

use super::*;

fn math(latex: &str) -> String {
    to_mathml(latex, false).unwrap_or_else(|e| panic!("{latex}: {e:?}"))
}

/// The markup between `<semantics><mrow>` and `</mrow><annotation`.
fn body(latex: &str) -> String {
    let m = math(latex);
    let start = m.find("<semantics><mrow>").unwrap() + "<semantics><mrow>".len();
    let end = m.rfind("</mrow><annotation").unwrap();
    m[start..end].to_string()
}

/// Every tag in the output is an element we write, from this allow-list, with attributes
/// from this allow-list; text between tags contains no `<`.
fn assert_only_mathml(out: &str) {
    const ELEMENTS: &[&str] = &[
        "math",
        "semantics",
        "annotation",
        "mrow",
        "mi",
        "mn",
        "mo",
        "mtext",
        "mspace",
        "mfrac",
        "msqrt",
        "mroot",
        "msub",
        "msup",
        "msubsup",
        "munder",
        "mover",
        "munderover",
        "mtable",
        "mtr",
        "mtd",
    ];
    const ATTRIBUTES: &[&str] = &[
        "display",
        "encoding",
        "mathvariant",
        "stretchy",
        "fence",
        "width",
        "linethickness",
        "accent",
        "accentunder",
        "columnalign",
        "class",
    ];
    let mut rest = out;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("every tag closes") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "a `<` inside a tag in {out}");
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        assert!(
            ELEMENTS.contains(&name),
            "unexpected element <{name}> in {out}"
        );
        while !attrs.is_empty() {
            let (key, after) = attrs
                .split_once("=\"")
                .expect("attributes are key=\"value\"");
            assert!(
                ATTRIBUTES.contains(&key),
                "unexpected attribute {key} in {out}"
            );
            let (value, after) = after.split_once('"').expect("value closes");
            assert!(!value.contains(['<', '>', '&']), "{value}");
            attrs = after.trim_start();
        }
        rest = &rest[close + 1..];
    }
}

#[test]
fn common_constructs_convert() {
    assert_eq!(body("x^2"), "<msup><mi>x</mi><mn>2</mn></msup>");
    assert_eq!(
        body("\\frac{1}{2}"),
        "<mfrac><mrow><mn>1</mn></mrow><mrow><mn>2</mn></mrow></mfrac>"
            .replace("<mrow><mn>1</mn></mrow>", "<mn>1</mn>")
            .replace("<mrow><mn>2</mn></mrow>", "<mn>2</mn>")
    );
    assert_eq!(body("\\frac12"), "<mfrac><mn>1</mn><mn>2</mn></mfrac>");
    assert_eq!(body("\\sqrt{3}"), "<msqrt><mn>3</mn></msqrt>");
    assert_eq!(body("\\sqrt[3]{8}"), "<mroot><mn>8</mn><mn>3</mn></mroot>");
    assert_eq!(body("a_1"), "<msub><mi>a</mi><mn>1</mn></msub>");
    assert_eq!(
        body("x_i^2"),
        "<msubsup><mi>x</mi><mi>i</mi><mn>2</mn></msubsup>"
    );
    assert_eq!(body("3.14"), "<mn>3.14</mn>");
    assert_eq!(body("\\pi r"), "<mi>π</mi><mi>r</mi>");
    assert_eq!(body("\\Gamma"), "<mi mathvariant=\"normal\">Γ</mi>");
    assert_eq!(body("a-b"), "<mi>a</mi><mo>−</mo><mi>b</mi>");
    assert_eq!(body("1 \\le n"), "<mn>1</mn><mo>≤</mo><mi>n</mi>");
    assert_eq!(body("\\text{if } x"), "<mtext>if </mtext><mi>x</mi>");
    assert_eq!(
        body("\\boxed{42}"),
        "<mrow class=\"boxed\"><mn>42</mn></mrow>"
    );
    assert_eq!(
        body("\\sum_{k=1}^{n} k"),
        "<munderover><mo>∑</mo><mrow><mi>k</mi><mo>=</mo><mn>1</mn></mrow><mi>n</mi></munderover><mi>k</mi>"
    );
    assert_eq!(
        body("\\left( x \\right)"),
        "<mrow><mo fence=\"true\">(</mo><mrow><mi>x</mi></mrow><mo fence=\"true\">)</mo></mrow>"
    );
    assert_eq!(body("\\mathbb{R}"), "<mi>ℝ</mi>");
    assert_eq!(body("\\operatorname{lcm}"), "<mi>lcm</mi>");
    assert_eq!(body("\\sin x"), "<mi>sin</mi><mi>x</mi>");
    assert!(body("f'(x)").starts_with("<msup><mi>f</mi><mo>′</mo></msup>"));
    assert_eq!(
        body("\\binom{n}{k}"),
        "<mrow><mo fence=\"true\">(</mo><mfrac linethickness=\"0\"><mi>n</mi><mi>k</mi></mfrac><mo fence=\"true\">)</mo></mrow>"
    );
    assert!(body("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}")
        .contains("<mtable><mtr><mtd><mn>1</mn></mtd><mtd><mn>2</mn></mtd></mtr><mtr><mtd><mn>3</mn></mtd><mtd><mn>4</mn></mtd></mtr></mtable>"));
    let cases = math("f(x) = \\begin{cases} 1 & x > 0 \\\\ 0 & \\text{otherwise} \\end{cases}");
    assert!(cases.contains("columnalign=\"left left\""), "{cases}");
    assert_only_mathml(&cases);
    assert!(math("x").starts_with("<math><semantics>"));
    assert!(to_mathml("x", true)
        .unwrap()
        .starts_with("<math display=\"block\">"));
}

#[test]
fn broken_latex_is_an_error() {
    for bad in [
        "\\frac{1}{",
        "\\frac{1}",
        "x^",
        "}",
        "{x",
        "\\left( x",
        "x \\right)",
        "\\unknowncommand{x}",
        "\\begin{pmatrix} 1 \\end{bmatrix}",
        "\\begin{foo} x \\end{foo}",
        "a & b",
        "x^2^3",
        "\\",
        "\\text{a",
    ] {
        assert!(to_mathml(bad, false).is_err(), "{bad:?} converted");
    }
    let deep = "{".repeat(500) + &"}".repeat(500);
    assert!(
        to_mathml(&deep, false).is_err(),
        "deep nesting is refused, not a stack overflow"
    );
    let long = "x+".repeat(MAX_FORMULA_BYTES);
    assert!(to_mathml(&long, false).is_err());
}

#[test]
fn segments_find_every_delimiter() {
    let segs = segments("Let $x^2$ and \\(y\\), then $$z$$ and \\[w\\].");
    let kinds: Vec<(bool, bool)> = segs
        .iter()
        .map(|s| match s {
            Segment::Text(_) => (false, false),
            Segment::Math { display, .. } => (true, *display),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (false, false),
            (true, false),
            (false, false),
            (true, false),
            (false, false),
            (true, true),
            (false, false),
            (true, true),
            (false, false)
        ]
    );
    assert_eq!(segs[0], Segment::Text("Let ".into()));
    assert_eq!(segs[8], Segment::Text(".".into()));
}

#[test]
fn dollars_that_are_money_stay_text() {
    for text in [
        "It costs $5 and $10.",
        "a $ b $ c",
        "price \\$3 and \\$4",
        "one $ alone",
        "$$",
        "$ $",
    ] {
        assert_eq!(segments(text), vec![Segment::Text(text.into())], "{text:?}");
    }
}

#[test]
fn broken_formulas_render_as_their_literal_text() {
    let text = "before $\\frac{1}{$ after \\[ \\badcmd \\] end";
    assert_eq!(segments(text), vec![Segment::Text(text.into())]);
    let segs = segments("ok $x$ bad $\\nope$");
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[0], Segment::Text("ok ".into()));
    assert!(matches!(&segs[1], Segment::Math { display: false, .. }));
    assert_eq!(segs[2], Segment::Text(" bad $\\nope$".into()));
}

#[test]
fn hostile_input_comes_out_inert() {
    let attacks = [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "\\text{<script>alert(1)</script>}",
        "</math><script>alert(1)</script>",
        "\\text{</math><img src=x onerror=alert(1)>}",
        "a<b>c",
        "\\operatorname{<script>}",
        "x \\text{\" onmouseover=\"alert(1)}",
        "\\mathbb{<}",
        "\\left< x \\right>",
        "\\begin{array}{<script>} 1 \\end{array}",
        "\\textcolor{red\" onload=\"x}{1}",
        "\\label{</annotation><script>}",
    ];
    for attack in attacks {
        for display in [false, true] {
            if let Ok(out) = to_mathml(attack, display) {
                assert_only_mathml(&out);
                assert!(!out.contains("<script"), "{out}");
                assert!(!out.contains("<img"), "{out}");
            }
        }
        // The same strings inside delimiters in running text: converted or left as text,
        // and text is escaped by Leptos when rendered; math segments must be inert.
        for text in [
            format!("${attack}$"),
            format!("$${attack}$$"),
            format!("\\({attack}\\)"),
            format!("before {attack} after"),
        ] {
            for seg in segments(&text) {
                if let Segment::Math { mathml, .. } = seg {
                    assert_only_mathml(&mathml);
                }
            }
        }
    }
    // Text content and the annotation keep the characters, escaped.
    let out = to_mathml("\\text{<script>}", false).unwrap();
    assert!(out.contains("<mtext>&lt;script&gt;</mtext>"), "{out}");
    assert!(out.contains("\\text{&lt;script&gt;}</annotation>"), "{out}");
    let out = to_mathml("a<b", false).unwrap();
    assert!(out.contains("<mo>&lt;</mo>"), "{out}");
}

#[test]
fn escape_covers_markup_characters() {
    let mut s = String::new();
    escape_into(&mut s, "<a href='x' title=\"y\">&</a>");
    assert_eq!(
        s,
        "&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;"
    );
}
