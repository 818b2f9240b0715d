//! Boundaries for drawing maps: the outline of each place as polygons of quantised
//! longitude and latitude, read from GeoJSON or TopoJSON, and the outline of a footprint area
//! (a police force area, a community safety partnership) dissolved from its districts.
//!
//! Points are kept in units of 1/10,000 of a degree (about 11 m of latitude): generalised
//! boundaries drawn a few hundred pixels wide need no more, and two `i32` a point keep
//! England's districts to a few megabytes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::geography::Geography;
use super::lookup::Skipped;
use super::record::PlaceCode;
use super::vocabulary::PlaceLevel;

/// Units of a quantised coordinate per degree.
pub const UNITS_PER_DEGREE: f64 = 10_000.0;
/// Largest longitude, in units.
pub const MAX_LON: i32 = 180 * 10_000;
/// Largest latitude, in units.
pub const MAX_LAT: i32 = 90 * 10_000;
/// Example features kept for each reason one was skipped.
const EXAMPLES_PER_REASON: usize = 5;

/// A point: longitude and latitude (WGS84) in 1/10,000 of a degree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Point {
    pub lon: i32,
    pub lat: i32,
}

impl Point {
    /// The point nearest to a longitude and latitude in degrees; `None` outside ±180, ±90.
    pub fn from_degrees(lon: f64, lat: f64) -> Option<Self> {
        let lon = (lon * UNITS_PER_DEGREE).round();
        let lat = (lat * UNITS_PER_DEGREE).round();
        let in_range = |value: f64, max: i32| value.is_finite() && value.abs() <= f64::from(max);
        (in_range(lon, MAX_LON) && in_range(lat, MAX_LAT)).then_some(Self {
            lon: lon as i32,
            lat: lat as i32,
        })
    }

    /// Whether the point is a longitude and latitude at all.
    pub fn in_range(self) -> bool {
        self.lon.abs() <= MAX_LON && self.lat.abs() <= MAX_LAT
    }

    pub fn lon_degrees(self) -> f64 {
        f64::from(self.lon) / UNITS_PER_DEGREE
    }

    pub fn lat_degrees(self) -> f64 {
        f64::from(self.lat) / UNITS_PER_DEGREE
    }
}

/// A closed ring: its last point is its first, and it has at least three others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub points: Vec<Point>,
}

impl Ring {
    /// A ring through `points`, closed if it is not, with repeated neighbours (points that
    /// quantised to the same place) dropped; `None` if fewer than three distinct points remain.
    pub fn through(points: impl IntoIterator<Item = Point>) -> Option<Self> {
        let mut kept: Vec<Point> = Vec::new();
        for point in points {
            if kept.last() != Some(&point) {
                kept.push(point);
            }
        }
        if kept.len() > 1 && kept.first() == kept.last() {
            kept.pop();
        }
        if kept.len() < 3 {
            return None;
        }
        kept.push(kept[0]);
        Some(Self { points: kept })
    }

    /// Why the ring is not a closed ring of longitudes and latitudes, if it is not.
    pub fn check(&self) -> Result<(), String> {
        if self.points.len() < 4 {
            return Err(format!(
                "a ring has {} points; a closed ring has at least 4",
                self.points.len()
            ));
        }
        if self.points.first() != self.points.last() {
            return Err("a ring is not closed (its last point is not its first)".into());
        }
        if let Some(point) = self.points.iter().find(|p| !p.in_range()) {
            return Err(format!(
                "a point ({}, {}) is not a longitude and latitude in degrees (WGS84)",
                point.lon_degrees(),
                point.lat_degrees()
            ));
        }
        Ok(())
    }

    /// Twice the signed area, in square units (positive when anticlockwise).
    fn doubled_area(&self) -> i128 {
        self.points
            .windows(2)
            .map(|w| {
                i128::from(w[0].lon) * i128::from(w[1].lat)
                    - i128::from(w[1].lon) * i128::from(w[0].lat)
            })
            .sum()
    }

