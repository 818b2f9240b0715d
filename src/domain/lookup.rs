//! Reading ONS geography lookup tables into places and footprint memberships.
//!
//! Columns are recognised by their headers (`WD19CD`, `LAD21NM`, `PFA19CD`, …) so any vintage
//! works. A row is trusted to define a place's parent only when it reaches a country; any other
//! row must hang below a place that is already known, and is skipped (and reported) when it
//! does not, rather than given an invented parent.

use std::collections::{BTreeMap, HashMap};

use super::free_text::check_place_name;
use super::geography::{Alias, AliasScheme, Geography, Membership, Place, Succession};
use super::record::PlaceCode;
use super::vocabulary::PlaceLevel;

/// How many example rows the report keeps for each reason a row was skipped.
const EXAMPLES_PER_REASON: usize = 5;

/// One lookup table as read from a file: its header and its rows.
#[derive(Debug, Clone, Default)]
pub struct LookupTable {
    /// Usually the file name; used in the report.
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<LookupRow>,
}

/// One row of a lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRow {
    /// 1-based line number in the source, for the report.
    pub line: u64,
    pub cells: Vec<String>,
}

/// A table that cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("table `{table}` has no header row")]
    NoHeader { table: String },
    #[error(
        "table `{table}` has no recognised place column (expected ONS headers such as WD19CD, LAD21CD, UTLA23CD, RGN19CD, CTRY19CD, LSOA11CD, PFA19CD, CSP19CD, CCG20CD, SICBL24CD, ICB24CD, or ward_code, lad_code, new_la_code, region_code, ltla24_code, lsoa21_code; or a changes table with oldcd and newcd); found: {header}"
    )]
    UnrecognisedLayout { table: String, header: String },
}

/// How one table's columns were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    pub table: String,
    pub recognised: Vec<String>,
    pub ignored: Vec<String>,
}

impl TableLayout {
    /// A table read by the columns at `positions`, the rest ignored.
    pub(crate) fn of_columns(table: &LookupTable, positions: &[usize]) -> Self {
        let (recognised, ignored): (Vec<_>, Vec<_>) = table
            .header
            .iter()
            .enumerate()
            .partition(|(index, _)| positions.contains(index));
        let names = |columns: Vec<(usize, &String)>| {
            columns
                .into_iter()
                .map(|(_, h)| h.trim_start_matches('\u{feff}').to_string())
                .collect()
        };
        Self {
            table: table.name.clone(),
            recognised: names(recognised),
            ignored: names(ignored),
        }
    }
}

/// Rows skipped for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub rows: u64,
    /// A few of them, as `table:line`.
    pub examples: Vec<String>,
}

/// What an import did, for the person who ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows_read: u64,
    pub places_added: u64,
    /// Codes that replaced others (mergers, recodes) read from changes tables: rows naming
    /// an old code were read under its successor.
    pub code_changes: u64,
    /// Known places hung from a higher parent, where a newer table has no level between
    /// them (districts of a metropolitan county, now directly in their region).
    pub places_moved: u64,
    /// NHS ODS codes and DfE numbers newly kept for places.
    pub aliases_added: u64,
    /// Places newly known to have ended without a single successor.
    pub places_ended: u64,
    pub skipped: BTreeMap<String, Skipped>,
    pub layouts: Vec<TableLayout>,
}

impl ImportReport {
    pub fn rows_skipped(&self) -> u64 {
        rows_skipped(&self.skipped)
    }

    fn skip(&mut self, reason: String, table: &str, line: u64) {
        skip_row(&mut self.skipped, reason, table, line);
    }
}

/// Counts a skipped row under its reason, keeping a few `table:line` examples: the one way
/// every import reports what it passed over.
pub(crate) fn skip_row(
    skipped: &mut BTreeMap<String, Skipped>,
    reason: String,
    table: &str,
    line: u64,
) {
    let entry = skipped.entry(reason).or_default();
    entry.rows += 1;
    if entry.examples.len() < EXAMPLES_PER_REASON {
        entry.examples.push(format!("{table}:{line}"));
    }
}

/// Rows skipped, over every reason.
pub(crate) fn rows_skipped(skipped: &BTreeMap<String, Skipped>) -> u64 {
    skipped.values().map(|s| s.rows).sum()
}

/// The places and memberships an import adds, and its report.
#[derive(Debug, Clone, Default)]
pub struct ImportPlan {
    pub places: Vec<Place>,
    pub memberships: Vec<Membership>,
    /// Code changes the register did not know yet.
    pub successions: Vec<Succession>,
    /// Other organisations' codes for places, new or changed.
    pub aliases: Vec<Alias>,
    /// Places that ended without a single successor, newly known.
    pub ended: Vec<PlaceCode>,
    pub report: ImportReport,
}

