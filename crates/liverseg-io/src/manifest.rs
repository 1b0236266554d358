//! Case manifests: the one CSV reader behind every command that takes a list
//! of cases (`segment`, `evaluate --manifest`, `review`).
//!
//! A manifest is a CSV file with a header row. Column names are matched
//! without regard to case; each command documents the columns it needs and
//! may take more (extra columns are ignored, so one spreadsheet can serve
//! several commands). Values are trimmed; quoted fields may hold commas; lines
//! starting with `#` and rows whose fields are all empty are skipped. Relative
//! paths are relative to the manifest's folder, so a manifest travels with
//! its data.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// A manifest read from `path`.
#[derive(Debug, Clone)]
pub struct Manifest {
    path: PathBuf,
    columns: Vec<String>,
    rows: Vec<Row>,
}

/// One row: its line in the file (for messages) and its fields.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    fields: Vec<String>,
}

impl Manifest {
    /// Read `path`; every column in `required` (lower case) must be in the
    /// header, and at least one row must follow.
    pub fn read(path: &Path, required: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_text(path, &text, required)
    }

    /// As [`Manifest::read`], for a file the caller has already read (`path`
    /// only names it in errors and anchors relative paths).
    pub fn from_text(path: &Path, text: &str, required: &[&str]) -> Result<Self> {
        let m = Self::parse(path, text, required)?;
        if m.rows.is_empty() {
            return Err(Error::invalid(path, "the manifest lists no case"));
        }
        Ok(m)
    }

    /// As [`Manifest::read`], for tables that may hold no row yet (a study's
    /// scores, times, tags).
    pub fn read_table(path: &Path, required: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text, required)
    }

    /// The first non-comment line's column names (lower case; empty when
    /// there is none): lets a command tell a CSV manifest from an older list
    /// format before parsing it.
    pub fn header_of(text: &str) -> Vec<String> {
        let mut reader = builder().from_reader(text.as_bytes());
        reader.headers().map(|h| h.iter().map(str::to_lowercase).collect()).unwrap_or_default()
    }

    fn parse(path: &Path, text: &str, required: &[&str]) -> Result<Self> {
        let line_of = |e: &csv::Error| e.position().map_or(String::new(), |p| format!("line {}: ", p.line()));
        let mut reader = builder().from_reader(text.as_bytes());
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| Error::invalid(path, format!("{}{e}", line_of(&e))))?
            .iter()
            .map(str::to_lowercase)
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(Error::invalid(path, format!("empty manifest: expected a CSV header with the columns {}", required.join(","))));
        }
        for col in required {
            if !columns.iter().any(|c| c == col) {
                return Err(Error::invalid(path, format!("missing column {col:?} (header: {}; needed: {})", columns.join(","), required.join(","))));
            }
        }
        let mut rows = Vec::new();
        for rec in reader.records() {
            let rec = rec.map_err(|e| Error::invalid(path, format!("{}{e}", line_of(&e))))?;
            if rec.iter().all(str::is_empty) {
                continue;
            }
            let line = rec.position().map_or(0, |p| p.line() as usize);
            rows.push(Row { line, fields: rec.iter().map(str::to_string).collect() });
        }
        Ok(Manifest { path: path.to_path_buf(), columns, rows })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// A field of `row` ("" when the column is absent).
    pub fn get<'a>(&self, row: &'a Row, column: &str) -> &'a str {
        self.columns.iter().position(|c| c == column).and_then(|i| row.fields.get(i)).map_or("", String::as_str)
    }

    /// A field that must not be empty, as an error naming the line otherwise.
    pub fn require<'a>(&self, row: &'a Row, column: &str) -> Result<&'a str> {
        match self.get(row, column) {
            "" => Err(self.error(row, format!("no value in column {column:?}"))),
            v => Ok(v),
        }
    }

    /// A path field, resolved against the manifest's folder when relative.
    pub fn path_of(&self, row: &Row, column: &str) -> Result<PathBuf> {
        let p = Path::new(self.require(row, column)?);
        Ok(if p.is_absolute() { p.to_path_buf() } else { self.path.parent().unwrap_or(Path::new(".")).join(p) })
    }

    /// An error about one row: `MANIFEST: line N: message`.
    pub fn error(&self, row: &Row, message: impl std::fmt::Display) -> Error {
        Error::invalid(&self.path, format!("line {}: {message}", row.line))
    }
}

