//! How every bench prints its figures: a readable table by default, or with `--json` one JSON
//! object a line on stdout, `{"bench":…,"system":…,"metric":…,"value":…,"unit":…}`, for scripts
//! that compare runs; a bench that runs one system under several conditions (`network`) adds
//! `"scenario":…`, and its table has a column per scenario. A bench collects [`Figure`]s (and the [`Target`]s they are judged against)
//! in a [`Report`] and prints it once at the end; progress goes to stderr meanwhile.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use serde::Serialize;

/// One measured number.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Which system was measured (`relay`, `direct`, …): the table's columns.
    pub system: &'static str,
    /// Under which conditions, for a bench that has them: then the table's columns.
    pub scenario: Option<&'static str>,
    /// Stable name for scripts, e.g. `latency_1k_p50_ms`: the table's rows.
    pub metric: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// Decimals shown in the table and kept in the JSON.
    pub decimals: usize,
}

/// What a figure should reach. Printed beside it, never asserted.
#[derive(Debug, Clone)]
pub struct Target {
    pub system: &'static str,
    pub metric: &'static str,
    /// E.g. `≤ 0.3 ms`.
    pub wanted: String,
    pub met: bool,
}

/// The figures of one bench run.
#[derive(Debug)]
pub struct Report {
    bench: &'static str,
    /// Lines printed above the table: what was measured and how.
    header: Vec<String>,
    /// Human labels for metrics, in the order rows are printed.
    labels: Vec<(&'static str, &'static str)>,
    figures: Vec<Figure>,
    targets: Vec<Target>,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    bench: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
    system: &'a str,
    metric: &'a str,
    value: f64,
    unit: &'a str,
}

/// A progress line on stderr (`bench relay: latency 1 KB ...`), so stdout stays the report.
pub fn progress(bench: &str, message: impl AsRef<str>) {
    eprintln!("bench {bench}: {}", message.as_ref());
}

fn round(value: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (value * scale).round() / scale
}

