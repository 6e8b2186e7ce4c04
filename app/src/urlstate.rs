//! View state in the URL: every view's state (selected runs, k, filters, chosen problem, metric)
//! is its query string, so a link opens the same view for a colleague. Pages parse their state
//! from the query map with these helpers and build links with [`Query`].

/// Run ids from `"3,1,2"`; junk entries are dropped, order and first occurrence kept.
pub fn parse_ids(s: &str) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for id in s.split(',').filter_map(|p| p.trim().parse::<i64>().ok()) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

pub fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string under construction; empty values are left out, so default state gives short
/// links.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        let value = value.to_string();
        self.0.retain(|(k, _)| k != key);
        if !value.is_empty() {
            self.0.push((key.to_string(), value));
        }
        self
    }
    /// The (key, value) pairs, unencoded (e.g. for a GET form's hidden inputs).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
    /// `path?query`, or just `path` when there is no state.
    pub fn href(&self, path: &str) -> String {
        let q = self.to_string();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        }
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    encode_component(k),
                    encode_component(v).replace("%2C", ",")
                )
            })
            .collect();
        f.write_str(&parts.join("&"))
    }
}

/// The (key, value) pairs of a query string (`a=1&b=x%20y`), percent- and `+`-decoded; invalid
/// escapes are kept as written, invalid UTF-8 replaced.
pub fn parse_query(s: &str) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
                .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
                .flatten();
            match (bytes[i], escaped) {
                (_, Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_skip_junk() {
        assert_eq!(parse_ids("3, 1,x,,2,3"), vec![3, 1, 2]);
        assert_eq!(join_ids(&[3, 1]), "3,1");
    }

    #[test]
    fn query_strings_parse_back() {
        let q = Query::new().set("runs", "1,2").set("q", "aime 24&x=é%");
        let pairs = parse_query(&q.to_string());
        assert_eq!(
            pairs,
            vec![
                ("runs".to_string(), "1,2".to_string()),
                ("q".to_string(), "aime 24&x=é%".to_string())
            ]
        );
        assert_eq!(
            parse_query("?a=%zz&b"),
            vec![("a".into(), "%zz".into()), ("b".into(), String::new())]
        );
        assert_eq!(parse_query("a=%4"), vec![("a".into(), "%4".into())]);
    }

    #[test]
    fn query_encodes_and_drops_empty() {
        let q = Query::new()
            .set("runs", "1,2")
            .set("tag", "aime 24&x")
            .set("k", "");
        assert_eq!(q.to_string(), "runs=1,2&tag=aime%2024%26x");
        assert_eq!(Query::new().href("/p"), "/p");
    }
}
