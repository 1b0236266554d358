//! The text header of a MetaImage file, split into `Key = Value` fields the way
//! ITK's MetaIO reads it: keys are case-sensitive, the value is everything after
//! the first `=` (trimmed, so extra spaces and CRLF line ends are harmless), a
//! later duplicate overrides an earlier one, and the `ElementDataFile` line ends
//! the header (for `.mha` files the voxel data starts on the next byte).

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Headers longer than this are not MetaImage headers (ITK's own are < 1 KiB);
/// the cap keeps a wrongly named binary file from being scanned to its end.
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Same cap for the file names that follow `ElementDataFile = LIST`.
const MAX_LIST_BYTES: u64 = 64 << 20;

#[derive(Debug)]
pub(crate) struct Header {
    /// Fields before `ElementDataFile`, in file order.
    fields: Vec<(String, String)>,
    /// The `ElementDataFile` value (trimmed).
    pub data_file: String,
    /// Byte offset of the first byte after the `ElementDataFile` line.
    pub data_offset: u64,
    /// Non-empty lines without `=` that were skipped.
    pub skipped_lines: usize,
}

impl Header {
    /// Last value given for `key` (MetaIO lets a later line override an earlier one).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first of `keys` that is present (`keys` in order of precedence), with its name.
    pub fn get_first<'a>(&'a self, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
        keys.iter().find_map(|&k| self.get(k).map(|v| (k, v)))
    }

    /// MetaIO booleans: `True`, `true`, `T`, `1` ... (it looks at the first character).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| matches!(v.as_bytes().first(), Some(b'T' | b't' | b'1')))
    }
}

/// Read the header of `path`; returns the reader positioned just after the
/// `ElementDataFile` line (where LIST file names, or LOCAL data, begin).
pub(crate) fn read_header(path: &Path) -> Result<(Header, BufReader<File>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut fields = Vec::new();
    let mut offset = 0u64;
    let mut skipped_lines = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let budget = MAX_HEADER_BYTES.saturating_sub(offset);
        if budget == 0 {
            return Err(Error::invalid(path, "not a MetaImage header: no ElementDataFile line in the first 1 MiB"));
        }
        let n = (&mut reader).take(budget).read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Err(Error::invalid(
                path,
                if fields.is_empty() {
                    "not a MetaImage header: empty file".to_string()
                } else {
                    "MetaImage header has no ElementDataFile line (it must be the last header line)".to_string()
                },
            ));
        }
        offset += n as u64;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let Some((key, value)) = text.split_once('=') else {
            if !text.trim().is_empty() {
                skipped_lines += 1;
            }
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key == "ElementDataFile" {
            if value.is_empty() {
                return Err(Error::invalid(path, "ElementDataFile is empty"));
            }
            let header = Header { fields, data_file: value.to_string(), data_offset: offset, skipped_lines };
            return Ok((header, reader));
        }
        if fields.is_empty() && !looks_like_key(key) {
            return Err(Error::invalid(path, "not a MetaImage header: the first line is not `Key = Value`"));
        }
        fields.push((key.to_string(), value.to_string()));
    }
}

fn looks_like_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The file names listed after `ElementDataFile = LIST`: the next `count`
/// non-empty lines.
pub(crate) fn read_list(path: &Path, reader: &mut BufReader<File>, count: usize) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut line = Vec::new();
    let mut used = 0u64;
    while names.len() < count {
        line.clear();
        let n = (&mut *reader)
            .take(MAX_LIST_BYTES.saturating_sub(used))
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Err(Error::invalid(
                path,
                format!("ElementDataFile = LIST names {} data files, the image needs {count}", names.len()),
            ));
        }
        used += n as u64;
        let text = String::from_utf8_lossy(&line);
        let name = text.trim();
        if !name.is_empty() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Whitespace-separated numbers of a field; at least `n` of them (MetaIO reads
/// the first `n` and ignores any surplus).
pub(crate) fn numbers(path: &Path, key: &str, value: &str, n: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for word in value.split_whitespace().take(n) {
        let v: f64 = word
            .parse()
            .map_err(|_| Error::invalid(path, format!("{key}: '{word}' is not a number")))?;
        out.push(v);
    }
    if out.len() < n {
        return Err(Error::invalid(path, format!("{key} has {} numbers, NDims needs {n}", out.len())));
    }
    Ok(out)
}

/// A non-negative integer field (`NDims`, `HeaderSize`, `DimSize` entries). MetaIO
/// stores these as floats, so `256.0` is accepted as well.
pub(crate) fn integer(path: &Path, key: &str, word: &str) -> Result<i64> {
    if let Ok(v) = word.parse::<i64>() {
        return Ok(v);
    }
    match word.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
        _ => Err(Error::invalid(path, format!("{key}: '{word}' is not an integer"))),
    }
}
