//! Free text entering the register: the record's note and local reference, an inspector's
//! purpose, a snapshot's label, an agency's name, a place's name.
//!
//! Records carry no names and no raw identifiers, so every free-text field is screened before
//! anything is stored or shown: text that holds what looks like an NHS number, a calendar date
//! (a possible date of birth), a postcode, an e-mail address or a telephone number is refused,
//! and so is text with control, bidirectional-override or zero-width characters, which can hide
//! or disguise what a reader sees. A refusal names the field and the kind of thing found, never
//! the text itself: refusals are written to the audit chain.

use std::fmt;

use super::pseudonym::NhsNumber;

/// Longest note, in characters: a few words of context, not a narrative.
pub const NOTE_MAX_CHARS: usize = 140;
/// Longest local reference, in characters.
pub const LOCAL_REF_MAX_CHARS: usize = 64;
/// Fewest visible (non-space) characters a purpose may have.
pub const PURPOSE_MIN_VISIBLE: usize = 10;
/// Longest purpose, in characters.
pub const PURPOSE_MAX_CHARS: usize = 200;
/// Longest snapshot label, in characters.
pub const LABEL_MAX_CHARS: usize = 200;
/// Longest agency name, in characters.
pub const AGENCY_NAME_MAX_CHARS: usize = 120;

/// The punctuation a local reference may hold besides ASCII letters and digits.
pub const LOCAL_REF_PUNCTUATION: [char; 4] = ['-', '/', '_', '.'];

/// A kind of raw identifier free text must not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier {
    /// Ten digits, written together or as 3-3-4, that pass the NHS modulus-11 check.
    NhsNumber,
    /// A whole calendar date, in figures or with the month's name.
    Date,
    /// A UK postcode, with or without its space.
    Postcode,
    /// An e-mail address.
    Email,
    /// A UK telephone number, or any number written with an international `+` prefix.
    Telephone,
    /// A person's title followed by a name (`Mrs Smith`, `Dr. Patel`): the register names
    /// nobody, and a title is the one sign of a name a screen can read.
    TitledName,
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Identifier::NhsNumber => "an NHS number",
            Identifier::Date => "a calendar date (a possible date of birth)",
            Identifier::Postcode => "a postcode",
            Identifier::Email => "an e-mail address",
            Identifier::Telephone => "a telephone number",
            Identifier::TitledName => "a person's name (a title such as Mrs or Dr and a name)",
        })
    }
}

/// Why a free-text value was refused. The text itself is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextRefusal {
    /// It holds what looks like a raw identifier.
    Identifier(Identifier),
    /// It holds a control, bidirectional-override or zero-width character.
    HiddenCharacter,
    /// It is too long.
    TooLong { max: usize, chars: usize },
    /// It has too few visible characters.
    TooShort { min: usize },
    /// It is empty where a value is required.
    Empty,
    /// It holds a character outside the field's set.
    Charset(&'static str),
    /// It starts or ends with white space.
    Untrimmed,
}

impl fmt::Display for TextRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextRefusal::Identifier(kind) => write!(
                f,
                "holds what looks like {kind}; the register holds no raw identifiers (see the data standard)"
            ),
            TextRefusal::HiddenCharacter => {
                f.write_str("holds a control, bidirectional-override or zero-width character")
            }
            TextRefusal::TooLong { max, chars } => {
                write!(f, "must be at most {max} characters, got {chars}")
            }
            TextRefusal::TooShort { min } => {
                write!(f, "must have at least {min} visible characters")
            }
            TextRefusal::Empty => f.write_str("is required"),
            TextRefusal::Charset(allowed) => write!(f, "may hold only {allowed}"),
            TextRefusal::Untrimmed => f.write_str("must not start or end with white space"),
        }
    }
}

impl From<TextRefusal> for String {
    fn from(refusal: TextRefusal) -> Self {
        refusal.to_string()
    }
}

/// Whether a character hides or disguises text: any control character (line breaks and tabs
/// included), the bidirectional embeddings, overrides and isolates, the implicit direction
/// marks, and the zero-width characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{FEFF}'
        )
}

/// Refuses text holding any hidden character (see [`is_hidden`]).
pub fn check_characters(text: &str) -> Result<(), TextRefusal> {
    if text.chars().any(is_hidden) {
        Err(TextRefusal::HiddenCharacter)
    } else {
        Ok(())
    }
}

