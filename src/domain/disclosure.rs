//! Disclosure control for published tables: no count that could identify a person leaves the
//! server, and none can be worked back from the totals published beside it.
//!
//! - Counts from 1 to 4 are suppressed (published as `c`).
//! - Contributor-aware: a count is also suppressed when, for any single agency contributing
//!   to the table, the records of the other agencies in it number 1 to 4. Every partner
//!   agency knows its own records, so it could otherwise subtract them and learn the others'
//!   small count (the rule business statistics applies to its respondents).
//! - Every other count, totals included, is rounded to the nearest 5.
//! - Secondary suppression: wherever a row or a column (with its total) would show exactly one
//!   suppressed cell, the next smallest cell in it is suppressed too, repeated until no line
//!   has exactly one, so subtracting the visible cells from a total never isolates one; and
//!   then, attacking the table as each contributor would (its own records subtracted, rows
//!   and columns differenced, this release beside the previous one), more cells until none
//!   of the others' counts of 1 to 4 can be told apart from "0 to 4".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::inspection::PlaceView;
use super::{AgencyId, ClientGroup, Place, RiskCategory, Vocabulary};

/// A count as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Published {
    /// Rounded to the nearest 5.
    Count(u64),
    /// Not shown (`c`).
    Suppressed,
}

impl Published {
    /// Whether the count is withheld.
    pub fn is_suppressed(self) -> bool {
        self == Published::Suppressed
    }
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Published::Count(n) => write!(f, "{n}"),
            Published::Suppressed => f.write_str("c"),
        }
    }
}

/// Smallest count shown; anything from 1 below it is suppressed.
pub const SMALLEST_SHOWN: u64 = 5;

/// Rounds to the nearest multiple of 5 (halves cannot occur for whole numbers).
pub fn round_to_five(count: u64) -> u64 {
    (count + 2) / 5 * 5
}

/// A table ready to publish: cells by row and column, with the row totals, the column totals
/// and the grand total, all under disclosure control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedTable {
    pub cells: Vec<Vec<Published>>,
    pub row_totals: Vec<Published>,
    pub column_totals: Vec<Published>,
    pub total: Published,
}

/// A release's shown counts (`None` where suppressed) beside each contributor's shares then,
/// laid out alike.
type Shown = (Vec<Option<u64>>, Vec<Vec<u64>>);

/// What one party could read from a release: an interval for everyone else's share of each
/// count (before differencing lines), beside the true shares it bounds.
type Deduced = (Vec<(i64, i64)>, Vec<u64>);

/// Which counts of a table are suppressed: the body and its margins (totals take part in
/// secondary suppression like any other count), laid out by the table's lines.
struct Mask {
    /// Every count, body and margins.
    counts: Vec<u64>,
    /// Each contributor's share of every count, laid out as `counts`.
    own: Vec<Vec<u64>>,
    hidden: Vec<bool>,
    /// For each contributor (then the outsider), what the previous release of the table let
    /// it read about everyone else's counts, and what those counts were then.
    earlier: Vec<Deduced>,
}

/// Whether an interval someone has worked out for a count of 1 to 4 still tells them nothing
/// more than a suppressed cell does: it runs from 0 (none at all) to at least 4, at least the
/// width of the rounding.
fn hides_small(lo: i64, hi: i64) -> bool {
    lo <= 0 && hi >= SMALLEST_SHOWN as i64 - 1
}

/// Whether a count (of a cell, or of several cells together) must not be shown: it is 1 to
/// 4, or some contributor's share leaves 1 to 4 for everyone else.
fn unsafe_count(count: u64, shares: impl IntoIterator<Item = u64>) -> bool {
    let small = |n: u64| (1..SMALLEST_SHOWN).contains(&n);
    small(count) || shares.into_iter().any(|share| small(count - share))
}

impl Mask {
    /// Protects one line (its cells, ending with its total). A line with exactly one
    /// suppressed cell gets a second. A line whose total is shown gives away the sum of its
    /// suppressed cells (to within the rounding), so while that sum would itself be unsafe
    /// to show, another cell is suppressed. Answers whether it changed anything.
    fn protect(&mut self, line: &[usize]) -> bool {
        let hidden: Vec<usize> = line.iter().copied().filter(|&i| self.hidden[i]).collect();
        let exposed = match hidden.len() {
            0 => false,
            1 => true,
            _ => {
                let (total, cells) = line
                    .split_last()
                    .map_or((None, &[][..]), |(t, c)| (Some(*t), c));
                let total_shown = total.is_some_and(|t| !self.hidden[t]);
                let sum = |counts: &[u64]| -> u64 { hidden.iter().map(|&i| counts[i]).sum() };
                total_shown
                    && cells.iter().any(|&i| !self.hidden[i])
                    && unsafe_count(sum(&self.counts), self.own.iter().map(|own| sum(own)))
            }
        };
        if !exposed {
            return false;
        }
        // Prefer a non-zero count: suppressing a zero hides nothing of anyone.
        let next = line
            .iter()
            .copied()
            .filter(|&i| !self.hidden[i])
            .min_by_key(|&i| (self.counts[i] == 0, self.counts[i]));
        match next {
            Some(i) => {
                self.hidden[i] = true;
                true
            }
            None => false,
        }
    }

    /// The counts as shown so far: rounded, or `None` where suppressed.
    fn shown(&self) -> Vec<Option<u64>> {
        self.counts
            .iter()
            .zip(&self.hidden)
            .map(|(&n, &hidden)| (!hidden).then(|| round_to_five(n)))
            .collect()
    }