impl Report {
    pub fn new(bench: &'static str) -> Self {
        Self {
            bench,
            header: Vec::new(),
            labels: Vec::new(),
            figures: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Adds a line to the explanation above the table.
    pub fn note(&mut self, line: impl Into<String>) {
        self.header.push(line.into());
    }

    /// Names the row for `metric` in the table (rows appear in the order they are labelled,
    /// then any unlabelled metric in the order it was first added).
    pub fn label(&mut self, metric: &'static str, label: &'static str) {
        self.labels.push((metric, label));
    }

    pub fn add(
        &mut self,
        system: &'static str,
        metric: &'static str,
        value: f64,
        unit: &'static str,
        decimals: usize,
    ) {
        self.figures.push(Figure {
            system,
            scenario: None,
            metric,
            value,
            unit,
            decimals,
        });
    }

    /// As [`Report::add`], for `system` in `scenario`.
    pub fn add_in(
        &mut self,
        scenario: &'static str,
        system: &'static str,
        metric: &'static str,
        value: f64,
        unit: &'static str,
        decimals: usize,
    ) {
        self.add(system, metric, value, unit, decimals);
        self.figures.last_mut().expect("just added").scenario = Some(scenario);
    }

    /// A target for `system`'s `metric` (for a bench with scenarios, `system` names the
    /// scenario).
    pub fn target(
        &mut self,
        system: &'static str,
        metric: &'static str,
        wanted: impl Into<String>,
        met: bool,
    ) {
        self.targets.push(Target {
            system,
            metric,
            wanted: wanted.into(),
            met,
        });
    }

    /// Prints the report on stdout, as JSON lines or as a table.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        let text = if json {
            self.json_lines()?
        } else {
            self.table()
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("cannot write the report to stdout")
    }

    /// One JSON object a line, in the order the figures were added.
    pub fn json_lines(&self) -> anyhow::Result<String> {
        let mut s = String::new();
        for f in &self.figures {
            let line = JsonLine {
                bench: self.bench,
                scenario: f.scenario,
                system: f.system,
                metric: f.metric,
                value: round(f.value, f.decimals),
                unit: f.unit,
            };
            s.push_str(&serde_json::to_string(&line).context("cannot encode a figure as JSON")?);
            s.push('\n');
        }
        Ok(s)
    }

    /// The header, then one row per metric and one column per system, then the targets.
    pub fn table(&self) -> String {
        let mut systems: Vec<&str> = Vec::new();
        let mut metrics: Vec<&str> = self.labels.iter().map(|(m, _)| *m).collect();
        for f in &self.figures {
            if !systems.contains(&f.column()) {
                systems.push(f.column());
            }
            if !metrics.contains(&f.metric) {
                metrics.push(f.metric);
            }
        }
        metrics.retain(|m| self.figures.iter().any(|f| f.metric == *m));

        let label = |m: &str| -> String {
            let l = self
                .labels
                .iter()
                .find(|(metric, _)| *metric == m)
                .map_or(m, |(_, l)| *l);
            format!("{l}  [{m}]")
        };
        let cell = |system: &str, metric: &str| -> String {
            self.figures
                .iter()
                .find(|f| f.column() == system && f.metric == metric)
                .map_or_else(
                    || "-".to_string(),
                    |f| format!("{:.*}", f.decimals, f.value),
                )
        };
        let unit = |m: &str| {
            self.figures
                .iter()
                .find(|f| f.metric == m)
                .map_or("", |f| f.unit)
        };
        let target = |m: &str| -> String {
            self.targets
                .iter()
                .filter(|t| t.metric == m)
                .map(|t| {
                    let verdict = if t.met { "met" } else { "MISSED" };
                    // Name the system only when the row has figures of others too.
                    let others = self
                        .figures
                        .iter()
                        .any(|f| f.metric == m && f.column() != t.system);
                    if others {
                        format!("{}: {} ({verdict})", t.system, t.wanted)
                    } else {
                        format!("{} ({verdict})", t.wanted)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        };

        let label_w = metrics
            .iter()
            .map(|m| label(m).chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let unit_w = metrics
            .iter()
            .map(|m| unit(m).chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        let col_w: Vec<usize> = systems
            .iter()
            .map(|s| {
                metrics
                    .iter()
                    .map(|m| cell(s, m).len())
                    .max()
                    .unwrap_or(0)
                    .max(s.len())
            })
            .collect();

        let mut s = String::new();
        let _ = writeln!(s, "bench {}", self.bench);
        for line in &self.header {
            for (i, part) in wrap(line, 96).iter().enumerate() {
                let indent = if i == 0 { "  " } else { "    " };
                let _ = writeln!(s, "{indent}{part}");
            }
        }
        let _ = writeln!(s);
        let _ = write!(s, "{:<label_w$}  {:<unit_w$}", "metric", "unit");
        for (sys, w) in systems.iter().zip(&col_w) {
            let _ = write!(s, "  {sys:>w$}");
        }
        let _ = writeln!(s, "  target");
        let total = label_w + 2 + unit_w + col_w.iter().map(|w| w + 2).sum::<usize>() + 8;
        let _ = writeln!(s, "{}", "-".repeat(total));
        for m in &metrics {
            let _ = write!(s, "{:<label_w$}  {:<unit_w$}", label(m), unit(m));
            for (sys, w) in systems.iter().zip(&col_w) {
                let _ = write!(s, "  {:>w$}", cell(sys, m));
            }
            let t = target(m);
            if t.is_empty() {
                let _ = writeln!(s);
            } else {
                let _ = writeln!(s, "  {t}");
            }
        }
        s
    }
}

impl Figure {
    /// The table column it goes in: its scenario, or else its system.
    fn column(&self) -> &'static str {
        self.scenario.unwrap_or(self.system)
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new("relay");
        r.label("latency_1k_p50_ms", "one-way 1 KB p50");
        r.add("relay", "latency_1k_p50_ms", 0.123456, "ms", 3);
        r.add("direct", "latency_1k_p50_ms", 0.1, "ms", 3);
        r.add("relay", "relay_cpu_s_per_gb", 2.5, "s/GB", 2);
        r.target("relay", "relay_cpu_s_per_gb", "≤ 3 s/GB", true);
        r
    }

    #[test]
    fn json_lines_have_the_agreed_shape() {
        let text = sample().json_lines().unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            serde_json::json!({"bench":"relay","system":"relay","metric":"latency_1k_p50_ms","value":0.123,"unit":"ms"})
        );
        for l in &lines {
            let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 5);
        }
    }

    #[test]
    fn a_scenario_is_named_in_json_and_is_the_column() {
        let mut r = Report::new("network");
        r.add_in("rtt50", "ours", "echo_p50_ms", 61.0, "ms", 1);
        r.add_in("loss2", "ours", "echo_p50_ms", 70.0, "ms", 1);
        let line: serde_json::Value =
            serde_json::from_str(r.json_lines().unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"bench":"network","scenario":"rtt50","system":"ours","metric":"echo_p50_ms","value":61.0,"unit":"ms"})
        );
        let t = r.table();
        let head = t.lines().find(|l| l.starts_with("metric")).unwrap();
        assert!(head.contains("rtt50") && head.contains("loss2"), "{head}");
    }

    #[test]
    fn notes_wrap_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("longword x", 3), vec!["longword", "x"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn table_has_a_row_per_metric_and_a_column_per_system() {
        let t = sample().table();
        let row = t
            .lines()
            .find(|l| l.contains("[latency_1k_p50_ms]"))
            .unwrap();
        assert!(row.contains("0.123") && row.contains("0.100"), "{row}");
        let cpu = t
            .lines()
            .find(|l| l.contains("[relay_cpu_s_per_gb]"))
            .unwrap();
        assert!(
            cpu.contains("2.50") && cpu.contains(" - ") && cpu.contains("(met)"),
            "{cpu}"
        );
    }
}