    /// Whether `point` lies inside the ring (even-odd rule).
    fn contains(&self, point: Point) -> bool {
        let (x, y) = (i64::from(point.lon), i64::from(point.lat));
        let mut inside = false;
        for w in self.points.windows(2) {
            let (x1, y1) = (i64::from(w[0].lon), i64::from(w[0].lat));
            let (x2, y2) = (i64::from(w[1].lon), i64::from(w[1].lat));
            if (y1 > y) != (y2 > y) {
                // x of the edge at height y, compared without dividing.
                let lhs = (x - x1) * (y2 - y1);
                let rhs = (x2 - x1) * (y - y1);
                if (y2 > y1 && lhs < rhs) || (y2 < y1 && lhs > rhs) {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// The ring without points closer than `tolerance` units to the last point kept;
    /// `None` when too little is left to enclose anything.
    pub fn simplified(&self, tolerance: i32) -> Option<Self> {
        let limit = i64::from(tolerance) * i64::from(tolerance);
        let mut kept: Vec<Point> = Vec::with_capacity(self.points.len());
        for &point in &self.points {
            let far = kept.last().is_none_or(|last: &Point| {
                let dx = i64::from(point.lon - last.lon);
                let dy = i64::from(point.lat - last.lat);
                dx * dx + dy * dy >= limit
            });
            if far {
                kept.push(point);
            }
        }
        Self::through(kept)
    }
}

/// A polygon: its outer ring first, then its holes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polygon {
    pub rings: Vec<Ring>,
}

/// A place's outline: one polygon or several (islands, detached parts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub polygons: Vec<Polygon>,
}

/// The smallest box holding a shape, in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Westmost longitude and southmost latitude.
    pub min: Point,
    /// Eastmost longitude and northmost latitude.
    pub max: Point,
}

impl Bounds {
    /// The box holding both.
    pub fn union(self, other: Bounds) -> Bounds {
        Bounds {
            min: Point {
                lon: self.min.lon.min(other.min.lon),
                lat: self.min.lat.min(other.min.lat),
            },
            max: Point {
                lon: self.max.lon.max(other.max.lon),
                lat: self.max.lat.max(other.max.lat),
            },
        }
    }
}

impl Shape {
    /// Every ring of every polygon.
    pub fn rings(&self) -> impl Iterator<Item = &Ring> {
        self.polygons.iter().flat_map(|p| p.rings.iter())
    }

    /// Points over all rings.
    pub fn point_count(&self) -> usize {
        self.rings().map(|r| r.points.len()).sum()
    }

    /// The smallest box holding every point; `None` for an empty shape.
    pub fn bounds(&self) -> Option<Bounds> {
        self.rings()
            .flat_map(|r| r.points.iter())
            .map(|&p| Bounds { min: p, max: p })
            .reduce(Bounds::union)
    }

    /// Why the shape cannot be stored, if it cannot: no polygon, a polygon without rings, or
    /// a ring that is not closed, too short or not in degrees.
    pub fn check(&self) -> Result<(), String> {
        if self.polygons.is_empty() {
            return Err("the shape has no polygon".into());
        }
        if self.polygons.iter().any(|p| p.rings.is_empty()) {
            return Err("a polygon has no ring".into());
        }
        self.rings().try_for_each(Ring::check)
    }

    /// The shape with points closer than `tolerance` units dropped (for small maps); rings
    /// left too small to enclose anything go, and polygons whose outer ring went.
    pub fn simplified(&self, tolerance: i32) -> Shape {
        let polygons = self
            .polygons
            .iter()
            .filter_map(|polygon| {
                let mut rings = polygon.rings.iter();
                let outer = rings.next()?.simplified(tolerance)?;
                let holes = rings.filter_map(|r| r.simplified(tolerance));
                Some(Polygon {
                    rings: std::iter::once(outer).chain(holes).collect(),
                })
            })
            .collect();
        Shape { polygons }
    }

    /// A shape of the rings given in no order: each ring inside an odd number of others is a
    /// hole of the smallest outer ring around it.
    pub fn from_rings(rings: Vec<Ring>) -> Shape {
        let depth: Vec<usize> = rings
            .iter()
            .enumerate()
            .map(|(i, ring)| {
                let probe = ring.points[0];
                rings
                    .iter()
                    .enumerate()
                    .filter(|(j, other)| *j != i && other.contains(probe))
                    .count()
            })
            .collect();
        let mut polygons: Vec<Polygon> = Vec::new();
        let mut outer_of_ring: HashMap<usize, usize> = HashMap::new();
        for (i, ring) in rings.iter().enumerate() {
            if depth[i].is_multiple_of(2) {
                outer_of_ring.insert(i, polygons.len());
                polygons.push(Polygon {
                    rings: vec![ring.clone()],
                });
            }
        }
        for (i, ring) in rings.iter().enumerate() {
            if depth[i].is_multiple_of(2) {
                continue;
            }
            let probe = ring.points[0];
            let parent = rings
                .iter()
                .enumerate()
                .filter(|(j, other)| depth[*j].is_multiple_of(2) && other.contains(probe))
                .min_by_key(|(_, other)| other.doubled_area().abs())
                .and_then(|(j, _)| outer_of_ring.get(&j));
            match parent {
                Some(&polygon) => polygons[polygon].rings.push(ring.clone()),
                None => polygons.push(Polygon {
                    rings: vec![ring.clone()],
                }),
            }
        }
        Shape { polygons }
    }
}

/// The outline of the union of `members` (districts that share their borders exactly, as the
/// districts of one boundary product do): every edge two members share cancels out, and the
/// edges left are chained back into rings. Pieces that do not chain into a ring are dropped.
pub fn dissolve<'a>(members: impl IntoIterator<Item = &'a Shape>) -> Shape {
    // Edges are taken either way round: members need not run their rings the same way.
    let mut times: HashMap<(Point, Point), u32> = HashMap::new();
    for member in members {
        for ring in member.rings() {
            for w in ring.points.windows(2) {
                if w[0] != w[1] {
                    *times.entry((w[0].min(w[1]), w[0].max(w[1]))).or_default() += 1;
                }
            }
        }
    }
    // An edge met an even number of times lies between members (or doubles back on itself).
    let mut edges: Vec<(Point, Point)> = times
        .into_iter()
        .filter(|(_, times)| times % 2 == 1)
        .map(|(edge, _)| edge)
        .collect();
    edges.sort_unstable();
    let mut at: HashMap<Point, Vec<usize>> = HashMap::new();
    for (i, &(a, b)) in edges.iter().enumerate() {
        at.entry(a).or_default().push(i);
        at.entry(b).or_default().push(i);
    }
    let mut used = vec![false; edges.len()];
    let mut rings = Vec::new();
    for start in 0..edges.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let (first, mut current) = edges[start];
        let mut points = vec![first, current];
        while current != first {
            let next = at[&current].iter().copied().find(|&e| !used[e]);
            let Some(edge) = next else { break };
            used[edge] = true;
            let (a, b) = edges[edge];
            current = if a == current { b } else { a };
            points.push(current);
        }
        if current == first
            && let Some(ring) = Ring::through(points)
        {
            rings.push(ring);
        }
    }
    Shape::from_rings(rings)
}

