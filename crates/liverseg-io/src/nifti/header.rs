//! The NIfTI-1 (348 bytes), NIfTI-2 (540 bytes) and Analyze 7.5 (348 bytes, no
//! magic) headers: decoding from either byte order and encoding (little endian).
//!
//! Decoding never fails on odd field values: it only refuses what makes the
//! file unreadable as a NIfTI/Analyze header at all (wrong size, dim[0] out of
//! range). Everything else is judged later, when the values are used, so that
//! `liverseg info` can still show the header of a file whose data is broken.

use crate::Format;

pub const NIFTI1_HEADER_SIZE: usize = 348;
pub const NIFTI2_HEADER_SIZE: usize = 540;
/// The header plus the 4-byte extension flag: where single-file data may start.
pub const NIFTI1_MIN_OFFSET: u64 = 352;
pub const NIFTI2_MIN_OFFSET: u64 = 544;

const NIFTI2_MAGIC_TAIL: [u8; 4] = [b'\r', b'\n', 0x1a, b'\n'];

/// Every header field liverseg uses, widened to the NIfTI-2 types.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub format: Format,
    pub big_endian: bool,
    /// `n+1` / `n+2`: header and data in one file. `ni1` / `ni2` / Analyze:
    /// data in the `.img` beside the `.hdr`.
    pub single_file: bool,
    /// dim[0..8] as stored (dim[0] = number of dimensions, checked to be 1..=7).
    pub dim: [i64; 8],
    pub pixdim: [f64; 8],
    pub datatype: i32,
    pub bitpix: i32,
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub xyzt_units: i32,
    pub intent_code: i32,
    /// NIfTI-2 only: the 4 bytes after `n+2\0` that catch text-mode transfers.
    pub magic_tail_ok: bool,
}

/// Byte order found from sizeof_hdr, plus the header size it implies.
fn detect(bytes: &[u8]) -> Result<(bool, usize), String> {
    if bytes.len() < 4 {
        return Err(format!("file too short for a NIfTI/Analyze header ({} bytes)", bytes.len()));
    }
    let raw: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
    let le = i32::from_le_bytes(raw);
    let be = i32::from_be_bytes(raw);
    let (big_endian, size) = match (le, be) {
        (348, _) => (false, NIFTI1_HEADER_SIZE),
        (540, _) => (false, NIFTI2_HEADER_SIZE),
        (_, 348) => (true, NIFTI1_HEADER_SIZE),
        (_, 540) => (true, NIFTI2_HEADER_SIZE),
        _ => return Err(format!("not a NIfTI or Analyze file: header size field is {le}, expected 348 or 540")),
    };
    if bytes.len() < size {
        return Err(format!("truncated header: {} of {size} bytes", bytes.len()));
    }
    Ok((big_endian, size))
}

/// Cheap check used by content sniffing: header size and dim[0] plausible.
pub fn plausible(bytes: &[u8]) -> bool {
    Header::parse(bytes).is_ok()
}

struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a: [u8; N] = self.b[at..at + N].try_into().expect("within header");
        if self.big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i64 {
        i16::from_le_bytes(self.arr(at)) as i64
    }
    fn i32(&self, at: usize) -> i64 {
        i32::from_le_bytes(self.arr(at)) as i64
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.arr(at)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
}

