//! NIfTI-1, NIfTI-2 and Analyze 7.5 images to and from liverseg volumes.
//!
//! Why a hand-written reader instead of the `nifti` crate: that crate (0.17)
//! reads NIfTI-1 only, has panicked on fuzzed headers (its own
//! `resources/fuzz_artifacts`), and allocates from header-declared sizes before
//! checking them against the file. The headers are small, fixed-layout and
//! fully specified (nifti1.h / nifti2.h), so a careful parser is less code
//! than working around those gaps, and it lets every size be validated against
//! the real file length before a single voxel buffer is allocated.
//!
//! Conventions (all deliberate, mirrored by `tests/nifti_conformance.rs`):
//! * Geometry: sform if `sform_code > 0`, else qform if `qform_code > 0`, else
//!   NIfTI "method 1" (voxel sizes only, origin at voxel 0, no flip) with a
//!   warning. nibabel agrees on sform/qform; for method 1 it centres the image
//!   and flips x (an SPM Analyze habit), which the standard does not say.
//!   Analyze 7.5 files are read with method 1 as well (nifti1_io does the same).
//!   NIfTI is RAS+, liverseg is LPS: converted by `Geometry::from_affine_ras`.
//! * Values: scl_slope/scl_inter are applied when the slope is finite, non-zero
//!   and the pair is not (1, 0), as nibabel's `get_fdata` does; the result is
//!   f32 for 8/16-bit and f32 sources and f64 for 32/64-bit integer and f64
//!   sources (numpy's promotion with a float32 slope, so no integer loses
//!   precision). Otherwise the stored type is kept.
//! * 4-D and higher: `ReadOptions::volume_index` picks one 3-D volume, counting
//!   over all dimensions past the third in file order; a warning names them.
//! * Complex, RGB/RGBA, 1-bit and float128 data are refused as Unsupported
//!   (liverseg works on scalar images; a silent luminance conversion of an RGB
//!   overlay would look like a CT). CIFTI-2 files are refused too.
//! * `.gz` is recognised by content (gzip magic), not only by name.

mod affine;
mod header;
mod write;

pub use affine::{Affine, Transform};
pub use header::Header;
pub use write::write;

use crate::{Error, Format, ReadOptions, ReadOutput, Result, SourceInfo};
use liverseg_volume::{DType, DynVolume, Geometry, Volume};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Deflate cannot expand data by more than about 1032:1; anything claiming more
/// than this from a given gzip file is truncated or lying.
const MAX_DEFLATE_RATIO: u64 = 1032;
const READ_BUFFER: usize = 1 << 20;

/// The transform a header describes, as liverseg uses it.
#[derive(Debug, Clone)]
pub struct Spatial {
    pub transform: Transform,
    /// Voxel index (0-based) to NIfTI world (RAS+, mm).
    pub affine_ras: Affine,
    pub geometry: Geometry,
    pub warnings: Vec<String>,
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = read_full(&mut f, &mut magic).map_err(|e| Error::io(path, e))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// Read until `buf` is full or the stream ends; returns the count read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let gz = is_gzip(path)?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let buffered = BufReader::with_capacity(READ_BUFFER, f);
    Ok(if gz { Box::new(flate2::bufread::MultiGzDecoder::new(buffered)) } else { Box::new(buffered) })
}

fn gzip_error(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            Error::invalid(path, format!("corrupt gzip data: {e}"))
        }
        _ => Error::io(path, e),
    }
}

fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default()
}

/// `name` with a case-insensitive `suffix` replaced by each of `replacements`
/// (keeping the case style of the original suffix), first existing one wins.
fn sibling(path: &Path, suffix: &str, replacements: &[&str]) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    if !name.to_lowercase().ends_with(suffix) {
        return None;
    }
    let stem = &name[..name.len() - suffix.len()];
    let upper = name[name.len() - suffix.len()..].chars().any(|c| c.is_ascii_uppercase());
    replacements
        .iter()
        .map(|r| path.with_file_name(format!("{stem}{}", if upper { r.to_uppercase() } else { r.to_string() })))
        .find(|p| p.is_file())
}

