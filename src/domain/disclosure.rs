//! Disclosure control for published tables: no count that could identify a person leaves the
//! server, and none can be worked back from the totals published beside it.
//!
//! - Counts from 1 to 4 are suppressed (published as `c`).
//! - Every other count, totals included, is rounded to the nearest 5.
//! - Secondary suppression: wherever a row or a column (with its total) would show exactly one
//!   suppressed cell, the next smallest cell in it is suppressed too, repeated until no line
//!   has exactly one, so subtracting the visible cells from a total never isolates one.

use super::inspection::PlaceView;
use super::{ClientGroup, Place, RiskCategory, Vocabulary};

/// A count as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Rounded to the nearest 5.
    Count(u64),
    /// Not shown (`c`).
    Suppressed,
}

impl Published {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTable {
    pub cells: Vec<Vec<Published>>,
    pub row_totals: Vec<Published>,
    pub column_totals: Vec<Published>,
    pub total: Published,
}

/// Which cells of a table are suppressed: the body plus a margin row and column, so that the
/// totals take part in secondary suppression like any other cell.
struct Mask {
    columns: usize,
    /// (rows + 1) × (columns + 1): the last row holds column totals, the last column row
    /// totals, the corner the grand total.
    counts: Vec<u64>,
    hidden: Vec<bool>,
}

impl Mask {
    fn at(&self, row: usize, column: usize) -> usize {
        row * (self.columns + 1) + column
    }

    /// Suppresses the smallest shown count among `line` if exactly one of `line` is
    /// suppressed. Answers whether it changed anything.
    fn protect(&mut self, line: &[usize]) -> bool {
        let hidden = line.iter().filter(|&&i| self.hidden[i]).count();
        if hidden != 1 {
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
}

/// Applies disclosure control to a table of true counts (rows of equal length).
pub fn publish(cells: &[Vec<u64>]) -> PublishedTable {
    let rows = cells.len();
    let columns = cells.first().map_or(0, Vec::len);
    let mut counts = vec![0u64; (rows + 1) * (columns + 1)];
    for (r, row) in cells.iter().enumerate() {
        for (c, &count) in row.iter().enumerate().take(columns) {
            counts[r * (columns + 1) + c] = count;
            counts[r * (columns + 1) + columns] += count;
            counts[rows * (columns + 1) + c] += count;
            counts[rows * (columns + 1) + columns] += count;
        }
    }
    let hidden = counts
        .iter()
        .map(|&n| (1..SMALLEST_SHOWN).contains(&n))
        .collect();
    let mut mask = Mask {
        columns,
        counts,
        hidden,
    };
    // Every row and column of the full table, margins included: each sums to its last cell.
    let mut lines: Vec<Vec<usize>> = Vec::new();
    for r in 0..=rows {
        lines.push((0..=columns).map(|c| mask.at(r, c)).collect());
    }
    for c in 0..=columns {
        lines.push((0..=rows).map(|r| mask.at(r, c)).collect());
    }
    loop {
        let mut changed = false;
        for line in &lines {
            changed |= mask.protect(line);
        }
        if !changed {
            break;
        }
    }
    let show = |i: usize| {
        if mask.hidden[i] {
            Published::Suppressed
        } else {
            Published::Count(round_to_five(mask.counts[i]))
        }
    };
    PublishedTable {
        cells: (0..rows)
            .map(|r| (0..columns).map(|c| show(mask.at(r, c))).collect())
            .collect(),
        row_totals: (0..rows).map(|r| show(mask.at(r, columns))).collect(),
        column_totals: (0..columns).map(|c| show(mask.at(rows, c))).collect(),
        total: show(mask.at(rows, columns)),
    }
}

/// A comparative table: the places, and their counts by client group and by category under
/// disclosure control. Both halves share their row totals (every active record has one client
/// group and one category), so the totals are published once.
pub struct ComparativeTable {
    pub places: Vec<Place>,
    pub by_client_group: PublishedTable,
    pub by_category: PublishedTable,
}

/// Publishes the views of the rows. Nothing leaves here unrounded or unsuppressed.
pub fn comparative_table(rows: Vec<(Place, PlaceView)>) -> ComparativeTable {
    let groups: Vec<Vec<u64>> = rows
        .iter()
        .map(|(_, view)| {
            ClientGroup::ALL
                .iter()
                .map(|g| view.by_client_group.get(g).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    let categories: Vec<Vec<u64>> = rows
        .iter()
        .map(|(_, view)| {
            RiskCategory::ALL
                .iter()
                .map(|c| view.by_category.get(c).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    let mut by_client_group = publish(&groups);
    let mut by_category = publish(&categories);
    // A total suppressed in either half is suppressed in both.
    for (a, b) in by_client_group
        .row_totals
        .iter_mut()
        .zip(by_category.row_totals.iter_mut())
    {
        if a.is_suppressed() || b.is_suppressed() {
            *a = Published::Suppressed;
            *b = Published::Suppressed;
        }
    }
    if by_client_group.total.is_suppressed() || by_category.total.is_suppressed() {
        by_client_group.total = Published::Suppressed;
        by_category.total = Published::Suppressed;
    }
    ComparativeTable {
        places: rows.into_iter().map(|(place, _)| place).collect(),
        by_client_group,
        by_category,
    }
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
}
