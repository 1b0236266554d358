//! DICOM CT series (single-frame files or enhanced multi-frame), single DICOM
//! files, DICOM mask series and (in [`seg`]) DICOM-SEG.
//!
//! Parsing and codecs are dicom-rs; what is liverseg's own is the part no crate
//! does for us: turning a folder of images into one regular 3-D grid the way a
//! careful radiologist's tool would (series/phase grouping, localizer and
//! screen-save removal, sorting by position along the slice normal, gantry tilt,
//! missing slices, per-slice rescale).
//!
//! Decisions:
//! - Files are recognised by parsing, not by name; files without a File Meta
//!   group (raw data sets) are skipped, a file with the `DICM` magic that does
//!   not parse is skipped with a warning (an error if nothing else is readable).
//! - Within one series, images at the same position are split into phases by
//!   AcquisitionNumber, ContrastBolusAgent or TemporalPositionIdentifier (the
//!   first that separates them into complete stacks), else by acquisition order
//!   when every position repeats the same number of times; otherwise reading
//!   stops with an error. Exact duplicates (same SOPInstanceUID) are dropped.
//!   Phases are ordered as acquired: AcquisitionNumber and
//!   TemporalPositionIdentifier as numbers (9 before 10), ContrastBolusAgent
//!   alphabetically, repeats by AcquisitionTime, ContentTime, then InstanceNumber.
//! - One candidate is read (`choose`): the one without a problem, CT, with the
//!   most slices, most axial; among equals the first listed (SeriesNumber,
//!   SeriesInstanceUID, phase order), so two phases of one series at the same
//!   positions read the first acquired, with a warning naming every phase and
//!   the `series` option that reads another. Never a silent pick.
//! - Gantry tilt is kept exactly: the slice axis of the grid leans with the
//!   slices (a sheared, non-orthonormal direction) and a warning says so.
//! - Missing slices and uneven spacing stop reading unless
//!   `ReadOptions::allow_irregular`, which resamples linearly onto the median step.
//! - CT PixelPaddingValue voxels become -1024 HU (air), so the padding value
//!   (often -2000 or 63536) neither forces float output nor looks like tissue.

mod header;
mod pixels;
mod precheck;
pub mod seg;
pub mod seg_write;
pub mod rtstruct;
pub mod sc_write;

use crate::{Error, Format, ReadOptions, ReadOutput, Result, SourceInfo};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use header::Slice;
use seg_write::SourceSeries;
use liverseg_volume::vec3::{cross, dot, sub};
use liverseg_volume::{DynVolume, Geometry, Mask, Volume};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------
// Small shared helpers (also used by seg.rs)
// ---------------------------------------------------------------------------

/// Run a dicom-rs call and turn a panic inside it into `Error::Invalid`.
/// dicom-rs is robust on most damaged input, but not all: fuzzed files have
/// made parsers panic on arithmetic or slicing, and one bad file must not take
/// down a whole folder read.
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::invalid(path, format!("malformed DICOM (the parser failed: {msg})")))
        }
    }
}

/// Parse a DICOM file's header (everything before PixelData).
pub(crate) fn open_header(path: &Path) -> Result<DefaultDicomObject> {
    open_with(path, OpenFileOptions::new().read_until(tags::PIXEL_DATA), true)
}

/// Parse a whole DICOM file, pixel data included, ready for decoding.
pub(crate) fn open_object(path: &Path) -> Result<DefaultDicomObject> {
    let mut obj = open_with(path, OpenFileOptions::new(), false)?;
    pixels::merge_single_frame_fragments(&mut obj);
    Ok(obj)
}

/// The file is read into memory first so [`precheck`] can refuse impossible
/// element lengths before dicom-rs allocates them. Some collections (nibabel's
/// test data, PACS exports) store `.dcm.gz`; those are inflated in memory (at
/// most 4 GiB) and parsed like any other file.
fn open_with(path: &Path, options: OpenFileOptions, header_only: bool) -> Result<DefaultDicomObject> {
    use std::io::Read;
    guarded(path, || {
        let mut raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(4 << 30)
                .read_to_end(&mut inflated)
                .map_err(|e| Error::invalid(path, format!("gzip-compressed file does not inflate: {e}")))?;
            raw = inflated;
        }
        precheck::check_lengths(&raw, header_only).map_err(|m| Error::invalid(path, m))?;
        let body = if raw.len() >= 132 && &raw[128..132] == b"DICM" { &raw[128..] } else { &raw[..] };
        options
            .read_preamble(ReadPreamble::Never)
            .from_reader(body)
            .map_err(|e| Error::invalid(path, format!("not a readable DICOM file: {}", one_line(&e))))
    })
}

/// dicom-rs errors chain their causes; show the whole chain on one line.
pub(crate) use crate::error::error_line as one_line;

pub(crate) fn el_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let t = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!t.is_empty()).then(|| t.to_string())
}

pub(crate) fn el_strs(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    obj.get(tag)
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| v.iter().map(|s| s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string()).collect())
        .unwrap_or_default()
}

pub(crate) fn el_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

pub(crate) fn el_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    el_f64s(obj, tag).map(|v| v[0])
}

pub(crate) fn el_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    let e = obj.get(tag)?;
    e.to_int::<i64>().ok().or_else(|| {
        // Some writers put "3.0" in IS elements.
        let f = e.to_float64().ok()?;
        (f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
    })
}