/// The place level a column prefix stands for, in the ONS spelling (`LAD`, `UTLA`, `SICBL`)
/// or the Department for Education's (`lad`, `new_la`, `ward`, `region`).
fn level_of_prefix(prefix: &str) -> Option<PlaceLevel> {
    Some(match prefix {
        "CTRY" | "COUNTRY" => PlaceLevel::Country,
        "RGN" | "GOR" | "REGION" => PlaceLevel::Region,
        // Upper-tier authorities: shire counties, or the district itself where it is
        // unitary (a row naming the same code at both levels is read as the district).
        "CTY" | "UTLA" | "NEW_LA" | "LA" => PlaceLevel::County,
        "LAD" | "LTLA" => PlaceLevel::District,
        "WD" | "WARD" => PlaceLevel::Ward,
        "LSOA" => PlaceLevel::Lsoa,
        "PFA" => PlaceLevel::PoliceForceArea,
        "CSP" => PlaceLevel::CommunitySafetyPartnership,
        "CCG" => PlaceLevel::ClinicalCommissioningGroup,
        "SICBL" => PlaceLevel::SubIcbLocation,
        "ICB" => PlaceLevel::IntegratedCareBoard,
        _ => return None,
    })
}

/// Reads a header such as `LAD19CD`, `UTLA23NM`, `ltla24_code` or `region_name` into its level
/// and whether it holds codes (or names). A year, where there is one, is two digits.
fn read_header(header: &str) -> Option<(PlaceLevel, bool)> {
    let header = header
        .trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_uppercase();
    let (stem, is_code, year_needed) = if let Some(stem) = header.strip_suffix("_CODE") {
        (stem, true, false)
    } else if let Some(stem) = header.strip_suffix("_NAME") {
        (stem, false, false)
    } else if let Some(stem) = header.strip_suffix("CD") {
        (stem, true, true)
    } else if let Some(stem) = header.strip_suffix("NM") {
        (stem, false, true)
    } else {
        return None;
    };
    let prefix = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    let year = &stem[prefix.len()..];
    if year.len() != 2 && (year_needed || !year.is_empty()) {
        return None;
    }
    level_of_prefix(prefix).map(|level| (level, is_code))
}

/// Reads a header naming another organisation's code for a level's places: the NHS ODS codes
/// beside ONS ones (`sicbl24_code_nhs`, `icb24_code_nhs`) and the Department for Education's
/// local authority numbers (`old_la_code`, beside `new_la_code`).
fn read_alias_header(header: &str) -> Option<(PlaceLevel, AliasScheme)> {
    let header = header
        .trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_uppercase();
    if header == "OLD_LA_CODE" {
        return Some((PlaceLevel::County, AliasScheme::Dfe));
    }
    let stem = header.strip_suffix("_CODE_NHS")?;
    let prefix = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    let year = &stem[prefix.len()..];
    if !year.is_empty() && year.len() != 2 {
        return None;
    }
    level_of_prefix(prefix).map(|level| (level, AliasScheme::Ods))
}

/// The columns that say which years a row holds (the Department for Education's ward
/// lookup): only rows of the table's latest year are the geography as it is.
#[derive(Debug, Clone, Copy)]
struct Years {
    first: usize,
    last: usize,
}

impl Years {
    fn of(header: &[String]) -> Option<Self> {
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
        };
        Some(Self {
            first: find("first_available_year_included")?,
            last: find("most_recent_year_included")?,
        })
    }

    /// The years a row holds, or `None` when they are not numbers.
    fn of_row(self, row: &LookupRow) -> Option<(u16, u16)> {
        let year = |i: usize| row.cells.get(i)?.trim().parse::<u16>().ok();
        Some((year(self.first)?, year(self.last)?))
    }
}

/// A table of code changes (ONS `oldcd,newcd,type`, or a year-to-year district lookup such as
/// `ltla22_code,ltla23_code`): which code replaced which, so that rows of other tables naming
/// an old code are read under the current one.
#[derive(Debug, Clone, Copy)]
struct Changes {
    old: usize,
    new: usize,
    kind: Option<usize>,
}

impl Changes {
    fn of(header: &[String]) -> Option<Self> {
        let find = |names: &[&str]| {
            header.iter().position(|h| {
                let h = h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
                names.contains(&h.as_str())
            })
        };
        let (old, new) = match (find(&["oldcd"]), find(&["newcd"])) {
            (Some(old), Some(new)) => (old, new),
            _ => (
                find(&["ltla22_code", "lad22cd"])?,
                find(&["ltla23_code", "lad23cd"])?,
            ),
        };
        Some(Self {
            old,
            new,
            kind: find(&["type"]),
        })
    }

