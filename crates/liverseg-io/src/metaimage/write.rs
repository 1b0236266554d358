//! MetaImage output in ITK's layout: `.mha` = header + zlib-compressed data in
//! one file; `.mhd` = header + an uncompressed `.raw` beside it (the pair is
//! written as an atomic group, the `.raw` renamed into place first, so a header
//! never points at a half-written data file).

use super::{itk_orientation_acronym, met_name};
use crate::{atomic, Error, Result};
use flate2::{write::ZlibEncoder, Compression};
use liverseg_volume::{dyn_dispatch, DynVolume};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// ITK's default MetaImage compression level: fast, and CT compresses well anyway.
const COMPRESSION_LEVEL: u32 = 2;

/// Write `volume` as `.mha` (compressed, one file) or `.mhd` + `.raw`; atomic.
pub fn write(path: &Path, volume: &DynVolume) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".mha") {
        let compressed = compress(volume).map_err(|e| Error::io(path, e))?;
        let header = header_text(volume, Some(compressed.len() as u64), "LOCAL");
        atomic::write_atomic(path, |w| {
            w.write_all(header.as_bytes())?;
            w.write_all(&compressed)
        })
    } else if name.ends_with(".mhd") {
        let raw_path = path.with_extension("raw");
        let raw_name = raw_path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::unsupported(path, "the data file name must be valid UTF-8"))?
            .to_string();
        if raw_name == ".raw"
            || raw_name.starts_with("LIST")
            || raw_name.contains('%')
            || raw_name.trim() != raw_name
            || raw_name.contains(['\n', '\r'])
        {
            // MetaIO would misread such an ElementDataFile value (LIST prefix,
            // '%' = slice pattern, trimmed spaces), so ITK could not read the pair.
            return Err(Error::unsupported(path, format!("data file name '{raw_name}' cannot be stored in a MetaImage header")));
        }
        let header = header_text(volume, None, &raw_name);
        atomic::write_atomic_group(vec![
            (raw_path.as_path(), Box::new(|w: &mut dyn Write| write_le(volume, w))),
            (path, Box::new(move |w: &mut dyn Write| w.write_all(header.as_bytes()))),
        ])
    } else {
        Err(Error::unsupported(path, "a MetaImage file name must end in .mha or .mhd"))
    }
}

/// Shortest text that parses back to exactly `v` (Rust's `Display` for f64).
fn numbers(values: impl IntoIterator<Item = f64>) -> String {
    values.into_iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(" ")
}

fn header_text(volume: &DynVolume, compressed_size: Option<u64>, data_file: &str) -> String {
    let g = volume.geometry();
    let d = g.direction();
    // TransformMatrix lists axis 0's direction, then axis 1's, ... (ITK's order).
    let matrix = (0..3).flat_map(|axis| (0..3).map(move |row| d[row][axis]));
    let mut h = String::new();
    let _ = writeln!(h, "ObjectType = Image");
    let _ = writeln!(h, "NDims = 3");
    let _ = writeln!(h, "BinaryData = True");
    let _ = writeln!(h, "BinaryDataByteOrderMSB = False");
    match compressed_size {
        Some(size) => {
            let _ = writeln!(h, "CompressedData = True");
            let _ = writeln!(h, "CompressedDataSize = {size}");
        }
        None => {
            let _ = writeln!(h, "CompressedData = False");
        }
    }
    let _ = writeln!(h, "TransformMatrix = {}", numbers(matrix));
    let _ = writeln!(h, "Offset = {}", numbers(g.origin()));
    let _ = writeln!(h, "CenterOfRotation = 0 0 0");
    let _ = writeln!(h, "AnatomicalOrientation = {}", itk_orientation_acronym(g));
    let _ = writeln!(h, "ElementSpacing = {}", numbers(g.spacing()));
    let [nx, ny, nz] = g.dims();
    let _ = writeln!(h, "DimSize = {nx} {ny} {nz}");
    let _ = writeln!(h, "ElementType = {}", met_name(volume.dtype()));
    let _ = writeln!(h, "ElementDataFile = {data_file}");
    h
}

/// The voxels as little-endian bytes, converted in blocks to bound the extra memory.
fn write_le(volume: &DynVolume, w: &mut dyn Write) -> std::io::Result<()> {
    const BLOCK: usize = 1 << 16;
    dyn_dispatch!(volume, v => {
        let mut buf = Vec::with_capacity(BLOCK * 8);
        for block in v.data().chunks(BLOCK) {
            buf.clear();
            for x in block {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

fn compress(volume: &DynVolume) -> std::io::Result<Vec<u8>> {
    let bytes = volume.geometry().len() * volume.dtype().size_bytes();
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(bytes / 4), Compression::new(COMPRESSION_LEVEL));
    write_le(volume, &mut encoder)?;
    encoder.finish()
}