/// ImageOrientationPatient with both directions normalised; `None` when absent,
/// not finite, degenerate or far from orthogonal.
pub(crate) fn parse_iop(obj: &InMemDicomObject) -> Option<[f64; 6]> {
    let v = el_f64s(obj, tags::IMAGE_ORIENTATION_PATIENT)?;
    if v.len() < 6 {
        return None;
    }
    let norm = |a: &[f64]| (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    let (nr, nc) = (norm(&v[0..3]), norm(&v[3..6]));
    if !(nr > 0.5 && nr < 1.5 && nc > 0.5 && nc < 1.5) {
        return None;
    }
    let mut o = [0.0; 6];
    for i in 0..3 {
        o[i] = v[i] / nr;
        o[i + 3] = v[i + 3] / nc;
    }
    let dot = o[0] * o[3] + o[1] * o[4] + o[2] * o[5];
    (dot.abs() < 1e-2).then_some(o)
}

pub(crate) fn parse_ipp(obj: &InMemDicomObject) -> Option<[f64; 3]> {
    let v = el_f64s(obj, tags::IMAGE_POSITION_PATIENT)?;
    (v.len() >= 3).then(|| [v[0], v[1], v[2]])
}

/// PixelSpacing as stored: `[between rows (y), between columns (x)]`.
pub(crate) fn parse_pixel_spacing(obj: &InMemDicomObject) -> Option<[f64; 2]> {
    let v = el_f64s(obj, tags::PIXEL_SPACING)?;
    let (r, c) = match v.len() {
        1 => (v[0], v[0]),
        _ => (v[0], v[1]),
    };
    (r > 0.0 && c > 0.0).then_some([r, c])
}

/// Unit slice normal: row direction x column direction.
pub(crate) fn normal_of(iop: &[f64; 6]) -> [f64; 3] {
    let n = cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
    let len = dot(n, n).sqrt();
    [n[0] / len, n[1] / len, n[2] / len]
}

/// Part-10 preamble + "DICM", checked without parsing the file (gzip-compressed
/// DICOM is recognised by the reader itself, not here).
pub fn looks_like_dicom(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 132];
    match f.read_exact(&mut head) {
        Ok(()) => Ok(&head[128..132] == b"DICM"),
        Err(_) => Ok(false),
    }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Decoded stored values (before RescaleSlope/Intercept) of every frame of a
/// file, frame after frame, row by row: what pydicom's `pixel_array` returns.
/// For conformance checks and tools; [`read_file`] is the volume reader.
#[derive(Debug, Clone)]
pub struct StoredPixels {
    pub rows: usize,
    pub cols: usize,
    pub frames: usize,
    pub values: Vec<i64>,
}

pub fn read_stored_pixels(path: &Path) -> Result<StoredPixels> {
    let obj = open_object(path)?;
    let rows = el_int(&obj, tags::ROWS).unwrap_or(0).max(0) as usize;
    let cols = el_int(&obj, tags::COLUMNS).unwrap_or(0).max(0) as usize;
    let frames = el_int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    if rows == 0 || cols == 0 || obj.get(tags::PIXEL_DATA).is_none() {
        return Err(Error::unsupported(path, "DICOM object without pixel data (report, RT object, or image without PixelData)"));
    }
    check_pixel_budget(path, rows, cols, frames)?;
    let mut values = Vec::with_capacity(rows * cols * frames);
    for f in 0..frames {
        let v = pixels::decode_frame(&obj, f as u32, frames as u32, path)?;
        if v.len() != rows * cols {
            return Err(Error::invalid(path, format!("frame {f} decodes to {} pixels, expected {rows}x{cols}", v.len())));
        }
        values.extend(v);
    }
    Ok(StoredPixels { rows, cols, frames, values })
}

/// Refuse pixel counts no file of this size could hold (allocation bombs).
fn check_pixel_budget(path: &Path, rows: usize, cols: usize, frames: usize) -> Result<()> {
    let n = rows.checked_mul(cols).and_then(|x| x.checked_mul(frames));
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as usize;
    match n {
        // Lossless codecs rarely beat 100:1 on real images; allow a wide margin.
        Some(n) if n > 0 && n <= len.saturating_mul(2000).max(1 << 20) && n <= (1usize << 34) => Ok(()),
        _ => Err(Error::invalid(path, format!("implausible image size {rows}x{cols}x{frames} for a {len}-byte file"))),
    }
}

/// The series a read chose, as a typed value: what the DICOM writers refer to
/// (files in slice order, SOP class and instance UIDs, frame of reference, the
/// grid) and what else was found beside it.
#[derive(Debug, Clone)]
pub struct DicomSelection {
    pub series: SourceSeries,
    /// SeriesInstanceUID as the files hold it (empty when an anonymiser removed
    /// it; `series` then carries a made-up one for the derived objects).
    pub series_uid_in_files: String,
    /// Other series and objects found beside the chosen one (other stacks and
    /// phases, localizers, secondary captures, reports...), one entry per
    /// series and kind.
    pub others: Vec<OtherSeries>,
}

/// A series (or group of objects) found beside the chosen one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OtherSeries {
    /// What it is: "CT axial" (another candidate stack), "localizer",
    /// "secondary capture", "structured report", "segmentation", "RT object", ...
    pub kind: String,
    pub series_instance_uid: String,
    pub series_description: String,
    /// Images (frames) or objects of this kind in the series.
    pub count: usize,
}

/// Read the chosen series of a folder (searched recursively).
pub fn read_series(path: &Path, options: &ReadOptions) -> Result<ReadOutput> {
    let found = scan_folder(path, Purpose::Image)?;
    let (index, mut warnings) = choose(path, &found.candidates, options)?;
    let cand = &found.candidates[index];
    warnings.extend(found.warnings.iter().cloned());
    let sg = chosen_stack(path, cand, options.allow_irregular, &mut warnings)?;
    let selection = selection_of(cand, &sg, found.others(index))?;
    let (volume, mut info) = assemble(path, cand, &sg, warnings)?;
    info.details = json!({
        "chosen": index,
        "series": found.candidates.iter().enumerate().map(|(i, c)| c.describe(i)).collect::<Vec<_>>(),
        "files_scanned": found.files_scanned,
        "skipped": found.skipped_json(),
        "transfer_syntaxes": transfer_syntaxes(cand),
        "rescale": rescale_summary(cand),
        "pixel_padding_voxels": info.details.get("pixel_padding_voxels").cloned().unwrap_or(json!(0)),
    });
    Ok(ReadOutput { volume, info, dicom: Some(selection) })
}

/// The series [`read_series`] (folder) or [`read_file`] (one file) would read,
/// and its grid, from the headers only (no pixel data decoded). Errors are the
/// reader's: a folder the reader refuses is refused here with the same message.
pub fn select_series(path: &Path, options: &ReadOptions) -> Result<DicomSelection> {
    let mut warnings = Vec::new();
    if path.is_dir() {
        let found = scan_folder(path, Purpose::Image)?;
        let (index, more) = choose(path, &found.candidates, options)?;
        warnings.extend(more);
        warnings.extend(found.warnings.iter().cloned());
        let cand = &found.candidates[index];
        let sg = chosen_stack(path, cand, options.allow_irregular, &mut warnings)?;
        let mut sel = selection_of(cand, &sg, found.others(index))?;
        sel.series.warnings.splice(0..0, warnings);
        return Ok(sel);
    }
    if !path.exists() {
        return Err(Error::invalid(path, "no such file or folder"));
    }
    let (cands, more) = file_candidates(path)?;
    warnings.extend(more);
    let (index, more) = choose(path, &cands, options)?;
    warnings.extend(more);
    let sg = chosen_stack(path, &cands[index], options.allow_irregular, &mut warnings)?;
    let mut sel = selection_of(&cands[index], &sg, Vec::new())?;
    sel.series.warnings.splice(0..0, warnings);
    Ok(sel)
}

/// Media Storage Directory Storage: a DICOMDIR.
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

