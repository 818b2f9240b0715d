//! Maps drawn from the published district boundaries, written to `target/charts/` to be
//! looked at.

use std::path::Path;

use serde_json::Value;

use super::keep;
use super::map::{Area, Choropleth, Polygon, choropleth, tests::path_points};

const NORTH_EAST: [&str; 12] = [
    "E06000001",
    "E06000002",
    "E06000003",
    "E06000004",
    "E06000005",
    "E06000047",
    "E06000057",
    "E08000021",
    "E08000022",
    "E08000023",
    "E08000024",
    "E08000037",
];
/// Cumberland, Westmorland and Furness, North Yorkshire: the North East's neighbours.
const NEIGHBOURS: [&str; 3] = ["E06000063", "E06000064", "E06000065"];

/// Every district of the 2024 boundaries as (code, name, shape).
fn districts() -> Vec<(String, String, Vec<Polygon>)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/boundaries/lad-2024.geo.json");
    let text = std::fs::read_to_string(&path).expect("the district boundaries are readable");
    let file: Value = serde_json::from_str(&text).expect("the boundaries are JSON");
    let ring = |ring: &Value| -> Vec<(f64, f64)> {
        ring.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect()
    };
    let polygon = |polygon: &Value| -> Polygon {
        polygon.as_array().into_iter().flatten().map(ring).collect()
    };
    file["features"]
        .as_array()
        .expect("a feature collection")
        .iter()
        .map(|feature| {
            let geometry = &feature["geometry"];
            let coordinates = &geometry["coordinates"];
            let shape = match geometry["type"].as_str() {
                Some("Polygon") => vec![polygon(coordinates)],
                Some("MultiPolygon") => coordinates
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(polygon)
                    .collect(),
                other => panic!("unexpected geometry {other:?}"),
            };
            let text = |key: &str| feature["properties"][key].as_str().unwrap_or("").to_owned();
            (text("LAD24CD"), text("LAD24NM"), shape)
        })
        .collect()
}

/// A made-up rate for a code, the same on every run.
fn rate(code: &str) -> f64 {
    let sum: u32 = code
        .bytes()
        .map(u32::from)
        .enumerate()
        .map(|(i, b)| b * (i as u32 + 7))
        .sum();
    f64::from(sum % 900) / 10.0 + 5.0
}

#[test]
fn the_north_east_districts_drawn_from_their_boundaries() {
    let districts = districts();
    let areas: Vec<Area> = districts
        .into_iter()
        .filter(|(code, _, _)| {
            NORTH_EAST.contains(&code.as_str()) || NEIGHBOURS.contains(&code.as_str())
        })
        .map(|(code, name, shape)| Area {
            // Stockton has no figure here, as a suppressed place would.
            value: (code != "E06000004").then(|| rate(&code)),
            context: NEIGHBOURS.contains(&code.as_str()),
            code,
            name,
            shape,
        })
        .collect();
    assert_eq!(
        areas.len(),
        NORTH_EAST.len() + NEIGHBOURS.len(),
        "every district is in the file"
    );
    let svg = choropleth(&Choropleth {
        id: "north-east".into(),
        title: "Active risks per 10,000, North East".into(),
        measure: "Active risks per 10,000".into(),
        areas,
        highlight: Some("E08000021".into()),
        decimals: 1,
    });
    keep("north-east.svg", &svg);
    assert!(svg.len() < 150 * 1024, "{} bytes", svg.len());
    for code in NORTH_EAST.iter().chain(&NEIGHBOURS) {
        assert_eq!(
            svg.matches(&format!("data-code=\"{code}\"")).count(),
            1,
            "{code}"
        );
    }
    assert!(svg.contains("<title>Stockton-on-Tees: no figure</title>"));
    assert!(svg.contains("<title>Newcastle upon Tyne: "));
    // The region fills the map; its neighbours run off the edge and are cut there.
    let clip: Vec<f64> = svg
        .split("<clipPath id=\"north-east-map\"><rect width=\"")
        .nth(1)
        .and_then(|r| r.split("\"/>").next())
        .expect("the map is clipped")
        .split("\" height=\"")
        .map(|n| n.parse().expect("a number"))
        .collect();
    let inside = |(x, y): &(f64, f64)| (0.0..=clip[0]).contains(x) && (0.0..=clip[1]).contains(y);
    for (code, points) in path_points(&svg) {
        if NEIGHBOURS.contains(&code.as_str()) {
            assert!(!points.iter().all(inside), "{code} is cut at the edge");
        } else {
            assert!(points.iter().all(inside), "{code} lies inside the map");
        }
    }
    // Newcastle lies north of Middlesbrough and west of Sunderland.
    let drawn = path_points(&svg);
    let middle = |code: &str| {
        let (_, points) = drawn.iter().find(|(c, _)| c == code).expect("drawn");
        let n = points.len() as f64;
        let sum = points
            .iter()
            .fold((0.0, 0.0), |s, p| (s.0 + p.0, s.1 + p.1));
        (sum.0 / n, sum.1 / n)
    };
    assert!(middle("E08000021").1 < middle("E06000002").1);
    assert!(middle("E08000021").0 < middle("E08000024").0);
}

#[test]
fn every_english_district_in_one_map_stays_under_150_kb() {
    let areas: Vec<Area> = districts()
        .into_iter()
        .filter(|(code, _, _)| code.starts_with('E'))
        .map(|(code, name, shape)| Area {
            value: Some(rate(&code)),
            context: false,
            code,
            name,
            shape,
        })
        .collect();
    let count = areas.len();
    assert!(count > 290, "{count} districts in England");
    let svg = choropleth(&Choropleth {
        id: "england".into(),
        title: "Active risks per 10,000, England".into(),
        measure: "Active risks per 10,000".into(),
        areas,
        highlight: Some("E08000037".into()),
        decimals: 1,
    });
    keep("england.svg", &svg);
    assert_eq!(path_points(&svg).len(), count);
    assert!(
        svg.len() < 150 * 1024,
        "{} bytes for {count} districts",
        svg.len()
    );
}
