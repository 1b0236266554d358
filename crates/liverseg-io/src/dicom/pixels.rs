//! Pixel decoding: dicom-pixeldata does the codecs; the interpretation of the
//! decoded bytes (BitsStored, sign, HighBit) is done here so the stored values
//! are exact and identical across transfer syntaxes.

use super::guarded;
use crate::{Error, Result};
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PixelDecoder, PixelRepresentation};
use std::path::Path;

/// The stored values of one frame (before RescaleSlope/Intercept), row by row.
pub(crate) fn decode_frame(obj: &DefaultDicomObject, frame: u32, frames_in_file: u32, path: &Path) -> Result<Vec<i64>> {
    guarded(path, || {
        if let Some(bits) = unpack_one_bit(obj, frame, path)? {
            return Ok(bits);
        }
        let decoded = if frames_in_file > 1 {
            obj.decode_pixel_data_frame(frame)
        } else {
            obj.decode_pixel_data()
        }
        .map_err(|e| decode_error(path, obj, &super::one_line(&e)))?;
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
            return Ok(data[..n].iter().map(|&b| i64::from(b != 0)).collect());
        }
        // Stored bits sit at [high_bit + 1 - bits_stored, high_bit]; anything
        // outside is overlay or garbage and must not leak into the values.
        let shift = (high_bit + 1).saturating_sub(bits_stored).min(bits_allocated - 1);
        let mask: u64 = if bits_stored >= 32 { u32::MAX as u64 } else { (1u64 << bits_stored) - 1 };
        let sign_bit = 1u64 << (bits_stored - 1);
        let interpret = |raw: u64| -> Result<i64> {
            let v = (raw >> shift) & mask;
            Ok(if signed && v & sign_bit != 0 { v as i64 - (mask as i64 + 1) } else { v as i64 })
        };
        // Explicit VR Big Endian: dicom-rs hands OW data over as native 16-bit
        // words and OB data as raw bytes; 32-bit values (RT dose, parametric
        // maps) then need their two words swapped, raw OB words a byte swap.
        let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
        let big_endian = ts == "1.2.840.10008.1.2.2";
        let ob = obj.get(dicom_dictionary_std::tags::PIXEL_DATA).map(|e| e.vr() == dicom_core::VR::OB).unwrap_or(false);
        let (swap_bytes, swap_words) = (big_endian && ob, big_endian && !ob && bytes_per == 4);
        let mut out = Vec::with_capacity(n);
        match bytes_per {
            1 => {
                for &b in &data[..n] {
                    out.push(interpret(b as u64)?);
                }
            }
            2 => {
                // The fast path for CT: 16-bit with all bits stored needs no masking.
                if swap_bytes {
                    for c in data[..2 * n].chunks_exact(2) {
                        out.push(interpret(u16::from_be_bytes([c[0], c[1]]) as u64)?);
                    }
                } else if bits_stored == 16 && shift == 0 {
                    let it = data[..2 * n].chunks_exact(2).map(|c| [c[0], c[1]]);
                    if signed {
                        out.extend(it.map(|c| i16::from_le_bytes(c) as i64));
                    } else {
                        out.extend(it.map(|c| u16::from_le_bytes(c) as i64));
                    }
                } else {
                    for c in data[..2 * n].chunks_exact(2) {
                        out.push(interpret(u16::from_le_bytes([c[0], c[1]]) as u64)?);
                    }
                }
            }
            _ => {
                for c in data[..4 * n].chunks_exact(4) {
                    let mut v = if swap_bytes { u32::from_be_bytes([c[0], c[1], c[2], c[3]]) } else { u32::from_le_bytes([c[0], c[1], c[2], c[3]]) };
                    if swap_words {
                        v = v.rotate_left(16);
                    }
                    out.push(interpret(v as u64)?);
                }
            }
        }
        Ok(out)
    })
}

fn decode_error(path: &Path, obj: &DefaultDicomObject, msg: &str) -> Error {
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let name = dicom_transfer_syntax_name(&ts);
    let bits = super::el_int(obj, dicom_dictionary_std::tags::BITS_STORED).unwrap_or(8);
    if ts == "1.2.840.10008.1.2.4.51" && bits > 8 {
        // The pure-Rust JPEG decoder behind dicom-rs has no 12-bit (extended) support.
        return Error::unsupported(path, format!("{bits}-bit JPEG Extended (process 4) pixel data cannot be decoded ({msg})"));
    }
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

/// 1-bit native pixel data (segmentations, overlays as images), unpacked here:
/// frames are bit-contiguous (a frame need not start on a byte boundary), which
/// dicom-pixeldata 0.10 does not handle for pixel counts not divisible by 8.
fn unpack_one_bit(obj: &DefaultDicomObject, frame: u32, path: &Path) -> Result<Option<Vec<i64>>> {
    use dicom_dictionary_std::tags;
    if super::el_int(obj, tags::BITS_ALLOCATED) != Some(1) {
        return Ok(None);
    }
    let Some(prim) = obj.get(tags::PIXEL_DATA).and_then(|e| e.value().primitive()) else {
        return Ok(None);
    };
    let rows = super::el_int(obj, tags::ROWS).unwrap_or(0).max(0) as usize;
    let cols = super::el_int(obj, tags::COLUMNS).unwrap_or(0).max(0) as usize;
    let spp = super::el_int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1).max(1) as usize;
    let n = rows * cols * spp;
    let bytes = prim.to_bytes();
    let start = n * frame as usize;
    if (start + n).div_ceil(8) > bytes.len() {
        return Err(Error::invalid(path, format!("1-bit pixel data holds {} bytes, frame {frame} of {rows}x{cols} needs {}", bytes.len(), (start + n).div_ceil(8))));
    }
    Ok(Some((start..start + n).map(|b| i64::from((bytes[b / 8] >> (b % 8)) & 1)).collect()))
}

/// A single frame may legally be split over several fragments; dicom-rs 0.10
/// decoders expect one fragment per frame (its RLE decoder even panics), so the
/// fragments of a single-frame image are joined before decoding.
pub(crate) fn merge_single_frame_fragments(obj: &mut DefaultDicomObject) {
    use dicom_dictionary_std::tags;
    if super::el_int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1) > 1 {
        return;
    }
    let split = obj.get(tags::PIXEL_DATA).and_then(|e| e.value().fragments()).map(|f| f.len() > 1).unwrap_or(false);
    if split {
        obj.update_value(tags::PIXEL_DATA, |v| {
            if let Some(frags) = v.fragments_mut() {
                let joined: Vec<u8> = frags.iter().flatten().copied().collect();
                frags.clear();
                frags.push(joined);
            }
        });
    }
}