/// The candidate stacks of one DICOM file (one slice, or the stacks and phases
/// of a multi-frame image), and what had to be assumed.
fn file_candidates(path: &Path) -> Result<(Vec<Candidate>, Vec<String>)> {
    let obj = open_header(path)?;
    let sop = obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string();
    let sop_instance = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string();
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    if sop == MEDIA_STORAGE_DIRECTORY {
        return Err(Error::unsupported(
            path,
            "a DICOMDIR (the index of a DICOM CD/DVD), not an image: give the folder that holds it, which is searched for the series",
        ));
    }
    let arc = Arc::new(path.to_path_buf());
    let mut slices = header::slices_of(&obj, &arc, &sop, &sop_instance, &ts)
        .ok_or_else(|| Error::unsupported(path, "DICOM object without an image (no Rows/Columns)"))?;
    let mut warnings = Vec::new();
    if slices.len() == 1 && !slices[0].has_geometry() {
        // One image asked for by name: read it even without patient geometry.
        warnings.push("no ImagePositionPatient/ImageOrientationPatient: identity orientation and zero origin assumed".to_string());
        let s = &mut slices[0];
        s.iop.get_or_insert([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        s.ipp.get_or_insert([0.0; 3]);
    } else if slices.iter().any(|s| !s.has_geometry()) {
        return Err(Error::unsupported(path, format!("multi-frame image ({} frames) without per-frame position/orientation", slices.len())));
    }
    // A multi-frame file may hold several orientations or repeated positions
    // (phases, echoes): the same rules as for a folder apply.
    let cands: Vec<Candidate> = if slices.len() > 1 {
        let (majority, others) = split_orientation(slices);
        if others > 0 {
            warnings.push(format!("{others} frame(s) with another orientation than the majority ignored"));
        }
        match split_phases(majority) {
            Ok(phases) => phases.into_iter().map(|(label, s)| Candidate::new(s, label)).collect(),
            Err((s, msg)) => {
                let mut c = Candidate::new(s, String::new());
                c.problem = Some(msg);
                vec![c]
            }
        }
    } else {
        vec![Candidate::new(slices, String::new())]
    };
    Ok((cands, warnings))
}

/// Read a single DICOM file (one slice, or a multi-frame image).
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<ReadOutput> {
    let (cands, mut warnings) = file_candidates(path)?;
    let (index, more) = choose(path, &cands, options)?;
    warnings.extend(more);
    let cand = &cands[index];
    let sg = chosen_stack(path, cand, options.allow_irregular, &mut warnings)?;
    let selection = selection_of(cand, &sg, Vec::new())?;
    let (volume, mut info) = assemble(path, cand, &sg, warnings)?;
    let padding = info.details.get("pixel_padding_voxels").cloned().unwrap_or(json!(0));
    info.details = json!({
        "chosen": index,
        "series": cands.iter().enumerate().map(|(i, c)| c.describe(i)).collect::<Vec<_>>(),
        "transfer_syntaxes": transfer_syntaxes(cand),
        "rescale": rescale_summary(cand),
        "pixel_padding_voxels": padding,
    });
    Ok(ReadOutput { volume, info, dicom: Some(selection) })
}

/// The chosen candidate as a [`DicomSelection`]: patient and study attributes
/// from the first chosen file's header (only the chosen files are read).
fn selection_of(c: &Candidate, sg: &StackGeometry, others: Vec<OtherSeries>) -> Result<DicomSelection> {
    let first = &c.slices[0];
    let header = open_header(&first.path)?;
    let patient_study = seg_write::source::patient_study_of(&header);
    Ok(DicomSelection {
        series: seg_write::source::from_stack(&c.slices, sg.geometry.clone(), sg.regular, patient_study),
        series_uid_in_files: c.series_uid.clone(),
        others,
    })
}

/// Read a mask stored as a DICOM image series (3D-IRCADb `MASKS_DICOM` style)
/// and map it onto `reference` by world position: each reference voxel takes
/// the nearest mask voxel (so the nearest slice along the slice axis).
/// Foreground is any value > 0. Fails when the two grids do not overlap or
/// their slice planes are not parallel.
pub fn read_mask_series_onto(folder: &Path, reference: &Geometry) -> Result<Mask> {
    let found = scan_folder(folder, Purpose::Mask)?;
    let (index, mut warnings) = choose(folder, &found.candidates, &ReadOptions::default())?;
    let cand = &found.candidates[index];
    let sg = chosen_stack(folder, cand, false, &mut warnings)?;
    let (volume, _) = assemble(folder, cand, &sg, warnings)?;
    let src = volume.geometry().clone();
    // Slice planes must be parallel: a mask series is the CT's own geometry.
    let (ds, dr) = (src.direction(), reference.direction());
    let plane = |d: [[f64; 3]; 3]| normal_of(&[d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]]);
    if dot(plane(ds), plane(dr)).abs() < 0.999 {
        return Err(Error::invalid(folder, "mask series slices are not parallel to the reference CT's slices"));
    }
    #[allow(clippy::unnecessary_cast)] // the same cast for every pixel type, f64 included
    let fg: Vec<bool> = liverseg_volume::dyn_dispatch!(&volume, v => v.data().iter().map(|&x| (x as f64) > 0.0).collect());
    let [sx, sy, sz] = src.dims();
    let [rx, ry, _] = reference.dims();
    // index_src = A * index_ref + b (affine), evaluated incrementally.
    let b = src.world_to_index(reference.index_to_world([0.0; 3]));
    let col = |e: [f64; 3]| {
        let p = src.world_to_index(reference.index_to_world(e));
        [p[0] - b[0], p[1] - b[1], p[2] - b[2]]
    };
    let (ax, ay, az) = (col([1.0, 0.0, 0.0]), col([0.0, 1.0, 0.0]), col([0.0, 0.0, 1.0]));
    let mut out = vec![0u8; reference.len()];
    let mut inside = 0usize;
    out.par_chunks_mut(rx * ry)
        .enumerate()
        .map(|(k, plane)| {
            let mut ins = 0usize;
            for j in 0..ry {
                for i in 0..rx {
                    let p: [f64; 3] = std::array::from_fn(|a| b[a] + ax[a] * i as f64 + ay[a] * j as f64 + az[a] * k as f64);
                    let q: [i64; 3] = std::array::from_fn(|a| p[a].round() as i64);
                    if q[0] >= 0 && q[1] >= 0 && q[2] >= 0 && (q[0] as usize) < sx && (q[1] as usize) < sy && (q[2] as usize) < sz {
                        ins += 1;
                        if fg[src.offset(q[0] as usize, q[1] as usize, q[2] as usize)] {
                            plane[i + rx * j] = 1;
                        }
                    }
                }
            }
            ins
        })
        .collect::<Vec<_>>()
        .into_iter()
        .for_each(|i| inside += i);
    if inside == 0 {
        return Err(Error::invalid(
            folder,
            format!("mask series grid ({sx}x{sy}x{sz}, origin {:?}) does not overlap the reference CT grid", src.origin()),
        ));
    }
    Ok(Volume::new(reference.clone(), out).expect("length matches the reference grid"))
}

// ---------------------------------------------------------------------------
// Folder scan: files -> slices -> candidate stacks
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Image,
    /// Mask series are sometimes stored as secondary captures; keep those.
    Mask,
}

struct Found {
    candidates: Vec<Candidate>,
    warnings: Vec<String>,
    files_scanned: usize,
    skipped: BTreeMap<&'static str, usize>,
    /// Objects left out of the candidates, by (kind, series UID): their series
    /// description and count, for the report's list of other series.
    left_out: BTreeMap<(String, String), (String, usize)>,
}

impl Found {
    fn skipped_json(&self) -> serde_json::Value {
        json!(self.skipped)
    }

