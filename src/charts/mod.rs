//! Charts drawn by the server as SVG text, for pages that work without JavaScript.
//!
//! Each chart is a plain struct turned into a complete `<svg>` string by one function:
//! [`map::choropleth`], [`bars::horizontal`] and [`trend::line`]. Every chart carries a
//! `<title>` and a `<desc>` named by `aria-labelledby`, every mark its own `<title>`, and all
//! text taken from data is escaped. The page shows the table of the same numbers beside each
//! chart; the colours and class breaks are public here so it can draw the legend as a table too.
//!
//! A chart's `id` prefixes every id inside its SVG: charts written inline into one HTML page
//! share the page's id space, so two charts on a page need two different ids.

pub mod bars;
pub mod map;
pub mod trend;

use std::fmt::Write;

/// The sequential blues used for classes, lightest (lowest values) first, from GOV.UK's
/// palette (`#5694ca` light blue, `#1d70b8` blue, `#003078` dark blue) and tints between.
pub const BLUES: [&str; 5] = ["#d2e2f1", "#8eb8dc", "#5694ca", "#1d70b8", "#003078"];
/// Background of a place with no figure (behind its hatching): GOV.UK light grey.
pub const NO_FIGURE_FILL: &str = "#f3f2f1";
/// The hatching drawn over [`NO_FIGURE_FILL`]: GOV.UK mid grey.
pub const NO_FIGURE_HATCH: &str = "#b1b4b6";
/// Fill of a neighbouring place drawn only for context.
pub const CONTEXT_FILL: &str = "#f3f2f1";
/// Outline of a neighbouring place drawn only for context.
pub const CONTEXT_STROKE: &str = "#b1b4b6";
/// Text, axes and the highlight outline: GOV.UK black.
pub const INK: &str = "#0b0c0c";
/// Secondary text and gridlines: GOV.UK dark grey.
pub const SECONDARY_INK: &str = "#505a5f";
/// Bars and trend lines: GOV.UK blue.
pub const MARK: &str = "#1d70b8";
/// Fonts of a chart shown on its own; an inline chart takes the page's font through CSS.
const FONT: &str = "arial, sans-serif";

/// `text` with the five characters that matter in XML text and attributes escaped.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `value` with `decimals` places and commas between thousands, as GOV.UK writes numbers:
/// `format_number(12345.678, 1)` is `12,345.7`.
pub fn format_number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "no figure".to_owned();
    }
    let plain = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = match plain.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (plain.as_str(), None),
    };
    let mut out = String::new();
    // "-0.0" is not a figure anyone wants to read.
    if value < 0.0 && plain.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// A number of SVG user units with one decimal and no trailing `.0`, to keep files small.
pub(crate) fn unit(value: f64) -> String {
    let tenths = (value * 10.0).round() as i64;
    tenths_text(tenths)
}

/// `tenths / 10` written as briefly as SVG allows: `15` is `1.5`, `-3` is `-.3`, `20` is `2`.
pub(crate) fn tenths_text(tenths: i64) -> String {
    let sign = if tenths < 0 { "-" } else { "" };
    let (whole, tenth) = (tenths.unsigned_abs() / 10, tenths.unsigned_abs() % 10);
    match (whole, tenth) {
        (whole, 0) => format!("{sign}{whole}"),
        (0, tenth) => format!("{sign}.{tenth}"),
        (whole, tenth) => format!("{sign}{whole}.{tenth}"),
    }
}

/// Maps a domain of values linearly onto a range of SVG coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearScale {
    /// The values at the two ends.
    pub domain: (f64, f64),
    /// The coordinates of those two ends.
    pub range: (f64, f64),
}