impl Header {
    /// Decode the header at the start of `bytes` (which may hold more).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let (big_endian, size) = detect(bytes)?;
        let f = Fields { b: bytes, big: big_endian };
        let h = if size == NIFTI1_HEADER_SIZE {
            let magic = &bytes[344..348];
            let (format, single_file) = match magic {
                b"n+1\0" => (Format::Nifti1, true),
                b"ni1\0" => (Format::Nifti1, false),
                _ => (Format::Analyze, false),
            };
            let is_nifti = format == Format::Nifti1;
            Header {
                format,
                big_endian,
                single_file,
                dim: std::array::from_fn(|i| f.i16(40 + 2 * i)),
                pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
                datatype: f.i16(70) as i32,
                bitpix: f.i16(72) as i32,
                vox_offset: f.f32(108),
                // SPM's Analyze uses the same bytes (funused1/2) for slope and intercept.
                scl_slope: f.f32(112),
                scl_inter: f.f32(116),
                qform_code: if is_nifti { f.i16(252) as i32 } else { 0 },
                sform_code: if is_nifti { f.i16(254) as i32 } else { 0 },
                quatern: if is_nifti { std::array::from_fn(|i| f.f32(256 + 4 * i)) } else { [0.0; 3] },
                qoffset: if is_nifti { std::array::from_fn(|i| f.f32(268 + 4 * i)) } else { [0.0; 3] },
                srow: if is_nifti {
                    std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c)))
                } else {
                    [[0.0; 4]; 3]
                },
                xyzt_units: if is_nifti { bytes[123] as i32 } else { 0 },
                intent_code: if is_nifti { f.i16(68) as i32 } else { 0 },
                magic_tail_ok: true,
            }
        } else {
            let single_file = match &bytes[4..8] {
                b"n+2\0" => true,
                b"ni2\0" => false,
                _ => return Err("header size says NIfTI-2 (540) but the magic is not n+2 / ni2".into()),
            };
            Header {
                format: Format::Nifti2,
                big_endian,
                single_file,
                dim: std::array::from_fn(|i| f.i64(16 + 8 * i)),
                pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
                datatype: f.i16(12) as i32,
                bitpix: f.i16(14) as i32,
                vox_offset: f.i64(168) as f64,
                scl_slope: f.f64(176),
                scl_inter: f.f64(184),
                qform_code: f.i32(344) as i32,
                sform_code: f.i32(348) as i32,
                quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
                qoffset: std::array::from_fn(|i| f.f64(376 + 8 * i)),
                srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
                xyzt_units: f.i32(500) as i32,
                intent_code: f.i32(504) as i32,
                magic_tail_ok: bytes[8..12] == NIFTI2_MAGIC_TAIL,
            }
        };
        if !(1..=7).contains(&h.dim[0]) {
            return Err(format!("dim[0] = {} is outside 1..7 (damaged header or not a NIfTI/Analyze file)", h.dim[0]));
        }
        Ok(h)
    }

    pub fn header_size(&self) -> usize {
        if self.format == Format::Nifti2 {
            NIFTI2_HEADER_SIZE
        } else {
            NIFTI1_HEADER_SIZE
        }
    }

    /// dim[1..=dim[0]] as stored (may hold zero or negative values: checked by the reader).
    pub fn dims(&self) -> &[i64] {
        &self.dim[1..=self.dim[0] as usize]
    }

    /// Encode as a little-endian single-file header (`n+1` or `n+2`), followed
    /// by the 4 zero bytes that say "no extensions".
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(NIFTI2_MIN_OFFSET as usize);
        match self.format {
            Format::Nifti2 => {
                b.resize(NIFTI2_HEADER_SIZE, 0);
                put(&mut b, 0, &540i32.to_le_bytes());
                put(&mut b, 4, b"n+2\0");
                put(&mut b, 8, &NIFTI2_MAGIC_TAIL);
                put(&mut b, 12, &(self.datatype as i16).to_le_bytes());
                put(&mut b, 14, &(self.bitpix as i16).to_le_bytes());
                for i in 0..8 {
                    put(&mut b, 16 + 8 * i, &self.dim[i].to_le_bytes());
                    put(&mut b, 104 + 8 * i, &self.pixdim[i].to_le_bytes());
                }
                put(&mut b, 168, &(self.vox_offset as i64).to_le_bytes());
                put(&mut b, 176, &self.scl_slope.to_le_bytes());
                put(&mut b, 184, &self.scl_inter.to_le_bytes());
                put(&mut b, 240, &descrip());
                put(&mut b, 344, &self.qform_code.to_le_bytes());
                put(&mut b, 348, &self.sform_code.to_le_bytes());
                for i in 0..3 {
                    put(&mut b, 352 + 8 * i, &self.quatern[i].to_le_bytes());
                    put(&mut b, 376 + 8 * i, &self.qoffset[i].to_le_bytes());
                }
                for r in 0..3 {
                    for c in 0..4 {
                        put(&mut b, 400 + 32 * r + 8 * c, &self.srow[r][c].to_le_bytes());
                    }
                }
                put(&mut b, 500, &self.xyzt_units.to_le_bytes());
                put(&mut b, 504, &self.intent_code.to_le_bytes());
            }
            _ => {
                b.resize(NIFTI1_HEADER_SIZE, 0);
                put(&mut b, 0, &348i32.to_le_bytes());
                // Analyze's "regular" flag; NIfTI readers ignore it, old tools want 'r'.
                b[38] = b'r';
                for i in 0..8 {
                    put(&mut b, 40 + 2 * i, &(self.dim[i] as i16).to_le_bytes());
                    put(&mut b, 76 + 4 * i, &(self.pixdim[i] as f32).to_le_bytes());
                }
                put(&mut b, 68, &(self.intent_code as i16).to_le_bytes());
                put(&mut b, 70, &(self.datatype as i16).to_le_bytes());
                put(&mut b, 72, &(self.bitpix as i16).to_le_bytes());
                put(&mut b, 108, &(self.vox_offset as f32).to_le_bytes());
                put(&mut b, 112, &(self.scl_slope as f32).to_le_bytes());
                put(&mut b, 116, &(self.scl_inter as f32).to_le_bytes());
                b[123] = self.xyzt_units as u8;
                put(&mut b, 148, &descrip());
                put(&mut b, 252, &(self.qform_code as i16).to_le_bytes());
                put(&mut b, 254, &(self.sform_code as i16).to_le_bytes());
                for i in 0..3 {
                    put(&mut b, 256 + 4 * i, &(self.quatern[i] as f32).to_le_bytes());
                    put(&mut b, 268 + 4 * i, &(self.qoffset[i] as f32).to_le_bytes());
                }
                for r in 0..3 {
                    for c in 0..4 {
                        put(&mut b, 280 + 16 * r + 4 * c, &(self.srow[r][c] as f32).to_le_bytes());
                    }
                }
                put(&mut b, 344, b"n+1\0");
            }
        }
        b.extend_from_slice(&[0, 0, 0, 0]);
        b
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn descrip() -> [u8; 80] {
    let mut d = [0u8; 80];
    let text = concat!("liverseg ", env!("CARGO_PKG_VERSION"));
    d[..text.len()].copy_from_slice(text.as_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(format: Format) -> Header {
        Header {
            format,
            big_endian: false,
            single_file: true,
            dim: [3, 5, 6, 7, 1, 1, 1, 1],
            pixdim: [-1.0, 0.5, 0.75, 2.5, 1.0, 1.0, 1.0, 1.0],
            datatype: 4,
            bitpix: 16,
            vox_offset: if format == Format::Nifti2 { 544.0 } else { 352.0 },
            scl_slope: 1.0,
            scl_inter: 0.0,
            qform_code: 1,
            sform_code: 2,
            quatern: [0.25, -0.5, 0.125],
            qoffset: [10.5, -20.25, 30.0],
            srow: [[-0.5, 0.0, 0.0, 10.5], [0.0, 0.75, 0.0, -20.25], [0.0, 0.0, 2.5, 30.0]],
            xyzt_units: 2,
            intent_code: 0,
            magic_tail_ok: true,
        }
    }

    #[test]
    fn encode_parse_roundtrip_both_versions() {
        for format in [Format::Nifti1, Format::Nifti2] {
            let h = sample(format);
            let bytes = h.encode();
            assert_eq!(bytes.len() as u64, if format == Format::Nifti2 { NIFTI2_MIN_OFFSET } else { NIFTI1_MIN_OFFSET });
            assert_eq!(Header::parse(&bytes).unwrap(), h);
        }
    }

    #[test]
    fn big_endian_nifti1_is_detected_and_decoded() {
        let h = sample(Format::Nifti1);
        let le = h.encode();
        // Swap every numeric field by hand: the layout table of the standard.
        let mut be = le.clone();
        let swap = |b: &mut Vec<u8>, at: usize, n: usize| b[at..at + n].reverse();
        swap(&mut be, 0, 4);
        for i in 0..8 {
            swap(&mut be, 40 + 2 * i, 2);
            swap(&mut be, 76 + 4 * i, 4);
        }
        for at in [68, 70, 72, 252, 254] {
            swap(&mut be, at, 2);
        }
        for at in [108, 112, 116, 256, 260, 264, 268, 272, 276] {
            swap(&mut be, at, 4);
        }
        for at in (280..328).step_by(4) {
            swap(&mut be, at, 4);
        }
        let parsed = Header::parse(&be).unwrap();
        assert!(parsed.big_endian);
        assert_eq!(Header { big_endian: false, ..parsed }, h);
    }

    #[test]
    fn analyze_has_no_orientation_fields() {
        let mut bytes = sample(Format::Nifti1).encode();
        bytes[344..348].copy_from_slice(&[0, 0, 0, 0]);
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(h.format, Format::Analyze);
        assert!(!h.single_file);
        assert_eq!((h.qform_code, h.sform_code), (0, 0));
    }

    #[test]
    fn rejects_non_headers() {
        assert!(Header::parse(b"").unwrap_err().contains("too short"));
        assert!(Header::parse(&[0u8; 400]).unwrap_err().contains("header size field is 0"));
        let mut b = sample(Format::Nifti1).encode();
        b.truncate(200);
        assert!(Header::parse(&b).unwrap_err().contains("truncated header"));
        let mut b = sample(Format::Nifti1).encode();
        b[40..42].copy_from_slice(&9i16.to_le_bytes());
        assert!(Header::parse(&b).unwrap_err().contains("dim[0] = 9"));
        let mut b = sample(Format::Nifti2).encode();
        b[4..8].copy_from_slice(b"xxxx");
        assert!(Header::parse(&b).unwrap_err().contains("magic"));
    }
}
