//! Horizontal bars: a breakdown by client group, category, severity or kind of agency.

use std::fmt::Write;

use super::{MARK, SECONDARY_INK, escape, format_number, open_svg, unit};

/// One labelled bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// What the bar counts, e.g. "Children" or "High severity".
    pub label: String,
    /// The figure (a count is exact as `f64` up to 2^53), or `None` when it is suppressed: no
    /// bar is drawn and "suppressed" is written in its place. Values below zero draw no bar.
    pub value: Option<f64>,
}

/// Bars scaled to the largest, one under another, each labelled above and its figure at its
/// end.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Prefix of the ids inside the SVG; unique among the charts of one page.
    pub id: String,
    /// The chart's accessible name, e.g. "Active risks by client group, Newcastle".
    pub title: String,
    /// What the figures are, e.g. "Active risks"; written above the bars.
    pub measure: String,
    /// The bars, drawn in this order from the top.
    pub bars: Vec<Bar>,
    /// Decimal places of the figures: 0 for counts.
    pub decimals: usize,
}

/// Width of the whole chart in SVG units.
const WIDTH: f64 = 600.0;
const MARGIN: f64 = 10.0;
/// Room kept right of the longest bar for its figure.
const FIGURE_SPACE: f64 = 90.0;
/// Height of the measure line above the bars.
const HEADER: f64 = 28.0;
/// Height of one bar with its label above it.
const ROW: f64 = 50.0;
const BAR_HEIGHT: f64 = 20.0;
/// The word written where a suppressed figure would be.
pub const SUPPRESSED: &str = "suppressed";

/// Draws the chart. Each bar is a `<g>` with a `<title>` of "Label: figure".
pub fn horizontal(chart: &BarChart) -> String {
    let largest = chart
        .bars
        .iter()
        .filter_map(|b| b.value)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let longest = WIDTH - 2.0 * MARGIN - FIGURE_SPACE;
    let height = HEADER + chart.bars.len() as f64 * ROW + MARGIN;
    let suppressed = chart.bars.iter().filter(|b| b.value.is_none()).count();
    let mut desc = format!("{} bars of {}", chart.bars.len(), chart.measure);
    if largest > 0.0 {
        let _ = write!(
            desc,
            ", the largest {}",
            format_number(largest, chart.decimals)
        );
    }
    desc.push('.');
    if suppressed > 0 {
        let _ = write!(desc, " {suppressed} suppressed.");
    }

    let mut out = String::with_capacity(4096);
    open_svg(&mut out, &chart.id, (WIDTH, height), &chart.title, &desc);
    let _ = write!(
        out,
        "<text x=\"{MARGIN}\" y=\"18\" fill=\"{SECONDARY_INK}\">{}</text>",
        escape(&chart.measure)
    );
    for (i, bar) in chart.bars.iter().enumerate() {
        let top = HEADER + i as f64 * ROW;
        let figure = bar.value.map_or_else(
            || SUPPRESSED.to_owned(),
            |v| format_number(v, chart.decimals),
        );
        let _ = write!(
            out,
            "<g><title>{}: {}</title><text x=\"{MARGIN}\" y=\"{}\">{}</text>",
            escape(&bar.label),
            escape(&figure),
            unit(top + 14.0),
            escape(&bar.label)
        );
        let bar_top = top + 20.0;
        let length = match bar.value {
            Some(v) if v.is_finite() && v > 0.0 && largest > 0.0 => v / largest * longest,
            _ => 0.0,
        };
        if bar.value.is_some() {
            let _ = write!(
                out,
                "<rect x=\"{MARGIN}\" y=\"{}\" width=\"{}\" height=\"{BAR_HEIGHT}\" fill=\"{MARK}\"/>",
                unit(bar_top),
                unit(length)
            );
        }
        let (figure_x, colour) = match bar.value {
            Some(_) => (MARGIN + length + 6.0, super::INK),
            None => (MARGIN, SECONDARY_INK),
        };
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text></g>",
            unit(figure_x),
            unit(bar_top + 15.0),
            escape(&figure)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(bars: &[(&str, Option<f64>)]) -> BarChart {
        BarChart {
            id: "by-group".into(),
            title: "Active risks by client group".into(),
            measure: "Active risks".into(),
            bars: bars
                .iter()
                .map(|(label, value)| Bar {
                    label: (*label).into(),
                    value: *value,
                })
                .collect(),
            decimals: 0,
        }
    }

    /// The width of every bar drawn, in order.
    fn widths(svg: &str) -> Vec<f64> {
        svg.split("<rect ")
            .skip(1)
            .filter_map(|rect| rect.split("width=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(|w| w.parse().expect("a width is a number"))
            .collect()
    }

    #[test]
    fn bar_widths_are_proportional_to_their_figures() {
        let svg = horizontal(&chart(&[
            ("Children", Some(400.0)),
            ("Adults", Some(100.0)),
            ("Families", Some(250.0)),
            ("None yet", Some(0.0)),
        ]));
        crate::charts::keep("bars.svg", &svg);
        let widths = widths(&svg);
        assert_eq!(widths.len(), 4);
        let longest = WIDTH - 2.0 * MARGIN - FIGURE_SPACE;
        assert_eq!(widths[0], longest, "the largest bar takes the full length");
        for (width, value) in widths.iter().zip([400.0, 100.0, 250.0, 0.0]) {
            assert!(
                (width - value / 400.0 * longest).abs() <= 0.051,
                "bar for {value} is {width} long"
            );
        }
        assert!(svg.contains(">400</text>") && svg.contains(">250</text>"));
        assert!(svg.contains("<title>Adults: 100</title>"));
    }

    #[test]
    fn a_suppressed_figure_draws_no_bar_and_says_so() {
        let svg = horizontal(&chart(&[("Children", Some(12.0)), ("Adults", None)]));
        crate::charts::keep("bars-suppressed.svg", &svg);
        assert_eq!(widths(&svg).len(), 1, "only the known figure has a bar");
        assert!(svg.contains("<title>Adults: suppressed</title>"));
        assert!(svg.contains(">suppressed</text>"));
        assert!(svg.contains("1 suppressed."), "the description says so");
    }

    #[test]
    fn labels_are_escaped_and_the_chart_is_labelled() {
        let svg = horizontal(&chart(&[("<script>alert(1)</script> & co", Some(3.0))]));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        assert!(svg.contains("role=\"img\" aria-labelledby=\"by-group-title by-group-desc\""));
        assert!(svg.contains("<title id=\"by-group-title\">Active risks by client group</title>"));
        assert!(svg.contains("<desc id=\"by-group-desc\">"));
    }

    #[test]
    fn all_zero_or_empty_charts_still_draw() {
        let svg = horizontal(&chart(&[("Children", Some(0.0))]));
        assert_eq!(widths(&svg), vec![0.0]);
        let svg = horizontal(&chart(&[]));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
