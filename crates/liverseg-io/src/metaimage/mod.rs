//! MetaImage (ITK MetaIO): `.mha` (header and data in one file) and `.mhd`
//! (header) + data file(s). SLIVER07 ships its CTs and reference masks this way.
//!
//! Reading follows ITK's MetaImageIO so results match SimpleITK one-to-one:
//! - MetaImage coordinates are ITK's, i.e. patient LPS: `Offset` (or `Origin` /
//!   `Position`) is the centre of the first voxel and needs no conversion.
//!   Where synonyms disagree, MetaIO's last assignment wins (`Origin`,
//!   `TransformMatrix`) and a warning says so.
//! - `TransformMatrix` (or `Rotation` / `Orientation`) lists the direction of
//!   voxel axis 0, then of axis 1, ...: ITK sets direction column `i` from
//!   values `i*N .. i*N+N`. Read row-major it is the *transpose* of the
//!   direction matrix, which only shows on non-symmetric (oblique) matrices.
//! - `AnatomicalOrientation` is informational: ITK ignores it for geometry and
//!   so do we (a contradiction with `TransformMatrix` becomes a warning).
//!   `CenterOfRotation` is ignored likewise.
//! - Raw data longer than needed is tolerated (as ITK does); shorter is an
//!   error naming the data file.
//!
//! No maintained Rust crate reads MetaImage with ITK's semantics (LIST and
//! pattern data files, HeaderSize -1, both direction synonyms), so the header
//! parser is hand-written; inflating uses flate2.

mod header;
mod payload;
mod write;

pub use write::write;

use crate::{Error, Format, ReadOptions, ReadOutput, Result, SourceInfo};
use header::{integer, numbers, Header};
use liverseg_volume::{DType, DynVolume, Geometry, Volume};
use payload::{Chunk, Payload, Plan};
use std::path::{Path, PathBuf};

/// Element types by MetaIO name. MetaIO's MET_LONG / MET_ULONG are 4 bytes
/// (`MET_ValueTypeSize`), whatever the platform's `long`.
fn element_type(path: &Path, name: &str) -> Result<DType> {
    Ok(match name {
        "MET_UCHAR" => DType::U8,
        "MET_CHAR" | "MET_ASCII_CHAR" => DType::I8,
        "MET_USHORT" => DType::U16,
        "MET_SHORT" => DType::I16,
        "MET_UINT" | "MET_ULONG" => DType::U32,
        "MET_INT" | "MET_LONG" => DType::I32,
        "MET_ULONG_LONG" => DType::U64,
        "MET_LONG_LONG" => DType::I64,
        "MET_FLOAT" => DType::F32,
        "MET_DOUBLE" => DType::F64,
        n if n.ends_with("_ARRAY") || n == "MET_STRING" || n == "MET_FLOAT_MATRIX" => {
            return Err(Error::unsupported(
                path,
                format!("ElementType {n}: multi-component (vector) pixels; liverseg reads scalar images only"),
            ))
        }
        n => return Err(Error::invalid(path, format!("unknown ElementType '{n}'"))),
    })
}

pub(crate) fn met_name(dtype: DType) -> &'static str {
    match dtype {
        DType::U8 => "MET_UCHAR",
        DType::I8 => "MET_CHAR",
        DType::U16 => "MET_USHORT",
        DType::I16 => "MET_SHORT",
        DType::U32 => "MET_UINT",
        DType::I32 => "MET_INT",
        DType::U64 => "MET_ULONG_LONG",
        DType::I64 => "MET_LONG_LONG",
        DType::F32 => "MET_FLOAT",
        DType::F64 => "MET_DOUBLE",
    }
}

/// ITK's AnatomicalOrientation acronym for a direction: per axis, the side the
/// axis comes *from* (identity LPS direction = "RAI").
pub(crate) fn itk_orientation_acronym(geometry: &Geometry) -> String {
    geometry
        .orientation_code()
        .chars()
        .map(|c| match c {
            'L' => 'R',
            'R' => 'L',
            'P' => 'A',
            'A' => 'P',
            'S' => 'I',
            _ => 'S',
        })
        .collect()
}