    /// Everything found beside candidate `chosen`: the other candidate stacks,
    /// then the left-out series by kind.
    fn others(&self, chosen: usize) -> Vec<OtherSeries> {
        let mut v: Vec<OtherSeries> = self
            .candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != chosen)
            .map(|(_, c)| OtherSeries {
                kind: format!(
                    "{} {}{}",
                    if c.modality.is_empty() { "image" } else { &c.modality },
                    orientation_name(c.slices[0].normal()),
                    if c.phase.is_empty() { String::new() } else { format!(" ({})", c.phase) }
                ),
                series_instance_uid: c.series_uid.clone(),
                series_description: c.description.clone(),
                count: c.slices.len(),
            })
            .collect();
        v.extend(self.left_out.iter().map(|((kind, uid), (description, count))| OtherSeries {
            kind: kind.clone(),
            series_instance_uid: uid.clone(),
            series_description: description.clone(),
            count: *count,
        }));
        v
    }
}

/// A person's name for a kind of object left out of the candidate stacks.
fn kind_of(reason: &str, sop_class: &str) -> String {
    let by_class = [
        ("1.2.840.10008.5.1.4.1.1.88", "structured report"),
        ("1.2.840.10008.5.1.4.1.1.66", "segmentation"),
        ("1.2.840.10008.5.1.4.1.1.481", "RT object"),
        ("1.2.840.10008.5.1.4.1.1.11", "presentation state"),
        ("1.2.840.10008.5.1.4.1.1.9", "waveform"),
        ("1.2.840.10008.5.1.4.1.1.7", "secondary capture"),
    ];
    match reason {
        "localizers" => "localizer".into(),
        "no_position_or_orientation" => "image without position".into(),
        _ => by_class.iter().find(|(p, _)| sop_class.starts_with(p)).map(|(_, k)| k.to_string()).unwrap_or_else(|| "non-image object".into()),
    }
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 32 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.eq_ignore_ascii_case("DICOMDIR") {
            continue;
        }
        let ft = match e.file_type() {
            Ok(t) => t,
            Err(_) => continue,
        };
        let p = e.path();
        if ft.is_dir() {
            list_files(&p, out, depth + 1)?;
        } else if ft.is_file() || (ft.is_symlink() && p.is_file()) {
            out.push(p);
        }
    }
    Ok(())
}

enum Scanned {
    Slices(Vec<Slice>),
    NotDicom,
    /// A DICOM object without pixels: its SOP class, series UID and description.
    NoImage(String, String, String),
    Broken(Error),
}

