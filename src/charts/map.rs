//! A choropleth map of places in England, shaded in classes of one measure.

use std::fmt::Write;

use super::{
    BLUES, CONTEXT_FILL, CONTEXT_STROKE, INK, NO_FIGURE_FILL, NO_FIGURE_HATCH, SECONDARY_INK,
    escape, format_number, open_svg, tenths_text, unit,
};

/// A closed ring of (longitude, latitude) points in WGS84 degrees; the last point may repeat
/// the first or not.
pub type Ring = Vec<(f64, f64)>;
/// One polygon: its outer ring, then any holes. Holes are cut by the even-odd rule, so the
/// rings' winding does not matter.
pub type Polygon = Vec<Ring>;

/// One place on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// The place's code, written as `data-code` (e.g. `E08000021`).
    pub code: String,
    /// The name shown in the area's tooltip (e.g. `Newcastle upon Tyne`).
    pub name: String,
    /// The place's shape: one or more polygons.
    pub shape: Vec<Polygon>,
    /// The figure, or `None` when there is none or it is suppressed: drawn hatched grey and
    /// titled "no figure".
    pub value: Option<f64>,
    /// A neighbouring place outside the data, drawn in light grey for context only: its
    /// value is ignored and it takes no part in the classes.
    pub context: bool,
}

/// A map of places shaded by one measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Choropleth {
    /// Prefix of the ids inside the SVG; unique among the charts of one page.
    pub id: String,
    /// The map's accessible name, e.g. "Active risks per 10,000 children, North East".
    pub title: String,
    /// What the values are, e.g. "Active risks per 10,000"; heads the legend.
    pub measure: String,
    /// The places, in any order.
    pub areas: Vec<Area>,
    /// The code of a place to outline more thickly (the place the page is about).
    pub highlight: Option<String>,
    /// Decimal places of the figures in tooltips and the legend.
    pub decimals: usize,
}

/// One class of values and its colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Class {
    /// The smallest value in the class.
    pub lower: f64,
    /// The largest value in the class; every value above the previous class's `upper` and up
    /// to this one belongs here.
    pub upper: f64,
    /// Its fill, from [`BLUES`].
    pub colour: &'static str,
    /// How many of the classified values fall in it.
    pub count: usize,
}

/// The classes of a set of values: up to five quantile classes.
///
/// Quantiles, not equal intervals, because rates across places are skewed: one or two
/// outlying places would leave nearly every other place in the lightest of equal-interval
/// classes, and the map would show nothing. Quantile classes each hold about a fifth of the
/// places, so the map shows how places rank; the legend gives each class's actual lowest and
/// highest values, and the table beside the map the exact figures. Ties never straddle a
/// break, so with few distinct values there are fewer classes, spread across the palette.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classes {
    classes: Vec<Class>,
}

/// Most classes on a map: more shades of one hue are hard to tell apart.
const MAX_CLASSES: usize = 5;

impl Classes {
    /// Classes of the finite values among `values` (NaN and infinities are ignored).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Classes {
        let mut sorted: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mut distinct = sorted.clone();
        distinct.dedup();
        let wanted = distinct.len().min(MAX_CLASSES);
        let mut uppers: Vec<f64> = Vec::with_capacity(wanted);
        for i in 1..=wanted {
            let upper = sorted[(i * n).div_ceil(wanted) - 1];
            if uppers.last().is_none_or(|last| upper > *last) {
                uppers.push(upper);
            }
        }
        let mut classes = Vec::with_capacity(uppers.len());
        let mut rest = sorted.as_slice();
        for (i, upper) in uppers.iter().enumerate() {
            let count = rest.partition_point(|v| v <= upper);
            classes.push(Class {
                lower: rest[0],
                upper: *upper,
                colour: shade(i, uppers.len()),
                count,
            });
            rest = &rest[count..];
        }
        Classes { classes }
    }

    /// The classes, lowest values first; empty when there were no values.
    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    /// The upper bound of each class, ascending.
    pub fn breaks(&self) -> Vec<f64> {
        self.classes.iter().map(|c| c.upper).collect()
    }

    /// The index of the class `value` falls in: the first whose `upper` is at least `value`.
    /// A value beyond the classified ones goes to the end class nearest it; NaN to none.
    pub fn class_of(&self, value: f64) -> Option<usize> {
        if value.is_nan() || self.classes.is_empty() {
            return None;
        }
        let above = self.classes.partition_point(|c| c.upper < value);
        Some(above.min(self.classes.len() - 1))
    }

    /// The fill for a figure: its class's colour, or [`NO_FIGURE_FILL`] for none.
    pub fn colour_of(&self, value: Option<f64>) -> &'static str {
        value
            .and_then(|v| self.class_of(v))
            .map_or(NO_FIGURE_FILL, |i| self.classes[i].colour)
    }
}

