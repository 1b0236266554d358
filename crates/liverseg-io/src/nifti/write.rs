//! NIfTI writer: `.nii` or `.nii.gz`, NIfTI-1 unless a dimension exceeds
//! 32767 (then NIfTI-2), little endian, stored type preserved.
//!
//! Both sform and qform are written with code 1 (scanner). The sform holds the
//! exact grid. The qform can only hold a rotation (plus a z flip via qfac), so
//! for a sheared grid it holds the rotation nearest to the direction matrix
//! (polar decomposition, as nifti1_io does) and the description field says so;
//! readers that follow the standard use the sform and see the exact grid.

use super::affine::{nearest_orthogonal, quaternion_of, Mat3};
use super::header::{Header, NIFTI1_MIN_OFFSET, NIFTI2_MIN_OFFSET};
use crate::atomic::write_atomic;
use crate::{Error, Format, Result};
use liverseg_volume::{dyn_dispatch, DType, DynVolume};
use std::io::Write;
use std::path::Path;

const NIFTI_UNITS_MM: i32 = 2;
const NIFTI_XFORM_SCANNER_ANAT: i32 = 1;
/// Level 6 (zlib's default) costs ~2x the time of level 1 for ~10% smaller CTs.
const GZIP_LEVEL: u32 = 6;

fn datatype_code(d: DType) -> i32 {
    match d {
        DType::U8 => 2,
        DType::I16 => 4,
        DType::I32 => 8,
        DType::F32 => 16,
        DType::F64 => 64,
        DType::I8 => 256,
        DType::U16 => 512,
        DType::U32 => 768,
        DType::I64 => 1024,
        DType::U64 => 1280,
    }
}

/// The header `write` produces for `volume` (exposed for tests and `info`).
pub(crate) fn header_for(volume: &DynVolume) -> (Header, bool) {
    let g = volume.geometry();
    let dims = g.dims();
    let spacing = g.spacing();
    let nifti2 = dims.iter().any(|&d| d > i16::MAX as usize);
    let ras = g.affine_ras();
    let direction_ras: Mat3 = std::array::from_fn(|r| std::array::from_fn(|c| ras[r][c] / spacing[c]));
    let sheared = !g.is_orthonormal();
    let rotation = nearest_orthogonal(&direction_ras).expect("Geometry guarantees a non-singular direction");
    let (quatern, qfac) = quaternion_of(&rotation);
    let dtype = volume.dtype();
    let header = Header {
        format: if nifti2 { Format::Nifti2 } else { Format::Nifti1 },
        big_endian: false,
        single_file: true,
        dim: [3, dims[0] as i64, dims[1] as i64, dims[2] as i64, 1, 1, 1, 1],
        pixdim: [qfac, spacing[0], spacing[1], spacing[2], 0.0, 0.0, 0.0, 0.0],
        datatype: datatype_code(dtype),
        bitpix: 8 * dtype.size_bytes() as i32,
        vox_offset: if nifti2 { NIFTI2_MIN_OFFSET as f64 } else { NIFTI1_MIN_OFFSET as f64 },
        scl_slope: 1.0,
        scl_inter: 0.0,
        qform_code: NIFTI_XFORM_SCANNER_ANAT,
        sform_code: NIFTI_XFORM_SCANNER_ANAT,
        quatern,
        qoffset: [ras[0][3], ras[1][3], ras[2][3]],
        srow: [ras[0], ras[1], ras[2]],
        xyzt_units: NIFTI_UNITS_MM,
        intent_code: 0,
        magic_tail_ok: true,
    };
    (header, sheared)
}

/// Write `volume` as `.nii` or `.nii.gz` (chosen by the name); atomic.
pub fn write(path: &Path, volume: &DynVolume) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let gz = name.ends_with(".nii.gz");
    if !gz && !name.ends_with(".nii") {
        return Err(Error::unsupported(path, "NIfTI output name must end in .nii or .nii.gz"));
    }
    let (header, sheared) = header_for(volume);
    let mut head = header.encode();
    if sheared {
        let note = b"liverseg: sheared grid, sform exact, qform = nearest rotation";
        let at = if header.format == Format::Nifti2 { 240 } else { 148 };
        head[at..at + 80].fill(0);
        head[at..at + note.len()].copy_from_slice(note);
    }
    write_atomic(path, |w| {
        if gz {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::new(GZIP_LEVEL));
            enc.write_all(&head)?;
            write_voxels(&mut enc, volume)?;
            enc.finish()?;
            Ok(())
        } else {
            w.write_all(&head)?;
            write_voxels(w, volume)
        }
    })
}

fn write_voxels(w: &mut dyn Write, volume: &DynVolume) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 16;
    dyn_dispatch!(volume, v => {
        let mut buf = Vec::with_capacity(CHUNK * 8);
        for chunk in v.data().chunks(CHUNK) {
            buf.clear();
            for x in chunk {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}