    /// Suppressed counts whose others' share is 1 to 4 for some contributor (or the outsider)
    /// and that contributor could narrow it to less than "0 to 4" (see [`hides_small`]).
    fn exposed(&self, lines: &[Vec<usize>]) -> Vec<usize> {
        let shown = self.shown();
        let outsider = vec![0u64; self.counts.len()];
        let mut exposed = std::collections::BTreeSet::new();
        for (k, own) in self
            .own
            .iter()
            .chain(std::iter::once(&outsider))
            .enumerate()
        {
            let others_now: Vec<u64> = self.counts.iter().zip(own).map(|(t, o)| t - o).collect();
            let mut now = initial_bounds(&shown, own);
            match self.earlier.get(k) {
                None => {
                    propagate(&mut now, lines);
                }
                // Where everyone else's count has not moved since the previous release, both
                // releases bound the same number: the attacker works on both together, and
                // the previous release's small counts must stay as hidden as they were.
                Some((before, others_then)) => {
                    let shared: Vec<bool> = others_then
                        .iter()
                        .zip(&others_now)
                        .map(|(a, b)| a == b)
                        .collect();
                    let mut then = before.clone();
                    propagate_together(&mut now, &mut then, &shared, lines);
                    for (i, &(lo, hi)) in then.iter().enumerate() {
                        if (1..SMALLEST_SHOWN).contains(&others_then[i]) && !hides_small(lo, hi) {
                            exposed.insert(i);
                        }
                    }
                }
            }
            for (i, (lo, hi)) in now.into_iter().enumerate() {
                if (1..SMALLEST_SHOWN).contains(&others_now[i]) && !hides_small(lo, hi) {
                    exposed.insert(i);
                }
            }
        }
        exposed.into_iter().collect()
    }

    /// Suppresses the smallest shown count in a line through `i`, or anywhere when its lines
    /// show nothing. Answers whether it changed anything.
    fn hide_beside(&mut self, i: usize, lines: &[Vec<usize>]) -> bool {
        let pick = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates
                .filter(|&j| !self.hidden[j])
                .min_by_key(|&j| (self.counts[j] == 0, self.counts[j]))
        };
        let beside = pick(
            &mut lines
                .iter()
                .filter(|line| line.contains(&i))
                .flatten()
                .copied(),
        );
        match beside.or_else(|| pick(&mut (0..self.counts.len()))) {
            Some(j) => {
                self.hidden[j] = true;
                true
            }
            None => false,
        }
    }
}

/// Every row and column of a table with margins (laid out as in [`with_margins`]): each
/// line's cells, ending with the total they sum to.
fn lines_of(rows: usize, columns: usize) -> Vec<Vec<usize>> {
    let width = columns + 1;
    let mut lines: Vec<Vec<usize>> = Vec::new();
    for r in 0..=rows {
        lines.push((0..=columns).map(|c| r * width + c).collect());
    }
    for c in 0..=columns {
        lines.push((0..=rows).map(|r| r * width + c).collect());
    }
    lines
}

/// An upper bound standing for "no idea".
const UNKNOWN: i64 = 1 << 40;

/// What someone who knows `own` (its share of every count) can read about everyone else's
/// share of each count straight from the shown counts (`None` where suppressed): each shown
/// count is within 2 of the truth and never 1 to 4.
fn initial_bounds(shown: &[Option<u64>], own: &[u64]) -> Vec<(i64, i64)> {
    shown
        .iter()
        .zip(own)
        .map(|(shown, &own)| {
            let own = own as i64;
            match shown.map(|v| v as i64) {
                None => (0, UNKNOWN),
                // Shown 0 is exactly 0; shown 5 is 5 to 7, as 3 and 4 would be hidden.
                Some(0) => (0, 0 - own),
                Some(5) => ((5 - own).max(0), 7 - own),
                Some(v) => ((v - 2 - own).max(0), v + 2 - own),
            }
        })
        .collect()
}

/// Narrows the intervals by every line summing to its total until nothing moves (or a
/// bounded number of passes, to keep the cost predictable). Answers whether anything moved.
fn propagate(bounds: &mut [(i64, i64)], lines: &[Vec<usize>]) -> bool {
    let narrow = |bounds: &mut [(i64, i64)], i: usize, lo: i64, hi: i64| {
        let old = bounds[i];
        bounds[i] = (old.0.max(lo), old.1.min(hi));
        bounds[i] != old
    };
    let mut moved_at_all = false;
    for _ in 0..64 {
        let mut moved = false;
        for line in lines {
            let Some((&total, cells)) = line.split_last() else {
                continue;
            };
            let lo_sum: i64 = cells.iter().map(|&m| bounds[m].0).sum();
            let hi_sum: i64 = cells.iter().map(|&m| bounds[m].1.min(UNKNOWN)).sum();
            moved |= narrow(bounds, total, lo_sum, hi_sum);
            let (t_lo, t_hi) = bounds[total];
            for &m in cells {
                let rest_lo = lo_sum - bounds[m].0;
                let rest_hi = hi_sum - bounds[m].1.min(UNKNOWN);
                moved |= narrow(bounds, m, t_lo - rest_hi, t_hi - rest_lo);
            }
        }
        moved_at_all |= moved;
        if !moved {
            break;
        }
    }
    moved_at_all
}

