//! The Prometheus text format (0.0.4) being written: one HELP and TYPE
//! line per family, then its samples, label values escaped.

use std::fmt::Write as _;

/// Prometheus text being written: one HELP and TYPE line per family, then
/// its samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

pub type Sample<'a> = (Vec<(&'a str, &'a str)>, f64);

impl Exposition {
    pub fn counter(&mut self, name: &str, help: &str, samples: &[Sample<'_>]) {
        self.family(name, help, "counter", samples);
    }

    pub fn gauge(&mut self, name: &str, help: &str, samples: &[Sample<'_>]) {
        self.family(name, help, "gauge", samples);
    }

    fn family(&mut self, name: &str, help: &str, kind: &str, samples: &[Sample<'_>]) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.sample(name, labels, *value);
        }
    }

    /// A histogram from its cumulative buckets (upper bound, count).
    pub fn histogram(&mut self, name: &str, help: &str, buckets: &[(f64, u64)], count: u64, sum: f64) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, n) in buckets {
            let le = bound.to_string();
            self.sample(&format!("{name}_bucket"), &[("le", le.as_str())], *n as f64);
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], count as f64);
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count as f64);
    }

    pub fn into_text(self) -> String {
        self.text
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.counter("x_total", "X.", &[(vec![("v", "a\"b\\c\nd")], 1.0)]);
        assert!(e.text.contains("x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"), "{}", e.text);
    }
}
