//! A length sanity walk over a DICOM file's bytes before dicom-rs parses it.
//!
//! dicom-rs 0.10 allocates (and zero-fills) an element's declared length before
//! reading it, so one corrupted length field makes it allocate up to 4 GiB for a
//! file of a few KiB (an allocation bomb, and seconds of page faulting). No
//! option limits that, so this walk checks every defined length against the
//! bytes that remain and refuses the file first. It only ever rejects lengths
//! that cannot be satisfied; anything it does not understand is left to
//! dicom-rs.

const UNDEFINED: u32 = 0xFFFF_FFFF;

struct Walker<'a> {
    data: &'a [u8],
    explicit: bool,
    big: bool,
    header_only: bool,
}

enum Stop {
    /// Reached the end of the current container (delimiter or end of data).
    End(usize),
    /// Reached PixelData at the top level while reading a header only.
    PixelData,
}

impl Walker<'_> {
    fn u16(&self, p: usize) -> u16 {
        let b = [self.data[p], self.data[p + 1]];
        if self.big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
    }
    fn u32(&self, p: usize) -> u32 {
        let b = [self.data[p], self.data[p + 1], self.data[p + 2], self.data[p + 3]];
        if self.big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }

    fn walk(&self, mut pos: usize, depth: usize) -> Result<Stop, String> {
        let end = self.data.len();
        if depth > 64 {
            return Ok(Stop::End(end));
        }
        while pos + 8 <= end {
            let (group, elem) = (self.u16(pos), self.u16(pos + 2));
            if group == 0xFFFE {
                let len = self.u32(pos + 4);
                pos += 8;
                match elem {
                    0xE00D | 0xE0DD => return Ok(Stop::End(pos)),
                    _ if len == UNDEFINED => match self.walk(pos, depth + 1)? {
                        Stop::End(p) => pos = p,
                        Stop::PixelData => return Ok(Stop::PixelData),
                    },
                    _ => {
                        check(group, elem, len, end - pos)?;
                        pos += len as usize;
                    }
                }
                continue;
            }
            if depth == 0 && self.header_only && group == 0x7FE0 && elem == 0x0010 {
                return Ok(Stop::PixelData);
            }
            let (len, header) = if self.explicit {
                let vr = [self.data[pos + 4], self.data[pos + 5]];
                if long_vr(vr) {
                    if pos + 12 > end {
                        return Ok(Stop::End(end));
                    }
                    (self.u32(pos + 8), 12)
                } else {
                    (self.u16(pos + 6) as u32, 8)
                }
            } else {
                (self.u32(pos + 4), 8)
            };
            pos += header;
            if len == UNDEFINED {
                match self.walk(pos, depth + 1)? {
                    Stop::End(p) => pos = p,
                    Stop::PixelData => return Ok(Stop::PixelData),
                }
            } else {
                check(group, elem, len, end.saturating_sub(pos))?;
                pos += len as usize;
            }
        }
        Ok(Stop::End(end))
    }
}

/// 4-byte length form. Like dicom-rs, an unknown VR is read as UN (long form).
fn long_vr(vr: [u8; 2]) -> bool {
    !matches!(
        &vr,
        b"AE" | b"AS" | b"AT" | b"CS" | b"DA" | b"DS" | b"DT" | b"FL" | b"FD" | b"IS" | b"LO" | b"LT" | b"PN" | b"SH" | b"SL" | b"SS" | b"ST" | b"TM" | b"UI" | b"UL" | b"US"
    )
}

fn check(group: u16, elem: u16, len: u32, remaining: usize) -> Result<(), String> {
    if len as usize > remaining {
        Err(format!("element ({group:04X},{elem:04X}) claims {len} bytes but only {remaining} remain (truncated or corrupt file)"))
    } else {
        Ok(())
    }
}

/// `Err(message)` when a declared length cannot fit in the file. `data` starts at
/// the 128-byte preamble or directly at "DICM".
pub(crate) fn check_lengths(data: &[u8], header_only: bool) -> Result<(), String> {
    let mut pos = if data.len() >= 132 && &data[128..132] == b"DICM" {
        132
    } else if data.len() >= 4 && &data[..4] == b"DICM" {
        4
    } else {
        return Ok(());
    };
    // File meta group: always explicit VR little endian.
    let meta = Walker { data, explicit: true, big: false, header_only };
    let mut ts = String::new();
    while pos + 8 <= data.len() && meta.u16(pos) == 0x0002 {
        let elem = meta.u16(pos + 2);
        let vr = [data[pos + 4], data[pos + 5]];
        let (len, header) = if long_vr(vr) {
            if pos + 12 > data.len() {
                return Ok(());
            }
            (meta.u32(pos + 8), 12)
        } else {
            (meta.u16(pos + 6) as u32, 8)
        };
        check(0x0002, elem, len, data.len().saturating_sub(pos + header))?;
        if elem == 0x0010 {
            ts = String::from_utf8_lossy(&data[pos + header..pos + header + len as usize]).trim_end_matches(['\0', ' ']).to_string();
        }
        pos += header + len as usize;
    }
    if ts.is_empty() {
        return Ok(()); // no transfer syntax: dicom-rs refuses the file anyway
    }
    if ts == "1.2.840.10008.1.2.1.99" {
        // Deflated body: inflate (capped) and walk it as explicit VR little endian.
        use std::io::Read;
        let mut inflated = Vec::new();
        // A broken stream still yields what inflated before the break: that is
        // all dicom-rs will have too, so walk it.
        let _ = flate2::read::DeflateDecoder::new(&data[pos..]).take(1 << 30).read_to_end(&mut inflated);
        let w = Walker { data: &inflated, explicit: true, big: false, header_only };
        return w.walk(0, 0).map(|_| ());
    }
    let body = Walker { data, explicit: ts != "1.2.840.10008.1.2", big: ts == "1.2.840.10008.1.2.2", header_only };
    body.walk(pos, 0).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 128];
        v.extend_from_slice(b"DICM");
        let ts = b"1.2.840.10008.1.2.1\0";
        v.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        v.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        v.extend_from_slice(ts);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn accepts_consistent_and_rejects_impossible_lengths() {
        // (0010,0010) PN "AB"
        let ok = file(&[0x10, 0x00, 0x10, 0x00, b'P', b'N', 2, 0, b'A', b'B']);
        assert!(check_lengths(&ok, false).is_ok());
        // (7FE0,0010) OW claiming 4 GiB - 2 in a tiny file
        let bomb = file(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 1, 2]);
        let e = check_lengths(&bomb, false).unwrap_err();
        assert!(e.contains("(7FE0,0010) claims 4294967294 bytes"), "{e}");
        // Header-only reads stop at PixelData and do not judge it.
        assert!(check_lengths(&bomb, true).is_ok());
        // Undefined-length sequence with a defined-length item that is too long.
        let seq = file(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0, 0, 0]);
        assert!(check_lengths(&seq, false).is_err());
    }
}