/// Read a `.mha` / `.mhd` file.
pub fn read(path: &Path, options: &ReadOptions) -> Result<ReadOutput> {
    let (header, mut reader) = header::read_header(path)?;
    let mut warnings = Vec::new();
    if header.skipped_lines > 0 {
        warnings.push(format!("{} header line(s) without '=' ignored", header.skipped_lines));
    }
    if let Some(t) = header.get("ObjectType") {
        if t != "Image" {
            return Err(Error::unsupported(path, format!("ObjectType = {t}: only Image objects are read")));
        }
    }
    let ndims = {
        let v = header.get("NDims").ok_or_else(|| Error::invalid(path, "NDims is missing"))?;
        integer(path, "NDims", v)?
    };
    if ndims < 1 {
        return Err(Error::invalid(path, format!("NDims = {ndims}")));
    }
    if ndims > 4 {
        return Err(Error::unsupported(
            path,
            format!("NDims = {ndims}: liverseg reads 2-D, 3-D and (one volume of) 4-D images"),
        ));
    }
    let n = ndims as usize;
    if let Some(c) = header.get("ElementNumberOfChannels") {
        let c = integer(path, "ElementNumberOfChannels", c)?;
        if c != 1 {
            return Err(Error::unsupported(
                path,
                format!("ElementNumberOfChannels = {c}: multi-component pixels; liverseg reads scalar images only"),
            ));
        }
    }
    let dtype = element_type(path, header.get("ElementType").ok_or_else(|| Error::invalid(path, "ElementType is missing"))?)?;

    let dim_words: Vec<&str> =
        header.get("DimSize").ok_or_else(|| Error::invalid(path, "DimSize is missing"))?.split_whitespace().collect();
    if dim_words.len() < n {
        return Err(Error::invalid(path, format!("DimSize has {} numbers, NDims needs {n}", dim_words.len())));
    }
    let mut dims_n = Vec::with_capacity(n);
    for w in &dim_words[..n] {
        let d = integer(path, "DimSize", w)?;
        if d < 1 {
            return Err(Error::invalid(path, format!("DimSize entry {d} must be at least 1")));
        }
        dims_n.push(d as u64);
    }
    let too_large = || Error::invalid(path, format!("DimSize {dims_n:?} is too large"));
    let total_elements = dims_n.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(too_large)?;
    let esize = dtype.size_bytes() as u64;
    total_elements.checked_mul(esize).filter(|&b| b <= isize::MAX as u64).ok_or_else(too_large)?;

    let spacing_n = match header.get_first(&["ElementSpacing", "ElementSize"]) {
        Some((k, v)) => numbers(path, k, v, n)?,
        None => vec![1.0; n],
    };
    // MetaIO assigns Position, then Offset, then Origin (and Orientation, Rotation,
    // TransformMatrix), so the last of each list present wins.
    let origin_key = header.get_first(&["Origin", "Offset", "Position"]);
    let origin_n = match origin_key {
        Some((k, v)) => numbers(path, k, v, n)?,
        None => vec![0.0; n],
    };
    let matrix_key = header.get_first(&["TransformMatrix", "Rotation", "Orientation"]);
    let matrix_n = match matrix_key {
        Some((k, v)) => numbers(path, k, v, n * n)?,
        None => (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 }).collect(),
    };
    for (group, chosen) in [(["Origin", "Offset", "Position"], origin_key), (["TransformMatrix", "Rotation", "Orientation"], matrix_key)] {
        if let Some((k, v)) = chosen {
            for other in group.iter().filter(|&&o| o != k) {
                if header.get(other).is_some_and(|o| o.split_whitespace().ne(v.split_whitespace())) {
                    warnings.push(format!("{other} differs from {k}; {k} used (as ITK does)"));
                }
            }
        }
    }

    // Up to three axes are the volume; a 4th selects one volume.
    let m = n.min(3);
    let mut dims = [1usize; 3];
    let mut spacing = [1.0f64; 3];
    let mut origin = [0.0f64; 3];
    let mut direction = liverseg_volume::IDENTITY;
    for axis in 0..m {
        dims[axis] = dims_n[axis] as usize;
        spacing[axis] = spacing_n[axis];
        origin[axis] = origin_n[axis];
        for row in 0..m {
            direction[row][axis] = matrix_n[axis * n + row];
        }
    }
    let geometry = Geometry::new(dims, spacing, origin, direction).map_err(|e| Error::invalid(path, format!("bad geometry: {e}")))?;

    let volume_elements = (dims[0] * dims[1] * dims[2]) as u64;
    let volumes = if n == 4 { dims_n[3] } else { 1 };
    let index = options.volume_index as u64;
    if n == 4 {
        if index >= volumes {
            return Err(Error::invalid(path, format!("volume index {index} out of range: the image has {volumes} volumes")));
        }
        if volumes > 1 {
            warnings.push(format!("4-D image with {volumes} volumes: volume {index} read"));
        }
    } else if index > 0 {
        warnings.push(format!("volume index {index} ignored: the image is {n}-D"));
    }

    if let Some(ao) = header.get("AnatomicalOrientation") {
        let expected = itk_orientation_acronym(&geometry);
        let valid = ao.len() == 3 && ao.chars().all(|c| "RLAPIS".contains(c));
        if n == 3 && valid && ao != expected {
            warnings.push(format!(
                "AnatomicalOrientation = {ao} disagrees with TransformMatrix ({expected}); geometry follows TransformMatrix, as ITK does"
            ));
        }
    }

    // MetaImage (unlike other MetaIO objects) defaults to binary data; MetaIO
    // reads ElementByteOrderMSB first and BinaryDataByteOrderMSB last, so the latter wins.
    let binary = header.get_bool("BinaryData").unwrap_or(true);
    let msb = header
        .get_bool("BinaryDataByteOrderMSB")
        .or_else(|| header.get_bool("ElementByteOrderMSB"))
        .unwrap_or(false);
    let compressed = header.get_bool("CompressedData").unwrap_or(false);
    let compressed_size = match header.get("CompressedDataSize") {
        Some(v) => Some(integer(path, "CompressedDataSize", v)?.max(0) as u64),
        None => None,
    };
    let header_size = match header.get("HeaderSize") {
        Some(v) => integer(path, "HeaderSize", v)?,
        None => 0,
    };
    if header_size < -1 {
        return Err(Error::invalid(path, format!("HeaderSize = {header_size}")));
    }

    let (chunks, chunk_elements, data_desc) = data_chunks(path, &header, &mut reader, &dims_n)?;
    let payload = Payload {
        header_path: path,
        chunks,
        chunk_bytes: chunk_elements * esize,
        compressed,
        compressed_size,
        header_size,
        local_offset: header.data_offset,
    };
    let skip = index * volume_elements;
    let volume = if binary {
        let plan = payload.plan(skip * esize, volume_elements * esize)?;
        decode(&payload, &plan, volume_elements as usize, dtype, msb, geometry)?
    } else {
        let values = payload.read_ascii(skip as usize, volume_elements as usize)?;
        from_f64(values, dtype, geometry).map_err(|e| Error::invalid(path, e.to_string()))?
    };

    let details = serde_json::json!({
        "ndims": n,
        "dim_size": dims_n,
        "element_type": met_name(dtype),
        "binary": binary,
        "byte_order": if msb { "big-endian" } else { "little-endian" },
        "compressed": compressed,
        "element_data_file": data_desc,
        "anatomical_orientation": header.get("AnatomicalOrientation"),
        "anatomical_orientation_note": "informational only; geometry comes from TransformMatrix (ITK ignores it too)",
    });
    Ok(ReadOutput { volume, info: SourceInfo { format: Format::MetaImage, path: path.to_path_buf(), warnings, details }, dicom: None })
}

