//! Pages for everyone: the start page, and the published figures with their maps and CSV.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::inspector::map_shape;
use super::page::{Chrome, label, places_at, render, when};
use super::{PageError, Visitor, Web};
use crate::app::open_data::PublicTable;
use crate::charts;
use crate::domain::boundaries::Shape;
use crate::domain::disclosure::Published;
use crate::domain::inspection::ViewFilter;
use crate::domain::population::Rate;
use crate::domain::release::PUBLISHED_LEVELS;
use crate::domain::{ClientGroup, Invalid, Place, PlaceLevel, Role, Vocabulary};

/// A place the visitor may open.
pub struct PlaceLink {
    pub code: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    signed_in: bool,
    role: Role,
    name: String,
    places: Vec<PlaceLink>,
}

pub async fn home(State(web): State<Web>, visitor: Visitor) -> Response {
    let principal = &visitor.principal;
    let places = web
        .app
        .places(&principal.places)
        .into_iter()
        .zip(&principal.places)
        .map(|(place, code)| PlaceLink {
            code: code.to_string(),
            name: place.map_or_else(|| code.to_string(), |p| p.name),
        })
        .collect();
    render(&HomePage {
        chrome: Chrome::of(&visitor),
        signed_in: visitor.session.is_some(),
        role: principal.role,
        name: principal.name.clone(),
        places,
    })
}

const LIST_RELEASES: &str = "/marr.v1.OpenData/ListReleases";
const GET_COMPARATIVE_TABLE: &str = "/marr.v1.OpenData/GetComparativeTable";

/// One release as listed.
pub struct ReleaseLine {
    pub number: u64,
    pub as_at: String,
    pub cut_at: String,
    pub scheduled: bool,
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    releases: Vec<ReleaseLine>,
}

/// Every release of the published figures, newest first.
pub async fn releases(State(web): State<Web>, visitor: Visitor) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, LIST_RELEASES).await?;
    let releases = web.app.releases(&caller);
    let releases = visitor.conclude(&web, &caller, releases).await?;
    Ok(render(&ReleasesPage {
        chrome: Chrome::of(&visitor),
        releases: releases
            .iter()
            .map(|r| ReleaseLine {
                number: r.number,
                as_at: when(r.as_at),
                cut_at: when(r.cut_at),
                scheduled: r.scheduled,
            })
            .collect(),
    }))
}

/// Which table of a release, and what the map shades.
#[derive(Debug, Clone, Deserialize)]
pub struct TableQuery {
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    level: Option<String>,
    /// `total`, or a client group's word for its rate per 10,000.
    #[serde(default)]
    measure: Option<String>,
}

impl TableQuery {
    fn parent(&self) -> String {
        self.parent
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(ENGLAND)
            .to_string()
    }

    fn level(&self) -> Result<PlaceLevel, Invalid> {
        match self
            .level
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            None => Ok(PlaceLevel::Region),
            Some(word) => PlaceLevel::parse_word(word).map_err(|unknown| {
                Invalid::one(
                    "level",
                    format!("{} is not one of {}", unknown.word, unknown.expected),
                )
            }),
        }
    }

    /// The client group whose rate the map shades, or `None` for the rows' totals.
    fn rate_of(&self) -> Result<Option<ClientGroup>, Invalid> {
        match self.measure.as_deref().map(str::trim) {
            None | Some("") | Some("total") => Ok(None),
            Some(word) => ClientGroup::parse_word(word).map(Some).map_err(|unknown| {
                Invalid::one(
                    "measure",
                    format!(
                        "{} is not total or one of {}",
                        unknown.word, unknown.expected
                    ),
                )
            }),
        }
    }
}

/// England: the parent of the tables shown when none is asked for.
const ENGLAND: &str = "E92000001";

/// A release's number from the address: a number, or `latest`.
fn release_number(text: &str) -> Result<Option<u64>, Invalid> {
    match text {
        "latest" => Ok(None),
        number => number
            .parse()
            .map(Some)
            .map_err(|_| Invalid::one("release", "is a release number or latest")),
    }
}