/// The colour of class `index` of `count`, spread over the palette so that two classes are
/// lightest and darkest rather than the two lightest.
fn shade(index: usize, count: usize) -> &'static str {
    let last = BLUES.len() - 1;
    if count <= 1 {
        return BLUES[last / 2];
    }
    BLUES[(index * last + (count - 1) / 2) / (count - 1)]
}

/// The largest the map itself is drawn, in SVG units; the SVG scales to its container.
const MAP_BOX: (f64, f64) = (420.0, 520.0);
/// Space around the map and the legend.
const MARGIN: f64 = 10.0;
/// Narrowest SVG, so that the legend's text fits under a tall, thin map.
const MIN_WIDTH: f64 = 320.0;
/// How much of the region's width and height is added on each side to show its neighbours.
const CONTEXT_PAD: f64 = 0.06;
/// Height of one legend row.
const LEGEND_ROW: f64 = 22.0;

/// Longitude and latitude to SVG units: equirectangular with longitude scaled by the cosine of
/// the middle latitude, which at England's size keeps shapes within a few per cent of true.
struct Projection {
    /// Where the map's west edge is drawn.
    left: f64,
    x_factor: f64,
    scale: f64,
    west: f64,
    north: f64,
    size: (f64, f64),
}

impl Projection {
    /// Fits the places with data among `areas` (all of them if none has) into [`MAP_BOX`],
    /// north up, with [`MARGIN`] around; context places reach as far as they will, clipped,
    /// so a small region is not drawn small beside a large neighbour.
    fn fit(areas: &[Area]) -> Projection {
        let fitted = |a: &&Area| !a.context || areas.iter().all(|a| a.context);
        let points = || {
            areas
                .iter()
                .filter(fitted)
                .flat_map(|a| a.shape.iter().flatten().flatten())
                .filter(|(lon, lat)| lon.is_finite() && lat.is_finite())
        };
        let (mut south, mut north) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, lat) in points() {
            south = south.min(*lat);
            north = north.max(*lat);
        }
        if south > north {
            return Projection {
                left: MARGIN,
                x_factor: 1.0,
                scale: 1.0,
                west: 0.0,
                north: 0.0,
                size: (0.0, 0.0),
            };
        }
        let x_factor = ((south + north) / 2.0).to_radians().cos();
        let (mut west, mut east) = (f64::INFINITY, f64::NEG_INFINITY);
        for (lon, _) in points() {
            west = west.min(lon * x_factor);
            east = east.max(lon * x_factor);
        }
        // A strip of the neighbours shows around the region.
        if areas.iter().any(|a| a.context) {
            let (pad_x, pad_y) = ((east - west) * CONTEXT_PAD, (north - south) * CONTEXT_PAD);
            (west, east, south, north) = (west - pad_x, east + pad_x, south - pad_y, north + pad_y);
        }
        let (width, height) = (east - west, north - south);
        let scale = (MAP_BOX.0 / width.max(1e-9)).min(MAP_BOX.1 / height.max(1e-9));
        Projection {
            left: MARGIN,
            x_factor,
            scale,
            west,
            north,
            size: (width * scale, height * scale),
        }
    }

    /// The point in tenths of SVG units, rounded, so that rings are written without drift.
    fn tenths(&self, (lon, lat): (f64, f64)) -> (i64, i64) {
        let x = self.left + (lon * self.x_factor - self.west) * self.scale;
        let y = MARGIN + (self.north - lat) * self.scale;
        ((x * 10.0).round() as i64, (y * 10.0).round() as i64)
    }
}