/// A boundary file that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundaryError {
    #[error("{file} is not JSON: {reason}")]
    Json { file: String, reason: String },
    #[error(
        "{file} is not a GeoJSON FeatureCollection or a TopoJSON Topology (its type is {found})"
    )]
    NotBoundaries { file: String, found: String },
    #[error("{file}, {part}: {reason}")]
    Malformed {
        file: String,
        part: String,
        reason: String,
    },
    #[error(
        "{file}, {part}: coordinates are not longitude and latitude in degrees (WGS84); a projected file (British National Grid) must be converted first"
    )]
    NotDegrees { file: String, part: String },
}

/// The shapes of one boundary file, by code, and what was passed over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoundaryFile {
    /// Usually the file name; used in the report.
    pub name: String,
    /// Each code with its shape, in the file's order; a code is read once (the first time).
    pub shapes: Vec<(String, Shape)>,
    /// Features read, skipped ones included.
    pub features: u64,
    /// Features passed over, by reason, with a few `file:feature` examples.
    pub skipped: BTreeMap<String, Skipped>,
}

impl BoundaryFile {
    fn skip(&mut self, reason: impl Into<String>, feature: &str) {
        skip(
            &mut self.skipped,
            reason.into(),
            format!("{}:{feature}", self.name),
        );
    }

    /// Keeps a feature's shape under its code, unless the code was read already.
    fn keep(&mut self, properties: Option<&Value>, shape: Result<Shape, String>, feature: &str) {
        self.features += 1;
        let Some(code) = code_of(properties) else {
            self.skip(
                "no code property (areacd, or one ending in CD such as LAD24CD)",
                feature,
            );
            return;
        };
        match shape {
            Err(reason) => self.skip(reason, feature),
            Ok(shape) if shape.polygons.is_empty() => {
                self.skip("no ring encloses anything at 1/10,000 degree", feature)
            }
            Ok(_) if self.shapes.iter().any(|(known, _)| *known == code) => self.skip(
                "a code read earlier in the file (the first is kept)",
                feature,
            ),
            Ok(shape) => self.shapes.push((code, shape)),
        }
    }
}

/// Counts something skipped under its reason, keeping a few examples.
pub(crate) fn skip(skipped: &mut BTreeMap<String, Skipped>, reason: String, example: String) {
    let entry = skipped.entry(reason).or_default();
    entry.rows += 1;
    if entry.examples.len() < EXAMPLES_PER_REASON {
        entry.examples.push(example);
    }
}

