//! A Prometheus text scrape, queried as `scrape.value("name", &[("label", "v")])`.
//!
//! Why a line reader rather than a parsing crate: the tests assert series
//! exactly as Envoy serves them (`_bucket`, `_sum` and `_count` lines, label
//! values with escapes), and the crates that parse the format
//! (`prometheus-parse`) regroup histograms into one value per metric, which
//! would hide what Envoy's exposition actually contains. The reader is sixty
//! lines, tested below.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub series: Vec<Series>,
    pub text: String,
}

/// The `metric_relabel_configs` renames of the shipped Prometheus job
/// (`examples/observability/prometheus-scrape.yaml`): (anchored regex,
/// replacement) for `__name__`.
fn shipped_renames() -> &'static [(regex::Regex, String)] {
    static RULES: std::sync::OnceLock<Vec<(regex::Regex, String)>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let path = crate::repo_root().join("examples/observability/prometheus-scrape.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
        let mut rules = Vec::new();
        for job in doc["scrape_configs"].as_sequence().into_iter().flatten() {
            for rule in job["metric_relabel_configs"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                let renames_name = rule["target_label"].as_str() == Some("__name__")
                    && rule["source_labels"][0].as_str() == Some("__name__");
                let (Some(re), Some(to)) = (rule["regex"].as_str(), rule["replacement"].as_str())
                else {
                    continue;
                };
                if let (true, Ok(re)) = (renames_name, regex::Regex::new(&format!("^(?:{re})$"))) {
                    rules.push((re, to.to_string()));
                }
            }
        }
        rules
    })
}

impl Scrape {
    /// A scrape as the shipped Prometheus job stores it (its metric
    /// renames applied); `text` stays what Envoy served.
    pub fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .map(|mut s| {
                for (re, to) in shipped_renames() {
                    if re.is_match(&s.name) {
                        s.name = re.replace(&s.name, to.as_str()).into_owned();
                        break;
                    }
                }
                s
            })
            .collect();
        Self {
            series,
            text: text.to_string(),
        }
    }

    /// The value of the series with exactly this name and at least these
    /// labels; `None` when absent, panics when several match (ambiguous test).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matches: Vec<&Series> = self
            .series
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        match matches.as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!("{} series match {name}{labels:?}: {many:?}", many.len()),
        }
    }

    /// Names of all series that start with `prefix`.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .series
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .map(|s| s.name.clone())
            .collect();
        names.dedup();
        names
    }
}

fn parse_line(line: &str) -> Option<Series> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some((name, rest)) => (name.to_string(), parse_labels(rest.strip_suffix('}')?)),
    };
    Some(Series {
        name,
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after.get(end..).unwrap_or_default();
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_values() {
        let s = Scrape::parse(
            "# TYPE x counter\nmcp_requests_total{mcp_method_name=\"tools/call\"} 3\nmcp_x{a=\"1\",b=\"q\\\"z\"} 2.5\nplain 7\n",
        );
        assert_eq!(
            s.value("mcp_requests_total", &[("mcp_method_name", "tools/call")]),
            Some(3.0)
        );
        assert_eq!(s.value("mcp_x", &[("b", "q\"z")]), Some(2.5));
        assert_eq!(s.value("plain", &[]), Some(7.0));
        assert_eq!(
            s.value("mcp_requests_total", &[("mcp_method_name", "ping")]),
            None
        );
    }
}