/// More data files than any real series has (and a bound on the work a
/// damaged DimSize can cause before the files are checked).
const MAX_DATA_FILES: u64 = 100_000;

/// The data files and how many elements each holds.
fn data_chunks(
    path: &Path,
    header: &Header,
    reader: &mut std::io::BufReader<std::fs::File>,
    dims: &[u64],
) -> Result<(Vec<Chunk>, u64, String)> {
    let n = dims.len();
    let total: u64 = dims.iter().product();
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolve = |name: &str| -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            folder.join(p)
        }
    };
    let value = header.data_file.as_str();
    if matches!(value, "LOCAL" | "Local" | "local") {
        return Ok((vec![Chunk { path: path.to_path_buf(), local: true }], total, "LOCAL".into()));
    }
    if value.starts_with("LIST") {
        // "LIST [fileImageDim]": every file holds a fileImageDim-D block
        // (default NDims-1, i.e. one slice per file).
        let file_dim = value
            .split_whitespace()
            .nth(1)
            .map(|w| w.trim_end_matches(['D', 'd']).parse::<usize>().unwrap_or(0))
            .filter(|&d| d > 0 && d <= n)
            .unwrap_or(n.saturating_sub(1).max(1));
        let per_file: u64 = dims[..file_dim].iter().product();
        let count = total / per_file;
        if count > MAX_DATA_FILES {
            return Err(Error::unsupported(path, format!("ElementDataFile = LIST: {count} data files")));
        }
        let names = header::read_list(path, reader, count as usize)?;
        let chunks = names.iter().map(|s| Chunk { path: resolve(s), local: false }).collect::<Vec<_>>();
        return Ok((chunks, per_file, format!("LIST ({count} files)")));
    }
    if value.contains('%') && !resolve(value).is_file() {
        let (pattern, numbers) = split_pattern(value);
        let count = dims[n - 1];
        if count > MAX_DATA_FILES {
            return Err(Error::unsupported(path, format!("ElementDataFile = {value}: {count} data files")));
        }
        let min = numbers.first().copied().unwrap_or(1);
        let step = match numbers.as_slice() {
            [_, _, step] => *step,
            // MetaIO derives the step from min and max when it is not given.
            [min, max] if count > 1 => (max - min) / (count as i64 - 1),
            _ => 1,
        };
        if step == 0 && count > 1 {
            return Err(Error::invalid(path, format!("ElementDataFile = {value}: step 0")));
        }
        let mut chunks = Vec::new();
        for i in 0..count as i64 {
            let number = min + i * step;
            let name = format_int(&pattern, number)
                .ok_or_else(|| Error::unsupported(path, format!("ElementDataFile pattern '{pattern}': only %d / %0Nd are supported")))?;
            chunks.push(Chunk { path: resolve(&name), local: false });
        }
        return Ok((chunks, total / count, format!("{pattern} ({count} files)")));
    }
    Ok((vec![Chunk { path: resolve(value), local: false }], total, value.to_string()))
}