/// The place code a feature's properties carry: `areacd`, else the first property ending in
/// `CD` (`LAD24CD`, `ICB23CD`, `SICBL23CD`, `NHSER24CD`).
fn code_of(properties: Option<&Value>) -> Option<String> {
    let properties = properties?.as_object()?;
    let text = |value: &Value| {
        value
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(code) = properties.get("areacd").and_then(text) {
        return Some(code);
    }
    properties
        .iter()
        .filter(|(name, _)| {
            name.len() > 2
                && name.ends_with("CD")
                && name.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .find_map(|(_, value)| text(value))
}

/// Reads a GeoJSON FeatureCollection or a TopoJSON Topology, by its `type`.
pub fn read_boundaries(name: &str, text: &str) -> Result<BoundaryFile, BoundaryError> {
    let root: Value = serde_json::from_str(text).map_err(|e| BoundaryError::Json {
        file: name.to_string(),
        reason: e.to_string(),
    })?;
    match root.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => read_geojson(name, &root),
        Some("Topology") => read_topojson(name, &root),
        other => Err(BoundaryError::NotBoundaries {
            file: name.to_string(),
            found: other.unwrap_or("missing").to_string(),
        }),
    }
}

/// Why a feature's geometry cannot be read: it is malformed (the feature is skipped), its
/// coordinates are not degrees, or it names an arc the topology lacks (the file is refused).
enum Bad {
    Geometry(String),
    NotDegrees,
    Arc(String),
}

fn geojson_point(position: &Value) -> Result<Point, Bad> {
    let pair = position
        .as_array()
        .filter(|p| p.len() >= 2)
        .ok_or_else(|| Bad::Geometry("a position is not [longitude, latitude]".into()))?;
    let (Some(lon), Some(lat)) = (pair[0].as_f64(), pair[1].as_f64()) else {
        return Err(Bad::Geometry("a coordinate is not a number".into()));
    };
    Point::from_degrees(lon, lat).ok_or(Bad::NotDegrees)
}

/// The rings of one GeoJSON polygon (`[[[lon, lat], …], …]`); rings too small are dropped, and
/// a polygon whose outer ring went is `None`.
fn geojson_polygon(rings: &Value) -> Result<Option<Polygon>, Bad> {
    let rings = rings
        .as_array()
        .ok_or_else(|| Bad::Geometry("a polygon is not a list of rings".into()))?;
    let mut kept = Vec::new();
    for (i, ring) in rings.iter().enumerate() {
        let positions = ring
            .as_array()
            .ok_or_else(|| Bad::Geometry("a ring is not a list of positions".into()))?;
        let points = positions
            .iter()
            .map(geojson_point)
            .collect::<Result<Vec<_>, _>>()?;
        match Ring::through(points) {
            Some(ring) => kept.push(ring),
            None if i == 0 => return Ok(None),
            None => {}
        }
    }
    Ok((!kept.is_empty()).then_some(Polygon { rings: kept }))
}

/// A Polygon or MultiPolygon geometry made into a shape by `polygon`.
fn geometry_shape(
    geometry: Option<&Value>,
    coordinates: &str,
    polygon: impl Fn(&Value) -> Result<Option<Polygon>, Bad>,
) -> Result<Shape, Bad> {
    let geometry = geometry
        .filter(|g| !g.is_null())
        .ok_or_else(|| Bad::Geometry("no geometry".into()))?;
    let parts = geometry.get(coordinates);
    let polygons = match geometry.get("type").and_then(Value::as_str) {
        Some("Polygon") => parts
            .map(&polygon)
            .transpose()?
            .flatten()
            .into_iter()
            .collect(),
        Some("MultiPolygon") => {
            let parts = parts
                .and_then(Value::as_array)
                .ok_or_else(|| Bad::Geometry("a MultiPolygon is not a list of polygons".into()))?;
            let mut polygons = Vec::new();
            for part in parts {
                polygons.extend(polygon(part)?);
            }
            polygons
        }
        other => {
            return Err(Bad::Geometry(format!(
                "the geometry is {}, not a Polygon or MultiPolygon",
                other.unwrap_or("untyped")
            )));
        }
    };
    Ok(Shape { polygons })
}

fn read_geojson(name: &str, root: &Value) -> Result<BoundaryFile, BoundaryError> {
    let features = root
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| BoundaryError::Malformed {
            file: name.to_string(),
            part: "features".into(),
            reason: "a FeatureCollection has no list of features".into(),
        })?;
    let mut file = BoundaryFile {
        name: name.to_string(),
        ..BoundaryFile::default()
    };
    for (i, feature) in features.iter().enumerate() {
        let label = format!("feature {}", i + 1);
        let shape = match geometry_shape(feature.get("geometry"), "coordinates", geojson_polygon) {
            Ok(shape) => Ok(shape),
            Err(Bad::Geometry(reason) | Bad::Arc(reason)) => Err(format!("bad geometry: {reason}")),
            Err(Bad::NotDegrees) => {
                return Err(BoundaryError::NotDegrees {
                    file: name.to_string(),
                    part: label,
                });
            }
        };
        file.keep(feature.get("properties"), shape, &label);
    }
    Ok(file)
}

/// A topology's arcs, decoded to points: positions are deltas from the one before when the
/// topology is quantised (it has a `transform`), absolute otherwise.
fn topojson_arcs(name: &str, root: &Value) -> Result<Vec<Vec<Point>>, BoundaryError> {
    let malformed = |part: String, reason: &str| BoundaryError::Malformed {
        file: name.to_string(),
        part,
        reason: reason.to_string(),
    };
    let pair = |value: Option<&Value>, what: &str| -> Result<[f64; 2], BoundaryError> {
        match value.and_then(Value::as_array).map(Vec::as_slice) {
            Some([a, b, ..]) => match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => Ok([a, b]),
                _ => Err(malformed(what.to_string(), "not two numbers")),
            },
            _ => Err(malformed(what.to_string(), "not two numbers")),
        }
    };
    let transform = match root.get("transform") {
        None | Some(Value::Null) => None,
        Some(t) => Some((
            pair(t.get("scale"), "transform.scale")?,
            pair(t.get("translate"), "transform.translate")?,
        )),
    };
    let arcs = root
        .get("arcs")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("arcs".into(), "a Topology has no list of arcs"))?;
    arcs.iter()
        .enumerate()
        .map(|(i, arc)| {
            let part = format!("arc {i}");
            let positions = arc
                .as_array()
                .ok_or_else(|| malformed(part.clone(), "not a list of positions"))?;
            let mut at = [0.0f64; 2];
            positions
                .iter()
                .map(|position| {
                    let [x, y] = pair(Some(position), &part)?;
                    let (lon, lat) = match transform {
                        Some((scale, translate)) => {
                            at = [at[0] + x, at[1] + y];
                            (
                                at[0] * scale[0] + translate[0],
                                at[1] * scale[1] + translate[1],
                            )
                        }
                        None => (x, y),
                    };
                    Point::from_degrees(lon, lat).ok_or_else(|| BoundaryError::NotDegrees {
                        file: name.to_string(),
                        part: part.clone(),
                    })
                })
                .collect()
        })
        .collect()
}