/// One row of a published table.
pub struct TableLine {
    pub code: String,
    pub name: String,
    pub total: String,
    pub groups: Vec<String>,
    pub rate: String,
    /// A link to the table of the places within this one, if it has such a table.
    pub within: Option<String>,
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage {
    chrome: Chrome,
    number: u64,
    as_at: String,
    parent: String,
    parent_code: String,
    level: String,
    levels: Vec<LevelChoice>,
    measures: Vec<LevelChoice>,
    groups: Vec<String>,
    rows: Vec<TableLine>,
    total: TableLine,
    rate_of: String,
    map: String,
    csv: String,
}

/// One choice of a select on the release page.
pub struct LevelChoice {
    pub word: &'static str,
    pub label: String,
    pub selected: bool,
}

/// The level of the table of places within a place of `level`.
fn level_within(level: PlaceLevel) -> Option<PlaceLevel> {
    match level {
        PlaceLevel::Country => Some(PlaceLevel::Region),
        PlaceLevel::Region => Some(PlaceLevel::County),
        PlaceLevel::County => Some(PlaceLevel::District),
        PlaceLevel::PoliceForceArea => Some(PlaceLevel::CommunitySafetyPartnership),
        _ => None,
    }
}

/// One table of a release: the places at a level under a parent, their rounded and
/// suppressed counts, a map, and the tidy CSV to download.
pub async fn release(
    State(web): State<Web>,
    visitor: Visitor,
    Path(number): Path<String>,
    Query(query): Query<TableQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_COMPARATIVE_TABLE).await?;
    let answer = async {
        let number = release_number(&number)?;
        let level = query.level()?;
        let rate_of = query.rate_of()?;
        let table = web.app.comparative_table(
            &caller,
            &query.parent(),
            Some(level),
            &ViewFilter::default(),
            number,
        )?;
        let codes = table.table.table.places.iter().map(|p| p.code).collect();
        let shapes = web.app.shapes(codes).await?;
        Ok((level, rate_of, table, shapes))
    };
    let (level, rate_of, table, shapes) = visitor.conclude(&web, &caller, answer.await).await?;
    Ok(render(&ReleasePage::of(
        &visitor, level, rate_of, &table, &shapes,
    )))
}