/// Draws the map with its legend. Each area is one `<path>` with `data-code`, `data-value`
/// (left out when there is no figure) and a `<title>` of "Name: value" or "Name: no figure".
pub fn choropleth(map: &Choropleth) -> String {
    let data = || map.areas.iter().filter(|a| !a.context);
    let classes = Classes::of(data().filter_map(|a| a.value));
    let missing = data().filter(|a| a.value.is_none()).count();
    let with_context = map.areas.iter().any(|a| a.context);
    let mut projection = Projection::fit(&map.areas);

    let legend_rows =
        classes.classes().len() + usize::from(missing > 0) + usize::from(with_context);
    let width = (projection.size.0 + 2.0 * MARGIN).max(MIN_WIDTH);
    let legend_top = projection.size.1 + 2.0 * MARGIN;
    // A tall, thin region sits in the middle of the legend's width.
    projection.left = (width - projection.size.0) / 2.0;
    let height = legend_top + 24.0 + legend_rows as f64 * LEGEND_ROW + MARGIN;

    let mut out = String::with_capacity(64 * 1024);
    let id = open_svg(
        &mut out,
        &map.id,
        (width, height),
        &map.title,
        &describe(map, &classes, missing),
    );
    let hatch = format!("{id}-no-figure");
    let _ = write!(
        out,
        "<defs><pattern id=\"{hatch}\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"{NO_FIGURE_FILL}\"/>\
         <path d=\"M0 0v6\" stroke=\"{NO_FIGURE_HATCH}\" stroke-width=\"2\"/></pattern></defs>"
    );

    // Context first and the highlighted place last, so that its outline is drawn on top.
    let highlighted = |a: &Area| map.highlight.as_deref() == Some(a.code.as_str());
    let mut order: Vec<&Area> = map.areas.iter().collect();
    order.sort_by_key(|a| (!a.context, highlighted(a)));
    // Context places are cut at the map's edge, clear of the legend.
    let _ = write!(
        out,
        "<clipPath id=\"{id}-map\"><rect width=\"{}\" height=\"{}\"/></clipPath>\
         <g clip-path=\"url(#{id}-map)\" stroke=\"#fff\" stroke-width=\".5\" stroke-linejoin=\"round\">",
        unit(width),
        unit(legend_top)
    );
    for area in order {
        let _ = write!(
            out,
            "<path fill-rule=\"evenodd\" data-code=\"{}\"",
            escape(&area.code)
        );
        let title = if area.context {
            let _ = write!(out, " fill=\"{CONTEXT_FILL}\" data-context=\"true\"");
            format!("{} (not included)", area.name)
        } else if let Some(value) = area.value {
            let _ = write!(
                out,
                " fill=\"{}\" data-value=\"{value}\"",
                classes.colour_of(Some(value))
            );
            format!("{}: {}", area.name, format_number(value, map.decimals))
        } else {
            let _ = write!(out, " fill=\"url(#{hatch})\"");
            format!("{}: no figure", area.name)
        };
        if highlighted(area) {
            let _ = write!(out, " stroke=\"{INK}\" stroke-width=\"2\"");
        } else if area.context {
            let _ = write!(out, " stroke=\"{CONTEXT_STROKE}\"");
        }
        out.push_str(" d=\"");
        write_shape(&mut out, &projection, &area.shape);
        let _ = write!(out, "\"><title>{}</title></path>", escape(&title));
    }
    out.push_str("</g>");

    write_legend(
        &mut out,
        map,
        &classes,
        (missing > 0).then_some(hatch.as_str()),
        with_context,
        legend_top,
    );
    out.push_str("</svg>");
    out
}

/// The map's `<desc>`: what it shows, the range and how many places have no figure.
fn describe(map: &Choropleth, classes: &Classes, missing: usize) -> String {
    let shown = map.areas.iter().filter(|a| !a.context).count();
    let places = if shown == 1 { "place" } else { "places" };
    let mut desc = format!("Map of {shown} {places} shaded by {}", map.measure);
    if let (Some(first), Some(last)) = (classes.classes().first(), classes.classes().last()) {
        let _ = write!(
            desc,
            ", in {} classes from {} to {}",
            classes.classes().len(),
            format_number(first.lower, map.decimals),
            format_number(last.upper, map.decimals)
        );
    }
    desc.push('.');
    if missing > 0 {
        let _ = write!(desc, " {missing} with no figure.");
    }
    desc
}