/// A TopoJSON ring: its arcs joined end to end, a negative index `!i` meaning arc `i`
/// reversed; each arc after the first starts where the one before ended.
fn topojson_ring(arcs: &[Vec<Point>], indexes: &Value) -> Result<Option<Ring>, Bad> {
    let indexes = indexes
        .as_array()
        .ok_or_else(|| Bad::Geometry("a ring is not a list of arc indexes".into()))?;
    let mut points: Vec<Point> = Vec::new();
    for index in indexes {
        let index = index
            .as_i64()
            .ok_or_else(|| Bad::Geometry("an arc index is not an integer".into()))?;
        let (arc, reversed) = if index >= 0 {
            (index, false)
        } else {
            (!index, true)
        };
        let arc = usize::try_from(arc)
            .ok()
            .and_then(|a| arcs.get(a))
            .ok_or_else(|| Bad::Arc(format!("arc {index} is not in the topology")))?;
        let mut part = arc.clone();
        if reversed {
            part.reverse();
        }
        let skip_first = usize::from(!points.is_empty());
        points.extend(part.into_iter().skip(skip_first));
    }
    Ok(Ring::through(points))
}

fn topojson_polygon(arcs: &[Vec<Point>], rings: &Value) -> Result<Option<Polygon>, Bad> {
    let rings = rings
        .as_array()
        .ok_or_else(|| Bad::Geometry("a polygon is not a list of rings".into()))?;
    let mut kept = Vec::new();
    for (i, ring) in rings.iter().enumerate() {
        match topojson_ring(arcs, ring)? {
            Some(ring) => kept.push(ring),
            None if i == 0 => return Ok(None),
            None => {}
        }
    }
    Ok((!kept.is_empty()).then_some(Polygon { rings: kept }))
}

/// Reads every object of a topology (objects in name order, geometries in file order): a
/// code met in several objects (a unitary authority in `utla` and `ltla`) is one place, and
/// the first shape read is kept.
fn read_topojson(name: &str, root: &Value) -> Result<BoundaryFile, BoundaryError> {
    let arcs = topojson_arcs(name, root)?;
    let empty = Map::new();
    let objects = root
        .get("objects")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut file = BoundaryFile {
        name: name.to_string(),
        ..BoundaryFile::default()
    };
    for (object, value) in objects {
        let single = std::slice::from_ref(value);
        let geometries = match value.get("type").and_then(Value::as_str) {
            Some("GeometryCollection") => value
                .get("geometries")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            _ => single,
        };
        for (i, geometry) in geometries.iter().enumerate() {
            let label = format!("{object} {}", i + 1);
            let shape = match geometry_shape(Some(geometry), "arcs", |rings| {
                topojson_polygon(&arcs, rings)
            }) {
                Ok(shape) => Ok(shape),
                Err(Bad::Geometry(reason)) => Err(format!("bad geometry: {reason}")),
                // Arcs were decoded (and checked) before any geometry.
                Err(Bad::NotDegrees) => Err("bad geometry: coordinates out of range".into()),
                Err(Bad::Arc(reason)) => {
                    return Err(BoundaryError::Malformed {
                        file: name.to_string(),
                        part: label,
                        reason,
                    });
                }
            };
            file.keep(geometry.get("properties"), shape, &label);
        }
    }
    Ok(file)
}

/// A place's shape as the register keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundary {
    pub shape: Shape,
    /// Dissolved from the place's member districts rather than imported: made again on
    /// every import, and never taken for a shape of the place's own.
    pub dissolved: bool,
}

/// Shapes sent for import, checked, with the features the sender already passed over.
#[derive(Debug, Clone, Default)]
pub struct BoundaryImport {
    /// Each code as sent with its shape, in order.
    pub shapes: Vec<(String, Shape)>,
    /// Features the sender could not read, by reason.
    pub skipped: BTreeMap<String, Skipped>,
}

/// What an import of boundaries did, for the person who ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundariesReport {
    /// Shapes received, and features the sender skipped.
    pub features_read: u64,
    /// Shapes stored under a place of their own (or under the code that replaced theirs).
    pub shapes_stored: u64,
    /// Police force areas and community safety partnerships given a shape dissolved from
    /// their districts.
    pub shapes_dissolved: u64,
    /// Features and areas passed over, by reason, with a few examples.
    pub skipped: BTreeMap<String, Skipped>,
}

