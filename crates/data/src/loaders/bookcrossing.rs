//! Book-Crossing loader (Ziegler et al. 2005, the `BX-CSV-Dump` files).
//!
//! Files: `BX-Users.csv` (`"User-ID";"Location";"Age"`), `BX-Books.csv` (`"ISBN";
//! "Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";
//! "Image-URL-M";"Image-URL-L"`), `BX-Book-Ratings.csv` (`"User-ID";"ISBN";"Book-Rating"`),
//! each with that header line. Quirks handled:
//! * fields separated by `;` and quoted with `"`; quotes inside a field are escaped with a
//!   backslash (`\"`), except that a backslash right before the closing quote (`...\";`)
//!   is a stray backslash, not an escape (a known defect of some BX-Books titles);
//!   doubled quotes (`""`) are read as one quote too;
//! * the encoding is mixed: each line that is valid UTF-8 is read as UTF-8, the others as
//!   Windows-1252 (a superset of Latin-1);
//! * titles carry HTML entities (`&amp;`, `&quot;`, ...), which are decoded;
//! * `Age` is `NULL` for most users; ages outside `[min_age, max_age]` (default 5-100;
//!   the dump has ages 0 and 244) are treated as missing, and both are counted;
//! * ratings of 0 are implicit interactions (no explicit score); they are left out unless
//!   `include_implicit` is set;
//! * ratings whose ISBN is not in BX-Books (about a quarter of the dump) or whose user is
//!   not in BX-Users are left out and counted; ISBNs are compared trimmed and uppercased.
//!
//! The dump has no timestamps: the rating file's line order is the time order.

use super::open;
use crate::error::Result;
use crate::raw::{Age, DatasetKind, IdIndex, Item, Rating, RawDataset, User};
use crate::text::{Legacy, TextFile};
use std::collections::BTreeMap;
use std::path::Path;

/// Options of the Book-Crossing loader.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BookCrossingOptions {
    /// Keep implicit (0) ratings.
    #[serde(default)]
    pub include_implicit: bool,
    /// Smallest plausible age; younger is read as missing.
    #[serde(default = "default_min_age")]
    pub min_age: u32,
    /// Largest plausible age; older is read as missing.
    #[serde(default = "default_max_age")]
    pub max_age: u32,
}

fn default_min_age() -> u32 {
    5
}
fn default_max_age() -> u32 {
    100
}

impl Default for BookCrossingOptions {
    fn default() -> Self {
        BookCrossingOptions {
            include_implicit: false,
            min_age: default_min_age(),
            max_age: default_max_age(),
        }
    }
}

/// Split one line into fields by the rules of the module docs.
pub fn split_bx_line(f: &TextFile, line: usize, text: &str) -> Result<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(f.format_err(
                            line,
                            format!("unterminated quoted field {}", fields.len() + 1),
                        ))
                    }
                    Some('\\') if chars.get(i + 1) == Some(&'"') => {
                        let after = chars.get(i + 2);
                        if after.is_none() || after == Some(&';') {
                            i += 2; // stray backslash before the closing quote
                            break;
                        }
                        field.push('"');
                        i += 2;
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None | Some(';') => {}
                Some(c) => {
                    return Err(f.format_err(
                        line,
                        format!(
                            "unexpected `{c}` after the closing quote of field {}",
                            fields.len() + 1
                        ),
                    ))
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ';' {
                    break;
                }
                field.push(c);
                i += 1;
            }
        }
        fields.push(field);
        if i >= chars.len() {
            return Ok(fields);
        }
        i += 1; // the `;`
    }
}

fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn normalize_isbn(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

/// Read a file's data lines (header checked and skipped) split into `n` fields.
fn records(f: &TextFile, header: &[&str]) -> Result<Vec<(usize, Vec<String>)>> {
    let mut out = Vec::new();
    let mut lines = f.lines();
    match lines.next() {
        Some((line, text)) => {
            let h = split_bx_line(f, line, text)?;
            if h != header {
                return Err(f.bad(line, "header", &header.join(";"), text));
            }
        }
        None => return Err(f.format_err(1, "empty file (expected a header line)")),
    }
    for (line, text) in lines {
        let fields = split_bx_line(f, line, text)?;
        if fields.len() != header.len() {
            return Err(crate::error::DataError::FieldCount {
                path: f.path.clone(),
                line,
                sep: ";".into(),
                expected: header.len(),
                found: fields.len(),
            });
        }
        out.push((line, fields));
    }
    Ok(out)
}

/// Load Book-Crossing from `dir`.
pub fn load(dir: &Path, opts: &BookCrossingOptions) -> Result<RawDataset> {
    let mut sources = Vec::new();
    let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
    let uf = open(
        dir,
        "BX-Users.csv",
        "Book-Crossing users",
        Legacy::Cp1252,
        &mut sources,
    )?;
    let mut users = Vec::new();
    let mut uidx = IdIndex::new();
    for (line, f) in records(&uf, &["User-ID", "Location", "Age"])? {
        let age = match f[2].trim() {
            "NULL" | "" => {
                *dropped.entry("users_age_null".into()).or_default() += 1;
                None
            }
            s => {
                let a: u32 = uf.parse(line, "Age", "a whole number or NULL", s)?;
                if (opts.min_age..=opts.max_age).contains(&a) {
                    Some(Age::Years(a))
                } else {
                    *dropped.entry("users_age_out_of_range".into()).or_default() += 1;
                    None
                }
            }
        };
        let id = f[0].trim().to_string();
        if id.parse::<u64>().is_err() {
            return Err(uf.bad(line, "User-ID", "a number", &id));
        }
        uidx.insert(&uf, line, &id, users.len())?;
        users.push(User {
            id,
            gender: None,
            age,
            profile: BTreeMap::from([("location".to_string(), f[1].trim().to_string())]),
        });
    }
    let bf = open(
        dir,
        "BX-Books.csv",
        "Book-Crossing books",
        Legacy::Cp1252,
        &mut sources,
    )?;
    let header = [
        "ISBN",
        "Book-Title",
        "Book-Author",
        "Year-Of-Publication",
        "Publisher",
        "Image-URL-S",
        "Image-URL-M",
        "Image-URL-L",
    ];
    let mut items = Vec::new();
    let mut iidx = IdIndex::new();
    for (line, f) in records(&bf, &header)? {
        let isbn = normalize_isbn(&f[0]);
        if isbn.is_empty() {
            return Err(bf.bad(line, "ISBN", "a non-empty ISBN", &f[0]));
        }
        iidx.insert(&bf, line, &isbn, items.len())?;
        items.push(Item {
            id: isbn,
            title: html_unescape(f[1].trim()),
            genres: Vec::new(),
        });
    }
    let rf = open(
        dir,
        "BX-Book-Ratings.csv",
        "Book-Crossing ratings",
        Legacy::Cp1252,
        &mut sources,
    )?;
    let mut log = super::RatingLog::default();
    for (seq, (line, f)) in records(&rf, &["User-ID", "ISBN", "Book-Rating"])?
        .into_iter()
        .enumerate()
    {
        let value: u8 = rf.parse(line, "Book-Rating", "a whole number 0-10", &f[2])?;
        if value > 10 {
            return Err(rf.bad(line, "Book-Rating", "a whole number 0-10", &f[2]));
        }
        if value == 0 && !opts.include_implicit {
            *dropped.entry("ratings_implicit".into()).or_default() += 1;
            continue;
        }
        let Some(user) = uidx.get(f[0].trim()) else {
            *dropped.entry("ratings_unknown_user".into()).or_default() += 1;
            continue;
        };
        let Some(item) = iidx.get(&normalize_isbn(&f[1])) else {
            *dropped.entry("ratings_unknown_isbn".into()).or_default() += 1;
            continue;
        };
        let r = Rating {
            user,
            item,
            value: f32::from(value),
            time: seq as i64,
            seq: seq as u32,
        };
        log.push(&rf, line, r)?;
    }
    let ratings = log.finish(&mut dropped);
    Ok(RawDataset {
        kind: DatasetKind::BookCrossing,
        users,
        items,
        ratings,
        sources,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        let f = TextFile::from_bytes(Path::new("t.csv"), b"", Legacy::Cp1252).unwrap();
        split_bx_line(&f, 1, s).unwrap()
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(
            split(r#""1";"nyc, new york, usa";NULL"#),
            ["1", "nyc, new york, usa", "NULL"]
        );
        assert_eq!(split(r#""a \"b\" c";"x;y""#), ["a \"b\" c", "x;y"]);
        assert_eq!(split(r#""Readers)\";"James""#), ["Readers)", "James"]);
        assert_eq!(split(r#""say ""hi""";"2""#), ["say \"hi\"", "2"]);
        assert_eq!(split(r#""";"";"#), ["", "", ""]);
    }

    #[test]
    fn unterminated_quote_names_line() {
        let f = TextFile::from_bytes(Path::new("BX-Books.csv"), b"", Legacy::Cp1252).unwrap();
        let e = split_bx_line(&f, 7, r#""abc;"d""#).unwrap_err();
        assert!(e.to_string().starts_with("BX-Books.csv:7:"), "{e}");
        assert_eq!(
            html_unescape("Tom &amp; Jerry &quot;x&quot;"),
            "Tom & Jerry \"x\""
        );
    }
}