impl LinearScale {
    /// The coordinate of `value`; an empty domain puts every value at the range's start.
    pub fn at(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        if d1 == d0 {
            return r0;
        }
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// Evenly spaced round tick values (steps of 1, 2 or 5 times a power of ten) from at or below
/// `min(low, 0)` to at or above `high`, in about `target` steps: the y axis of a count.
pub fn nice_ticks(low: f64, high: f64, target: usize) -> Vec<f64> {
    let low = if low.is_finite() { low.min(0.0) } else { 0.0 };
    let high = if high.is_finite() { high.max(low) } else { low };
    let span = high - low;
    if span <= 0.0 {
        return vec![low, low + 1.0];
    }
    let (multiple, exponent) = nice_step(span / target.max(1) as f64);
    // Ticks are whole multiples divided by a power of ten, so that 0.3 is 0.3, not 0.1 * 3.
    let tick = |i: i64| {
        let whole = i as f64 * multiple;
        if exponent < 0 {
            whole / 10f64.powi(-exponent)
        } else {
            whole * 10f64.powi(exponent)
        }
    };
    let step = tick(1);
    let first = (low / step).floor() as i64;
    let last = (high / step).ceil() as i64;
    (first..=last).map(tick).collect()
}

/// The round step nearest to `rough` on a log scale, as 1, 2 or 5 times ten to a power.
fn nice_step(rough: f64) -> (f64, i32) {
    let exponent = rough.log10().floor() as i32;
    let error = rough / 10f64.powi(exponent);
    // The thresholds are the geometric midpoints between 1, 2, 5 and 10.
    match error {
        e if e >= 50f64.sqrt() => (1.0, exponent + 1),
        e if e >= 10f64.sqrt() => (5.0, exponent),
        e if e >= 2f64.sqrt() => (2.0, exponent),
        _ => (1.0, exponent),
    }
}

/// How many decimals the ticks `step` apart need to be told apart.
pub(crate) fn tick_decimals(ticks: &[f64]) -> usize {
    match ticks {
        [first, second, ..] if second - first < 1.0 => {
            (-(second - first).log10().floor()).max(0.0) as usize
        }
        _ => 0,
    }
}

/// An id usable inside SVG and HTML, from a caller's chart id.
fn clean_id(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) {
        cleaned
    } else {
        format!("chart-{cleaned}")
    }
}

/// Opens an SVG with its accessible name and description; returns the cleaned id prefix.
fn open_svg(out: &mut String, id: &str, size: (f64, f64), title: &str, desc: &str) -> String {
    let id = clean_id(id);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         font-family=\"{FONT}\" font-size=\"14\" fill=\"{INK}\">\
         <title id=\"{id}-title\">{title}</title><desc id=\"{id}-desc\">{desc}</desc>",
        w = unit(size.0),
        h = unit(size.1),
        title = escape(title),
        desc = escape(desc),
    );
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markup_character_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn numbers_are_written_with_thousands_and_fixed_decimals() {
        assert_eq!(format_number(1234567.0, 0), "1,234,567");
        assert_eq!(format_number(12345.678, 1), "12,345.7");
        assert_eq!(format_number(999.96, 1), "1,000.0");
        assert_eq!(format_number(-4321.0, 0), "-4,321");
        assert_eq!(format_number(-0.01, 1), "0.0");
        assert_eq!(format_number(0.0, 0), "0");
    }

    #[test]
    fn units_are_written_briefly() {
        assert_eq!(unit(12.34), "12.3");
        assert_eq!(unit(12.0), "12");
        assert_eq!(unit(-0.26), "-.3");
        assert_eq!(unit(0.04), "0");
    }

    #[test]
    fn ticks_are_nice_numbers_covering_the_maximum() {
        for (high, expected) in [
            (97.0, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
            (100.0, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
            (7.0, vec![0.0, 2.0, 4.0, 6.0, 8.0]),
            (1234.0, (0..=7).map(|i| f64::from(i) * 200.0).collect()),
            (0.37, vec![0.0, 0.1, 0.2, 0.3, 0.4]),
            (0.0, vec![0.0, 1.0]),
        ] {
            let ticks = nice_ticks(0.0, high, 4);
            assert_eq!(ticks, expected, "ticks for a maximum of {high}");
        }
        for high in [1.0, 3.0, 9.5, 11.0, 42.0, 999.0, 1001.0, 65_432.0, 0.003] {
            let ticks = nice_ticks(0.0, high, 4);
            let step = ticks[1] - ticks[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
                "step {step} for {high} is not 1, 2 or 5 times a power of ten"
            );
            assert_eq!(ticks[0], 0.0);
            assert!(
                *ticks.last().unwrap() >= high,
                "ticks {ticks:?} stop below {high}"
            );
            assert!(
                (3..=9).contains(&ticks.len()),
                "too many ticks for {high}: {ticks:?}"
            );
        }
    }

    #[test]
    fn a_scale_maps_ends_to_ends() {
        let scale = LinearScale {
            domain: (0.0, 50.0),
            range: (300.0, 100.0),
        };
        assert_eq!(scale.at(0.0), 300.0);
        assert_eq!(scale.at(50.0), 100.0);
        assert_eq!(scale.at(25.0), 200.0);
    }

    #[test]
    fn ids_are_safe_in_attributes() {
        assert_eq!(clean_id("risk map"), "risk-map");
        assert_eq!(clean_id("\"><x"), "chart----x");
        assert_eq!(clean_id(""), "chart-");
    }
}

#[cfg(test)]
mod real_shapes;

/// Writes a drawn chart to `target/charts/` where a person can open it.
#[cfg(test)]
fn keep(name: &str, svg: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/charts");
    std::fs::create_dir_all(&dir).expect("target/charts can be made");
    std::fs::write(dir.join(name), svg).expect("the chart can be written");
}