/// What someone can work out from two releases of a table together: each release's
/// intervals narrowed by its lines, and the two made equal wherever everyone else's count is
/// the same in both (`shared`), over and over until nothing moves.
fn propagate_together(
    now: &mut [(i64, i64)],
    then: &mut [(i64, i64)],
    shared: &[bool],
    lines: &[Vec<usize>],
) {
    for _ in 0..64 {
        let mut moved = propagate(now, lines) | propagate(then, lines);
        for (i, _) in shared.iter().enumerate().filter(|(_, shared)| **shared) {
            let both = (now[i].0.max(then[i].0), now[i].1.min(then[i].1));
            if both != now[i] || both != then[i] {
                now[i] = both;
                then[i] = both;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
}

/// Applies disclosure control to a table of true counts (rows of equal length) that has a
/// single contributor.
pub fn publish(cells: &[Vec<u64>]) -> PublishedTable {
    let rows = cells.len();
    let columns = cells.first().map_or(0, Vec::len);
    publish_contributed(rows, columns, &[cells.to_vec()], None)
}

/// One contributor's table with its margins: (rows + 1) × (columns + 1), row-major, the last
/// row holding column totals, the last column row totals, the corner the grand total.
fn with_margins(rows: usize, columns: usize, cells: &[Vec<u64>]) -> Vec<u64> {
    let mut counts = vec![0u64; (rows + 1) * (columns + 1)];
    for (r, row) in cells.iter().enumerate().take(rows) {
        for (c, &count) in row.iter().enumerate().take(columns) {
            counts[r * (columns + 1) + c] += count;
            counts[r * (columns + 1) + columns] += count;
            counts[rows * (columns + 1) + c] += count;
            counts[rows * (columns + 1) + columns] += count;
        }
    }
    counts
}

/// The same table as the previous release published it, with each contributor's share then
/// (in the same order as now; a contributor absent then has an empty table).
#[derive(Debug, Clone, Copy)]
pub struct Earlier<'a> {
    pub table: &'a PublishedTable,
    pub contributors: &'a [Vec<Vec<u64>>],
}

/// Every count of a published table with its margins, laid out as in [`with_margins`]:
/// the rounded value, or `None` where suppressed.
fn shown_of(table: &PublishedTable) -> Vec<Option<u64>> {
    let rows = table.cells.len();
    let columns = table.column_totals.len();
    let mut shown = Vec::with_capacity((rows + 1) * (columns + 1));
    for r in 0..=rows {
        for c in 0..=columns {
            let count = match (r == rows, c == columns) {
                (false, false) => table.cells[r].get(c).copied(),
                (false, true) => table.row_totals.get(r).copied(),
                (true, false) => table.column_totals.get(c).copied(),
                (true, true) => Some(table.total),
            };
            shown.push(match count {
                Some(Published::Count(n)) => Some(n),
                _ => None,
            });
        }
    }
    shown
}

/// What each contributor of the previous release (then the outsider) could read about
/// everyone else's counts straight from it, with those counts. `shown` and each of `then` (the
/// contributors' shares then) are laid out as the table's counts.
fn earlier_bounds(shown: &[Option<u64>], then: &[Vec<u64>]) -> Vec<Deduced> {
    let size = shown.len();
    let outsider = vec![0u64; size];
    let mut total = vec![0u64; size];
    for table in then {
        for (sum, n) in total.iter_mut().zip(table) {
            *sum += n;
        }
    }
    then.iter()
        .chain(std::iter::once(&outsider))
        .map(|own| {
            let others: Vec<u64> = total.iter().zip(own).map(|(t, o)| t - o).collect();
            (initial_bounds(shown, own), others)
        })
        .collect()
}

/// Disclosure control over a table laid out as counts (body and margins) and the lines that
/// each sum to their last count. `own` is each contributor's share of every count;
/// `earlier`, the previous release's shown counts and each contributor's shares then (in the
/// same order as now). Answers each count, rounded, or `None` where suppressed.
fn suppress(
    lines: &[Vec<usize>],
    own: Vec<Vec<u64>>,
    size: usize,
    earlier: Option<Shown>,
    forced: &[bool],
) -> Vec<Option<u64>> {
    let mut counts = vec![0u64; size];
    for table in &own {
        for (sum, count) in counts.iter_mut().zip(table) {
            *sum += count;
        }
    }
    let hidden = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            forced.get(i).copied().unwrap_or(false)
                || unsafe_count(n, own.iter().map(|table| table[i]))
        })
        .collect();
    let earlier = match earlier {
        Some((shown, then)) if shown.len() == size && then.len() == own.len() => {
            earlier_bounds(&shown, &then)
        }
        _ => Vec::new(),
    };
    let mut mask = Mask {
        counts,
        own,
        hidden,
        earlier,
    };
    loop {
        let mut changed = false;
        for line in lines {
            changed |= mask.protect(line);
        }
        if changed {
            continue;
        }
        // Secondary suppression by lines can still leave a chain of shown counts that pins a
        // small count down. Check as each contributor would (and as an outsider, who knows
        // nothing of its own), and hide one more count near every cell so exposed.
        for i in mask.exposed(lines) {
            changed |= mask.hide_beside(i, lines);
        }
        if !changed {
            break;
        }
    }
    mask.shown()
}