/// The file holding the header for a path naming a `.nii`, `.hdr` or `.img`.
fn header_file(path: &Path) -> Result<PathBuf> {
    let name = lower_name(path);
    if name.ends_with(".img") || name.ends_with(".img.gz") {
        let suffix = if name.ends_with(".gz") { ".img.gz" } else { ".img" };
        return sibling(path, suffix, &[".hdr", ".hdr.gz"])
            .ok_or_else(|| Error::invalid(path, "image file of a .hdr/.img pair, but no matching .hdr or .hdr.gz was found"));
    }
    Ok(path.to_path_buf())
}

/// Read and decode just the header. `path` may name the `.img` of a pair.
pub fn read_header(path: &Path) -> Result<Header> {
    let hdr_path = header_file(path)?;
    let mut r = open_maybe_gz(&hdr_path)?;
    let mut buf = vec![0u8; header::NIFTI2_HEADER_SIZE];
    let n = read_full(&mut r, &mut buf).map_err(|e| gzip_error(&hdr_path, e))?;
    buf.truncate(n);
    Header::parse(&buf).map_err(|m| Error::invalid(&hdr_path, m))
}

/// Cheap content sniff: a NIfTI-1/2 or Analyze header at the start of the file
/// (through gzip if the file is gzipped). Damaged or short files say `false`.
pub fn looks_like_nifti(path: &Path) -> Result<bool> {
    let mut r = open_maybe_gz(path)?;
    let mut buf = vec![0u8; header::NIFTI2_HEADER_SIZE];
    let n = match read_full(&mut r, &mut buf) {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData) => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(header::plausible(&buf[..n]))
}

/// Spatial dims (padded with 1 to three) and the count of 3-D volumes; every
/// stored dimension must be positive and the products must fit.
fn grid_dims(h: &Header, path: &Path) -> Result<([usize; 3], usize)> {
    let mut spatial = [1usize; 3];
    let mut volumes: usize = 1;
    for (i, &d) in h.dims().iter().enumerate() {
        if d < 1 {
            return Err(Error::invalid(path, format!("dim[{}] = {d}: every dimension must be at least 1", i + 1)));
        }
        let d = usize::try_from(d).map_err(|_| Error::invalid(path, format!("dim[{}] = {d} is too large", i + 1)))?;
        if i < 3 {
            spatial[i] = d;
        } else {
            volumes = volumes
                .checked_mul(d)
                .ok_or_else(|| Error::invalid(path, format!("dims {:?}: volume count overflows", h.dims())))?;
        }
    }
    Ok((spatial, volumes))
}

/// Choose and validate the voxel-to-world transform (see the module doc).
pub fn spatial(h: &Header, dims: [usize; 3]) -> Spatial {
    let mut warnings = Vec::new();
    let to_geometry = |a: &Affine| -> std::result::Result<Geometry, String> {
        if !a.iter().flatten().all(|v| v.is_finite()) {
            return Err("it holds non-finite values".into());
        }
        Geometry::from_affine_ras(dims, a).map_err(|e| e.to_string())
    };
    let mut chosen = None;
    if h.sform_code > 0 {
        let s = affine::sform(h);
        match to_geometry(&s) {
            Ok(g) => chosen = Some((Transform::Sform, s, g)),
            Err(e) => warnings.push(format!("sform (code {}) is unusable ({e}); ignoring it", h.sform_code)),
        }
    }
    if chosen.is_none() && h.qform_code > 0 {
        let q = affine::qform(h, &mut warnings);
        match to_geometry(&q) {
            Ok(g) => chosen = Some((Transform::Qform, q, g)),
            Err(e) => warnings.push(format!("qform (code {}) is unusable ({e}); ignoring it", h.qform_code)),
        }
    }
    let (transform, affine_ras, geometry) = match chosen {
        Some(c) => c,
        None => {
            let a = affine::pixdim_only(h, &mut warnings);
            let g = to_geometry(&a).expect("positive finite voxel sizes always make a valid grid");
            warnings.push(if h.format == Format::Analyze {
                "Analyze 7.5 header: no orientation is stored; assuming the identity (RAS) with origin at voxel 0".to_string()
            } else {
                "no usable sform or qform: orientation unknown; using voxel sizes only with origin at voxel 0 (NIfTI method 1)".to_string()
            });
            (Transform::Pixdim, a, g)
        }
    };
    if transform == Transform::Sform && h.qform_code > 0 {
        let q = affine::qform(h, &mut Vec::new());
        let gap = affine::corner_disagreement(&affine_ras, &q, dims);
        let min_spacing = geometry.spacing().iter().cloned().fold(f64::INFINITY, f64::min);
        if gap.is_nan() || gap > 0.1 * min_spacing {
            warnings.push(format!(
                "sform and qform disagree (up to {gap:.3} mm at the image corners); using the sform, as the NIfTI standard and nibabel do"
            ));
        }
    }
    if !geometry.is_orthonormal() {
        warnings.push(format!("the {} has shear: voxel axes are not perpendicular", transform.name()));
    }
    Spatial { transform, affine_ras, geometry, warnings }
}

