//! A line of a count over time, such as the last twelve months.

use std::fmt::Write;

use super::{
    INK, LinearScale, MARK, NO_FIGURE_HATCH, SECONDARY_INK, escape, format_number, nice_ticks,
    open_svg, tick_decimals, unit,
};

/// One point of the line.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    /// The period, e.g. "2026-01", written under the x axis.
    pub label: String,
    /// The figure for the period.
    pub value: f64,
}

/// A line through points at equal steps, oldest first, over a y axis from zero with round
/// gridlines.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendChart {
    /// Prefix of the ids inside the SVG; unique among the charts of one page.
    pub id: String,
    /// The chart's accessible name, e.g. "Risks opened each month, Gateshead".
    pub title: String,
    /// What the figures are, e.g. "Risks opened"; written above the y axis.
    pub measure: String,
    /// The points, oldest first.
    pub points: Vec<TrendPoint>,
    /// Decimal places of the figures in the points' titles: 0 for counts.
    pub decimals: usize,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 300.0;
const TOP: f64 = 36.0;
const RIGHT: f64 = 16.0;
const BOTTOM: f64 = 40.0;
/// About how many steps the y axis is cut into.
const Y_STEPS: usize = 4;
/// Most period labels under the x axis; with more points only every so many is written.
const MAX_X_LABELS: usize = 6;
/// A rough width of one character of tick text, to leave room for the longest.
const CHAR_WIDTH: f64 = 8.0;

/// Draws the chart. Each point is a `<circle>` with a `<title>` of "Label: figure".
pub fn line(chart: &TrendChart) -> String {
    let values = || {
        chart
            .points
            .iter()
            .map(|p| p.value)
            .filter(|v| v.is_finite())
    };
    let low = values().fold(0.0, f64::min);
    let high = values().fold(0.0, f64::max);
    let ticks = nice_ticks(low, high, Y_STEPS);
    let decimals = tick_decimals(&ticks);
    let tick_labels: Vec<String> = ticks.iter().map(|t| format_number(*t, decimals)).collect();
    let widest = tick_labels.iter().map(|t| t.len()).max().unwrap_or(1);
    let left = 16.0 + widest as f64 * CHAR_WIDTH;
    let bottom = HEIGHT - BOTTOM;
    let y = LinearScale {
        domain: (ticks[0], ticks[ticks.len() - 1]),
        range: (bottom, TOP),
    };
    let n = chart.points.len();
    let band = (WIDTH - left - RIGHT) / n.max(1) as f64;
    let x = |i: usize| left + (i as f64 + 0.5) * band;

    let mut out = String::with_capacity(4096);
    open_svg(
        &mut out,
        &chart.id,
        (WIDTH, HEIGHT),
        &chart.title,
        &describe(chart),
    );
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"18\" fill=\"{SECONDARY_INK}\">{}</text>",
        unit(left),
        escape(&chart.measure)
    );
    for (tick, label) in ticks.iter().zip(&tick_labels) {
        let at = unit(y.at(*tick));
        let _ = write!(
            out,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{at}\" y2=\"{at}\" stroke=\"{NO_FIGURE_HATCH}\"/>\
             <text x=\"{}\" y=\"{at}\" dy=\"5\" text-anchor=\"end\" fill=\"{SECONDARY_INK}\">{label}</text>",
            unit(left),
            unit(WIDTH - RIGHT),
            unit(left - 8.0),
        );
    }
    let zero = unit(y.at(0.0));
    let _ = write!(
        out,
        "<line x1=\"{l}\" x2=\"{r}\" y1=\"{zero}\" y2=\"{zero}\" stroke=\"{INK}\"/>\
         <line x1=\"{l}\" x2=\"{l}\" y1=\"{top}\" y2=\"{b}\" stroke=\"{INK}\"/>",
        l = unit(left),
        r = unit(WIDTH - RIGHT),
        top = unit(TOP),
        b = unit(bottom),
    );
    // Every so many labels, counted back from the latest, so the latest period is named.
    let every = n.div_ceil(MAX_X_LABELS).max(1);
    for (i, point) in chart.points.iter().enumerate() {
        if (n - 1 - i).is_multiple_of(every) {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
                unit(x(i)),
                unit(bottom + 22.0),
                escape(&point.label)
            );
        }
    }
    let plotted: Vec<(usize, &TrendPoint)> = chart
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.value.is_finite())
        .collect();
    out.push_str("<polyline fill=\"none\" stroke=\"");
    out.push_str(MARK);
    out.push_str("\" stroke-width=\"3\" stroke-linejoin=\"round\" points=\"");
    for (k, (i, point)) in plotted.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{},{}", unit(x(*i)), unit(y.at(point.value)));
    }
    out.push_str("\"/>");
    for (i, point) in &plotted {
        let _ = write!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"4.5\" fill=\"{MARK}\" stroke=\"#fff\" stroke-width=\"1.5\">\
             <title>{}: {}</title></circle>",
            unit(x(*i)),
            unit(y.at(point.value)),
            escape(&point.label),
            format_number(point.value, chart.decimals)
        );
    }
    out.push_str("</svg>");
    out
}