    /// The change a row records, `Ok(None)` when the code did not change, or why it is not
    /// read as a change of place (a new combined authority, which replaces nothing).
    fn of_row(self, row: &LookupRow) -> Result<Option<Change>, String> {
        let cell = |i: usize| row.cells.get(i).map(|c| c.trim()).unwrap_or("");
        let parse = |i: usize, what: &str| {
            PlaceCode::parse(cell(i)).map_err(|_| format!("a {what} without a GSS code"))
        };
        match self.kind.map(|i| cell(i).to_ascii_lowercase()).as_deref() {
            None | Some("merger" | "new_code") => {}
            Some("termination") => return Ok(Some(Change::Ended(parse(self.old, "termination")?))),
            // The type is echoed only when it looks like one: a cell may hold anything.
            Some(kind)
                if (1..=24).contains(&kind.len())
                    && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                return Err(format!("a {kind}, not a change of code"));
            }
            Some(_) => return Err("a change of an unknown type, not a change of code".into()),
        }
        let (old, new) = (parse(self.old, "change")?, parse(self.new, "change")?);
        Ok((old != new).then_some(Change::Replaced(old, new)))
    }
}

/// What a changes table says of a code.
enum Change {
    /// Replaced by another code (a merger, or a recode with the same boundary).
    Replaced(PlaceCode, PlaceCode),
    /// Ended with no single successor (a county council split between unitary authorities).
    Ended(PlaceCode),
}

/// The code that replaced `code` in the end, following a chain of changes.
fn successor(successors: &HashMap<PlaceCode, PlaceCode>, code: PlaceCode) -> PlaceCode {
    let mut current = code;
    // Chains are short; a cycle in a bad table must not loop.
    for _ in 0..8 {
        match successors.get(&current) {
            Some(next) => current = *next,
            None => break,
        }
    }
    current
}

/// Where one level's code and name sit in a table.
#[derive(Debug, Clone, Copy)]
struct Column {
    level: PlaceLevel,
    code: usize,
    name: Option<usize>,
    /// Another organisation's code for the same place, and who issued it.
    alias: Option<(usize, AliasScheme)>,
}

fn layout_of(table: &LookupTable) -> Result<(Vec<Column>, TableLayout), LookupError> {
    if table.header.is_empty() {
        return Err(LookupError::NoHeader {
            table: table.name.clone(),
        });
    }
    let mut columns: Vec<Column> = Vec::new();
    let mut names: HashMap<PlaceLevel, usize> = HashMap::new();
    let mut aliases: HashMap<PlaceLevel, (usize, AliasScheme)> = HashMap::new();
    let mut layout = TableLayout {
        table: table.name.clone(),
        recognised: Vec::new(),
        ignored: Vec::new(),
    };
    for (index, header) in table.header.iter().enumerate() {
        if let Some((level, scheme)) = read_alias_header(header) {
            aliases.entry(level).or_insert((index, scheme));
            layout.recognised.push(header.clone());
            continue;
        }
        match read_header(header) {
            Some((level, true)) if !columns.iter().any(|c| c.level == level) => {
                columns.push(Column {
                    level,
                    code: index,
                    name: None,
                    alias: None,
                });
                layout.recognised.push(header.clone());
            }
            Some((level, false)) if !names.contains_key(&level) => {
                names.insert(level, index);
                layout.recognised.push(header.clone());
            }
            _ => layout.ignored.push(header.clone()),
        }
    }
    if columns.is_empty() {
        return Err(LookupError::UnrecognisedLayout {
            table: table.name.clone(),
            header: table.header.join(","),
        });
    }
    for column in &mut columns {
        column.name = names.get(&column.level).copied();
        column.alias = aliases.get(&column.level).copied();
    }
    // Coarsest first, so a row reads as a path down the tree.
    columns.sort_by_key(|c| std::cmp::Reverse(c.level.rank()));
    Ok((columns, layout))
}

/// A row read into places, coarsest tree place first, then its footprint areas.
struct RowPlaces {
    tree: Vec<(PlaceLevel, PlaceCode, String)>,
    areas: Vec<(PlaceLevel, PlaceCode, String)>,
    /// Other organisations' codes the row gives for its places.
    aliases: Vec<Alias>,
}

fn read_row(columns: &[Column], header: &[String], row: &LookupRow) -> Result<RowPlaces, String> {
    let mut read = RowPlaces {
        tree: Vec::new(),
        areas: Vec::new(),
        aliases: Vec::new(),
    };
    for column in columns {
        let code = row.cells.get(column.code).map(|c| c.trim()).unwrap_or("");
        if code.is_empty() {
            continue;
        }
        let code = PlaceCode::parse(code)
            .map_err(|_| format!("column {} does not hold GSS codes", header[column.code]))?;
        let name = column
            .name
            .and_then(|i| row.cells.get(i))
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        // Names are shown to every reader, so one that could hide or reverse text is refused.
        if let (Some(index), Err(refusal)) = (column.name, check_place_name(&name)) {
            return Err(format!("column {} {refusal}", header[index]));
        }
        let name = if name.is_empty() {
            code.to_string()
        } else {
            name
        };
        // An alias of the wrong shape (the DfE's `z` for a place without a number) is not kept.
        if let Some((index, scheme)) = column.alias {
            let alias = row.cells.get(index).map(|c| c.trim()).unwrap_or("");
            if scheme.admits(alias) {
                read.aliases.push(Alias {
                    scheme,
                    alias: alias.to_string(),
                    place: code,
                });
            }
        }
        if column.level.is_footprint() {
            read.areas.push((column.level, code, name));
        } else {
            read.tree.push((column.level, code, name));
        }
    }
    if read.tree.is_empty() {
        return Err("no place code in the row".to_string());
    }
    Ok(read)
}