/// Refuses text holding a hidden character or what looks like a raw identifier.
pub fn screen(text: &str) -> Result<(), TextRefusal> {
    check_characters(text)?;
    if has_unreadable_digits(&fold_full_width(text)) {
        return Err(TextRefusal::Charset("the digits 0 to 9 for numbers"));
    }
    match find_identifier(text) {
        Some(kind) => Err(TextRefusal::Identifier(kind)),
        None => Ok(()),
    }
}

fn check_length(text: &str, max: usize) -> Result<(), TextRefusal> {
    let chars = text.chars().count();
    if chars > max {
        Err(TextRefusal::TooLong { max, chars })
    } else {
        Ok(())
    }
}

fn visible(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// A record's note: optional, at most [`NOTE_MAX_CHARS`] characters on one line, screened.
pub fn check_note(note: &str) -> Result<(), TextRefusal> {
    // Length first: a long value is refused without being scanned.
    check_length(note, NOTE_MAX_CHARS)?;
    screen(note)
}

/// An agency's reference for a record: 1 to [`LOCAL_REF_MAX_CHARS`] ASCII letters, digits and
/// `- / _ .`, screened. No spaces, so a name or an address cannot be written in one.
pub fn check_local_ref(reference: &str) -> Result<(), TextRefusal> {
    if reference.is_empty() {
        return Err(TextRefusal::Empty);
    }
    check_length(reference, LOCAL_REF_MAX_CHARS)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || LOCAL_REF_PUNCTUATION.contains(&c);
    if !reference.chars().all(allowed) {
        return Err(TextRefusal::Charset(
            "ASCII letters, digits and - / _ . (no spaces)",
        ));
    }
    screen(reference)
}

/// Why an inspector follows a subject: at least [`PURPOSE_MIN_VISIBLE`] visible characters,
/// at most [`PURPOSE_MAX_CHARS`], screened. It is kept in the audit chain with the access.
pub fn check_purpose(purpose: &str) -> Result<(), TextRefusal> {
    check_length(purpose, PURPOSE_MAX_CHARS)?;
    check_characters(purpose)?;
    if visible(purpose) < PURPOSE_MIN_VISIBLE {
        return Err(TextRefusal::TooShort {
            min: PURPOSE_MIN_VISIBLE,
        });
    }
    screen(purpose)
}

/// What a snapshot is for: 1 to [`LABEL_MAX_CHARS`] characters, screened.
pub fn check_label(label: &str) -> Result<(), TextRefusal> {
    check_length(label, LABEL_MAX_CHARS)?;
    if visible(label) == 0 {
        return Err(TextRefusal::Empty);
    }
    screen(label)
}

/// An agency's name, when one is set: at most [`AGENCY_NAME_MAX_CHARS`] characters, screened.
pub fn check_agency_name(name: &str) -> Result<(), TextRefusal> {
    check_length(name, AGENCY_NAME_MAX_CHARS)?;
    screen(name)
}

/// A place's name from an ONS lookup: no hidden characters. Names are published by ONS, so
/// they are not screened for identifiers (a ward may well be named after a date or a street).
pub fn check_place_name(name: &str) -> Result<(), TextRefusal> {
    check_characters(name)
}

/// One piece of text as the screen sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A run of ASCII digits.
    Digits(&'a str),
    /// A run of letters.
    Letters(&'a str),
    /// A run of white space.
    Space,
    /// Any other single character.
    Mark(char),
}

/// The first code point of each run of ten decimal digits (zero to nine) that other scripts
/// and mathematical alphabets use, so that `٩٤٣` or `𝟗𝟒𝟑` read as `943`.
const DIGIT_ZEROS: [u32; 14] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0BE6, 0x0E50, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6,
];

/// Folds the full-width forms (U+FF01 to U+FF5E) onto ASCII, and the decimal digits of other
/// scripts onto 0 to 9, so an identifier cannot pass the screen in other characters.
fn fold_full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c if !c.is_ascii() => DIGIT_ZEROS
                .iter()
                .find(|zero| (**zero..**zero + 10).contains(&(c as u32)))
                .and_then(|zero| char::from_digit(c as u32 - zero, 10))
                .unwrap_or(c),
            c => c,
        })
        .collect()
}