fn scan_file(path: PathBuf) -> Scanned {
    let magic = looks_like_dicom(&path).unwrap_or(false);
    match open_header(&path) {
        Err(e) => {
            if magic {
                Scanned::Broken(e)
            } else {
                Scanned::NotDicom
            }
        }
        Ok(obj) => {
            let sop = obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string();
            let sop_instance = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string();
            let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
            match header::slices_of(&obj, &Arc::new(path), &sop, &sop_instance, &ts) {
                Some(s) => Scanned::Slices(s),
                None => Scanned::NoImage(
                    el_str(&obj, tags::SOP_CLASS_UID).unwrap_or(sop),
                    el_str(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
                    el_str(&obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
                ),
            }
        }
    }
}

fn is_non_volume_sop(sop: &str) -> bool {
    // Segmentation, RT, SR, presentation state, raw, waveform: never CT voxels.
    ["1.2.840.10008.5.1.4.1.1.66", "1.2.840.10008.5.1.4.1.1.481", "1.2.840.10008.5.1.4.1.1.88", "1.2.840.10008.5.1.4.1.1.11", "1.2.840.10008.5.1.4.1.1.9"]
        .iter()
        .any(|p| sop.starts_with(p))
}

/// Scan `folder` and group its images into candidate stacks; an error when
/// none is left (naming what was found instead).
fn scan_folder(folder: &Path, purpose: Purpose) -> Result<Found> {
    let found = scan_all(folder, purpose)?;
    match found.nothing_readable() {
        Some(what) => Err(Error::invalid(folder, format!("no DICOM image series with position and orientation found ({what})"))),
        None => Ok(found),
    }
}

/// `Some(n)` when every object in `folder` is a localizer (scout) image, `n`
/// of them: a scout series, which the reader would refuse ("no DICOM image
/// series ... (n localizers)"). `Ok(None)` otherwise: a stack to read (the
/// read may still refuse it, with its own error), or objects of any other kind,
/// left to the read (or the DICOM node's processor) to deal with. `Err` for what
/// cannot be scanned at all (not a folder, only broken DICOM files). Same scan
/// as [`read_series`]: the DICOM node uses it to leave a scout series
/// unprocessed rather than fail a job on it.
pub fn only_localizers(folder: &Path) -> Result<Option<usize>> {
    let found = scan_all(folder, Purpose::Image)?;
    let only = found.candidates.is_empty() && found.skipped.len() == 1;
    Ok(found.skipped.get("localizers").copied().filter(|_| only))
}

impl Found {
    fn nothing_readable(&self) -> Option<String> {
        if !self.candidates.is_empty() {
            return None;
        }
        Some(if self.skipped.is_empty() {
            "no files".to_string()
        } else {
            self.skipped.iter().map(|(k, v)| format!("{v} {}", k.replace('_', " "))).collect::<Vec<_>>().join(", ")
        })
    }
}

fn scan_all(folder: &Path, purpose: Purpose) -> Result<Found> {
    if !folder.is_dir() {
        return Err(Error::invalid(folder, "not a folder"));
    }
    let mut files = Vec::new();
    list_files(folder, &mut files, 0)?;
    let files_scanned = files.len();
    let scanned: Vec<Scanned> = files.into_par_iter().map(scan_file).collect();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut broken = Vec::new();
    let mut slices = Vec::new();
    let mut left_out: BTreeMap<(String, String), (String, usize)> = BTreeMap::new();
    for s in scanned {
        match s {
            Scanned::Slices(v) => slices.extend(v),
            Scanned::NotDicom => *skipped.entry("not_dicom").or_default() += 1,
            Scanned::NoImage(class, uid, description) => {
                *skipped.entry("no_image").or_default() += 1;
                left_out.entry((kind_of("no_image", &class), uid)).or_insert((description, 0)).1 += 1;
            }
            Scanned::Broken(e) => broken.push(e),
        }
    }
    if !broken.is_empty() {
        *skipped.entry("unreadable").or_default() += broken.len();
        warnings.push(format!(
            "{} unreadable DICOM file(s) skipped, e.g. {}",
            broken.len(),
            broken[0]
        ));
    }
    let mut kept = Vec::with_capacity(slices.len());
    let mut seen = HashSet::new();
    for s in slices {
        let reason = if is_non_volume_sop(&s.sop_class) {
            Some("non_volume_objects")
        } else if s.is_localizer() {
            Some("localizers")
        } else if s.is_secondary_capture() && purpose == Purpose::Image {
            Some("secondary_captures")
        } else if !s.has_geometry() {
            Some("no_position_or_orientation")
        } else {
            None
        };
        if let Some(r) = reason {
            *skipped.entry(r).or_default() += 1;
            left_out.entry((kind_of(r, &s.sop_class), s.series_uid.clone())).or_insert((s.series_description.clone(), 0)).1 += 1;
            continue;
        }
        if !s.sop_instance.is_empty() && !seen.insert((s.sop_instance.clone(), s.frame)) {
            *skipped.entry("duplicate_sop_instances").or_default() += 1;
            continue;
        }
        kept.push(s);
    }
    if kept.is_empty() {
        if let Some(e) = broken.into_iter().next() {
            return Err(e);
        }
    }
    if skipped.contains_key("duplicate_sop_instances") {
        warnings.push(format!("{} duplicate file(s) (same SOPInstanceUID) ignored", skipped["duplicate_sop_instances"]));
    }
    // Series, then orientation, then phase.
    let mut by_series: BTreeMap<String, Vec<Slice>> = BTreeMap::new();
    for s in kept {
        // A multi-frame file is a stack of its own even if it shares a series.
        let key = if s.multi_frame { format!("{}\u{0}{}", s.series_uid, s.path.display()) } else { s.series_uid.clone() };
        by_series.entry(key).or_default().push(s);
    }
    let mut candidates = Vec::new();
    for (_, group) in by_series {
        let (majority, others) = split_orientation(group);
        if others > 0 {
            *skipped.entry("other_orientation").or_default() += others;
            warnings.push(format!(
                "series {}: {others} image(s) with another orientation than the majority ignored",
                majority[0].series_uid
            ));
        }
        match split_phases(majority) {
            Ok(phases) => candidates.extend(phases.into_iter().enumerate().map(|(k, (label, s))| {
                let mut c = Candidate::new(s, label);
                c.phase_order = k;
                c
            })),
            Err((s, msg)) => {
                let mut c = Candidate::new(s, String::new());
                c.problem = Some(msg);
                candidates.push(c);
            }
        }
    }
    candidates.sort_by(|a, b| {
        (a.series_number.unwrap_or(i64::MAX), &a.series_uid, a.phase_order).cmp(&(b.series_number.unwrap_or(i64::MAX), &b.series_uid, b.phase_order))
    });
    Ok(Found { candidates, warnings, files_scanned, skipped, left_out })
}

/// Keep the images whose orientation matches the majority of the group.
fn split_orientation(group: Vec<Slice>) -> (Vec<Slice>, usize) {
    let same = |a: &[f64; 6], b: &[f64; 6]| (0..6).all(|i| (a[i] - b[i]).abs() < 1e-3);
    let mut clusters: Vec<([f64; 6], usize)> = Vec::new();
    for s in &group {
        let o = s.iop.expect("filtered to images with geometry");
        match clusters.iter_mut().find(|(c, _)| same(c, &o)) {
            Some(c) => c.1 += 1,
            None => clusters.push((o, 1)),
        }
    }
    let best = clusters.iter().max_by_key(|c| c.1).map(|c| c.0).expect("non-empty group");
    let total = group.len();
    let kept: Vec<Slice> = group.into_iter().filter(|s| same(&s.iop.unwrap(), &best)).collect();
    let others = total - kept.len();
    (kept, others)
}

/// Position key along the slice normal, rounded to 1 µm so equal positions compare equal.
fn position_key(s: &Slice, n: [f64; 3]) -> i64 {
    (dot(s.ipp.unwrap(), n) * 1000.0).round() as i64
}

type PhaseSplit = std::result::Result<Vec<(String, Vec<Slice>)>, (Vec<Slice>, String)>;

/// Split a series holding several acquisitions at the same positions.
fn split_phases(slices: Vec<Slice>) -> PhaseSplit {
    let n = slices[0].normal().unwrap();
    let mut mult: HashMap<i64, usize> = HashMap::new();
    for s in &slices {
        *mult.entry(position_key(s, n)).or_default() += 1;
    }
    let m = *mult.values().max().unwrap();
    if m == 1 {
        return Ok(vec![(String::new(), slices)]);
    }
    type KeyFn = fn(&Slice) -> String;
    let keys: [(&str, KeyFn); 3] = [
        ("acquisition", |s| s.acquisition_number.map(|a| a.to_string()).unwrap_or_default()),
        ("contrast", |s| s.contrast_agent.clone()),
        ("temporal position", |s| s.temporal_position.map(|a| a.to_string()).unwrap_or_default()),
    ];
    for (name, key) in keys {
        let mut groups: BTreeMap<String, Vec<&Slice>> = BTreeMap::new();
        for s in &slices {
            groups.entry(key(s)).or_default().push(s);
        }
        if groups.len() < 2 || groups.len() > m.max(2) * 4 {
            continue;
        }
        let unique = groups.values().all(|g| {
            let mut set = HashSet::new();
            g.iter().all(|s| set.insert(position_key(s, n)))
        });
        if unique {
            // Phase order: numbers (AcquisitionNumber, TemporalPositionIdentifier)
            // as numbers, so acquisition 9 comes before acquisition 10, then text.
            let mut groups: Vec<(String, Vec<&Slice>)> = groups.into_iter().collect();
            groups.sort_by_cached_key(|(k, _)| {
                let n = k.parse::<i64>().ok();
                (n.is_none(), n.unwrap_or(0), k.clone())
            });
            return Ok(groups
                .into_iter()
                .map(|(k, g)| (format!("{name} {}", if k.is_empty() { "(none)" } else { &k }), g.into_iter().cloned().collect()))
                .collect());
        }
    }
    // Every position repeated equally often: the k-th acquisition at each position
    // (by AcquisitionTime, then ContentTime, then InstanceNumber) forms phase k.
    if mult.values().all(|&c| c == m) {
        let mut by_pos: BTreeMap<i64, Vec<Slice>> = BTreeMap::new();
        for s in slices {
            by_pos.entry(position_key(&s, n)).or_default().push(s);
        }
        let mut phases: Vec<Vec<Slice>> = vec![Vec::new(); m];
        for (_, mut v) in by_pos {
            v.sort_by(|a, b| {
                (&a.acquisition_time, &a.content_time, a.instance_number).cmp(&(&b.acquisition_time, &b.content_time, b.instance_number))
            });
            for (k, s) in v.into_iter().enumerate() {
                phases[k].push(s);
            }
        }
        return Ok(phases.into_iter().enumerate().map(|(k, s)| (format!("repeat {} (by acquisition order)", k + 1), s)).collect());
    }
    let dup = mult.values().filter(|&&c| c > 1).count();
    let msg = format!(
        "{dup} position(s) hold more than one image and neither AcquisitionNumber, ContrastBolusAgent nor TemporalPositionIdentifier separates them"
    );
    Err((slices, msg))
}

struct Candidate {
    slices: Vec<Slice>,
    series_uid: String,
    description: String,
    series_number: Option<i64>,
    modality: String,
    phase: String,
    /// Position of `phase` among the phases of its series, in acquisition
    /// order (see [`split_phases`]): candidates are listed, and ties chosen, by it.
    phase_order: usize,
    problem: Option<String>,
}

impl Candidate {
    fn new(mut slices: Vec<Slice>, phase: String) -> Self {
        let n = slices[0].normal().unwrap_or([0.0, 0.0, 1.0]);
        slices.sort_by(|a, b| {
            let pa = a.ipp.map(|p| dot(p, n)).unwrap_or(0.0);
            let pb = b.ipp.map(|p| dot(p, n)).unwrap_or(0.0);
            pa.total_cmp(&pb)
        });
        let f = &slices[0];
        Candidate {
            series_uid: f.series_uid.clone(),
            description: f.series_description.clone(),
            series_number: f.series_number,
            modality: f.modality.clone(),
            phase,
            phase_order: 0,
            problem: None,
            slices,
        }
    }

    /// |normal . z|: 1 for axial stacks.
    fn axialness(&self) -> f64 {
        self.slices[0].normal().map(|n| n[2].abs()).unwrap_or(0.0)
    }

    fn describe(&self, index: usize) -> serde_json::Value {
        let f = &self.slices[0];
        let mut v = json!({
            "index": index,
            "series_instance_uid": self.series_uid,
            "series_description": self.description,
            "series_number": self.series_number,
            "modality": self.modality,
            "slices": self.slices.len(),
            "dims": [f.cols, f.rows, self.slices.len()],
            "orientation": orientation_name(f.normal()),
            "multi_frame": f.multi_frame,
        });
        if !self.phase.is_empty() {
            v["phase"] = json!(self.phase);
        }
        let acq: Vec<_> = self.slices.iter().filter_map(|s| s.acquisition_number).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        if !acq.is_empty() {
            v["acquisition_numbers"] = json!(acq);
        }
        if !f.contrast_agent.is_empty() {
            v["contrast_agent"] = json!(f.contrast_agent);
        }
        if let Some(p) = &self.problem {
            v["problem"] = json!(p);
        }
        v
    }

    fn summary(&self, index: usize) -> String {
        let f = &self.slices[0];
        format!(
            "[{index}] {} \"{}\" {} {}x{}x{}{}{}",
            self.series_uid,
            self.description,
            if self.modality.is_empty() { "?" } else { &self.modality },
            f.cols,
            f.rows,
            self.slices.len(),
            if self.phase.is_empty() { String::new() } else { format!(" ({})", self.phase) },
            self.problem.as_ref().map(|p| format!(" - unreadable: {p}")).unwrap_or_default()
        )
    }
}

fn orientation_name(n: Option<[f64; 3]>) -> &'static str {
    match n {
        None => "unknown",
        Some(n) => {
            let a = n.map(f64::abs);
            if a[2] >= a[0] && a[2] >= a[1] {
                "axial"
            } else if a[1] >= a[0] {
                "coronal"
            } else {
                "sagittal"
            }
        }
    }
}

fn choose(folder: &Path, cands: &[Candidate], options: &ReadOptions) -> Result<(usize, Vec<String>)> {
    let listing = || cands.iter().enumerate().map(|(i, c)| c.summary(i)).collect::<Vec<_>>().join("; ");
    if let Some(sel) = options.series.as_deref().map(str::trim) {
        if let Ok(i) = sel.parse::<usize>() {
            if i < cands.len() {
                return Ok((i, Vec::new()));
            }
        }
        let matching: Vec<usize> = (0..cands.len()).filter(|&i| cands[i].series_uid == sel).collect();
        return match matching.len() {
            1 => Ok((matching[0], Vec::new())),
            0 => Err(Error::Ambiguous {
                path: folder.to_path_buf(),
                message: format!("no series \"{sel}\" here; choose an index or SeriesInstanceUID among: {}", listing()),
            }),
            _ => Err(Error::Ambiguous {
                path: folder.to_path_buf(),
                message: format!("series \"{sel}\" holds several phases; choose one by index: {}", listing()),
            }),
        };
    }
    let score = |c: &Candidate| (c.problem.is_none(), c.modality.eq_ignore_ascii_case("CT"), c.slices.len(), (c.axialness() * 1000.0) as i64);
    let best = (0..cands.len()).max_by(|&a, &b| score(&cands[a]).cmp(&score(&cands[b])).then(b.cmp(&a))).expect("at least one candidate");
    let mut warnings = Vec::new();
    let ties: Vec<usize> = (0..cands.len()).filter(|&i| i != best && score(&cands[i]) == score(&cands[best])).collect();
    let uid = |c: &Candidate| if c.series_uid.is_empty() { "(no SeriesInstanceUID)".to_string() } else { c.series_uid.clone() };
    let name = |i: usize| {
        let c = &cands[i];
        if c.phase.is_empty() {
            format!("[{i}] series {} \"{}\"", uid(c), c.description)
        } else {
            format!("[{i}] {} of series {}", c.phase, uid(c))
        }
    };
    let names = |v: &[usize]| v.iter().map(|&i| name(i)).collect::<Vec<_>>().join(", ");
    let b = &cands[best];
    if !ties.is_empty() && !b.phase.is_empty() && ties.iter().all(|&i| cands[i].series_uid == b.series_uid && !cands[i].phase.is_empty()) {
        // Phases of one series at the same positions (e.g. arterial and portal
        // venous): the first acquired is read, deterministically.
        warnings.push(format!(
            "series {} holds {} phases of the same size at the same positions: read {} (the first), not {}; choose another with the series option (its index)",
            uid(b),
            ties.len() + 1,
            name(best),
            names(&ties)
        ));
    } else if !ties.is_empty() {
        warnings.push(format!(
            "{} other series/phase(s) of the same size: read {}, not {}; choose another with the series option",
            ties.len(),
            name(best),
            names(&ties)
        ));
    } else if cands.len() > 1 {
        warnings.push(format!("{} candidate series/phases found; read {} (largest axial CT)", cands.len(), name(best)));
    }
    Ok((best, warnings))
}

fn transfer_syntaxes(c: &Candidate) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = c.slices.iter().map(|s| s.transfer_syntax.as_str()).collect();
    set.into_iter().map(|t| format!("{t} ({})", pixels::dicom_transfer_syntax_name(t))).collect()
}