impl RowPlaces {
    /// Reads every code as the code that replaced it, and makes a code named at two levels
    /// one place: a region column repeating the country (Wales, Scotland and Northern
    /// Ireland have no regions) is the country; an upper-tier column repeating the district
    /// (a unitary authority, a metropolitan district, a London borough) is the district.
    fn settle(&mut self, successors: &HashMap<PlaceCode, PlaceCode>) {
        for entry in self.tree.iter_mut().chain(self.areas.iter_mut()) {
            entry.1 = successor(successors, entry.1);
        }
        for alias in &mut self.aliases {
            alias.place = successor(successors, alias.place);
        }
        let mut tree: Vec<(PlaceLevel, PlaceCode, String)> = Vec::with_capacity(self.tree.len());
        for entry in self.tree.drain(..) {
            match tree.last() {
                Some(last) if last.1 == entry.1 && last.0 == PlaceLevel::Country => {}
                Some(last) if last.1 == entry.1 => {
                    tree.pop();
                    tree.push(entry);
                }
                _ => tree.push(entry),
            }
        }
        self.tree = tree;
    }
}

/// Working state of an import: what the store knows plus what this import adds.
struct Planner<'a> {
    existing: &'a Geography,
    /// Every code change, known before or read in this import.
    successors: HashMap<PlaceCode, PlaceCode>,
    /// Aliases this import keeps, so a repeated row keeps one.
    aliases_seen: HashMap<(AliasScheme, String), PlaceCode>,
    added: HashMap<PlaceCode, Place>,
    plan: ImportPlan,
    memberships_seen: std::collections::HashSet<Membership>,
}