impl ReleasePage {
    fn of(
        visitor: &Visitor,
        level: PlaceLevel,
        rate_of: Option<ClientGroup>,
        answer: &PublicTable,
        shapes: &[Option<Shape>],
    ) -> Self {
        let table = &answer.table.table;
        let groups = &table.by_client_group;
        let number = answer.release.number;
        let rate = |rates: &BTreeMap<ClientGroup, Rate>| {
            rate_of
                .and_then(|group| rates.get(&group))
                .map_or_else(String::new, |r| format!("{:.1}", r.per_10000))
        };
        let line = |place: &Place,
                    total: Published,
                    counts: &[Published],
                    rates: &BTreeMap<ClientGroup, Rate>| TableLine {
            code: place.code.to_string(),
            name: place.name.clone(),
            total: total.to_string(),
            groups: counts.iter().map(ToString::to_string).collect(),
            rate: rate(rates),
            within: level_within(place.level).map(|within| {
                format!(
                    "/releases/{number}?parent={}&level={}",
                    place.code,
                    within.word()
                )
            }),
        };
        let no_rates = BTreeMap::new();
        let rows: Vec<TableLine> = table
            .places
            .iter()
            .enumerate()
            .map(|(i, place)| {
                line(
                    place,
                    groups
                        .row_totals
                        .get(i)
                        .copied()
                        .unwrap_or(Published::Suppressed),
                    groups.cells.get(i).map_or(&[][..], Vec::as_slice),
                    answer.row_rates.get(i).unwrap_or(&no_rates),
                )
            })
            .collect();
        let total = line(
            &answer.table.parent,
            groups.total,
            &groups.column_totals,
            &answer.total_rates,
        );
        let measure = rate_of.map_or_else(
            || "Active risks (rounded)".to_string(),
            |group| format!("{} per 10,000", label(group)),
        );
        let areas = table
            .places
            .iter()
            .zip(shapes)
            .enumerate()
            .filter_map(|(i, (place, shape))| {
                let value = match rate_of {
                    Some(group) => answer
                        .row_rates
                        .get(i)
                        .and_then(|rates| rates.get(&group))
                        .map(|r| r.per_10000),
                    None => match groups.row_totals.get(i) {
                        Some(Published::Count(n)) => Some(*n as f64),
                        _ => None,
                    },
                };
                shape.as_ref().map(|shape| charts::map::Area {
                    code: place.code.to_string(),
                    name: place.name.clone(),
                    shape: map_shape(shape),
                    value,
                    context: false,
                })
            })
            .collect::<Vec<_>>();
        let parent = &answer.table.parent;
        let map = if areas.is_empty() {
            String::new()
        } else {
            charts::map::choropleth(&charts::map::Choropleth {
                id: "release-map".into(),
                title: format!("{measure}, {} within {}", label(level), parent.name),
                measure: measure.clone(),
                areas,
                highlight: None,
                decimals: usize::from(rate_of.is_some()),
            })
        };
        let measure_word = rate_of.map_or("total", |g| g.word());
        Self {
            chrome: Chrome::of(visitor),
            number,
            as_at: when(answer.release.as_at),
            parent: parent.name.clone(),
            parent_code: parent.code.to_string(),
            level: places_at(level).to_string(),
            levels: PUBLISHED_LEVELS
                .iter()
                .map(|l| LevelChoice {
                    word: l.word(),
                    label: label(*l),
                    selected: *l == level,
                })
                .collect(),
            measures: std::iter::once(LevelChoice {
                word: "total",
                label: "Active risks".into(),
                selected: rate_of.is_none(),
            })
            .chain(ClientGroup::ALL.iter().map(|g| LevelChoice {
                word: g.word(),
                label: format!("{} per 10,000", label(*g)),
                selected: Some(*g) == rate_of,
            }))
            .collect(),
            groups: ClientGroup::ALL.iter().map(|g| label(*g)).collect(),
            rows,
            total,
            rate_of: rate_of.map(label).unwrap_or_default(),
            map,
            csv: format!(
                "/releases/{number}/table.csv?parent={}&level={}&measure={measure_word}",
                parent.code,
                level.word()
            ),
        }
    }
}

/// A release's table in the tidy CSV layout, the same file `marr export` writes.
pub async fn release_csv(
    State(web): State<Web>,
    visitor: Visitor,
    Path(number): Path<String>,
    Query(query): Query<TableQuery>,
) -> Result<Response, PageError> {
    let caller = visitor.admit(&web, GET_COMPARATIVE_TABLE).await?;
    let table = (|| {
        let number = release_number(&number)?;
        let level = query.level()?;
        web.app
            .tidy_table(&caller, &query.parent(), Some(level), number)
    })();
    let table = visitor.conclude(&web, &caller, table).await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let written = std::iter::once(&table.header)
        .chain(&table.lines)
        .try_for_each(|line| writer.write_record(line));
    let body = written
        .map_err(|e| e.to_string())
        .and_then(|()| writer.into_inner().map_err(|e| e.to_string()))
        .map_err(|reason| {
            PageError::new(
                tonic::Status::internal(format!("cannot write the table: {reason}")),
                &visitor,
            )
        })?;
    let file = format!(
        "attachment; filename=\"marr-release-{}-{}-{}.csv\"",
        number.replace(|c: char| !c.is_ascii_alphanumeric(), ""),
        query
            .parent()
            .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
        query.level().map(|l| l.word()).unwrap_or("region"),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}
