//! Reading raw text files: whole-file reads with path-naming errors, the legacy 8-bit
//! encodings of the datasets (ISO-8859-1 for MovieLens, CP1252/ISO-8859-1 for
//! Book-Crossing), and numbered lines.
//!
//! Encoding rule: a line (or file) that is valid UTF-8 is read as UTF-8, otherwise as the
//! format's legacy 8-bit encoding. The original MovieLens files are not valid UTF-8 and so
//! decode as Latin-1; a copy someone re-encoded to UTF-8 still reads correctly instead of
//! turning `Misérables` into `MisÃ©rables`. UTF-16 files (BOM or NUL bytes) are rejected
//! with an error that says so.

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// The 8-bit encoding a format falls back to when bytes are not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// Only 7-bit ASCII is allowed (Sushi3 files).
    Ascii,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    /// Windows-1252: Latin-1 with printable characters in 0x80..=0x9F.
    Cp1252,
}

/// CP1252's 0x80..=0x9F; the five undefined bytes map to the C1 control of the same value
/// (as Latin-1 would).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// Decode bytes in a legacy encoding (no UTF-8 attempt).
pub fn decode_legacy(bytes: &[u8], legacy: Legacy) -> Option<String> {
    match legacy {
        Legacy::Ascii => bytes
            .is_ascii()
            .then(|| bytes.iter().map(|&b| b as char).collect()),
        Legacy::Latin1 => Some(bytes.iter().map(|&b| b as char).collect()),
        Legacy::Cp1252 => Some(
            bytes
                .iter()
                .map(|&b| {
                    if (0x80..0xA0).contains(&b) {
                        CP1252_HIGH[(b - 0x80) as usize]
                    } else {
                        b as char
                    }
                })
                .collect(),
        ),
    }
}

/// Read a whole file; a missing file becomes [`DataError::MissingFile`] with `what`.
pub fn read_bytes(path: &Path, what: &str) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::MissingFile {
            path: path.to_path_buf(),
            what: what.to_string(),
        }),
        Err(source) => Err(DataError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A decoded text file split into numbered lines.
pub struct TextFile {
    /// The file's path (for errors).
    pub path: PathBuf,
    lines: Vec<String>,
}

impl TextFile {
    /// Read and decode `path`. Each line is decoded on its own: valid UTF-8 as UTF-8,
    /// otherwise with `legacy`. CRLF endings are accepted; a final empty line is dropped.
    pub fn read(path: &Path, what: &str, legacy: Legacy) -> Result<Self> {
        let bytes = read_bytes(path, what)?;
        Self::from_bytes(path, &bytes, legacy)
    }

    /// Decode bytes as [`TextFile::read`] does (used by tests and in-memory inputs).
    pub fn from_bytes(path: &Path, bytes: &[u8], legacy: Legacy) -> Result<Self> {
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return Err(DataError::Encoding {
                path: path.to_path_buf(),
                line: 1,
                message: "file starts with a UTF-16 byte-order mark; convert it to UTF-8 or the original 8-bit encoding".into(),
            });
        }
        let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
        let mut lines = Vec::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.contains(&0) {
                return Err(DataError::Encoding {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: "NUL byte in text (UTF-16 or binary file?)".into(),
                });
            }
            let text = match std::str::from_utf8(raw) {
                Ok(s) => s.to_string(),
                Err(_) => decode_legacy(raw, legacy).ok_or_else(|| DataError::Encoding {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!(
                        "non-ASCII byte in a file this format keeps in ASCII ({legacy:?})"
                    ),
                })?,
            };
            lines.push(text);
        }
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        Ok(TextFile {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// `(line number from 1, text)` of every line, blank lines skipped.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l.as_str()))
    }

    /// Split a line into exactly `n` fields on `sep`, or fail naming the line.
    pub fn fields<'a>(
        &self,
        line: usize,
        text: &'a str,
        sep: &str,
        n: usize,
    ) -> Result<Vec<&'a str>> {
        let f: Vec<&str> = text.split(sep).collect();
        if f.len() != n {
            return Err(DataError::FieldCount {
                path: self.path.clone(),
                line,
                sep: sep.escape_default().to_string(),
                expected: n,
                found: f.len(),
            });
        }
        Ok(f)
    }

    /// Parse a field or fail naming the line, the field and what was expected.
    pub fn parse<T: std::str::FromStr>(
        &self,
        line: usize,
        field: &str,
        expected: &str,
        s: &str,
    ) -> Result<T> {
        s.trim()
            .parse()
            .map_err(|_| self.bad(line, field, expected, s))
    }

    /// A [`DataError::BadField`] at this file and line.
    pub fn bad(&self, line: usize, field: &str, expected: &str, found: &str) -> DataError {
        DataError::BadField {
            path: self.path.clone(),
            line,
            field: field.into(),
            expected: expected.into(),
            found: found.chars().take(80).collect(),
        }
    }

    /// A [`DataError::Format`] at this file and line.
    pub fn format_err(&self, line: usize, message: impl Into<String>) -> DataError {
        DataError::Format {
            path: self.path.clone(),
            line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_and_utf8_lines_both_decode() {
        let p = Path::new("x");
        let f = TextFile::from_bytes(p, b"Mis\xe9rables\nMis\xc3\xa9rables\r\n\n", Legacy::Latin1)
            .unwrap();
        let l: Vec<_> = f.lines().collect();
        assert_eq!(l, vec![(1, "Misérables"), (2, "Misérables")]);
    }

    #[test]
    fn cp1252_high_range() {
        assert_eq!(
            decode_legacy(b"\x93hi\x94 \x80", Legacy::Cp1252).unwrap(),
            "“hi” €"
        );
        assert_eq!(decode_legacy(b"\x93", Legacy::Latin1).unwrap(), "\u{93}");
        assert!(decode_legacy(b"\x93", Legacy::Ascii).is_none());
    }

    #[test]
    fn rejects_utf16_and_non_ascii_where_ascii_only() {
        let p = Path::new("f.txt");
        let e = TextFile::from_bytes(p, b"\xff\xfe1\x002\x00", Legacy::Latin1)
            .err()
            .unwrap();
        assert!(e.to_string().contains("UTF-16"), "{e}");
        let e = TextFile::from_bytes(p, b"ok\nbad\xe9\n", Legacy::Ascii)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("f.txt:2:"), "{e}");
    }
}