/// Whether text holds digits that are neither 0 to 9 nor folded onto them: numerals the
/// screen cannot read are refused rather than let through.
fn has_unreadable_digits(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_numeric()
            && !c.is_ascii_digit()
            // Superscripts and common fractions, as in "2½ years" or "m²".
            && !matches!(c, '\u{00B2}' | '\u{00B3}' | '\u{00B9}' | '\u{00BC}'..='\u{00BE}')
    })
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let run = |rest: &str, keep: fn(char) -> bool| {
            rest.char_indices()
                .find(|(_, c)| !keep(*c))
                .map_or(rest.len(), |(i, _)| i)
        };
        let (token, len) = if first.is_ascii_digit() {
            let len = run(rest, |c| c.is_ascii_digit());
            (Token::Digits(&rest[..len]), len)
        } else if first.is_alphabetic() {
            let len = run(rest, char::is_alphabetic);
            (Token::Letters(&rest[..len]), len)
        } else if first.is_whitespace() {
            (Token::Space, run(rest, char::is_whitespace))
        } else {
            (Token::Mark(first), first.len_utf8())
        };
        out.push(token);
        rest = &rest[len..];
    }
    out
}

/// The first kind of raw identifier `text` appears to hold, if any.
pub fn find_identifier(text: &str) -> Option<Identifier> {
    let text = fold_full_width(text);
    let tokens = tokens(&text);
    if has_nhs_number(&tokens) {
        Some(Identifier::NhsNumber)
    } else if has_telephone(&tokens) {
        Some(Identifier::Telephone)
    } else if has_numeric_date(&tokens) || has_written_date(&tokens) {
        Some(Identifier::Date)
    } else if has_postcode(&tokens) {
        Some(Identifier::Postcode)
    } else if has_email(&text) {
        Some(Identifier::Email)
    } else if has_titled_name(&tokens) {
        Some(Identifier::TitledName)
    } else {
        None
    }
}

/// The titles that come before a person's name, as written (capitalised).
const TITLES: [&str; 6] = ["Mr", "Mrs", "Ms", "Miss", "Mx", "Dr"];

/// A title, with or without its full stop, then a capitalised word: `Mr Smith`, `Dr. Okafor`.
fn has_titled_name(tokens: &[Token<'_>]) -> bool {
    tokens.iter().enumerate().any(|(i, token)| {
        let Token::Letters(title) = token else {
            return false;
        };
        // A title starts a word: not the tail of a longer run such as "Admr".
        let starts_word = i == 0 || !matches!(tokens[i - 1], Token::Letters(_) | Token::Digits(_));
        if !starts_word || !TITLES.contains(title) {
            return false;
        }
        let mut next = i + 1;
        if tokens.get(next) == Some(&Token::Mark('.')) {
            next += 1;
        }
        if tokens.get(next) != Some(&Token::Space) {
            return false;
        }
        matches!(tokens.get(next + 1), Some(Token::Letters(name)) if name.chars().next().is_some_and(char::is_uppercase))
    })
}

fn digits_of<'a>(token: Option<&Token<'a>>) -> Option<&'a str> {
    match token {
        Some(Token::Digits(d)) => Some(d),
        _ => None,
    }
}

fn is_nhs(digits: &str) -> bool {
    digits.len() == 10 && NhsNumber::parse(digits).is_ok()
}

/// Ten digits together (`9434765919`), or in groups however they are joined (3-3-4 with
/// spaces, hyphens, dots, slashes or underscores, or any other grouping).
fn has_nhs_number(tokens: &[Token]) -> bool {
    if digit_chains(tokens)
        .iter()
        .any(|(_, groups)| groups.len() > 1 && is_nhs(&groups.concat()))
    {
        return true;
    }
    let joins =
        |t: Option<&Token>| matches!(t, Some(Token::Space | Token::Mark('-' | '.' | '/' | '_')));
    tokens.iter().enumerate().any(|(i, token)| match token {
        Token::Digits(d) if d.len() == 10 => is_nhs(d),
        Token::Digits(a) if a.len() == 3 => {
            let b = digits_of(tokens.get(i + 2)).filter(|b| b.len() == 3);
            let c = digits_of(tokens.get(i + 4)).filter(|c| c.len() == 4);
            match (b, c) {
                (Some(b), Some(c)) if joins(tokens.get(i + 1)) && joins(tokens.get(i + 3)) => {
                    is_nhs(&format!("{a}{b}{c}"))
                }
                _ => false,
            }
        }
        _ => false,
    })
}