/// One field of a CSV row we write (tables, summaries), quoted when it holds
/// a separator, a quote or a line break, so [`Manifest`] reads it back as is.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn builder() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.comment(Some(b'#')).trim(csv::Trim::All).flexible(false);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cases.csv");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn columns_in_any_order_and_case_quotes_comments_and_blank_rows() {
        let (dir, p) = write("# cohort A\nMask,Case, CT ,note\n\"m,1.nii.gz\",a,/abs/ct.nii.gz,x\n,,,\n# skipped\nm2.nii.gz,b,ct2.nii.gz,\n");
        let m = Manifest::read(&p, &["case", "ct", "mask"]).unwrap();
        assert_eq!(m.rows().len(), 2);
        let r = &m.rows()[0];
        assert_eq!(m.get(r, "case"), "a");
        assert_eq!(m.path_of(r, "ct").unwrap(), PathBuf::from("/abs/ct.nii.gz"));
        assert_eq!(m.path_of(r, "mask").unwrap(), dir.path().join("m,1.nii.gz"));
        assert_eq!(m.path_of(&m.rows()[1], "ct").unwrap(), dir.path().join("ct2.nii.gz"));
        assert_eq!(m.get(r, "absent"), "");
        assert!(m.has_column("note"));
        assert_eq!(Manifest::header_of(&std::fs::read_to_string(&p).unwrap()), ["mask", "case", "ct", "note"]);
    }

    #[test]
    fn fields_written_with_csv_field_read_back_as_they_were() {
        let values = ["plain", "a,b", "say \"hi\"", "two\nlines", "", "#not a comment"];
        let mut text = String::from("case,value\n");
        for (i, v) in values.iter().enumerate() {
            text.push_str(&format!("c{i},{}\n", csv_field(v)));
        }
        let (_d, p) = write(&text);
        let m = Manifest::read_table(&p, &["case", "value"]).unwrap();
        let back: Vec<&str> = m.rows().iter().map(|r| m.get(r, "value")).collect();
        // The empty value's row is still there: its case field is not empty.
        assert_eq!(back, values);
    }

    #[test]
    fn errors_name_the_file_and_the_line() {
        let (_d, p) = write("case,ct\na,x.nii.gz\nb,y.nii.gz,extra\n");
        let e = Manifest::read(&p, &["case", "ct"]).unwrap_err().to_string();
        assert!(e.contains("cases.csv") && e.contains("line 3"), "{e}");

        let (_d, p) = write("case,mask\na,x.nii.gz\n");
        let e = Manifest::read(&p, &["case", "ct"]).unwrap_err().to_string();
        assert!(e.contains("missing column \"ct\""), "{e}");

        let (_d, p) = write("case,ct\n");
        assert!(Manifest::read(&p, &["case", "ct"]).unwrap_err().to_string().contains("no case"));
        assert!(Manifest::read_table(&p, &["case", "ct"]).unwrap().rows().is_empty());

        let (_d, p) = write("");
        assert!(Manifest::read(&p, &["case"]).unwrap_err().to_string().contains("empty manifest"));

        let (_d, p) = write("case,ct\na,\n");
        let m = Manifest::read(&p, &["case", "ct"]).unwrap();
        let e = m.path_of(&m.rows()[0], "ct").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("\"ct\""), "{e}");

        let e = Manifest::read(Path::new("/no/such/cases.csv"), &[]).unwrap_err().to_string();
        assert!(e.contains("/no/such/cases.csv"), "{e}");
    }
}