/// The chart's `<desc>`: the span, the lowest, highest and latest figures.
fn describe(chart: &TrendChart) -> String {
    let (Some(first), Some(last)) = (chart.points.first(), chart.points.last()) else {
        return format!("{}: no figures.", chart.measure);
    };
    let figure = |v: f64| format_number(v, chart.decimals);
    let values = || {
        chart
            .points
            .iter()
            .map(|p| p.value)
            .filter(|v| v.is_finite())
    };
    format!(
        "{} for {} periods from {} to {}: lowest {}, highest {}, latest {}.",
        chart.measure,
        chart.points.len(),
        first.label,
        last.label,
        figure(values().fold(f64::INFINITY, f64::min)),
        figure(values().fold(f64::NEG_INFINITY, f64::max)),
        figure(last.value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn months(values: &[f64]) -> TrendChart {
        TrendChart {
            id: "opened".into(),
            title: "Risks opened each month".into(),
            measure: "Risks opened".into(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| TrendPoint {
                    label: format!("{}-{:02}", 2026 + i / 12, i % 12 + 1),
                    value: *v,
                })
                .collect(),
            decimals: 0,
        }
    }

    /// The numbers written as y tick labels, top to bottom in source order.
    fn tick_labels(svg: &str) -> Vec<f64> {
        svg.split("text-anchor=\"end\"")
            .skip(1)
            .filter_map(|rest| rest.split('>').nth(1))
            .filter_map(|text| text.split('<').next())
            .map(|t| {
                t.replace(',', "")
                    .parse()
                    .expect("a tick label is a number")
            })
            .collect()
    }

    /// The (cx, cy) of every point marked.
    fn circles(svg: &str) -> Vec<(f64, f64)> {
        let attribute = |s: &str, name: &str| -> f64 {
            s.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|v| v.parse().ok())
                .expect("a circle has its centre")
        };
        svg.split("<circle ")
            .skip(1)
            .map(|c| (attribute(c, "cx"), attribute(c, "cy")))
            .collect()
    }

    #[test]
    fn ticks_are_nice_and_cover_the_largest_month() {
        let values = [
            120.0, 135.0, 128.0, 141.0, 160.0, 152.0, 149.0, 171.0, 188.0, 176.0, 193.0, 207.0,
        ];
        let svg = line(&months(&values));
        crate::charts::keep("trend.svg", &svg);
        let ticks = tick_labels(&svg);
        assert_eq!(ticks, vec![0.0, 50.0, 100.0, 150.0, 200.0, 250.0]);
    }

    #[test]
    fn every_month_is_marked_with_its_figure_and_higher_is_up() {
        let values = [
            5.0, 9.0, 2.0, 14.0, 7.0, 7.0, 0.0, 3.0, 11.0, 12.0, 8.0, 1234.0,
        ];
        let svg = line(&months(&values));
        let marked = circles(&svg);
        assert_eq!(marked.len(), 12);
        for pair in marked.windows(2) {
            assert!(pair[0].0 < pair[1].0, "months run left to right");
        }
        let (highest, _) = values
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("twelve values");
        let top = marked.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
        assert_eq!(
            marked[highest].1, top,
            "the largest figure is drawn highest"
        );
        assert!(svg.contains("<title>2026-12: 1,234</title>"));
        assert!(svg.contains("<title>2026-01: 5</title>"));
        assert!(
            svg.contains(">2026-12</text>"),
            "the latest month is labelled"
        );
    }

    #[test]
    fn small_rates_get_decimal_ticks() {
        let svg = line(&months(&[0.12, 0.3, 0.27]));
        assert_eq!(tick_labels(&svg), vec![0.0, 0.1, 0.2, 0.3]);
    }

    #[test]
    fn labels_are_escaped() {
        let mut chart = months(&[1.0, 2.0]);
        chart.points[0].label = "<script>x</script>&".into();
        chart.measure = "Risks \"opened\"".into();
        let svg = line(&chart);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;&amp;"));
        assert!(svg.contains("Risks &quot;opened&quot;"));
    }

    #[test]
    fn an_empty_or_flat_line_still_draws() {
        let svg = line(&months(&[]));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let svg = line(&months(&[0.0, 0.0]));
        assert_eq!(tick_labels(&svg), vec![0.0, 1.0]);
    }
}