/// Groups of digits that read as one number: joined by single spaces, hyphens, dots or
/// brackets, as telephone numbers are written. Each chain says whether a `+` led it.
fn digit_chains<'a>(tokens: &[Token<'a>]) -> Vec<(bool, Vec<&'a str>)> {
    let joiner = |t: &Token| {
        matches!(
            t,
            Token::Space | Token::Mark('-' | '.' | '(' | ')' | '/' | '_')
        )
    };
    let mut chains = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Token::Digits(first) = tokens[i] else {
            i += 1;
            continue;
        };
        // A `+` (perhaps then a bracket or a space) just before the first group.
        let plus = tokens[..i]
            .iter()
            .rev()
            .take(2)
            .take_while(|t| !matches!(t, Token::Digits(_)))
            .any(|t| *t == Token::Mark('+'));
        let mut groups = vec![first];
        let mut j = i + 1;
        loop {
            // At most two joiners between groups, as in `(0191) 123`.
            let mut k = j;
            while k < tokens.len() && k < j + 2 && joiner(&tokens[k]) {
                k += 1;
            }
            match tokens.get(k) {
                Some(Token::Digits(next)) if k > j => {
                    groups.push(next);
                    j = k + 1;
                }
                _ => break,
            }
        }
        chains.push((plus, groups));
        i = j;
    }
    chains
}

/// A UK number (`07700 900123`, `0191 123 4567`, `(0191) 123 4567`): 10 or 11 digits starting
/// `0` and then not `0`; `0044` and 9 to 11 more; or `+` and 9 to 15 digits (`+44 7700 900123`).
fn has_telephone(tokens: &[Token]) -> bool {
    digit_chains(tokens).iter().any(|(plus, groups)| {
        (0..groups.len()).any(|start| {
            let mut number = String::new();
            for group in &groups[start..] {
                number.push_str(group);
                let fits = if *plus && start == 0 {
                    (9..=15).contains(&number.len())
                } else if let Some(rest) = number.strip_prefix("0044") {
                    (9..=11).contains(&rest.len())
                } else {
                    (10..=11).contains(&number.len())
                        && number.starts_with('0')
                        && !number[1..].starts_with('0')
                };
                if fits {
                    return true;
                }
                if number.len() > 15 {
                    break;
                }
            }
            false
        })
    })
}

fn number(digits: &str) -> u32 {
    digits.parse().unwrap_or(u32::MAX)
}

fn is_day(digits: &str) -> bool {
    (1..=2).contains(&digits.len()) && (1..=31).contains(&number(digits))
}

fn is_month(digits: &str) -> bool {
    (1..=2).contains(&digits.len()) && (1..=12).contains(&number(digits))
}

fn is_year(digits: &str) -> bool {
    digits.len() == 4 && (1900..=2099).contains(&number(digits))
}