/// Applies disclosure control to a `rows` × `columns` table whose cells are the sums of the
/// contributors' tables (one per agency, each rows of counts; missing cells count 0).
///
/// A cell (margins included) is suppressed first when its count is 1 to 4, or when for some
/// contributor the count of everyone else is 1 to 4. Then secondary suppression: no line
/// with a single suppressed cell, no shown total that gives away an unsafe sum of suppressed
/// cells, and, checked as each contributor (and an outsider) would, no count of everyone
/// else's of 1 to 4 narrowed to less than "0 to 4" by differencing shown counts, in this
/// release or together with `earlier`, the previous one.
pub fn publish_contributed(
    rows: usize,
    columns: usize,
    contributors: &[Vec<Vec<u64>>],
    earlier: Option<Earlier<'_>>,
) -> PublishedTable {
    let own: Vec<Vec<u64>> = contributors
        .iter()
        .map(|cells| with_margins(rows, columns, cells))
        .collect();
    let earlier = earlier
        .filter(|e| e.table.cells.len() == rows && e.table.column_totals.len() == columns)
        .map(|e| {
            let then = e
                .contributors
                .iter()
                .map(|cells| with_margins(rows, columns, cells))
                .collect();
            (shown_of(e.table), then)
        });
    let size = (rows + 1) * (columns + 1);
    let shown = suppress(&lines_of(rows, columns), own, size, earlier, &[]);
    let at = |r: usize, c: usize| published(shown[r * (columns + 1) + c]);
    PublishedTable {
        cells: (0..rows)
            .map(|r| (0..columns).map(|c| at(r, c)).collect())
            .collect(),
        row_totals: (0..rows).map(|r| at(r, columns)).collect(),
        column_totals: (0..columns).map(|c| at(rows, c)).collect(),
        total: at(rows, columns),
    }
}

/// A shown count as published.
fn published(shown: Option<u64>) -> Published {
    shown.map_or(Published::Suppressed, Published::Count)
}

/// A comparative table: the places, and their counts by client group and by category under
/// disclosure control. Both halves share their row totals (every active record has one client
/// group and one category), so the totals are published once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparativeTable {
    pub places: Vec<Place>,
    pub by_client_group: PublishedTable,
    pub by_category: PublishedTable,
}

/// One row of a comparative table before disclosure control: the place, and each contributing
/// agency's view of it (that agency's records only).
pub type ContributedRow = (Place, BTreeMap<AgencyId, PlaceView>);

/// The layout of a comparative table for disclosure control: one grid whose rows hold the
/// client-group columns, then the category columns, then the row total, with a margin row of
/// column totals and the grand total. Each row is two lines (its client groups, and its
/// categories, each summing to the row total), so the two halves are protected together.
struct Joint {
    rows: usize,
}

impl Joint {
    const GROUPS: usize = ClientGroup::ALL.len();
    const COLUMNS: usize = ClientGroup::ALL.len() + RiskCategory::ALL.len();

    fn width(&self) -> usize {
        Self::COLUMNS + 1
    }

    fn size(&self) -> usize {
        (self.rows + 1) * self.width()
    }

    fn at(&self, row: usize, column: usize) -> usize {
        row * self.width() + column
    }

    fn lines(&self) -> Vec<Vec<usize>> {
        let total = Self::COLUMNS;
        let mut lines = Vec::new();
        for r in 0..=self.rows {
            let mut groups: Vec<usize> = (0..Self::GROUPS).map(|c| self.at(r, c)).collect();
            groups.push(self.at(r, total));
            let mut categories: Vec<usize> = (Self::GROUPS..Self::COLUMNS)
                .map(|c| self.at(r, c))
                .collect();
            categories.push(self.at(r, total));
            lines.push(groups);
            lines.push(categories);
        }
        for c in 0..=total {
            lines.push((0..=self.rows).map(|r| self.at(r, c)).collect());
        }
        lines
    }

    /// One agency's counts in the layout, from its view of each row's place.
    fn counts(&self, rows: &[ContributedRow], agency: &AgencyId) -> Vec<u64> {
        let mut counts = vec![0u64; self.size()];
        for (r, (_, views)) in rows.iter().enumerate().take(self.rows) {
            let Some(view) = views.get(agency) else {
                continue;
            };
            let groups = ClientGroup::ALL
                .iter()
                .map(|g| view.by_client_group.get(g).copied().unwrap_or(0));
            let categories = RiskCategory::ALL
                .iter()
                .map(|c| view.by_category.get(c).copied().unwrap_or(0));
            for (c, n) in groups.chain(categories).enumerate() {
                counts[self.at(r, c)] += n;
                counts[self.at(self.rows, c)] += n;
            }
            let total: u64 = view.by_client_group.values().sum();
            counts[self.at(r, Self::COLUMNS)] += total;
            counts[self.at(self.rows, Self::COLUMNS)] += total;
        }
        counts
    }

    /// A published comparative table's counts in the layout.
    fn shown(&self, table: &ComparativeTable) -> Vec<Option<u64>> {
        let mut shown = vec![None; self.size()];
        let count = |p: &Published| match p {
            Published::Count(n) => Some(*n),
            Published::Suppressed => None,
        };
        for (half, offset) in [
            (&table.by_client_group, 0),
            (&table.by_category, Self::GROUPS),
        ] {
            for (r, row) in half.cells.iter().enumerate().take(self.rows) {
                for (c, p) in row.iter().enumerate() {
                    shown[self.at(r, offset + c)] = count(p);
                }
            }
            for (c, p) in half.column_totals.iter().enumerate() {
                shown[self.at(self.rows, offset + c)] = count(p);
            }
        }
        for (r, p) in table
            .by_client_group
            .row_totals
            .iter()
            .enumerate()
            .take(self.rows)
        {
            shown[self.at(r, Self::COLUMNS)] = count(p);
        }
        shown[self.at(self.rows, Self::COLUMNS)] = count(&table.by_client_group.total);
        shown
    }