fn rescale_summary(c: &Candidate) -> serde_json::Value {
    let set: std::collections::BTreeSet<(u64, u64)> = c.slices.iter().map(|s| (s.slope.to_bits(), s.intercept.to_bits())).collect();
    let v: Vec<_> = set.into_iter().take(8).map(|(a, b)| json!({"slope": f64::from_bits(a), "intercept": f64::from_bits(b)})).collect();
    json!(v)
}

// ---------------------------------------------------------------------------
// One candidate stack -> volume
// ---------------------------------------------------------------------------

struct StackGeometry {
    geometry: Geometry,
    /// Position of each source slice along the slice axis, in units of the grid step
    /// (integers for a regular stack).
    source_index: Vec<f64>,
    regular: bool,
}

fn stack_geometry(folder: &Path, c: &Candidate, allow_irregular: bool, warnings: &mut Vec<String>) -> Result<StackGeometry> {
    let f = &c.slices[0];
    let iop = f.iop.expect("candidate slices have geometry");
    let n = normal_of(&iop);
    let row = [iop[0], iop[1], iop[2]];
    let colv = [iop[3], iop[4], iop[5]];
    let ps = f.pixel_spacing.ok_or_else(|| Error::invalid(folder, format!("{}: missing PixelSpacing", f.path.display())))?;
    for s in &c.slices {
        if s.rows != f.rows || s.cols != f.cols {
            return Err(Error::invalid(
                folder,
                format!("image sizes differ within the series: {} is {}x{}, {} is {}x{}", f.path.display(), f.cols, f.rows, s.path.display(), s.cols, s.rows),
            ));
        }
        match s.pixel_spacing {
            None => return Err(Error::invalid(folder, format!("{}: missing PixelSpacing", s.path.display()))),
            Some(p) if (p[0] - ps[0]).abs() > 1e-3 * ps[0] || (p[1] - ps[1]).abs() > 1e-3 * ps[1] => {
                return Err(Error::invalid(
                    folder,
                    format!("PixelSpacing differs within the series: {:?} in {}, {:?} in {}", ps, f.path.display(), p, s.path.display()),
                ))
            }
            _ => {}
        }
    }
    let origin = f.ipp.unwrap();
    let nz = c.slices.len();
    // DICOM PixelSpacing is [row spacing (between rows, along y), column spacing (x)].
    let (sx, sy) = (ps[1], ps[0]);
    if nz == 1 {
        let sz = f.spacing_between_slices.or(f.slice_thickness).filter(|v| *v > 0.0).unwrap_or(1.0);
        let dir = [[row[0], colv[0], n[0]], [row[1], colv[1], n[1]], [row[2], colv[2], n[2]]];
        let geometry = Geometry::new([f.cols as usize, f.rows as usize, 1], [sx, sy, sz], origin, dir)
            .map_err(|e| Error::invalid(folder, format!("{}: bad geometry: {e}", f.path.display())))?;
        return Ok(StackGeometry { geometry, source_index: vec![0.0], regular: true });
    }
    let pos: Vec<f64> = c.slices.iter().map(|s| dot(s.ipp.unwrap(), n)).collect();
    let steps: Vec<f64> = pos.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, d) in steps.iter().enumerate() {
        if *d < 1e-3 {
            return Err(Error::invalid(
                folder,
                format!(
                    "two images at the same position ({:.3} mm along the slice normal): {} and {}",
                    pos[i],
                    c.slices[i].path.display(),
                    c.slices[i + 1].path.display()
                ),
            ));
        }
    }
    let mut sorted = steps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    // Regularity: 1% of the step, but never finer than the 1 µm DICOM writers round to.
    let tol = (0.01 * median).max(2e-3);
    let mut missing = Vec::new();
    let mut uneven = Vec::new();
    for (i, d) in steps.iter().enumerate() {
        if (d - median).abs() <= tol {
            continue;
        }
        let k = (d / median).round();
        if k >= 2.0 && (d - k * median).abs() <= 0.1 * median {
            missing.push((i, *d, k as usize - 1));
        } else {
            uneven.push((i, *d));
        }
    }
    let regular = missing.is_empty() && uneven.is_empty();
    if !regular {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            let (i, d, k) = missing[0];
            parts.push(format!(
                "{} missing slice(s) in {} gap(s), first a gap of {d:.3} mm ({k} slice(s)) between {} and {}",
                missing.iter().map(|m| m.2).sum::<usize>(),
                missing.len(),
                c.slices[i].path.display(),
                c.slices[i + 1].path.display()
            ));
        }
        if !uneven.is_empty() {
            let (i, d) = uneven[0];
            parts.push(format!(
                "uneven slice spacing at {} place(s), first {d:.3} mm between {} and {}",
                uneven.len(),
                c.slices[i].path.display(),
                c.slices[i + 1].path.display()
            ));
        }
        let msg = format!("{}; the usual step is {median:.3} mm", parts.join("; "));
        if !allow_irregular {
            return Err(Error::invalid(folder, format!("{msg} (allow irregular series to resample onto a regular grid)")));
        }
        warnings.push(format!("{msg}: resampled linearly onto a regular {median:.3} mm grid"));
    }
    // The slice axis follows the images' positions; with a tilted gantry it leans
    // away from the normal and the grid is sheared (kept exact, not resampled).
    let span = pos[nz - 1] - pos[0];
    let lean = sub(c.slices[nz - 1].ipp.unwrap(), origin).map(|x| x / span); // per mm along the normal
    let lateral = sub(lean, n);
    let tan_tilt = dot(lateral, lateral).sqrt();
    let axis = if tan_tilt > 1e-3 {
        warnings.push(format!(
            "gantry tilt of {:.2} degrees: kept exact with a sheared grid (slice axis not perpendicular to the slices)",
            tan_tilt.atan().to_degrees()
        ));
        lean
    } else {
        n
    };
    let axis_len = dot(axis, axis).sqrt();
    // In-plane drift of individual slices off the common axis means a stack that
    // is not one volume (e.g. a table shift between sub-series).
    let mut worst: f64 = 0.0;
    for (s, p) in c.slices.iter().zip(&pos) {
        let expect = [origin[0] + axis[0] * (p - pos[0]), origin[1] + axis[1] * (p - pos[0]), origin[2] + axis[2] * (p - pos[0])];
        let d = sub(s.ipp.unwrap(), expect);
        worst = worst.max(dot(d, d).sqrt());
    }
    if worst > 0.5 * sx.min(sy) {
        warnings.push(format!("slice positions deviate up to {worst:.2} mm from a straight stack"));
    }
    let (nz_out, source_index, step) = if regular {
        (nz, (0..nz).map(|k| k as f64).collect::<Vec<_>>(), span / (nz - 1) as f64)
    } else {
        let count = (span / median).round() as usize + 1;
        let step = span / (count - 1) as f64;
        (count, pos.iter().map(|p| (p - pos[0]) / step).collect(), step)
    };
    let dir = [[row[0], colv[0], axis[0] / axis_len], [row[1], colv[1], axis[1] / axis_len], [row[2], colv[2], axis[2] / axis_len]];
    let geometry = Geometry::new([f.cols as usize, f.rows as usize, nz_out], [sx, sy, step * axis_len], origin, dir)
        .map_err(|e| Error::invalid(folder, format!("bad stack geometry: {e}")))?;
    Ok(StackGeometry { geometry, source_index, regular })
}