impl Planner<'_> {
    fn known(&self, code: PlaceCode) -> Option<&Place> {
        self.added.get(&code).or_else(|| self.existing.place(code))
    }

    /// A parent as it stands after every code change known.
    fn current(&self, code: Option<PlaceCode>) -> Option<PlaceCode> {
        code.map(|c| successor(&self.successors, c))
    }

    /// Whether a parent is a level today's geography no longer has: a metropolitan county
    /// (E11, without a council since 1986), or a place that ended or was replaced.
    fn no_longer_a_level(&self, parent: Option<PlaceCode>) -> bool {
        parent.is_some_and(|code| {
            code.as_str().starts_with("E11")
                || self.existing.has_ended(code)
                || self.plan.ended.contains(&code)
                || self.successors.contains_key(&code)
        })
    }

    /// Whether `upper` is one of `lower`'s ancestors, as the tree stands in this import.
    fn lies_above(&self, upper: Option<PlaceCode>, lower: Option<PlaceCode>) -> bool {
        let mut next = lower;
        for _ in 0..16 {
            next = self.current(next.and_then(|c| self.known(c)).and_then(|p| p.parent));
            match next {
                Some(code) if Some(code) == upper => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    /// The places a tree path defines, each with its parent; leaves hang from the finest
    /// non-leaf on the path. `anchor` is the parent of the path's first place.
    fn path_places(
        tree: &[(PlaceLevel, PlaceCode, String)],
        anchor: Option<PlaceCode>,
    ) -> Vec<Place> {
        let mut places = Vec::with_capacity(tree.len());
        let mut parent = anchor;
        for (level, code, name) in tree {
            places.push(Place {
                code: *code,
                name: name.clone(),
                level: *level,
                parent,
            });
            if level.rank() > 1 {
                parent = Some(*code);
            }
        }
        places
    }

    /// Applies one row, or says why it is skipped; a skipped row changes nothing.
    fn apply(&mut self, row: &RowPlaces) -> Result<(), String> {
        let (top_level, top_code, _) = &row.tree[0];
        let defined = if *top_level == PlaceLevel::Country {
            Self::path_places(&row.tree, None)
        } else {
            match self.known(*top_code) {
                Some(top) if top.level == *top_level => {
                    // Wards come from ward tables, which reach a country: a ward that a
                    // table below a known place names but the tree lacks (a ward of an
                    // earlier year in a best-fit table) is passed over, not added.
                    let path: Vec<_> = row
                        .tree
                        .iter()
                        .filter(|(level, code, _)| {
                            *level != PlaceLevel::Ward || self.known(*code).is_some()
                        })
                        .cloned()
                        .collect();
                    Self::path_places(&path, top.parent)
                }
                Some(top) => {
                    return Err(format!(
                        "{top_code} is a {} elsewhere, not a {top_level}",
                        top.level
                    ));
                }
                None => {
                    return Err(format!("{top_level} {top_code} is not in the place tree"));
                }
            }
        };
        let mut moved = Vec::new();
        for place in &defined {
            let Some(known) = self.known(place.code) else {
                continue;
            };
            let (was, now) = (self.current(known.parent), self.current(place.parent));
            if known.level == place.level && was == now {
                continue;
            }
            // A level the newer geography no longer has between a place and its parent (a
            // metropolitan county above its districts, a county council that has ended) is
            // dropped: the place moves up to a place it already lay in. A table that merely
            // leaves a living county out does not move its districts.
            if known.level == place.level
                && now.is_some()
                && self.no_longer_a_level(was)
                && self.lies_above(now, was)
            {
                moved.push(place.code);
                continue;
            }
            {
                return Err(format!(
                    "{} {} conflicts with the known {} under {}",
                    place.level,
                    place.code,
                    known.level,
                    known
                        .parent
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "no parent".into())
                ));
            }
        }
        let member = row.tree[row.tree.len() - 1].1;
        for (level, code, _) in &row.areas {
            if let Some(known) = self.known(*code)
                && known.level != *level
            {
                return Err(format!(
                    "{code} is a {} elsewhere, not a {level}",
                    known.level
                ));
            }
        }
        for place in defined {
            if moved.contains(&place.code) {
                self.plan.report.places_moved += 1;
                self.plan.places.retain(|p| p.code != place.code);
                self.plan.places.push(place.clone());
                self.added.insert(place.code, place);
            } else if self.known(place.code).is_none() {
                self.plan.report.places_added += 1;
                self.plan.places.push(place.clone());
                self.added.insert(place.code, place);
            }
        }
        for (level, code, name) in &row.areas {
            if self.known(*code).is_none() {
                let area = Place {
                    code: *code,
                    name: name.clone(),
                    level: *level,
                    parent: None,
                };
                self.plan.report.places_added += 1;
                self.plan.places.push(area.clone());
                self.added.insert(*code, area);
            }
            let membership = Membership {
                area: *code,
                member,
            };
            let already = self.existing.areas_listing(member).contains(code);
            if !already && self.memberships_seen.insert(membership) {
                self.plan.memberships.push(membership);
            }
        }
        for alias in &row.aliases {
            let known = self.existing.by_alias(alias.scheme, &alias.alias);
            let planned = self.aliases_seen.get(&(alias.scheme, alias.alias.clone()));
            if known != Some(alias.place) && planned != Some(&alias.place) {
                self.aliases_seen
                    .insert((alias.scheme, alias.alias.clone()), alias.place);
                self.plan.report.aliases_added += 1;
                self.plan.aliases.push(alias.clone());
            }
        }
        Ok(())
    }
}

/// Works out what importing `tables` adds to `existing`. Tables may come in any order: rows
/// that reach a country are applied first, then the rows that hang below known places.
pub fn plan_import(
    existing: &Geography,
    tables: &[LookupTable],
) -> Result<ImportPlan, LookupError> {
    let mut read = Vec::with_capacity(tables.len());
    let mut planner = Planner {
        existing,
        successors: HashMap::new(),
        aliases_seen: HashMap::new(),
        added: HashMap::new(),
        plan: ImportPlan::default(),
        memberships_seen: Default::default(),
    };
    // Changes tables first, so every other table's old codes read as current ones; the
    // changes the register already knows apply as well.
    let mut successors: HashMap<PlaceCode, PlaceCode> = existing
        .successions()
        .into_iter()
        .map(|s| (s.predecessor, s.successor))
        .collect();
    let (change_tables, place_tables): (Vec<&LookupTable>, Vec<&LookupTable>) = tables
        .iter()
        .partition(|table| Changes::of(&table.header).is_some());
    for table in &place_tables {
        let (columns, layout) = layout_of(table)?;
        planner.plan.report.layouts.push(layout);
        read.push(columns);
    }
    // A change is taken only to a place the register knows or these tables name: a change to
    // a code nowhere in the tree would leave the old code's records outside every place.
    let mut named: std::collections::HashSet<PlaceCode> = std::collections::HashSet::new();
    for (table, columns) in place_tables.iter().zip(&read) {
        for row in &table.rows {
            for column in columns {
                if let Some(Ok(code)) = row
                    .cells
                    .get(column.code)
                    .map(|c| PlaceCode::parse(c.trim()))
                {
                    named.insert(code);
                }
            }
        }
    }
    // Every change the tables give, so that a code given two successors (a split) is known
    // before any is taken.
    let mut given: Vec<(&str, u64, Change)> = Vec::new();
    let mut successors_given: HashMap<PlaceCode, std::collections::HashSet<PlaceCode>> =
        HashMap::new();
    for table in &change_tables {
        let Some(changes) = Changes::of(&table.header) else {
            continue;
        };
        planner.plan.report.layouts.push(TableLayout {
            table: table.name.clone(),
            recognised: vec!["code changes".into()],
            ignored: Vec::new(),
        });
        for row in &table.rows {
            planner.plan.report.rows_read += 1;
            match changes.of_row(row) {
                Ok(Some(change)) => {
                    if let Change::Replaced(old, new) = change {
                        successors_given.entry(old).or_default().insert(new);
                    }
                    given.push((table.name.as_str(), row.line, change));
                }
                Ok(None) => {}
                Err(reason) => planner.plan.report.skip(reason, &table.name, row.line),
            }
        }
    }
    for (table, line, change) in given {
        match change {
            Change::Ended(code) => {
                if !planner.existing.has_ended(code) && !planner.plan.ended.contains(&code) {
                    planner.plan.report.places_ended += 1;
                    planner.plan.ended.push(code);
                }
            }
            Change::Replaced(old, _) if successors_given[&old].len() > 1 => {
                let reason =
                    format!("{old} is given more than one successor (a split): none is taken");
                planner.plan.report.skip(reason, table, line);
            }
            Change::Replaced(old, new)
                if successors.get(&old).is_some_and(|known| *known != new) =>
            {
                let reason = format!("{old} already has another successor: it is not changed");
                planner.plan.report.skip(reason, table, line);
            }
            Change::Replaced(old, new) if successor(&successors, new) == old => {
                let reason = format!("{old} → {new} would undo a known change");
                planner.plan.report.skip(reason, table, line);
            }
            Change::Replaced(_, new) if existing.place(new).is_none() && !named.contains(&new) => {
                let reason =
                    format!("{new}, the successor, is not a known place nor in these tables");
                planner.plan.report.skip(reason, table, line);
            }
            Change::Replaced(old, new) => {
                if successors.insert(old, new) != Some(new) {
                    planner.plan.report.code_changes += 1;
                    planner.plan.successions.push(Succession {
                        predecessor: old,
                        successor: new,
                    });
                }
            }
        }
    }
    planner.successors = successors.clone();
    let mut deferred = Vec::new();
    let mut earlier_aliases = Vec::new();
    for (table, columns) in place_tables.iter().copied().zip(&read) {
        let years = Years::of(&table.header);
        let latest = years.and_then(|years| {
            table
                .rows
                .iter()
                .filter_map(|row| years.of_row(row))
                .map(|(_, last)| last)
                .max()
        });
        for row in &table.rows {
            planner.plan.report.rows_read += 1;
            if let (Some(years), Some(latest)) = (years, latest) {
                match years.of_row(row) {
                    Some((first, last)) if first <= latest && latest <= last => {}
                    Some(_) => {
                        let reason = format!("not current: the table's latest year is {latest}");
                        planner.plan.report.skip(reason, &table.name, row.line);
                        // An earlier year may still give a place's alias that today's rows
                        // leave out (Barnsley's and Sheffield's DfE numbers after their
                        // recode): kept after every current row, where nothing else gives it.
                        if let Ok(mut places) = read_row(columns, &table.header, row) {
                            places.settle(&successors);
                            earlier_aliases.extend(places.aliases);
                        }
                        continue;
                    }
                    None => {
                        let reason = "its years are not numbers".to_string();
                        planner.plan.report.skip(reason, &table.name, row.line);
                        continue;
                    }
                }
            }
            let settled = read_row(columns, &table.header, row).map(|mut places| {
                places.settle(&successors);
                places
            });
            match settled {
                Ok(places) if places.tree[0].0 == PlaceLevel::Country => {
                    if let Err(reason) = planner.apply(&places) {
                        planner.plan.report.skip(reason, &table.name, row.line);
                    }
                }
                Ok(places) => deferred.push((table.name.as_str(), row.line, places)),
                Err(reason) => planner.plan.report.skip(reason, &table.name, row.line),
            }
        }
    }
    for (table, line, places) in deferred {
        if let Err(reason) = planner.apply(&places) {
            planner.plan.report.skip(reason, table, line);
        }
    }
    for alias in earlier_aliases {
        let key = (alias.scheme, alias.alias.clone());
        if planner.known(alias.place).is_some()
            && planner
                .existing
                .by_alias(alias.scheme, &alias.alias)
                .is_none()
            && !planner.aliases_seen.contains_key(&key)
        {
            planner.aliases_seen.insert(key, alias.place);
            planner.plan.report.aliases_added += 1;
            planner.plan.aliases.push(alias);
        }
    }
    Ok(planner.plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, header: &str, rows: &[&str]) -> LookupTable {
        LookupTable {
            name: name.into(),
            header: header.split(',').map(str::to_string).collect(),
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, row)| LookupRow {
                    line: i as u64 + 2,
                    cells: row.split(',').map(str::to_string).collect(),
                })
                .collect(),
        }
    }

    fn code(c: &str) -> PlaceCode {
        PlaceCode::parse(c).expect("code")
    }

    fn apply(geography: &mut Geography, plan: ImportPlan) {
        for place in plan.places {
            geography.insert_place(place);
        }
        for membership in plan.memberships {
            geography.insert_membership(membership);
        }
        for succession in plan.successions {
            geography.insert_succession(succession);
        }
        for code in plan.ended {
            geography.insert_ended(code);
        }
    }

    fn wards() -> LookupTable {
        table(
            "wards",
            "\u{feff}FID,WD19CD,WD19NM,LAD19CD,LAD19NM,CTY19CD,CTY19NM,RGN19CD,RGN19NM,CTRY19CD,CTRY19NM",
            &[
                "1,E05011451,Lemington,E08000021,Newcastle upon Tyne,E11000007,Tyne and Wear,E12000001,North East,E92000001,England",
                "2,E05000001,Aldgate,E09000001,City of London,,,E12000007,London,E92000001,England",
                "3,W05000001,Aberdaron,W06000001,Isle of Anglesey,,,,,W92000004,Wales",
            ],
        )
    }

    fn police() -> LookupTable {
        table(
            "police",
            "FID,LAD21CD,LAD21NM,PFA21CD,PFA21NM",
            &[
                "1,E08000021,Newcastle upon Tyne,E23000007,Northumbria",
                "2,E06000060,Buckinghamshire,E23000043,Thames Valley",
            ],
        )
    }

    #[test]
    fn a_name_that_could_hide_or_reverse_text_skips_its_row() {
        let geography = Geography::default();
        let spoofed = table(
            "wards",
            "WD19CD,WD19NM,LAD19CD,LAD19NM,RGN19CD,RGN19NM,CTRY19CD,CTRY19NM",
            &[
                "E05011451,Lemington,E08000021,Newcastle upon Tyne,E12000001,North East,E92000001,England",
                "E05011452,Elswick\u{202E}kciwslE,E08000021,Newcastle upon Tyne,E12000001,North East,E92000001,England",
            ],
        );
        let plan = plan_import(&geography, &[spoofed]).expect("plan");
        assert_eq!(plan.report.rows_skipped(), 1);
        let (reason, _) = plan.report.skipped.iter().next().expect("one reason");
        assert!(reason.contains("WD19NM"), "{reason}");
        assert!(reason.contains("bidirectional"), "{reason}");
        assert!(
            plan.places.iter().all(|p| p.code != code("E05011452")),
            "the spoofed ward is not added"
        );
    }

    #[test]
    fn footprints_may_come_before_the_tree_and_unknown_parents_are_skipped_not_invented() {
        let mut geography = Geography::default();
        let plan = plan_import(&geography, &[police(), wards()]).expect("plan");
        assert_eq!(plan.report.rows_read, 5);
        assert_eq!(plan.report.rows_skipped(), 1);
        let (reason, skipped) = plan.report.skipped.iter().next().expect("one reason");
        assert!(reason.contains("E06000060"), "{reason}");
        assert_eq!(skipped.examples, vec!["police:3"]);
        apply(&mut geography, plan);

        assert!(
            geography.place(code("E06000060")).is_none(),
            "no invented district"
        );
        assert!(
            geography.place(code("E23000043")).is_none(),
            "no area for a skipped row"
        );
        let ward = code("E05011451");
        let chain: Vec<&str> = geography
            .ancestors(ward)
            .iter()
            .map(|p| p.code.as_str())
            .collect();
        assert_eq!(
            chain,
            vec!["E08000021", "E11000007", "E12000001", "E92000001"]
        );
        let welsh: Vec<&str> = geography
            .ancestors(code("W05000001"))
            .iter()
            .map(|p| p.code.as_str())
            .collect();
        assert_eq!(welsh, vec!["W06000001", "W92000004"], "Wales has no region");
        assert!(
            geography.within(ward, code("E23000007")),
            "a ward lies in its district's force area"
        );
        assert!(!geography.within(code("E05000001"), code("E23000007")));
    }

    #[test]
    fn importing_twice_adds_nothing_and_repeated_rows_are_harmless() {
        let mut geography = Geography::default();
        let mut doubled = wards();
        doubled.rows.extend(wards().rows);
        let plan = plan_import(&geography, &[doubled]).expect("plan");
        assert_eq!(plan.report.rows_skipped(), 0);
        assert_eq!(plan.places.len(), 3 + 3 + 1 + 2 + 2);
        apply(&mut geography, plan);
        let again = plan_import(&geography, &[wards(), police()]).expect("plan");
        assert_eq!(
            again.report.places_added, 1,
            "only the police force area is new"
        );
        assert_eq!(again.memberships.len(), 1);
    }

    #[test]
    fn a_row_that_moves_a_known_place_is_skipped() {
        let mut geography = Geography::default();
        let plan = plan_import(&geography, &[wards()]).expect("plan");
        apply(&mut geography, plan);
        let moved = table(
            "moved",
            "WD19CD,WD19NM,LAD19CD,LAD19NM",
            &["E05011451,Lemington,E09000001,City of London"],
        );
        let plan = plan_import(&geography, &[moved]).expect("plan");
        assert_eq!(plan.report.rows_skipped(), 1);
        assert!(plan.places.is_empty());
    }

    #[test]
    fn a_table_without_place_columns_is_an_error() {
        let error = plan_import(&Geography::default(), &[table("people", "NAME,AGE", &[])])
            .expect_err("refused");
        assert!(matches!(error, LookupError::UnrecognisedLayout { .. }));
    }

    #[test]
    fn a_table_without_counties_leaves_shire_districts_in_their_county() {
        let mut geography = Geography::default();
        let kent = table(
            "wards",
            "WD19CD,WD19NM,LAD19CD,LAD19NM,CTY19CD,CTY19NM,RGN19CD,RGN19NM,CTRY19CD,CTRY19NM",
            &[
                "E05004997,Aylesford,E07000105,Ashford,E10000016,Kent,E12000008,South East,E92000001,England",
            ],
        );
        let plan = plan_import(&geography, &[kent]).expect("plan");
        apply(&mut geography, plan);
        let no_county = table(
            "districts",
            "LAD24CD,LAD24NM,RGN24CD,RGN24NM,CTRY24CD,CTRY24NM",
            &["E07000105,Ashford,E12000008,South East,E92000001,England"],
        );
        let plan = plan_import(&geography, &[no_county]).expect("plan");
        assert_eq!(plan.report.places_moved, 0);
        assert!(plan.places.is_empty(), "{:?}", plan.places);
        assert_eq!(
            plan.report.rows_skipped(),
            1,
            "a conflicting row is reported"
        );
    }

    #[test]
    fn a_split_and_a_change_to_an_unknown_code_are_refused() {
        let mut geography = Geography::default();
        let plan = plan_import(&geography, &[wards()]).expect("plan");
        apply(&mut geography, plan);
        let changes = table(
            "changes",
            "oldcd,oldnm,newcd,newnm,type,start",
            &[
                // A split: the old code is given two successors.
                "E09000001,City of London,E08000021,Newcastle upon Tyne,merger,2025",
                "E09000001,City of London,W06000001,Isle of Anglesey,merger,2025",
                // A successor that is nowhere in the tree.
                "E05011451,Lemington,E05099999,Nowhere,new_code,2025",
            ],
        );
        let plan = plan_import(&geography, &[changes]).expect("plan");
        assert!(plan.successions.is_empty(), "{:?}", plan.successions);
        assert_eq!(plan.report.rows_skipped(), 3, "{:?}", plan.report.skipped);
    }

    #[test]
    fn a_scope_naming_a_merged_district_covers_what_was_under_it_not_its_successor() {
        let mut geography = Geography::default();
        // The old districts first, as an earlier import held them; the changes later.
        let tables = [table(
            "wards",
            "WD19CD,WD19NM,LAD19CD,LAD19NM,RGN19CD,RGN19NM,CTRY19CD,CTRY19NM",
            &[
                "E05011309,Boroughbridge,E07000165,Harrogate,E12000003,Yorkshire,E92000001,England",
                "E05011400,Selby ward,E07000169,Selby,E12000003,Yorkshire,E92000001,England",
                "E05099001,A ward,E06000065,North Yorkshire,E12000003,Yorkshire,E92000001,England",
            ],
        )];
        let plan = plan_import(&geography, &tables).expect("plan");
        apply(&mut geography, plan);
        let tables = [table(
            "changes",
            "oldcd,oldnm,newcd,newnm,type,start",
            &[
                "E07000165,Harrogate,E06000065,North Yorkshire,merger,2023",
                "E07000169,Selby,E06000065,North Yorkshire,merger,2023",
            ],
        )];
        let plan = plan_import(&geography, &tables).expect("plan");
        apply(&mut geography, plan);
        let (harrogate, old_ward) = (code("E07000165"), code("E05011309"));
        assert!(geography.within(old_ward, code("E06000065")), "re-homed");
        assert!(
            geography.within(old_ward, harrogate),
            "still under the old district"
        );
        assert!(
            !geography.within(code("E05011400"), harrogate),
            "not Selby's"
        );
        assert!(
            !geography.within(code("E05099001"), harrogate),
            "not today's wards"
        );
        assert!(
            !geography.covers(harrogate, code("E06000065")),
            "not the whole successor"
        );
    }
}
