//! Pixel decoding: dicom-pixeldata does the codecs; the interpretation of the
//! decoded bytes (BitsStored, sign, HighBit) is done here so the stored values
//! are exact and identical across transfer syntaxes.

use super::guarded;
use crate::{Error, Result};
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PixelDecoder, PixelRepresentation};
use std::path::Path;

/// The stored values of one frame (before RescaleSlope/Intercept), row by row.
pub(crate) fn decode_frame(obj: &DefaultDicomObject, frame: u32, frames_in_file: u32, path: &Path) -> Result<Vec<i32>> {
    guarded(path, || {
        let decoded = if frames_in_file > 1 {
            obj.decode_pixel_data_frame(frame)
        } else {
            obj.decode_pixel_data()
        }
        .map_err(|e| decode_error(path, obj, &e.to_string()))?;
        let rows = decoded.rows() as usize;
        let cols = decoded.columns() as usize;
        let spp = decoded.samples_per_pixel() as usize;
        if spp != 1 {
            return Err(Error::unsupported(path, format!("{spp} samples per pixel (colour image); liverseg reads greyscale CT only")));
        }
        let bits_allocated = decoded.bits_allocated() as u32;
        let bits_stored = (decoded.bits_stored() as u32).clamp(1, bits_allocated.max(1));
        let high_bit = decoded.high_bit() as u32;
        let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
        let n = rows * cols;
        let bytes_per = match bits_allocated {
            1 | 8 => 1, // 1-bit data arrives expanded to one byte per pixel (0/255)
            16 => 2,
            32 => 4,
            other => return Err(Error::unsupported(path, format!("BitsAllocated {other}"))),
        };
        // A single-frame decode; multi-frame files were decoded frame by frame above.
        let data = decoded.data();
        if data.len() < n * bytes_per {
            return Err(Error::invalid(
                path,
                format!("pixel data holds {} bytes, {rows}x{cols} pixels of {bits_allocated} bits need {} (truncated file?)", data.len(), n * bytes_per),
            ));
        }
        if bits_allocated == 1 {
            return Ok(data[..n].iter().map(|&b| i32::from(b != 0)).collect());
        }
        // Stored bits sit at [high_bit + 1 - bits_stored, high_bit]; anything
        // outside is overlay or garbage and must not leak into the values.
        let shift = (high_bit + 1).saturating_sub(bits_stored).min(bits_allocated - 1);
        let mask: u64 = if bits_stored >= 32 { u32::MAX as u64 } else { (1u64 << bits_stored) - 1 };
        let sign_bit = 1u64 << (bits_stored - 1);
        let interpret = |raw: u64| -> Result<i32> {
            let v = (raw >> shift) & mask;
            if signed {
                let x = if v & sign_bit != 0 { v as i64 - (mask as i64 + 1) } else { v as i64 };
                Ok(x as i32)
            } else {
                i32::try_from(v).map_err(|_| Error::unsupported(path, "unsigned 32-bit pixel values above 2^31"))
            }
        };
        let mut out = Vec::with_capacity(n);
        match bytes_per {
            1 => {
                for &b in &data[..n] {
                    out.push(interpret(b as u64)?);
                }
            }
            2 => {
                // The fast path for CT: 16-bit with all bits stored needs no masking.
                if bits_stored == 16 && shift == 0 {
                    let it = data[..2 * n].chunks_exact(2).map(|c| [c[0], c[1]]);
                    if signed {
                        out.extend(it.map(|c| i16::from_le_bytes(c) as i32));
                    } else {
                        out.extend(it.map(|c| u16::from_le_bytes(c) as i32));
                    }
                } else {
                    for c in data[..2 * n].chunks_exact(2) {
                        out.push(interpret(u16::from_le_bytes([c[0], c[1]]) as u64)?);
                    }
                }
            }
            _ => {
                for c in data[..4 * n].chunks_exact(4) {
                    out.push(interpret(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64)?);
                }
            }
        }
        Ok(out)
    })
}

fn decode_error(path: &Path, obj: &DefaultDicomObject, msg: &str) -> Error {
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let name = dicom_transfer_syntax_name(&ts);
    if msg.contains("nsupported") || msg.contains("Unknown transfer syntax") || msg.contains("unknown transfer syntax") {
        Error::unsupported(path, format!("cannot decode pixel data with transfer syntax {ts} ({name}): {msg}"))
    } else {
        Error::invalid(path, format!("cannot decode pixel data ({name}): {msg}"))
    }
}

pub(crate) fn dicom_transfer_syntax_name(uid: &str) -> String {
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(uid)
        .map(|ts| ts.name().to_string())
        .unwrap_or_else(|| "unknown transfer syntax".to_string())
}