/// `01/02/2015`, `1.2.15`, `2/1/2015`, `2015-02-01`: day, month and year in figures, with
/// the same separator twice.
fn has_numeric_date(tokens: &[Token]) -> bool {
    tokens.windows(5).any(|w| {
        let (
            Token::Digits(a),
            Token::Mark(s1),
            Token::Digits(b),
            Token::Mark(s2),
            Token::Digits(c),
        ) = (w[0], w[1], w[2], w[3], w[4])
        else {
            return false;
        };
        if s1 != s2 || !matches!(s1, '/' | '-' | '.' | '_') {
            return false;
        }
        let day_month = (is_day(a) && is_month(b)) || (is_month(a) && is_day(b));
        let short_year = c.len() == 2 && matches!(s1, '/' | '.' | '_');
        (day_month && (is_year(c) || short_year)) || (is_year(a) && is_month(b) && is_day(c))
    })
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Whether a word names a month, in full or as its first three (or `sept`) letters.
fn is_month_name(word: &str) -> bool {
    let word = word.to_lowercase();
    word.len() >= 3 && (word == "sept" || MONTHS.iter().any(|m| *m == word || m[..3] == word))
}

/// `1 Feb 2015`, `1st February, 2015`, `February 1, 2015`, `1-Feb-2015`: a day, a month's name
/// and a four-digit year, whatever spacing and punctuation lie between.
fn has_written_date(tokens: &[Token]) -> bool {
    // The words and numbers alone, ordinal suffixes dropped.
    let mut words: Vec<Token> = Vec::new();
    for token in tokens {
        match token {
            Token::Space | Token::Mark(',' | '.' | '-' | '/') => {}
            Token::Letters(suffix)
                if matches!(words.last(), Some(Token::Digits(_)))
                    && matches!(suffix.to_lowercase().as_str(), "st" | "nd" | "rd" | "th") => {}
            other => words.push(*other),
        }
    }
    words.windows(3).any(|w| match (w[0], w[1], w[2]) {
        (Token::Digits(d), Token::Letters(m), Token::Digits(y)) => {
            is_day(d) && is_month_name(m) && is_year(y)
        }
        (Token::Letters(m), Token::Digits(d), Token::Digits(y)) => {
            is_month_name(m) && is_day(d) && is_year(y)
        }
        _ => false,
    })
}

/// Letters that never open a postcode.
const NOT_FIRST: &[u8] = b"QVX";
/// Letters that are never second in a postcode's area.
const NOT_SECOND: &[u8] = b"IJZ";
/// Letters never used in the inward code's last two places.
const NOT_INWARD: &[u8] = b"CIKMOV";

/// The outward code: `A9`, `A99`, `AA9`, `AA99`, `A9A`, `AA9A`.
fn is_outward(code: &[u8]) -> bool {
    let letter = |b: &u8| b.is_ascii_uppercase();
    let digit = |b: &u8| b.is_ascii_digit();
    let opens = |b: &u8| letter(b) && !NOT_FIRST.contains(b);
    let second = |b: &u8| letter(b) && !NOT_SECOND.contains(b);
    match code {
        [a, b] => opens(a) && digit(b),
        [a, b, c] => opens(a) && ((digit(b) && (digit(c) || letter(c))) || (second(b) && digit(c))),
        [a, b, c, d] => opens(a) && second(b) && digit(c) && (digit(d) || letter(d)),
        _ => false,
    }
}

/// The inward code: `9AA`.
fn is_inward(code: &[u8]) -> bool {
    let inward_letter = |b: &u8| b.is_ascii_uppercase() && !NOT_INWARD.contains(b);
    matches!(code, [d, a, b] if d.is_ascii_digit() && inward_letter(a) && inward_letter(b))
}

fn is_postcode(outward: &[u8], inward: &[u8]) -> bool {
    (is_outward(outward) && is_inward(inward)) || (outward == b"GIR" && inward == b"0AA")
}

/// `SW1A 1AA`, `NE1 4ST`, `ne14st`: a UK postcode in either case, with or without its space.
fn has_postcode(tokens: &[Token]) -> bool {
    // Words of ASCII letters and digits, and whether white space alone follows each.
    let mut words: Vec<(String, bool)> = Vec::new();
    let mut current = String::new();
    for token in tokens {
        match token {
            Token::Digits(s) => current.push_str(s),
            Token::Letters(s) if s.is_ascii() => current.push_str(&s.to_ascii_uppercase()),
            other => {
                if !current.is_empty() {
                    // Outward and inward codes may be joined by a space or a single mark.
                    let joined = matches!(other, Token::Space | Token::Mark('-' | '_' | '/' | '.'));
                    words.push((std::mem::take(&mut current), joined));
                } else if let Some(last) = words.last_mut() {
                    // Something other than one run of space: the next word is not attached.
                    last.1 = false;
                }
            }
        }
    }
    if !current.is_empty() {
        words.push((current, false));
    }
    words.iter().enumerate().any(|(i, (word, spaced))| {
        let bytes = word.as_bytes();
        let whole = bytes.len() >= 5 && {
            let (outward, inward) = bytes.split_at(bytes.len() - 3);
            is_postcode(outward, inward)
        };
        let split = *spaced
            && words
                .get(i + 1)
                .is_some_and(|(next, _)| is_postcode(bytes, next.as_bytes()));
        whole || split
    })
}

/// `someone@example.org`: something before an `@`, and after it a domain with a dot and a
/// top-level name of two or more letters.
fn has_email(text: &str) -> bool {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-'".contains(c);
    let domain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    text.match_indices('@').any(|(at, _)| {
        let before = text[..at].chars().next_back().is_some_and(local);
        let after: String = text[at + 1..].chars().take_while(|c| domain(*c)).collect();
        let after = after.trim_end_matches(['.', '-']);
        let top = after.rsplit('.').next().unwrap_or("");
        before
            && after.contains('.')
            && !after.starts_with('.')
            && top.len() >= 2
            && top.chars().all(|c| c.is_ascii_alphabetic())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_joined_by_any_mark_or_written_in_other_digits_are_found() {
        for bad in [
            "943/476/5919",
            "943_476_5919",
            "9434 765 919",
            "01_02_2015",
            "NE1_4ST",
            "NE1-4ST",
            "\u{0669}\u{0664}\u{0663}\u{0664}\u{0667}\u{0666}\u{0665}\u{0669}\u{0661}\u{0669}",
            "\u{1D7F5}\u{1D7F0}\u{1D7EF}\u{1D7F0}\u{1D7F3}\u{1D7F2}\u{1D7F1}\u{1D7F5}\u{1D7ED}\u{1D7F5}",
        ] {
            assert!(screen(bad).is_err(), "{bad} passed the screen");
        }
        assert!(matches!(
            screen("seen on \u{0F21}\u{0F22}th"),
            Err(TextRefusal::Charset(_))
        ));
        for good in ["CIN-2024-00123", "PF/123456", "Seen with sibling, aged 2½"] {
            assert!(screen(good).is_ok(), "{good} was refused");
        }
    }

    #[test]
    fn tokens_split_digits_letters_space_and_marks() {
        assert_eq!(
            tokens("NE1 4ST-x"),
            vec![
                Token::Letters("NE"),
                Token::Digits("1"),
                Token::Space,
                Token::Digits("4"),
                Token::Letters("ST"),
                Token::Mark('-'),
                Token::Letters("x"),
            ]
        );
    }

    #[test]
    fn full_width_digits_are_read_as_digits() {
        assert_eq!(
            find_identifier("\u{FF19}\u{FF14}\u{FF13}4765919"),
            Some(Identifier::NhsNumber)
        );
    }

    /// Ordinary values of each field that must go through.
    const GOOD_LOCAL_REFS: &[&str] = &[
        "CIN-2024-00123",
        "PF/123456",
        "NCC-000123",
        "NP-77",
        "CASE-00001",
        "E08000021-STORY",
        "12/34567/24",
        "MASH_2026_0042",
        "ref.17",
        "NE-20240101-1234",
        "0000012345",
        "1234567890",
    ];
    const GOOD_TEXT: &[&str] = &[
        "Referral from school nurse",
        "Seen at home, with sibling",
        "Home visit arranged",
        "Joint visit with police planned; 3 missing episodes in 2 weeks",
        "Strategy meeting held, section 47 enquiry opened",
        "Joint targeted area inspection: exploitation",
        "JTAI North East, March 2026",
        "Newcastle upon Tyne Hospitals NHS Foundation Trust",
        "Ynys Môn County Council",
        "Case reviewed under s47 (2 of 3 actions done)",
        "May be at risk; review in 6 weeks",
        "Call 999 if seen",
        "NHS 111 advice given",
        "Score 12/20 on the screening tool",
    ];

    #[test]
    fn ordinary_values_are_accepted() {
        for reference in GOOD_LOCAL_REFS {
            assert_eq!(check_local_ref(reference), Ok(()), "{reference}");
        }
        for text in GOOD_TEXT {
            assert_eq!(screen(text), Ok(()), "{text}");
        }
    }

    fn found(text: &str) -> Option<Identifier> {
        find_identifier(text)
    }

    #[test]
    fn nhs_numbers_in_any_common_spacing_are_found() {
        for text in [
            "9434765919",
            "943 476 5919",
            "943-476-5919",
            "943.476.5919",
            "NHS no 943  476  5919 per GP",
            "ref9434765919",
        ] {
            assert_eq!(found(text), Some(Identifier::NhsNumber), "{text}");
        }
        // Ten digits that fail the check digit are not an NHS number.
        assert_eq!(found("943 476 5918"), None);
    }

    #[test]
    fn dates_are_found() {
        for text in [
            "01/02/2015",
            "1/2/2015",
            "DOB 01.02.15",
            "2015-02-01",
            "born 1 Feb 2015",
            "1st February 2015",
            "February 1, 2015",
            "1-Feb-2015",
            "12/31/2014",
            "Sept 3 2011",
        ] {
            assert_eq!(found(text), Some(Identifier::Date), "{text}");
        }
        for text in [
            "Feb 2015",
            "12/20",
            "13/13/2015",
            "2015-13-01",
            "3 visits 2015",
        ] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn postcodes_are_found() {
        for text in [
            "SW1A 1AA",
            "NE1 4ST",
            "lives at ne1 4st",
            "NE14ST",
            "M1 1AE",
            "B33 8TH",
            "CR2 6XH",
            "EC1A 1BB",
            "GIR 0AA",
        ] {
            assert_eq!(found(text), Some(Identifier::Postcode), "{text}");
        }
        for text in ["NE1", "A1 road", "section 47", "Q1 4ST", "NE1 4CI"] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn e_mail_addresses_are_found() {
        for text in [
            "a.person@example.org",
            "contact j_smith+x@nhs.net now",
            "x@mail.example.co.uk.",
        ] {
            assert_eq!(found(text), Some(Identifier::Email), "{text}");
        }
        for text in ["@home", "meet @ 3", "a@b", "x@y.1"] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn a_title_before_a_name_is_found() {
        for text in [
            "Mrs Smith did not attend",
            "seen by Dr. Okafor at the clinic",
            "Mx Taylor's carer",
            "(Mr Ahmed)",
        ] {
            assert_eq!(found(text), Some(Identifier::TitledName), "{text}");
        }
        for text in [
            "Mr and Mrs attended",
            "missed two visits",
            "Drs on call",
            "MS diagnosis",
            "Child A and her mother",
            "Admr Jones",
        ] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn telephone_numbers_are_found() {
        for text in [
            "07700 900123",
            "07700900123",
            "+44 7700 900123",
            "+447700900123",
            "0191 123 4567",
            "(0191) 123 4567",
            "+44 (0)191 123 4567",
            "0044 7700 900123",
            "020-7946-0000",
            "call 0191 123 4567 after 5",
            "+33 1 23 45 67 89",
        ] {
            assert_eq!(found(text), Some(Identifier::Telephone), "{text}");
        }
        for text in ["999", "0000012345", "+2 more", "NCC-000000001"] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn hidden_characters_are_refused() {
        for c in [
            '\u{0}', '\u{7}', '\n', '\r', '\t', '\u{7F}', '\u{85}', '\u{202A}', '\u{202B}',
            '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{2060}',
        ] {
            let text = format!("Home visit{c} arranged");
            assert_eq!(screen(&text), Err(TextRefusal::HiddenCharacter), "{c:?}");
            assert_eq!(check_place_name(&text), Err(TextRefusal::HiddenCharacter));
        }
    }

    #[test]
    fn a_local_ref_holds_letters_digits_and_four_marks_only() {
        for bad in [
            "CASE 1",
            " CASE-1",
            "CASE#1",
            "CASE-1\u{200B}",
            "CAFÉ-1",
            "a@b.com",
        ] {
            assert!(
                matches!(check_local_ref(bad), Err(TextRefusal::Charset(_))),
                "{bad}"
            );
        }
        assert_eq!(check_local_ref(""), Err(TextRefusal::Empty));
        assert!(matches!(
            check_local_ref(&"X".repeat(65)),
            Err(TextRefusal::TooLong { .. })
        ));
        assert_eq!(
            check_local_ref("CIN-943-476-5919"),
            Err(TextRefusal::Identifier(Identifier::NhsNumber))
        );
        assert_eq!(
            check_local_ref("PF/01/02/2015"),
            Err(TextRefusal::Identifier(Identifier::Date))
        );
    }

    #[test]
    fn a_purpose_needs_ten_visible_characters() {
        assert!(check_purpose("Joint inspection: exploitation").is_ok());
        assert_eq!(
            check_purpose("a b c d e f g h i"),
            Err(TextRefusal::TooShort { min: 10 })
        );
        assert!(check_purpose("abcdefghij").is_ok());
        assert!(check_purpose(&"x".repeat(201)).is_err());
    }

    #[test]
    fn a_refusal_never_repeats_the_text() {
        let text = "Lives at NE1 4ST";
        let refusal = screen(text).unwrap_err().to_string();
        assert!(!refusal.contains("NE1"), "{refusal}");
        assert!(refusal.contains("postcode"), "{refusal}");
    }

    #[test]
    fn outward_codes() {
        for good in ["SW1A", "NE1", "M1", "B33", "CR2", "W1A", "EC1A"] {
            assert!(is_outward(good.as_bytes()), "{good}");
        }
        for bad in ["Q1", "1A", "ABC", "SWIA1", "E"] {
            assert!(!is_outward(bad.as_bytes()), "{bad}");
        }
    }
}
