//! `marr pseudonymise`: NHS numbers in, subject keys out, one per line, for agencies to put in
//! their extracts. It works offline: the linkage key never leaves the agency.

use std::io::{BufRead, Write};
use std::path::Path;

use super::ClientError;
use crate::domain::pseudonym::{LinkageKey, NhsNumber};

/// Reads the linkage key: the file's bytes, less trailing white space.
pub fn read_key(path: &Path) -> Result<LinkageKey, ClientError> {
    let input = |reason: String| ClientError::Input {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| input(e.to_string()))?;
    LinkageKey::new(bytes.trim_ascii_end().to_vec()).map_err(input)
}

/// Writes one subject key per input line; a line that is not a valid NHS number gets an empty
/// line (so output lines stay level with input lines) and a report naming its line number.
/// Returns how many lines were refused.
pub fn pseudonymise(
    key: &LinkageKey,
    input: impl BufRead,
    mut output: impl Write,
    mut report: impl Write,
) -> std::io::Result<usize> {
    let mut refused = 0;
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            writeln!(output)?;
            continue;
        }
        match NhsNumber::parse(&line) {
            Ok(nhs_number) => writeln!(output, "{}", key.subject_key(&nhs_number))?,
            Err(reason) => {
                refused += 1;
                // Never echo the number itself: it is the identifier being protected.
                writeln!(report, "line {}: {reason}; no key written", index + 1)?;
                writeln!(output)?;
            }
        }
    }
    output.flush()?;
    Ok(refused)
}