fn dtype_of(code: i32, path: &Path) -> Result<DType> {
    Ok(match code {
        2 => DType::U8,
        4 => DType::I16,
        8 => DType::I32,
        16 => DType::F32,
        64 => DType::F64,
        256 => DType::I8,
        512 => DType::U16,
        768 => DType::U32,
        1024 => DType::I64,
        1280 => DType::U64,
        1 => return Err(Error::unsupported(path, "1-bit data (datatype 1)")),
        32 | 1792 | 2048 => return Err(Error::unsupported(path, format!("complex data (datatype {code}): liverseg reads scalar images only"))),
        128 | 2304 => return Err(Error::unsupported(path, format!("RGB colour data (datatype {code}): liverseg reads scalar images only"))),
        1536 => return Err(Error::unsupported(path, "128-bit float data (datatype 1536)")),
        _ => return Err(Error::invalid(path, format!("unknown datatype code {code}"))),
    })
}

fn slope_inter(h: &Header) -> Option<(f64, f64)> {
    let slope = h.scl_slope;
    if !slope.is_finite() || slope == 0.0 {
        return None;
    }
    let inter = if h.scl_inter.is_finite() { h.scl_inter } else { 0.0 };
    (slope != 1.0 || inter != 0.0).then_some((slope, inter))
}