/// Writes the rings as path data: an absolute move to each ring's first point, then relative
/// lines. Points that round onto the previous one are left out, boundaries are simplified,
/// and rings too small to see are dropped, unless they are all the place has.
fn write_shape(out: &mut String, projection: &Projection, shape: &[Polygon]) {
    let mut smallest_kept: Option<Vec<(i64, i64)>> = None;
    let mut drawn = 0;
    for ring in shape.iter().flatten() {
        let mut points: Vec<(i64, i64)> = Vec::with_capacity(ring.len());
        for point in ring {
            let point = projection.tenths(*point);
            if points.last() != Some(&point) {
                points.push(point);
            }
        }
        if points.len() > 1 && points.first() == points.last() {
            points.pop();
        }
        let kept = simplify(&points);
        if kept.len() >= 3 {
            write_ring(out, &kept);
            drawn += 1;
        } else if points.len() >= 3 && smallest_kept.is_none() {
            smallest_kept = Some(points);
        }
    }
    if let (0, Some(points)) = (drawn, smallest_kept) {
        write_ring(out, &points);
    }
}

/// Writes one ring of at least three points, in tenths of a unit.
fn write_ring(out: &mut String, points: &[(i64, i64)]) {
    let [(x0, y0), rest @ ..] = points else {
        return;
    };
    let _ = write!(out, "M{} {}l", tenths_text(*x0), tenths_text(*y0));
    let mut previous = (*x0, *y0);
    let mut first = true;
    for &(x, y) in rest {
        for delta in [x - previous.0, y - previous.1] {
            // A minus sign separates numbers by itself.
            if !first && delta >= 0 {
                out.push(' ');
            }
            out.push_str(&tenths_text(delta));
            first = false;
        }
        previous = (x, y);
    }
    out.push('z');
}

/// How far, in tenths of an SVG unit, a simplified boundary may stray from the drawn one:
/// half a unit, under a pixel at the sizes maps are shown.
const TOLERANCE: f64 = 5.0;

/// The points of a closed ring that Douglas and Peucker's algorithm keeps at [`TOLERANCE`]:
/// published boundaries carry far more detail than a page can show, and every point costs
/// bytes. Neighbours simplified apart may differ by the tolerance; their white outlines
/// cover it.
fn simplify(ring: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let Some(&start) = ring.first() else {
        return Vec::new();
    };
    // The ring is walked back to its start, so the first segment tried is from the start to
    // itself, and distances are to that point until the farthest point splits it.
    let closed: Vec<(f64, f64)> = ring
        .iter()
        .chain([&start])
        .map(|&(x, y)| (x as f64, y as f64))
        .collect();
    let mut keep = vec![false; closed.len()];
    keep[0] = true;
    keep[closed.len() - 1] = true;
    let mut spans = vec![(0, closed.len() - 1)];
    while let Some((from, to)) = spans.pop() {
        let farthest = (from + 1..to)
            .map(|i| (i, distance_to_segment(closed[i], closed[from], closed[to])))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, distance)) = farthest
            && distance > TOLERANCE
        {
            keep[i] = true;
            spans.push((from, i));
            spans.push((i, to));
        }
    }
    ring.iter()
        .zip(&keep)
        .filter_map(|(point, kept)| kept.then_some(*point))
        .collect()
}

/// The distance from `p` to the segment from `a` to `b`.
fn distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx * dx + dy * dy;
    let t = if length == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length).clamp(0.0, 1.0)
    };
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}