    /// One half of the table as published.
    fn half(&self, shown: &[Option<u64>], offset: usize, columns: usize) -> PublishedTable {
        let at = |r: usize, c: usize| published(shown[self.at(r, c)]);
        PublishedTable {
            cells: (0..self.rows)
                .map(|r| (offset..offset + columns).map(|c| at(r, c)).collect())
                .collect(),
            row_totals: (0..self.rows).map(|r| at(r, Self::COLUMNS)).collect(),
            column_totals: (offset..offset + columns)
                .map(|c| at(self.rows, c))
                .collect(),
            total: at(self.rows, Self::COLUMNS),
        }
    }
}

/// Publishes the rows, each given as every contributing agency's view of the place.
/// `earlier` is the same table as the previous release published it, with the rows it was
/// made from, so that the two together give nothing away either. The client-group and
/// category halves share their row totals and are protected as one table. Nothing leaves
/// here unrounded or unsuppressed.
pub fn comparative_table(
    rows: Vec<ContributedRow>,
    earlier: Option<(&ComparativeTable, &[ContributedRow])>,
) -> ComparativeTable {
    comparative_table_forced(rows, false, earlier, &BTreeSet::new())
}

/// Where a count sits in a comparative table: its row (one per place, then the margin row of
/// column totals at the number of places) and its column (the client groups, then the
/// categories, then the row total at [`COMPARATIVE_COLUMNS`]).
pub type Position = (usize, usize);

/// The column of a comparative table's row totals; the client groups and categories come
/// before it.
pub const COMPARATIVE_COLUMNS: usize = Joint::COLUMNS;