/// Read a NIfTI-1/2 (`.nii`, `.nii.gz`, `.hdr`/`.img` pair, each part
/// optionally gzipped) or Analyze 7.5 image. `path` may name either file of a pair.
pub fn read(path: &Path, options: &ReadOptions) -> Result<ReadOutput> {
    let hdr_path = header_file(path)?;
    let h = read_header(path)?;
    let mut warnings = Vec::new();
    if !h.magic_tail_ok {
        warnings.push("NIfTI-2 magic is damaged after 'n+2' (file passed through a text-mode transfer?)".into());
    }
    if (3000..=3099).contains(&h.intent_code) {
        return Err(Error::unsupported(&hdr_path, format!("CIFTI-2 file (intent code {}): not an image volume", h.intent_code)));
    }
    let dtype = dtype_of(h.datatype, &hdr_path)?;
    if h.bitpix != 8 * dtype.size_bytes() as i32 {
        warnings.push(format!("bitpix {} does not match datatype {} ({}); trusting the datatype", h.bitpix, h.datatype, dtype));
    }
    let (dims, volumes) = grid_dims(&h, &hdr_path)?;
    if options.volume_index >= volumes {
        return Err(Error::invalid(
            path,
            format!("volume index {} is out of range: the image has {volumes} volume(s) (dims {:?})", options.volume_index, h.dims()),
        ));
    }
    let overflow = || Error::invalid(&hdr_path, format!("dims {:?}: data size overflows", h.dims()));
    let voxels = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(overflow)?;
    let volume_bytes = (voxels as u64).checked_mul(dtype.size_bytes() as u64).ok_or_else(overflow)?;
    let total_bytes = volume_bytes.checked_mul(volumes as u64).ok_or_else(overflow)?;
    if usize::try_from(volume_bytes).is_err() || volume_bytes > isize::MAX as u64 / 2 {
        return Err(overflow());
    }

    // Where the voxel data is.
    let (data_path, offset) = if h.single_file {
        let min = if h.format == Format::Nifti2 { header::NIFTI2_MIN_OFFSET } else { header::NIFTI1_MIN_OFFSET };
        let vo = h.vox_offset;
        let mut offset = byte_offset(vo, &hdr_path)?;
        if offset < min {
            // nibabel applies the same fix; 0 is common from old writers.
            if offset != 0 {
                warnings.push(format!("vox_offset {vo} lies inside the header; using {min}"));
            }
            offset = min;
        }
        (hdr_path.clone(), offset)
    } else {
        let name = lower_name(&hdr_path);
        let img = if name.ends_with(".hdr") || name.ends_with(".hdr.gz") {
            let suffix = if name.ends_with(".gz") { ".hdr.gz" } else { ".hdr" };
            sibling(&hdr_path, suffix, &[".img", ".img.gz"])
                .ok_or_else(|| Error::invalid(&hdr_path, "header of a .hdr/.img pair, but the .img (or .img.gz) file is missing"))?
        } else {
            return Err(Error::invalid(
                &hdr_path,
                "the header says its data is in a separate .img file (magic ni1/ni2 or Analyze), but this file is not named .hdr",
            ));
        };
        (img, byte_offset(h.vox_offset, &hdr_path)?)
    };

    let skip = offset + volume_bytes * options.volume_index as u64;
    let bytes = read_voxel_bytes(&data_path, skip, volume_bytes, offset, total_bytes)?;

    let sp = spatial(&h, dims);
    warnings.extend(sp.warnings.iter().cloned());
    if volumes > 1 || h.dim[0] > 3 {
        let names = ["t", "u", "v", "w"];
        let extra: Vec<String> = h.dims()[3..].iter().enumerate().map(|(i, d)| format!("{}={d}", names[i])).collect();
        warnings.push(format!(
            "{}-D image ({}): read volume {} of {volumes} (counting over {} in file order)",
            h.dim[0],
            extra.join(", "),
            options.volume_index,
            extra.iter().map(|e| e.split('=').next().unwrap_or("")).collect::<Vec<_>>().join(",")
        ));
    }
    if matches!(h.xyzt_units & 7, 1 | 3) {
        warnings.push(format!(
            "spatial units are {} (xyzt_units {}); values are used as mm, as nibabel does",
            if h.xyzt_units & 7 == 1 { "metres" } else { "micrometres" },
            h.xyzt_units
        ));
    }

    let scaling = slope_inter(&h);
    let volume = decode(bytes, dtype, h.big_endian, scaling, sp.geometry.clone(), &hdr_path)?;

    let details = serde_json::json!({
        "transform": sp.transform.name(),
        "sform_code": h.sform_code,
        "qform_code": h.qform_code,
        "dims": h.dims(),
        "pixdim": &h.pixdim[..=(h.dim[0] as usize)],
        "datatype": dtype.name(),
        "datatype_code": h.datatype,
        "byte_order": if h.big_endian { "big" } else { "little" },
        "single_file": h.single_file,
        "data_file": data_path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "vox_offset": offset,
        "scl_slope": finite_or_null(h.scl_slope),
        "scl_inter": finite_or_null(h.scl_inter),
        "scaled": scaling.is_some(),
        "volume_index": options.volume_index,
        "volumes": volumes,
        "xyzt_units": h.xyzt_units,
        "intent_code": h.intent_code,
        "affine_ras": sp.affine_ras[..3],
    });
    Ok(ReadOutput { volume, info: SourceInfo { format: h.format, path: path.to_path_buf(), warnings, details }, dicom: None })
}

/// vox_offset as a byte position (NIfTI-1 stores it as a float; truncated like nibabel's int()).
fn byte_offset(vo: f64, path: &Path) -> Result<u64> {
    if !vo.is_finite() || !(0.0..=1e15).contains(&vo) {
        return Err(Error::invalid(path, format!("vox_offset {vo} is not a valid byte offset")));
    }
    Ok(vo as u64)
}

fn finite_or_null(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}

fn truncated(path: &Path, expected: u64, found: u64) -> Error {
    Error::invalid(path, format!("truncated: expected {expected} bytes of voxel data, found {found}"))
}