/// The legend under the map: the measure, a swatch and range per class, and swatches for
/// no figure and for context places when the map has them.
fn write_legend(
    out: &mut String,
    map: &Choropleth,
    classes: &Classes,
    hatch: Option<&str>,
    with_context: bool,
    top: f64,
) {
    let _ = write!(
        out,
        "<g class=\"legend\"><text x=\"{MARGIN}\" y=\"{}\" font-weight=\"bold\">{}</text>",
        unit(top + 14.0),
        escape(&map.measure)
    );
    let mut rows: Vec<(String, String)> = classes
        .classes()
        .iter()
        .map(|class| {
            let range = if class.lower == class.upper {
                format_number(class.lower, map.decimals)
            } else {
                format!(
                    "{} to {}",
                    format_number(class.lower, map.decimals),
                    format_number(class.upper, map.decimals)
                )
            };
            (class.colour.to_owned(), range)
        })
        .collect();
    if let Some(hatch) = hatch {
        rows.push((format!("url(#{hatch})"), "No figure".to_owned()));
    }
    if with_context {
        rows.push((CONTEXT_FILL.to_owned(), "Not included".to_owned()));
    }
    for (i, (fill, label)) in rows.iter().enumerate() {
        let y = top + 24.0 + i as f64 * LEGEND_ROW;
        let _ = write!(
            out,
            "<rect x=\"{MARGIN}\" y=\"{}\" width=\"24\" height=\"16\" fill=\"{fill}\" \
             stroke=\"{SECONDARY_INK}\" stroke-width=\".5\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            unit(y),
            unit(MARGIN + 32.0),
            unit(y + 13.0),
            escape(label)
        );
    }
    out.push_str("</g>");
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every point of every `<path>` of an area, in SVG units, read back from its path data.
    pub(crate) fn path_points(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
        svg.split("<path fill-rule=\"evenodd\" data-code=\"")
            .skip(1)
            .map(|path| {
                let code = path.split('"').next().unwrap_or_default().to_owned();
                let d = path
                    .split(" d=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_default();
                (code, read_path(d))
            })
            .collect()
    }

    /// Reads the `M x y l dx dy ... z` data that `write_shape` writes.
    fn read_path(d: &str) -> Vec<(f64, f64)> {
        let spaced = d
            .replace('M', " M ")
            .replace('l', " l ")
            .replace('z', " z ")
            .replace('-', " -");
        let mut points = Vec::new();
        let mut numbers = Vec::new();
        let mut relative = false;
        let mut at = (0.0, 0.0);
        for token in spaced.split_whitespace() {
            match token {
                "M" => relative = false,
                "l" => relative = true,
                "z" => {}
                number => {
                    numbers.push(number.parse::<f64>().expect("a coordinate"));
                    if let [x, y] = numbers[..] {
                        at = if relative {
                            (at.0 + x, at.1 + y)
                        } else {
                            (x, y)
                        };
                        points.push(at);
                        numbers.clear();
                    }
                }
            }
        }
        points
    }

    fn view_box(svg: &str) -> (f64, f64) {
        let numbers: Vec<f64> = svg
            .split("viewBox=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a viewBox")
            .split(' ')
            .map(|n| n.parse().expect("a number"))
            .collect();
        assert_eq!(numbers[..2], [0.0, 0.0]);
        (numbers[2], numbers[3])
    }

    /// A square place `size` degrees across with its south-west corner at (lon, lat).
    fn square(code: &str, name: &str, (lon, lat): (f64, f64), value: Option<f64>) -> Area {
        let size = 0.2;
        Area {
            code: code.into(),
            name: name.into(),
            shape: vec![vec![vec![
                (lon, lat),
                (lon + size, lat),
                (lon + size, lat + size),
                (lon, lat + size),
                (lon, lat),
            ]]],
            value,
            context: false,
        }
    }

    fn map(areas: Vec<Area>) -> Choropleth {
        Choropleth {
            id: "rates".into(),
            title: "Active risks per 10,000, North East".into(),
            measure: "Active risks per 10,000".into(),
            areas,
            highlight: None,
            decimals: 1,
        }
    }

    #[test]
    fn every_point_lies_inside_the_view_box_and_north_is_up() {
        let svg = choropleth(&map(vec![
            square("N", "Northern", (-1.6, 55.2), Some(3.0)),
            square("S", "Southern", (-1.2, 54.4), Some(5.0)),
            square("W", "Western", (-2.9, 54.8), Some(1.0)),
        ]));
        let (width, height) = view_box(&svg);
        let areas = path_points(&svg);
        assert_eq!(areas.len(), 3);
        for (code, points) in &areas {
            assert_eq!(points.len(), 4, "{code} keeps its four corners");
            for (x, y) in points {
                assert!(
                    (0.0..=width).contains(x) && (0.0..=height).contains(y),
                    "{code} has ({x}, {y}) outside 0 0 {width} {height}"
                );
            }
        }
        let top = |code: &str| {
            let (_, points) = areas.iter().find(|(c, _)| c == code).expect("drawn");
            points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)
        };
        let left = |code: &str| {
            let (_, points) = areas.iter().find(|(c, _)| c == code).expect("drawn");
            points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min)
        };
        assert!(top("N") < top("S"), "the northern place is drawn higher");
        assert!(
            left("W") < left("N"),
            "the western place is drawn further left"
        );
        // A square of 0.2 degrees is narrower than tall at 55°N.
        let (_, n) = &areas[0];
        let (w, h) = (n[1].0 - n[0].0, n[0].1 - n[2].1);
        assert!(
            (w / h - 55.0f64.to_radians().cos()).abs() < 0.05,
            "{w} by {h}"
        );
    }

    /// Values with ties and a skew, as rates across places are.
    fn skewed_values(n: usize) -> Vec<f64> {
        let mut seed = 12345u64;
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (seed >> 33) as f64 / f64::from(1u32 << 31);
                (u * u * 400.0).round() / 10.0
            })
            .collect()
    }

    #[test]
    fn every_value_falls_in_exactly_one_class_and_breaks_ascend() {
        for values in [
            skewed_values(300),
            skewed_values(7),
            vec![4.0, 4.0, 4.0, 9.0],
            vec![2.5],
            vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0],
        ] {
            let classes = Classes::of(values.iter().copied());
            let breaks = classes.breaks();
            assert!(breaks.windows(2).all(|b| b[0] < b[1]), "breaks {breaks:?}");
            assert!((1..=5).contains(&breaks.len()));
            let list = classes.classes();
            assert!(list.iter().all(|c| c.lower <= c.upper));
            assert!(list.windows(2).all(|c| c[0].upper < c[1].lower));
            for value in &values {
                let holding: Vec<usize> = (0..list.len())
                    .filter(|i| list[*i].lower <= *value && *value <= list[*i].upper)
                    .collect();
                assert_eq!(holding.len(), 1, "{value} is in classes {holding:?}");
                assert_eq!(classes.class_of(*value), Some(holding[0]));
                assert_eq!(classes.colour_of(Some(*value)), list[holding[0]].colour);
            }
            assert_eq!(list.iter().map(|c| c.count).sum::<usize>(), values.len());
            let colours: Vec<&str> = list.iter().map(|c| c.colour).collect();
            let mut distinct = colours.clone();
            distinct.dedup();
            assert_eq!(colours, distinct, "neighbouring classes differ in colour");
        }
        let five = Classes::of(skewed_values(300));
        assert_eq!(five.classes().len(), 5);
        assert_eq!(
            five.classes().iter().map(|c| c.colour).collect::<Vec<_>>(),
            BLUES
        );
        for class in five.classes() {
            assert!(
                (45..=75).contains(&class.count),
                "about a fifth each: {class:?}"
            );
        }
        assert_eq!(Classes::of([]).class_of(1.0), None);
        assert_eq!(five.class_of(f64::NAN), None);
    }

    #[test]
    fn a_place_with_no_figure_is_hatched_and_titled_so() {
        let svg = choropleth(&map(vec![
            square("E1", "Known", (-1.6, 55.0), Some(3.0)),
            square("E2", "Unknown", (-1.4, 55.0), None),
        ]));
        let unknown = svg
            .split("data-code=\"E2\"")
            .nth(1)
            .and_then(|r| r.split("</path>").next())
            .expect("E2 drawn");
        assert!(
            unknown.contains("fill=\"url(#rates-no-figure)\""),
            "{unknown}"
        );
        assert!(!unknown.contains("data-value"), "{unknown}");
        assert!(
            unknown.ends_with("<title>Unknown: no figure</title>"),
            "{unknown}"
        );
        assert!(svg.contains("<pattern id=\"rates-no-figure\""));
        assert!(
            svg.contains(">No figure</text>"),
            "the legend has a no-figure swatch"
        );
        assert!(svg.contains("data-value=\"3\""));
        assert!(svg.contains("<title>Known: 3.0</title>"));
    }

    #[test]
    fn names_and_codes_from_files_are_escaped() {
        let mut area = square(
            "E\"1",
            "<script>alert('x')</script> & Sons",
            (-1.6, 55.0),
            None,
        );
        area.value = Some(1.0);
        let mut drawn = map(vec![area]);
        drawn.measure = "Risks <per> 10,000".into();
        let svg = choropleth(&drawn);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Sons: 1.0"));
        assert!(svg.contains("data-code=\"E&quot;1\""));
        assert!(svg.contains("Risks &lt;per&gt; 10,000"));
    }

    #[test]
    fn the_map_is_labelled_for_assistive_technology() {
        let svg = choropleth(&map(vec![square("E1", "One", (-1.6, 55.0), Some(1.0))]));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("role=\"img\" aria-labelledby=\"rates-title rates-desc\""));
        assert!(
            svg.contains("<title id=\"rates-title\">Active risks per 10,000, North East</title>")
        );
        assert!(
            svg.contains(
                "<desc id=\"rates-desc\">Map of 1 place shaded by Active risks per 10,000"
            )
        );
    }

    #[test]
    fn the_highlighted_place_is_outlined_on_top_and_context_stays_grey() {
        let mut drawn = map(vec![
            square("E1", "One", (-1.6, 55.0), Some(1.0)),
            square("E2", "Two", (-1.4, 55.0), Some(100.0)),
            Area {
                context: true,
                ..square("S1", "Over the border", (-2.2, 55.4), Some(1000.0))
            },
        ]);
        drawn.highlight = Some("E1".into());
        let svg = choropleth(&drawn);
        let order: Vec<String> = path_points(&svg).into_iter().map(|(c, _)| c).collect();
        assert_eq!(order, ["S1", "E2", "E1"], "context below, highlight on top");
        let one = svg.split("data-code=\"E1\"").nth(1).expect("E1 drawn");
        assert!(
            one.split('>')
                .next()
                .is_some_and(|tag| tag.contains("stroke-width=\"2\""))
        );
        let context = svg.split("data-code=\"S1\"").nth(1).expect("S1 drawn");
        let context = context.split("</path>").next().expect("closed");
        assert!(context.contains(&format!("fill=\"{CONTEXT_FILL}\"")));
        assert!(!context.contains("data-value"));
        assert!(context.contains("<title>Over the border (not included)</title>"));
        // The context's figure would have been the largest class had it counted.
        assert!(svg.contains("1.0 to 100.0") || svg.contains(">100.0</text>"));
        assert!(!svg.contains("1,000"));
    }

    #[test]
    fn three_hundred_detailed_places_stay_under_150_kb_and_true_to_shape() {
        // England's extent cut into a 15 by 20 grid; each place's ring has 100 points along
        // its edges, bending every dozen points or so as generalised boundaries do. (Written
        // unsimplified, these would take about 230 KB.)
        let (west, south, columns, rows) = (-5.7, 49.9, 15, 20);
        let (cell_x, cell_y) = (7.5 / f64::from(columns), 5.9 / f64::from(rows));
        let mut areas = Vec::new();
        let mut values = skewed_values(300).into_iter();
        for row in 0..rows {
            for column in 0..columns {
                let (x0, y0) = (
                    west + f64::from(column) * cell_x,
                    south + f64::from(row) * cell_y,
                );
                let ring: Ring = (0..100)
                    .map(|i| {
                        let t = f64::from(i) / 25.0;
                        let (side, along) = (t.floor(), t.fract());
                        let wiggle = 0.03 * (f64::from(i) * 0.5).sin();
                        match side as u8 {
                            0 => (x0 + along * cell_x, y0 + wiggle * cell_y),
                            1 => (x0 + cell_x + wiggle * cell_x, y0 + along * cell_y),
                            2 => (x0 + (1.0 - along) * cell_x, y0 + cell_y + wiggle * cell_y),
                            _ => (x0 + wiggle * cell_x, y0 + (1.0 - along) * cell_y),
                        }
                    })
                    .collect();
                areas.push(Area {
                    code: format!("E0700{:04}", row * columns + column),
                    name: format!("District number {}", row * columns + column),
                    shape: vec![vec![ring]],
                    value: if column == 3 { None } else { values.next() },
                    context: false,
                });
            }
        }
        let drawn = map(areas);
        let svg = choropleth(&drawn);
        // Simplified, each outline stays within the tolerance (and rounding) of every point
        // of its boundary.
        let projection = Projection::fit(&drawn.areas);
        for (area, (code, outline)) in drawn.areas.iter().zip(path_points(&svg)) {
            assert_eq!(area.code, code);
            assert!(outline.len() >= 4, "{code} keeps its corners");
            let closed: Vec<(f64, f64)> = outline.iter().chain(&outline[..1]).copied().collect();
            for point in area.shape.iter().flatten().flatten() {
                let (x, y) = projection.tenths(*point);
                let point = (x as f64 / 10.0, y as f64 / 10.0);
                let nearest = closed
                    .windows(2)
                    .map(|s| distance_to_segment(point, s[0], s[1]))
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    nearest <= (TOLERANCE + 1.0) / 10.0,
                    "{code} strays {nearest}"
                );
            }
        }
        assert!(svg.len() < 150 * 1024, "{} bytes", svg.len());
    }
}