/// `name%03d.raw 1 130 1` -> ("name%03d.raw", [1, 130, 1]). Trailing integers
/// are taken as min / max / step; the rest (which may contain spaces) is the pattern.
fn split_pattern(value: &str) -> (String, Vec<i64>) {
    let mut words: Vec<&str> = value.split_whitespace().collect();
    let mut numbers = Vec::new();
    while numbers.len() < 3 && words.len() > 1 {
        match words.last().and_then(|w| w.parse::<i64>().ok()) {
            Some(v) if words[..words.len() - 1].join(" ").contains('%') => {
                numbers.push(v);
                words.pop();
            }
            _ => break,
        }
    }
    numbers.reverse();
    (words.join(" "), numbers)
}

/// printf with one integer conversion (`%d`, `%i`, `%5d`, `%03d`) and `%%`.
fn format_int(pattern: &str, value: i64) -> Option<String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let zero = chars.peek() == Some(&'0');
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width.checked_mul(10)?.checked_add(d as usize)?;
            chars.next();
        }
        if used || width > 64 || !matches!(chars.next(), Some('d' | 'i')) {
            return None;
        }
        used = true;
        let s = if zero {
            if value < 0 {
                format!("-{:0w$}", value.unsigned_abs(), w = width.saturating_sub(1))
            } else {
                format!("{value:0width$}")
            }
        } else {
            format!("{value:width$}")
        };
        out.push_str(&s);
    }
    used.then_some(out)
}