/// The `len` bytes of one volume starting at `skip`, after checking that the
/// file holds all `total` bytes of voxel data that start at `data_start`.
/// Plain files are checked by length before allocating; gzip streams are read
/// with allocations bounded by what the compressed size can possibly hold.
fn read_voxel_bytes(path: &Path, skip: u64, len: u64, data_start: u64, total: u64) -> Result<Vec<u8>> {
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if !is_gzip(path)? {
        let available = file_len.saturating_sub(data_start);
        if available < total {
            return Err(truncated(path, total, available));
        }
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(skip)).map_err(|e| Error::io(path, e))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        return Ok(buf);
    }
    let ceiling = file_len.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1 << 16);
    if data_start.saturating_add(total) > ceiling {
        return Err(truncated(path, total, ceiling.saturating_sub(data_start).min(total)).with_hint(
            "the gzip file is too small to hold that much data",
        ));
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut dec = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, f));
    let mut sink = std::io::sink();
    let skipped = std::io::copy(&mut (&mut dec).take(skip), &mut sink).map_err(|e| gzip_error(path, e))?;
    if skipped < skip {
        return Err(truncated(path, total, skipped.saturating_sub(data_start)));
    }
    // The header's size has only passed the compression-ratio bound, so reserve
    // it fallibly (overcommitted pages cost nothing until data really arrives)
    // and otherwise let the buffer grow with the data actually decompressed.
    let mut buf = Vec::new();
    if buf.try_reserve_exact(len as usize).is_err() {
        buf.reserve(len.min(1 << 26) as usize);
    }
    (&mut dec).take(len).read_to_end(&mut buf).map_err(|e| gzip_error(path, e))?;
    let before = skip - data_start;
    if (buf.len() as u64) < len {
        return Err(truncated(path, total, before + buf.len() as u64));
    }
    // Read the rest too: it proves the later volumes exist and lets gzip verify its CRC.
    let after = std::io::copy(&mut dec, &mut sink).map_err(|e| gzip_error(path, e))?;
    let found = before + len + after;
    if found < total {
        return Err(truncated(path, total, found));
    }
    Ok(buf)
}

trait WithHint {
    fn with_hint(self, hint: &str) -> Self;
}

impl WithHint for Error {
    fn with_hint(self, hint: &str) -> Self {
        match self {
            Error::Invalid { path, message } => Error::Invalid { path, message: format!("{message} ({hint})") },
            other => other,
        }
    }
}

macro_rules! from_bytes {
    ($bytes:expr, $t:ty, $big:expr) => {{
        const N: usize = std::mem::size_of::<$t>();
        let b: &[u8] = &$bytes;
        if $big {
            b.chunks_exact(N).map(|c| <$t>::from_be_bytes(c.try_into().expect("chunk size"))).collect::<Vec<$t>>()
        } else {
            b.chunks_exact(N).map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size"))).collect::<Vec<$t>>()
        }
    }};
}

fn decode(bytes: Vec<u8>, dtype: DType, big: bool, scaling: Option<(f64, f64)>, g: Geometry, path: &Path) -> Result<DynVolume> {
    fn wrap<T>(g: Geometry, data: Vec<T>, path: &Path) -> Result<Volume<T>> {
        Volume::new(g, data).map_err(|e| Error::invalid(path, e.to_string()))
    }
    macro_rules! typed {
        ($t:ty) => {{
            let v: Vec<$t> = from_bytes!(bytes, $t, big);
            match scaling {
                None => DynVolume::from(wrap(g, v, path)?),
                Some((s, i)) => {
                    if matches!(dtype, DType::U8 | DType::I8 | DType::U16 | DType::I16 | DType::F32) {
                        DynVolume::from(wrap(g, v.iter().map(|&x| (x as f64 * s + i) as f32).collect(), path)?)
                    } else {
                        DynVolume::from(wrap(g, v.iter().map(|&x| x as f64 * s + i).collect(), path)?)
                    }
                }
            }
        }};
    }
    Ok(match dtype {
        DType::U8 => match scaling {
            None => DynVolume::from(wrap(g, bytes, path)?),
            Some((s, i)) => DynVolume::from(wrap(g, bytes.iter().map(|&x| (x as f64 * s + i) as f32).collect(), path)?),
        },
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

#[cfg(test)]
mod tests;