enum Fail {
    NotI16,
    Err(Error),
}

/// HU of one stored value; CT padding becomes air.
#[inline]
fn hu(stored: i64, slope: f64, intercept: f64, padding: Option<i64>) -> f64 {
    if Some(stored) == padding {
        -1024.0
    } else {
        stored as f64 * slope + intercept
    }
}

/// Decode every slice of `c` (in parallel, each file opened once) and hand the
/// HU values of slice `slot` to `sink`.
fn decode_slices<T: Send>(c: &Candidate, out: &mut [T], slice_len: usize, padded: &std::sync::atomic::AtomicUsize, convert: impl Fn(&[i64], &Slice, Option<i64>, &mut [T], &std::sync::atomic::AtomicUsize) -> std::result::Result<(), Fail> + Sync) -> std::result::Result<(), Fail> {
    let mut by_file: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
    for (slot, s) in c.slices.iter().enumerate() {
        by_file.entry(s.path.as_path()).or_default().push(slot);
    }
    let chunks: Vec<Mutex<&mut [T]>> = out.chunks_mut(slice_len).map(Mutex::new).collect();
    let files: Vec<(&Path, Vec<usize>)> = by_file.into_iter().collect();
    files.par_iter().try_for_each(|(path, slots)| {
        let obj = open_object(path).map_err(Fail::Err)?;
        let frames_in_file = el_int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32;
        let (rows, cols) = (c.slices[slots[0]].rows as usize, c.slices[slots[0]].cols as usize);
        check_pixel_budget(path, rows, cols, frames_in_file as usize).map_err(Fail::Err)?;
        slots.par_iter().try_for_each(|&slot| {
            let s = &c.slices[slot];
            let stored = pixels::decode_frame(&obj, s.frame, frames_in_file, path).map_err(Fail::Err)?;
            if stored.len() != slice_len {
                return Err(Fail::Err(Error::invalid(
                    path,
                    format!("pixel data decodes to {} pixels, the header says {}x{}", stored.len(), s.cols, s.rows),
                )));
            }
            let padding = if s.modality.eq_ignore_ascii_case("CT") { s.padding } else { None };
            let mut guard = chunks[slot].lock().unwrap_or_else(|e| e.into_inner());
            convert(&stored, s, padding, &mut guard, padded)
        })
    })?;
    Ok(())
}