/// Decode the planned bytes straight into a typed voxel vector.
fn decode(payload: &Payload, plan: &Plan, count: usize, dtype: DType, msb: bool, g: Geometry) -> Result<DynVolume> {
    let path = payload.header_path;
    macro_rules! typed {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            let mut out: Vec<$t> = Vec::new();
            out.try_reserve_exact(count)
                .map_err(|_| Error::invalid(path, format!("cannot allocate memory for {count} voxels")))?;
            // Blocks are whole elements and chunks_exact yields N-byte slices,
            // so the conversions cannot fail.
            payload.stream(plan, &mut |block: &[u8]| {
                if msb {
                    out.extend(block.chunks_exact(N).map(|c| <$t>::from_be_bytes(c.try_into().unwrap())));
                } else {
                    out.extend(block.chunks_exact(N).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())));
                }
            })?;
            DynVolume::from(Volume::new(g, out).map_err(|e| Error::invalid(path, e.to_string()))?)
        }};
    }
    Ok(match dtype {
        DType::U8 => typed!(u8),
        DType::I8 => typed!(i8),
        DType::U16 => typed!(u16),
        DType::I16 => typed!(i16),
        DType::U32 => typed!(u32),
        DType::I32 => typed!(i32),
        DType::U64 => typed!(u64),
        DType::I64 => typed!(i64),
        DType::F32 => typed!(f32),
        DType::F64 => typed!(f64),
    })
}

fn from_f64(values: Vec<f64>, dtype: DType, g: Geometry) -> Result<DynVolume, liverseg_volume::VolumeError> {
    macro_rules! cast {
        ($t:ty) => {
            Volume::new(g, values.into_iter().map(|v| v as $t).collect::<Vec<$t>>())?.into()
        };
    }
    Ok(match dtype {
        DType::U8 => cast!(u8),
        DType::I8 => cast!(i8),
        DType::U16 => cast!(u16),
        DType::I16 => cast!(i16),
        DType::U32 => cast!(u32),
        DType::I32 => cast!(i32),
        DType::U64 => cast!(u64),
        DType::I64 => cast!(i64),
        DType::F32 => cast!(f32),
        DType::F64 => Volume::new(g, values)?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_patterns() {
        assert_eq!(format_int("slice%03d.raw", 7).as_deref(), Some("slice007.raw"));
        assert_eq!(format_int("s%d.raw", 12).as_deref(), Some("s12.raw"));
        assert_eq!(format_int("s%4d", 12).as_deref(), Some("s  12"));
        assert_eq!(format_int("100%%_%02i", 3).as_deref(), Some("100%_03"));
        assert_eq!(format_int("s%s", 1), None);
        assert_eq!(format_int("no conversion", 1), None);
        assert_eq!(format_int("%d%d", 1), None);
    }

    #[test]
    fn pattern_words() {
        assert_eq!(split_pattern("im%03d.raw 1 10 1"), ("im%03d.raw".to_string(), vec![1, 10, 1]));
        assert_eq!(split_pattern("my im%03d.raw 5"), ("my im%03d.raw".to_string(), vec![5]));
        assert_eq!(split_pattern("im%d.raw"), ("im%d.raw".to_string(), vec![]));
    }

    #[test]
    fn itk_acronym_of_identity_is_rai() {
        let g = Geometry::identity([2, 2, 2], [1.0; 3]).unwrap();
        assert_eq!(itk_orientation_acronym(&g), "RAI");
        let flipped = Geometry::new([2, 2, 2], [1.0; 3], [0.0; 3], [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
        assert_eq!(itk_orientation_acronym(&flipped), "RPI");
    }
}
