//! Tables of numbers as the pages show them, and their exports: CSV (RFC 4180) and a LaTeX
//! `tabular` (booktabs rules), so a table goes straight into a spreadsheet or a paper.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TableData {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Which columns are numeric (right-aligned in LaTeX).
    pub numeric: Vec<bool>,
}

impl TableData {
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    pub fn to_latex(&self) -> String {
        let spec: String = (0..self.headers.len())
            .map(|i| {
                if self.numeric.get(i).copied().unwrap_or(false) {
                    'r'
                } else {
                    'l'
                }
            })
            .collect();
        let line = |row: &Vec<String>| {
            row.iter()
                .map(|c| latex_escape(c))
                .collect::<Vec<_>>()
                .join(" & ")
                + " \\\\\n"
        };
        let mut out = format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n");
        out.push_str(&line(&self.headers));
        out.push_str("\\midrule\n");
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        out
    }
}

fn csv_cell(c: &str) -> String {
    // Cells a spreadsheet would run as a formula are prefixed with a quote (CSV injection).
    let c = if c.starts_with(['=', '+', '@']) || (c.starts_with('-') && c.parse::<f64>().is_err()) {
        format!("'{c}")
    } else {
        c.to_string()
    };
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c
    }
}

/// Escapes LaTeX's special characters so any text typesets literally.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A `data:` URL holding `text`, for a download link that works without JavaScript.
pub fn data_url(mime: &str, text: &str) -> String {
    format!(
        "data:{mime};charset=utf-8,{}",
        crate::urlstate::encode_component(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableData {
        TableData {
            headers: vec!["model".into(), "pass@1".into()],
            rows: vec![
                vec!["a,\"b\"".into(), "12.5".into()],
                vec!["=cmd()".into(), "-3".into()],
                vec!["x_1 & 50%".into(), "1".into()],
            ],
            numeric: vec![false, true],
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(
            table().to_csv(),
            "model,pass@1\r\n\"a,\"\"b\"\"\",12.5\r\n'=cmd(),-3\r\nx_1 & 50%,1\r\n"
        );
    }

    #[test]
    fn latex_escapes_specials() {
        let t = table().to_latex();
        assert!(t.starts_with("\\begin{tabular}{lr}\n\\toprule\nmodel & pass@1 \\\\\n\\midrule\n"));
        assert!(t.contains("x\\_1 \\& 50\\% & 1 \\\\"));
        assert!(t.ends_with("\\bottomrule\n\\end{tabular}\n"));
        assert_eq!(
            latex_escape("\\x^2~"),
            "\\textbackslash{}x\\textasciicircum{}2\\textasciitilde{}"
        );
    }
}