impl BoundariesReport {
    pub fn features_skipped(&self) -> u64 {
        super::lookup::rows_skipped(&self.skipped)
    }
}

/// The boundaries an import writes, and its report.
#[derive(Debug, Clone, Default)]
pub struct BoundaryPlan {
    pub boundaries: Vec<(PlaceCode, Boundary)>,
    pub report: BoundariesReport,
}

/// Plans an import against the geography held and the boundaries stored (`stored`): only
/// codes the register knows are kept; a replaced code's shape goes to its successor when the
/// change was a recode (one predecessor) and the successor has no shape of its own; then
/// every police force area and community safety partnership without a shape of its own whose
/// member districts all have one is given their dissolved outline.
pub fn plan_boundaries<E>(
    import: BoundaryImport,
    geography: &Geography,
    stored: impl Fn(PlaceCode) -> Result<Option<Boundary>, E>,
) -> Result<BoundaryPlan, E> {
    let mut report = BoundariesReport {
        features_read: import.shapes.len() as u64 + super::lookup::rows_skipped(&import.skipped),
        skipped: import.skipped,
        ..BoundariesReport::default()
    };
    let mut own: BTreeMap<PlaceCode, Shape> = BTreeMap::new();
    let mut replaced: Vec<(PlaceCode, PlaceCode, Shape)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (text, shape) in import.shapes {
        // A replaced code is known through its succession, even when the register never
        // held it as a place.
        let code = PlaceCode::parse(&text)
            .ok()
            .filter(|code| geography.current_place(*code).is_some());
        let Some(code) = code else {
            skip(&mut report.skipped, "no such place".into(), text);
            continue;
        };
        if !seen.insert(code) {
            skip(
                &mut report.skipped,
                "a code given earlier in the import (the first is kept)".into(),
                text,
            );
            continue;
        }
        let current = geography.current(code);
        if current == code {
            own.insert(code, shape);
        } else {
            replaced.push((code, current, shape));
        }
    }
    let has_own = |code: PlaceCode, own: &BTreeMap<PlaceCode, Shape>| -> Result<bool, E> {
        Ok(own.contains_key(&code) || stored(code)?.is_some_and(|b| !b.dissolved))
    };
    for (code, successor, shape) in replaced {
        let reason = if has_own(successor, &own)? {
            "replaced by a place with a shape of its own"
        } else if geography.replaced_codes(successor).len() > 1 {
            "replaced by a merger of several places, which needs a shape of its own"
        } else {
            own.insert(successor, shape);
            continue;
        };
        skip(&mut report.skipped, reason.into(), code.to_string());
    }
    report.shapes_stored = own.len() as u64;
    let mut dissolved = Vec::new();
    let areas = [
        PlaceLevel::PoliceForceArea,
        PlaceLevel::CommunitySafetyPartnership,
    ];
    for area in areas
        .into_iter()
        .flat_map(|level| geography.places_of_level(level))
    {
        if has_own(area.code, &own)? {
            continue;
        }
        let members = geography.children(area.code);
        let mut shapes = Vec::with_capacity(members.len());
        for member in &members {
            match own.get(&member.code) {
                Some(shape) => shapes.push(shape.clone()),
                None => match stored(member.code)? {
                    Some(boundary) => shapes.push(boundary.shape),
                    None => break,
                },
            }
        }
        if members.is_empty() || shapes.len() < members.len() {
            skip(
                &mut report.skipped,
                format!("a {} with a member district without a shape", area.level),
                area.code.to_string(),
            );
            continue;
        }
        let shape = dissolve(&shapes);
        if !shape.polygons.is_empty() {
            dissolved.push((area.code, shape));
        }
    }
    report.shapes_dissolved = dissolved.len() as u64;
    let boundaries = own
        .into_iter()
        .map(|(code, shape)| (code, false, shape))
        .chain(
            dissolved
                .into_iter()
                .map(|(code, shape)| (code, true, shape)),
        )
        .map(|(code, dissolved, shape)| (code, Boundary { shape, dissolved }))
        .collect();
    Ok(BoundaryPlan { boundaries, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lon: i32, lat: i32) -> Point {
        Point { lon, lat }
    }

    fn square(x: i32, y: i32, side: i32) -> Shape {
        let ring = Ring::through([
            p(x, y),
            p(x + side, y),
            p(x + side, y + side),
            p(x, y + side),
        ])
        .expect("a square");
        Shape {
            polygons: vec![Polygon { rings: vec![ring] }],
        }
    }

    fn corners(ring: &Ring) -> std::collections::BTreeSet<Point> {
        ring.points.iter().copied().collect()
    }

    #[test]
    fn topojson_arcs_are_deltas_under_the_transform_and_negative_indexes_run_backwards() {
        // Two squares sharing the arc from (1,0) to (1,1): the left one uses it forwards,
        // the right one backwards (~0 = -1).
        let topology = r#"{
            "type": "Topology",
            "transform": {"scale": [0.5, 0.25], "translate": [-1.0, 50.0]},
            "arcs": [
                [[2, 0], [0, 4]],
                [[2, 4], [-2, 0], [0, -4], [2, 0]],
                [[2, 0], [2, 0], [0, 4], [-2, 0]]
            ],
            "objects": {
                "ltla": {"type": "GeometryCollection", "geometries": [
                    {"type": "Polygon", "arcs": [[0, 1]], "properties": {"areacd": "E06000001"}},
                    {"type": "Polygon", "arcs": [[2, -1]], "properties": {"areacd": "E06000002"}},
                    {"type": "LineString", "arcs": [0], "properties": {"areacd": "E06000003"}},
                    {"type": "Polygon", "arcs": [[0, 1]], "properties": {"name": "no code"}}
                ]},
                "utla": {"type": "GeometryCollection", "geometries": [
                    {"type": "Polygon", "arcs": [[0, 1]], "properties": {"areacd": "E06000001"}}
                ]}
            }
        }"#;
        let file = read_boundaries("t.topo.json", topology).expect("reads");
        assert_eq!(file.features, 5);
        assert_eq!(file.shapes.len(), 2);
        assert_eq!(file.skipped.values().map(|s| s.rows).sum::<u64>(), 3);
        let (code, left) = &file.shapes[0];
        assert_eq!(code, "E06000001");
        // Arc 0 decodes to (0, 50) → (0, 51); in units of 1/10,000 degree.
        let ring = &left.polygons[0].rings[0];
        assert_eq!(ring.points[0], p(0, 500_000));
        assert_eq!(ring.points[1], p(0, 510_000));
        assert_eq!(
            corners(ring),
            [
                p(0, 500_000),
                p(0, 510_000),
                p(-10_000, 510_000),
                p(-10_000, 500_000)
            ]
            .into()
        );
        let right = &file.shapes[1].1.polygons[0].rings[0];
        assert_eq!(right.points.len(), 5);
        assert_eq!(right.points.first(), right.points.last());
        assert_eq!(right.points[2], p(10_000, 510_000));
        // The shared arc, reversed, closes the right square.
        assert_eq!(right.points[3], p(0, 510_000));
        assert!(right.check().is_ok());
    }

    #[test]
    fn an_arc_index_outside_the_topology_refuses_the_file() {
        let topology = r#"{"type": "Topology", "arcs": [[[0, 0], [1, 0], [1, 1], [0, 0]]],
            "objects": {"x": {"type": "GeometryCollection", "geometries": [
                {"type": "Polygon", "arcs": [[3]], "properties": {"areacd": "E06000001"}}]}}}"#;
        let error = read_boundaries("bad.topo.json", topology).expect_err("refused");
        assert!(error.to_string().contains("bad.topo.json"), "{error}");
        assert!(error.to_string().contains("arc 3"), "{error}");
    }

    #[test]
    fn projected_coordinates_refuse_the_file() {
        let geojson = r#"{"type": "FeatureCollection", "features": [{"type": "Feature",
            "properties": {"LAD24CD": "E06000001"}, "geometry": {"type": "Polygon",
            "coordinates": [[[447161, 531473], [448161, 531473], [448161, 532473], [447161, 531473]]]}}]}"#;
        let error = read_boundaries("bng.geo.json", geojson).expect_err("refused");
        assert!(matches!(error, BoundaryError::NotDegrees { .. }), "{error}");
    }

    #[test]
    fn geojson_reads_the_code_ending_in_cd_and_multipolygons() {
        let geojson = r#"{"type": "FeatureCollection", "features": [{"type": "Feature",
            "properties": {"FID": 1, "ICB23CD": "E54000008", "ICB23NM": "X"},
            "geometry": {"type": "MultiPolygon", "coordinates": [
                [[[0, 50], [1, 50], [1, 51], [0, 50]]],
                [[[2, 50], [3, 50], [3, 51], [2, 50]], [[2.1, 50.1], [2.2, 50.1], [2.2, 50.2], [2.1, 50.1]]]
            ]}}]}"#;
        let file = read_boundaries("icb.geo.json", geojson).expect("reads");
        let (code, shape) = &file.shapes[0];
        assert_eq!(code, "E54000008");
        assert_eq!(shape.polygons.len(), 2);
        assert_eq!(shape.polygons[1].rings.len(), 2);
        assert!(shape.check().is_ok());
    }

    #[test]
    fn four_squares_dissolve_into_one_square_and_shared_edges_cancel() {
        let members = [
            square(0, 0, 10),
            square(10, 0, 10),
            square(0, 10, 10),
            square(10, 10, 10),
        ];
        let union = dissolve(&members);
        assert_eq!(union.polygons.len(), 1);
        let ring = &union.polygons[0].rings[0];
        assert_eq!(union.polygons[0].rings.len(), 1);
        // The outline runs round the edge: 8 points on the border, no inner cross.
        assert_eq!(ring.points.len(), 9);
        assert!(!ring.points.contains(&p(10, 10)));
        assert_eq!(
            union.bounds(),
            Some(Bounds {
                min: p(0, 0),
                max: p(20, 20)
            })
        );
    }

    #[test]
    fn a_ring_of_squares_dissolves_into_an_outline_with_a_hole_and_apart_pieces_stay_apart() {
        let mut members: Vec<Shape> = Vec::new();
        for x in 0..3 {
            for y in 0..3 {
                if (x, y) != (1, 1) {
                    members.push(square(x * 10, y * 10, 10));
                }
            }
        }
        members.push(square(100, 100, 10));
        let union = dissolve(&members);
        assert_eq!(union.polygons.len(), 2);
        let framed = union
            .polygons
            .iter()
            .find(|p| p.rings.len() == 2)
            .expect("the frame has a hole");
        assert_eq!(corners(&framed.rings[1]).len(), 4);
        assert!(framed.rings[1].points.contains(&p(10, 10)));
        assert_eq!(corners(&framed.rings[0]).len(), 12);
    }

    fn place(code: &str, level: PlaceLevel, parent: Option<&str>) -> crate::domain::Place {
        crate::domain::Place {
            code: PlaceCode::parse(code).expect("code"),
            name: code.to_string(),
            level,
            parent: parent.map(|p| PlaceCode::parse(p).expect("code")),
        }
    }

    /// England with two unitary authorities (the second recoded from an older code) and a
    /// police force area of both.
    fn two_districts_and_a_force() -> Geography {
        let mut geography = Geography::default();
        geography.insert_place(place("E92000001", PlaceLevel::Country, None));
        for district in ["E06000001", "E06000002"] {
            geography.insert_place(place(district, PlaceLevel::District, Some("E92000001")));
            geography.insert_membership(crate::domain::Membership {
                area: PlaceCode::parse("E23000001").expect("code"),
                member: PlaceCode::parse(district).expect("code"),
            });
        }
        geography.insert_place(place("E23000001", PlaceLevel::PoliceForceArea, None));
        geography.insert_succession(crate::domain::Succession {
            predecessor: PlaceCode::parse("E06000099").expect("code"),
            successor: PlaceCode::parse("E06000002").expect("code"),
        });
        geography
    }

    fn code(text: &str) -> PlaceCode {
        PlaceCode::parse(text).expect("code")
    }

    #[test]
    fn a_plan_keeps_known_codes_moves_a_recode_to_its_successor_and_dissolves_the_force() {
        let geography = two_districts_and_a_force();
        let import = BoundaryImport {
            shapes: vec![
                ("E06000001".into(), square(0, 0, 10)),
                ("E06000099".into(), square(10, 0, 10)),
                ("E06000077".into(), square(50, 0, 10)),
            ],
            skipped: BTreeMap::new(),
        };
        let plan = plan_boundaries(import.clone(), &geography, |_| {
            Ok::<_, std::convert::Infallible>(None)
        })
        .expect("planned");
        assert_eq!(plan.report.features_read, 3);
        assert_eq!(plan.report.shapes_stored, 2);
        assert_eq!(plan.report.shapes_dissolved, 1);
        assert_eq!(plan.report.skipped["no such place"].examples, ["E06000077"]);
        let stored: BTreeMap<PlaceCode, Boundary> = plan.boundaries.into_iter().collect();
        assert_eq!(stored[&code("E06000002")].shape, square(10, 0, 10));
        let force = &stored[&code("E23000001")];
        assert!(force.dissolved);
        assert_eq!(force.shape.rings().count(), 1);
        assert_eq!(
            force.shape.bounds(),
            Some(Bounds {
                min: p(0, 0),
                max: p(20, 10)
            })
        );

        // Once the successor has a shape of its own, the old code's is not taken.
        let own = Boundary {
            shape: square(10, 0, 12),
            dissolved: false,
        };
        let plan = plan_boundaries(import, &geography, |asked| {
            Ok::<_, std::convert::Infallible>((asked == code("E06000002")).then(|| own.clone()))
        })
        .expect("planned");
        assert_eq!(plan.report.shapes_stored, 1);
        assert_eq!(
            plan.report.skipped["replaced by a place with a shape of its own"].examples,
            ["E06000099"]
        );
        // The force is dissolved from the stored shape of its second district.
        let stored: BTreeMap<PlaceCode, Boundary> = plan.boundaries.into_iter().collect();
        assert_eq!(
            stored[&code("E23000001")].shape.bounds().map(|b| b.max),
            Some(p(22, 12))
        );
    }

    #[test]
    fn simplifying_drops_close_points_and_tiny_rings() {
        let ring =
            Ring::through([p(0, 0), p(1, 0), p(100, 0), p(100, 100), p(0, 100)]).expect("ring");
        let simple = ring.simplified(5).expect("still a ring");
        assert_eq!(simple.points.len(), 5);
        assert!(!simple.points.contains(&p(1, 0)));
        assert_eq!(square(0, 0, 3).simplified(5), Shape::default());
    }
}