/// The chosen candidate's grid, or why it cannot be read: the one place a
/// stack's geometry is derived (the volume and the DICOM writers' source series
/// both come from it).
fn chosen_stack(folder: &Path, c: &Candidate, allow_irregular: bool, warnings: &mut Vec<String>) -> Result<StackGeometry> {
    if let Some(p) = &c.problem {
        return Err(Error::invalid(folder, format!("series {}: {p}", c.series_uid)));
    }
    if let Some(s) = c.slices.iter().find(|s| s.samples_per_pixel != 1) {
        return Err(Error::unsupported(&s.path, format!("{} samples per pixel (colour image); liverseg reads greyscale CT only", s.samples_per_pixel)));
    }
    stack_geometry(folder, c, allow_irregular, warnings)
}

fn assemble(folder: &Path, c: &Candidate, sg: &StackGeometry, warnings: Vec<String>) -> Result<(DynVolume, SourceInfo)> {
    let f = &c.slices[0];
    let slice_len = f.rows as usize * f.cols as usize;
    let n_src = c.slices.len();
    slice_len
        .checked_mul(n_src.max(sg.geometry.dims()[2]))
        .filter(|&n| n <= 1usize << 34)
        .ok_or_else(|| Error::invalid(folder, "series too large"))?;
    let padded = std::sync::atomic::AtomicUsize::new(0);
    use std::sync::atomic::Ordering::Relaxed;

    // First try: exact int16 HU (the usual CT case), written straight into the output.
    let mut volume: Option<DynVolume> = None;
    if sg.regular {
        let mut out = vec![0i16; slice_len * n_src];
        let r = decode_slices(c, &mut out, slice_len, &padded, |stored, s, pad, dst, padded| {
            let (slope, icpt) = (s.slope, s.intercept);
            let mut np = 0;
            if slope == 1.0 && icpt.fract() == 0.0 && icpt.abs() < 65536.0 {
                let b = icpt as i64;
                for (d, &v) in dst.iter_mut().zip(stored) {
                    let h = if Some(v) == pad {
                        np += 1;
                        -1024
                    } else {
                        v + b
                    };
                    *d = i16::try_from(h).map_err(|_| Fail::NotI16)?;
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(stored) {
                    np += usize::from(Some(v) == pad);
                    let h = hu(v, slope, icpt, pad);
                    if h.fract() != 0.0 || h < i16::MIN as f64 || h > i16::MAX as f64 {
                        return Err(Fail::NotI16);
                    }
                    *d = h as i16;
                }
            }
            padded.fetch_add(np, Relaxed);
            Ok(())
        });
        match r {
            Ok(()) => volume = Some(DynVolume::from(Volume::new(sg.geometry.clone(), out).expect("sized from geometry"))),
            Err(Fail::Err(e)) => return Err(e),
            Err(Fail::NotI16) => padded.store(0, Relaxed),
        }
    }
    let volume = match volume {
        Some(v) => v,
        None => {
            let mut src = vec![0f32; slice_len * n_src];
            let r = decode_slices(c, &mut src, slice_len, &padded, |stored, s, pad, dst, padded| {
                let mut np = 0;
                for (d, &v) in dst.iter_mut().zip(stored) {
                    np += usize::from(Some(v) == pad);
                    *d = hu(v, s.slope, s.intercept, pad) as f32;
                }
                padded.fetch_add(np, Relaxed);
                Ok(())
            });
            match r {
                Ok(()) => {}
                Err(Fail::Err(e)) => return Err(e),
                Err(Fail::NotI16) => unreachable!("the f32 path never asks for int16"),
            }
            let data = if sg.regular { src } else { resample_slices(&src, slice_len, &sg.source_index, sg.geometry.dims()[2]) };
            let v = DynVolume::from(Volume::new(sg.geometry.clone(), data).expect("sized from geometry"));
            // Resampled or rescaled values that happen to be exact integers stay int16.
            match v.to_i16_exact() {
                Some(i) => DynVolume::from(i),
                None => v,
            }
        }
    };
    let np = padded.load(Relaxed);
    let info = SourceInfo {
        format: Format::DicomSeries,
        path: folder.to_path_buf(),
        warnings,
        details: json!({ "pixel_padding_voxels": np }),
    };
    Ok((volume, info))
}

/// Linear interpolation along the slice axis from slices at fractional grid
/// positions `at` (ascending) onto integer positions 0..count.
fn resample_slices(src: &[f32], slice_len: usize, at: &[f64], count: usize) -> Vec<f32> {
    let mut out = vec![0f32; slice_len * count];
    out.par_chunks_mut(slice_len).enumerate().for_each(|(k, dst)| {
        let z = k as f64;
        let hi = at.partition_point(|&p| p < z - 1e-9).min(at.len() - 1);
        let lo = hi.saturating_sub(1);
        let (a, b) = (&src[lo * slice_len..(lo + 1) * slice_len], &src[hi * slice_len..(hi + 1) * slice_len]);
        let w = if hi == lo || (at[hi] - at[lo]).abs() < 1e-12 { 1.0 } else { ((z - at[lo]) / (at[hi] - at[lo])).clamp(0.0, 1.0) } as f32;
        for i in 0..slice_len {
            dst[i] = a[i] + (b[i] - a[i]) * w;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_is_row_cross_column() {
        // Standard axial: rows to the left (+x), columns posterior (+y) -> +z.
        assert_eq!(normal_of(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), [0.0, 0.0, 1.0]);
        // Coronal (rows +x, columns inferior): normal points posterior (+y).
        assert_eq!(normal_of(&[1.0, 0.0, 0.0, 0.0, 0.0, -1.0]), [0.0, 1.0, 0.0]);
    }

    #[test]
    fn resample_is_linear_between_neighbours() {
        // Slices at 0, 1, 3 (one missing at 2) of a 1-pixel image.
        let out = resample_slices(&[0.0, 10.0, 30.0], 1, &[0.0, 1.0, 3.0], 4);
        assert_eq!(out, vec![0.0, 10.0, 20.0, 30.0]);
    }

    #[test]
    fn hu_maps_padding_to_air() {
        assert_eq!(hu(-2000, 1.0, -1024.0, Some(-2000)), -1024.0);
        assert_eq!(hu(1024, 1.0, -1024.0, Some(-2000)), 0.0);
        assert_eq!(hu(10, 2.5, 1.0, None), 26.0);
    }
}