/// As [`comparative_table`], with the counts at `forced` suppressed from the start (because
/// the same counts are suppressed in another table of the release), secondary suppression
/// then protecting them like any other.
///
/// With `rest` set, the last of `rows` (and of the earlier rows) is not a place but the rest
/// of the parent: its records in none of the other rows (see [`rest_of`]). It is never
/// published, but the margin row then is the parent's own count, and anyone can subtract the
/// shown rows from it; so the rest takes part in disclosure control as a row of the grid like
/// any other (its small counts suppressed, and enough shown counts beside them that they
/// cannot be worked out), and is dropped from the table published. `forced` and the earlier
/// table are laid out as published, without it.
pub fn comparative_table_forced(
    rows: Vec<ContributedRow>,
    rest: bool,
    earlier: Option<(&ComparativeTable, &[ContributedRow])>,
    forced: &BTreeSet<Position>,
) -> ComparativeTable {
    let joint = Joint { rows: rows.len() };
    let places = rows.len() - usize::from(rest && !rows.is_empty());
    let published = Joint { rows: places };
    // A published row's row in the grid: the margin row moves below the rest.
    let in_grid = |r: usize| if r == places { joint.rows } else { r };
    let mut forced_mask = vec![false; joint.size()];
    for &(r, c) in forced {
        if r <= places && c <= Joint::COLUMNS {
            forced_mask[joint.at(in_grid(r), c)] = true;
        }
    }
    // The previous release helps only if it has the same places.
    let earlier = earlier.filter(|(table, then)| {
        table.places.len() == places
            && then.len() == rows.len()
            && table
                .places
                .iter()
                .zip(&rows)
                .all(|(a, (b, _))| a.code == b.code)
    });
    let agencies: Vec<&AgencyId> = rows
        .iter()
        .chain(earlier.map_or(&[][..], |(_, then)| then))
        .flat_map(|(_, views)| views.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let own: Vec<Vec<u64>> = agencies
        .iter()
        .map(|agency| joint.counts(&rows, agency))
        .collect();
    let earlier = earlier.map(|(table, then)| {
        let then = agencies
            .iter()
            .map(|agency| joint.counts(then, agency))
            .collect();
        // The rest was never shown.
        let shown_then = published.shown(table);
        let mut shown = vec![None; joint.size()];
        for r in 0..=places {
            for c in 0..=Joint::COLUMNS {
                shown[joint.at(in_grid(r), c)] = shown_then[published.at(r, c)];
            }
        }
        (shown, then)
    });
    let shown = suppress(&joint.lines(), own, joint.size(), earlier, &forced_mask);
    let mut shown_published = vec![None; published.size()];
    for r in 0..=places {
        for c in 0..=Joint::COLUMNS {
            shown_published[published.at(r, c)] = shown[joint.at(in_grid(r), c)];
        }
    }
    ComparativeTable {
        by_client_group: published.half(&shown_published, 0, Joint::GROUPS),
        by_category: published.half(&shown_published, Joint::GROUPS, RiskCategory::ALL.len()),
        places: rows
            .into_iter()
            .take(places)
            .map(|(place, _)| place)
            .collect(),
    }
}

/// Every suppressed count of a comparative table, by [`Position`].
pub fn suppressed_positions(table: &ComparativeTable) -> BTreeSet<Position> {
    let joint = Joint {
        rows: table.places.len(),
    };
    let shown = joint.shown(table);
    (0..=joint.rows)
        .flat_map(|r| (0..=Joint::COLUMNS).map(move |c| (r, c)))
        .filter(|&(r, c)| shown[joint.at(r, c)].is_none())
        .collect()
}

/// The rest of the parent `whole` describes, outside the rows of a table: agency by agency
/// and count for count, the parent's own row less the rows, as a row of the parent. It has
/// no views where the rows make up the parent (the margin row is then the parent's count
/// whichever way it is read). `None` where the rows hold more than the parent in some count
/// (they overlap), so that there is no rest to speak of.
pub fn rest_of(rows: &[ContributedRow], whole: &ContributedRow) -> Option<ContributedRow> {
    let joint = Joint { rows: rows.len() };
    let single = Joint { rows: 1 };
    let agencies: BTreeSet<&AgencyId> = rows
        .iter()
        .chain(std::iter::once(whole))
        .flat_map(|(_, views)| views.keys())
        .collect();
    let mut views = BTreeMap::new();
    for agency in agencies {
        let margin = joint.counts(rows, agency);
        let own = single.counts(std::slice::from_ref(whole), agency);
        let rest: Vec<u64> = (0..=Joint::COLUMNS)
            .map(|c| own[single.at(0, c)].checked_sub(margin[joint.at(joint.rows, c)]))
            .collect::<Option<_>>()?;
        if rest.iter().all(|&n| n == 0) {
            continue;
        }
        let mut view = PlaceView::empty(whole.0.code, 0);
        for (g, group) in ClientGroup::ALL.iter().enumerate() {
            view.by_client_group.insert(*group, rest[g]);
        }
        for (c, category) in RiskCategory::ALL.iter().enumerate() {
            view.by_category.insert(*category, rest[Joint::GROUPS + c]);
        }
        view.total = rest[Joint::COLUMNS];
        views.insert(agency.clone(), view);
    }
    Some((whole.0.clone(), views))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_counts_are_suppressed_the_rest_rounded_and_lone_ones_given_company() {
        let table = publish(&[vec![0, 3, 2, 52], vec![21, 30, 40, 58]]);
        use Published::{Count, Suppressed};
        // 3 and 2 share their row; each is alone in its column, so the next smallest cell
        // of each column (30, 40) goes too, and row 2 then has two suppressed cells.
        assert_eq!(
            table.cells[0],
            [Count(0), Suppressed, Suppressed, Count(50)]
        );
        assert_eq!(
            table.cells[1],
            [Count(20), Suppressed, Suppressed, Count(60)]
        );
        assert_eq!(table.row_totals, [Count(55), Count(150)]);
        assert_eq!(
            table.column_totals,
            [Count(20), Count(35), Count(40), Count(110)]
        );
        assert_eq!(table.total, Count(205));
        assert_eq!(round_to_five(12), 10);
        assert_eq!(round_to_five(13), 15);
        assert_eq!(round_to_five(0), 0);
    }

    /// Every line with a suppressed cell has at least two, so differencing a total against
    /// the visible cells leaves at least two unknowns.
    fn no_line_isolates_one(table: &PublishedTable) -> Result<(), String> {
        let rows = table.cells.len();
        let columns = table.column_totals.len();
        let full = |r: usize, c: usize| match (r == rows, c == columns) {
            (false, false) => table.cells[r][c],
            (false, true) => table.row_totals[r],
            (true, false) => table.column_totals[c],
            (true, true) => table.total,
        };
        for r in 0..=rows {
            let hidden = (0..=columns)
                .filter(|&c| full(r, c).is_suppressed())
                .count();
            if hidden == 1 {
                return Err(format!("row {r} has one suppressed cell"));
            }
        }
        for c in 0..=columns {
            let hidden = (0..=rows).filter(|&r| full(r, c).is_suppressed()).count();
            if hidden == 1 {
                return Err(format!("column {c} has one suppressed cell"));
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn nothing_published_is_small_and_no_suppressed_cell_stands_alone(
            cells in (1usize..7, 1usize..8).prop_flat_map(|(rows, columns)| {
                proptest::collection::vec(
                    proptest::collection::vec(prop_oneof![3 => 0u64..6, 1 => 0u64..60], columns),
                    rows,
                )
            })
        ) {
            let table = publish(&cells);
            let all = table
                .cells
                .iter()
                .flatten()
                .chain(&table.row_totals)
                .chain(&table.column_totals)
                .chain(std::iter::once(&table.total));
            for published in all {
                if let Published::Count(n) = published {
                    prop_assert_eq!(n % 5, 0);
                }
            }
            for (r, row) in cells.iter().enumerate() {
                for (c, &count) in row.iter().enumerate() {
                    if (1..5).contains(&count) {
                        prop_assert!(table.cells[r][c].is_suppressed());
                    }
                }
            }
            prop_assert_eq!(no_line_isolates_one(&table), Ok(()));
        }
    }

    /// What one agency can work out about everyone else's count in each count of a table
    /// (laid out by `lines`) from two releases between which only its own records changed
    /// (`own_then`, `own_now`): both releases' shown counts less its own, differenced along
    /// every line, the two releases bounding the same numbers.
    fn attack_two_releases(
        then: &[Option<u64>],
        own_then: &[u64],
        now: &[Option<u64>],
        own_now: &[u64],
        lines: &[Vec<usize>],
    ) -> Vec<(i64, i64)> {
        let mut bounds_then = initial_bounds(then, own_then);
        let mut bounds_now = initial_bounds(now, own_now);
        let shared = vec![true; now.len()];
        propagate_together(&mut bounds_now, &mut bounds_then, &shared, lines);
        bounds_now
    }

    /// Random tables of several agencies, as (rows, columns, each agency's cells).
    fn agencies_tables() -> impl Strategy<Value = (usize, usize, Vec<Vec<Vec<u64>>>)> {
        (1usize..5, 1usize..6, 2usize..5).prop_flat_map(|(rows, columns, agencies)| {
            let cell = prop_oneof![4 => 0u64..3, 2 => 0u64..8, 1 => 0u64..40];
            let table = proptest::collection::vec(proptest::collection::vec(cell, columns), rows);
            (
                Just(rows),
                Just(columns),
                proptest::collection::vec(table, agencies),
            )
        })
    }

    #[test]
    fn an_agency_topping_up_a_small_cell_learns_nothing_of_the_others() {
        // Everyone else holds 3 records in the cell. The agency adds 2 of its own between
        // releases: without the contributor rule the cell shows 5 and gives the 3 away.
        let others = vec![vec![3, 20]];
        let first = publish_contributed(1, 2, &[vec![vec![0, 0]], others.clone()], None);
        let second = publish_contributed(1, 2, &[vec![vec![2, 0]], others], None);
        assert!(first.cells[0][0].is_suppressed());
        assert!(second.cells[0][0].is_suppressed(), "{second:?}");
    }

    proptest! {
        #[test]
        fn no_agency_narrows_the_others_small_count_across_two_releases(
            (rows, columns, mut tables) in agencies_tables(),
            changed in proptest::collection::vec(
                proptest::collection::vec(0u64..8, 5),
                4,
            ),
        ) {
            let first = publish_contributed(rows, columns, &tables, None);
            let own_before = with_margins(rows, columns, &tables[0]);
            let before = tables.clone();
            // Between the releases the first agency changes its own records, nobody else's.
            tables[0] = changed
                .iter()
                .take(rows)
                .map(|row| row.iter().copied().take(columns).collect())
                .collect();
            let earlier = Earlier { table: &first, contributors: &before };
            let second = publish_contributed(rows, columns, &tables, Some(earlier));
            let own_after = with_margins(rows, columns, &tables[0]);
            let mut everyone_else = vec![0u64; (rows + 1) * (columns + 1)];
            for table in &tables[1..] {
                for (sum, n) in everyone_else.iter_mut().zip(with_margins(rows, columns, table)) {
                    *sum += n;
                }
            }
            // What both releases give away together: the agency's own records subtracted,
            // rows and columns differenced, the releases bounding the same numbers.
            let bounds = attack_two_releases(
                &shown_of(&first),
                &own_before,
                &shown_of(&second),
                &own_after,
                &lines_of(rows, columns),
            );
            for (i, (&truth, &(lo, hi))) in everyone_else.iter().zip(&bounds).enumerate() {
                prop_assert!(lo <= truth as i64 && truth as i64 <= hi, "cell {i}: {truth} outside {lo}..={hi}");
                if (1..SMALLEST_SHOWN).contains(&truth) {
                    prop_assert!(
                        hides_small(lo, hi),
                        "cell {} (of {} columns with margins): the others' {} is narrowed to {}..={}",
                        i, columns + 1, truth, lo, hi
                    );
                }
            }
        }
    }

    /// Every count of the joint grid summed over agencies `A0`, `A1`, … (`agencies` of them).
    fn every_agency(joint: &Joint, rows: &[ContributedRow], agencies: usize) -> Vec<u64> {
        let mut everyone = vec![0u64; joint.size()];
        for a in 0..agencies {
            let id = AgencyId::parse(&format!("A{a}")).expect("agency");
            for (sum, n) in everyone.iter_mut().zip(joint.counts(rows, &id)) {
                *sum += n;
            }
        }
        everyone
    }

    /// Each agency's records in each row, as (client group, category) indexes.
    type Records = Vec<Vec<Vec<(usize, usize)>>>;

    /// Rows of a comparative table from each agency's records.
    fn contributed(records: &Records) -> Vec<ContributedRow> {
        let rows = records.first().map_or(0, Vec::len);
        (0..rows)
            .map(|r| {
                let code =
                    crate::domain::PlaceCode::parse(&format!("E080000{r:02}")).expect("code");
                let place = Place {
                    code,
                    name: format!("Place {r}"),
                    level: crate::domain::PlaceLevel::District,
                    parent: None,
                };
                let mut views = BTreeMap::new();
                for (a, agency) in records.iter().enumerate() {
                    let mut view = PlaceView::empty(code, 0);
                    for &(g, c) in &agency[r] {
                        *view.by_client_group.entry(ClientGroup::ALL[g]).or_default() += 1;
                        *view.by_category.entry(RiskCategory::ALL[c]).or_default() += 1;
                        view.total += 1;
                    }
                    if view.total > 0 {
                        let id = AgencyId::parse(&format!("A{a}")).expect("agency");
                        views.insert(id, view);
                    }
                }
                (place, views)
            })
            .collect()
    }

    #[test]
    fn a_small_rest_outside_the_rows_is_not_left_to_subtraction() {
        // Two places with 10 records each, and 3 more of the parent in neither: the margin is
        // the parent's 23, and the margin less the rows must not show the 3.
        let ten = vec![(0, 0); 10];
        let mut rows = contributed(&vec![vec![ten.clone(), ten, vec![(0, 0); 3]]]);
        let table = comparative_table_forced(rows.clone(), true, None, &BTreeSet::new());
        assert_eq!(table.places.len(), 2, "the rest is not published");
        let half = &table.by_client_group;
        let line = [half.row_totals[0], half.row_totals[1], half.total];
        assert!(line.iter().any(|p| p.is_suppressed()), "{line:?}");
        assert!(
            [half.cells[0][0], half.cells[1][0], half.column_totals[0]]
                .iter()
                .any(|p| p.is_suppressed())
        );
        // Read as a plain table, the margin is the two rows and shows in full.
        rows.pop();
        let plain = comparative_table_forced(rows, false, None, &BTreeSet::new());
        assert_eq!(plain.by_client_group.total, Published::Count(20));
        assert!(
            plain
                .by_client_group
                .row_totals
                .iter()
                .all(|p| !p.is_suppressed())
        );
    }

    fn agencies_records() -> impl Strategy<Value = (Records, Vec<Vec<(usize, usize)>>)> {
        (1usize..4, 2usize..4).prop_flat_map(|(rows, agencies)| {
            let record = (0usize..3, 0usize..3);
            let place = proptest::collection::vec(record, 0..7);
            (
                proptest::collection::vec(proptest::collection::vec(place.clone(), rows), agencies),
                proptest::collection::vec(place, rows),
            )
        })
    }

    proptest! {
        #[test]
        fn no_agency_narrows_the_others_small_count_across_both_halves_and_two_releases(
            (mut records, changed) in agencies_records(),
        ) {
            let first_rows = contributed(&records);
            let first = comparative_table(first_rows.clone(), None);
            // Between the releases the first agency changes its own records, nobody else's.
            records[0] = changed;
            let second_rows = contributed(&records);
            let second = comparative_table(second_rows.clone(), Some((&first, &first_rows)));
            let joint = Joint { rows: first_rows.len() };
            let lines = joint.lines();
            let attacker = AgencyId::parse("A0").expect("agency");
            let everyone = every_agency(&joint, &second_rows, records.len());
            let own_then = joint.counts(&first_rows, &attacker);
            let own_now = joint.counts(&second_rows, &attacker);
            let bounds = attack_two_releases(
                &joint.shown(&first),
                &own_then,
                &joint.shown(&second),
                &own_now,
                &lines,
            );
            for (i, (&(lo, hi), own)) in bounds.iter().zip(&own_now).enumerate() {
                let truth = (everyone[i] - own) as i64;
                prop_assert!(lo <= truth && truth <= hi, "count {}: {} outside {}..={}", i, truth, lo, hi);
                if (1..SMALLEST_SHOWN as i64).contains(&truth) {
                    prop_assert!(
                        hides_small(lo, hi),
                        "count {}: the others' {} is narrowed to {}..={}",
                        i, truth, lo, hi
                    );
                }
            }
        }
    }

    /// A published table with a rest row (see [`comparative_table_forced`]) laid out as the
    /// grid it was protected in: the rest never shown.
    fn shown_with_rest(table: &ComparativeTable) -> Vec<Option<u64>> {
        let places = table.places.len();
        let published = Joint { rows: places };
        let joint = Joint { rows: places + 1 };
        let shown = published.shown(table);
        let mut grid = vec![None; joint.size()];
        for r in 0..=places {
            let to = if r == places { joint.rows } else { r };
            for c in 0..=Joint::COLUMNS {
                grid[joint.at(to, c)] = shown[published.at(r, c)];
            }
        }
        grid
    }

    proptest! {
        #[test]
        fn no_agency_works_out_the_others_small_rest_from_the_margin_across_two_releases(
            (mut records, changed) in agencies_records(),
        ) {
            // The last row is the rest of the parent: in the margin, in no published row.
            let rows = records.first().map_or(0, Vec::len);
            prop_assume!(rows >= 2);
            let first_rows = contributed(&records);
            let first = comparative_table_forced(first_rows.clone(), true, None, &BTreeSet::new());
            prop_assert_eq!(first.places.len(), rows - 1);
            records[0] = changed;
            let second_rows = contributed(&records);
            let second = comparative_table_forced(
                second_rows.clone(),
                true,
                Some((&first, &first_rows)),
                &BTreeSet::new(),
            );
            let joint = Joint { rows };
            let attacker = AgencyId::parse("A0").expect("agency");
            let everyone = every_agency(&joint, &second_rows, records.len());
            let own_now = joint.counts(&second_rows, &attacker);
            let bounds = attack_two_releases(
                &shown_with_rest(&first),
                &joint.counts(&first_rows, &attacker),
                &shown_with_rest(&second),
                &own_now,
                &joint.lines(),
            );
            for (i, (&(lo, hi), own)) in bounds.iter().zip(&own_now).enumerate() {
                let truth = (everyone[i] - own) as i64;
                prop_assert!(lo <= truth && truth <= hi, "count {}: {} outside {}..={}", i, truth, lo, hi);
                if (1..SMALLEST_SHOWN as i64).contains(&truth) {
                    prop_assert!(
                        hides_small(lo, hi),
                        "count {}: the others' {} is narrowed to {}..={}",
                        i, truth, lo, hi
                    );
                }
            }
        }
    }
}
