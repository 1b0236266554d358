//! A length check over the raw element stream, run before dicom-rs sees a file.
//!
//! dicom-rs 0.10 reserves *and zero-fills* each value's declared length before
//! reading it (`read_value_ob` & co., and the file meta reader), so a 1 KB file
//! claiming a 4 GB element makes it write 4 GB of zeros. No crate offers a
//! pre-parse guard, hence this scanner: it walks element headers (meta group
//! explicit VR LE; data set implicit/explicit, LE/BE, deflated) without reading
//! values, and refuses any defined length that runs past the end of the data.
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;
use std::io::Read;

/// Inflated deflate data sets are bounded too (a deflate bomb is an allocation bomb).
const MAX_INFLATED: u64 = 1 << 30;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    fn u16(&mut self, be: bool) -> Option<u16> {
        let b = self.take(2)?;
        Some(if be { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    }
    fn u32(&mut self, be: bool) -> Option<u32> {
        let b = self.take(4)?;
        Some(if be { u32::from_be_bytes([b[0], b[1], b[2], b[3]]) } else { u32::from_le_bytes([b[0], b[1], b[2], b[3]]) })
    }
}

fn long_form(vr: &[u8]) -> bool {
    matches!(vr, b"OB" | b"OW" | b"OF" | b"OD" | b"OL" | b"OV" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"SV" | b"UV")
}

/// `Ok(())` when every defined length fits in the data that follows it (or the
/// stream stops making sense in a way dicom-rs reports safely); `Err` names the
/// first element whose length is impossible.
/// The file meta group: (TransferSyntaxUID, MediaStorageSOPClassUID, end offset).
/// `Ok(None)` when the file is not Part 10 or the group is cut short.
pub(crate) fn meta(file: &[u8]) -> Result<Option<(String, String, usize)>, String> {
    if file.len() < 132 || &file[128..132] != b"DICM" {
        return Ok(None);
    }
    let mut c = Cursor { data: file, pos: 132 };
    let (mut transfer_syntax, mut sop_class) = (String::new(), String::new());
    loop {
        let save = c.pos;
        let Some(group) = c.u16(false) else { break };
        if group != 0x0002 {
            c.pos = save;
            break;
        }
        let (Some(elem), Some(vr)) = (c.u16(false), c.take(2).map(|v| v.to_vec())) else { return Ok(None) };
        let len = if long_form(&vr) {
            if c.take(2).is_none() {
                return Ok(None);
            }
            match c.u32(false) {
                Some(l) => l,
                None => return Ok(None),
            }
        } else {
            match c.u16(false) {
                Some(l) => l as u32,
                None => return Ok(None),
            }
        };
        if len as usize > c.remaining() {
            return Err(format!("file meta element (0002,{elem:04X}) claims {len} bytes, {} remain", c.remaining()));
        }
        let value = c.take(len as usize).unwrap();
        let text = || String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_string();
        match elem {
            0x0002 => sop_class = text(),
            0x0010 => transfer_syntax = text(),
            _ => {}
        }
    }
    Ok(Some((transfer_syntax, sop_class, c.pos)))
}

/// `Ok(())` when every defined length fits in the data that follows it (or the
/// stream stops making sense in a way dicom-rs reports safely); `Err` names the
/// first element whose length is impossible.
pub(crate) fn check_lengths(file: &[u8]) -> Result<(), String> {
    // Not Part 10 (or no complete meta group): dicom-rs refuses it before reading values.
    let Some((transfer_syntax, _, end)) = meta(file)? else { return Ok(()) };
    let rest = &file[end..];
    match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => scan(rest, Mode::ImplicitLe),
        "1.2.840.10008.1.2.2" => scan(rest, Mode::ExplicitBe),
        "1.2.840.10008.1.2.1.99" => {
            let mut inflated = Vec::new();
            flate2::read::DeflateDecoder::new(rest)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut inflated)
                .map_err(|e| format!("deflated data set: {e}"))?;
            if inflated.len() as u64 > MAX_INFLATED {
                return Err("deflated data set inflates beyond 1 GiB".into());
            }
            scan(&inflated, Mode::ExplicitLe)
        }
        _ => scan(rest, Mode::ExplicitLe),
    }
}

fn scan(data: &[u8], mode: Mode) -> Result<(), String> {
    let be = mode == Mode::ExplicitBe;
    let mut c = Cursor { data, pos: 0 };
    let mut in_pixel_sequence = false;
    while c.remaining() >= 8 {
        let group = c.u16(be).unwrap();
        let elem = c.u16(be).unwrap();
        let tag = Tag(group, elem);
        let name = format!("({group:04X},{elem:04X})");
        if group == 0xFFFE {
            // Item / delimiters: no VR, 4-byte length, always little endian in LE modes.
            let len = c.u32(be).unwrap();
            match elem {
                0xE000 if len != u32::MAX => {
                    if len as usize > c.remaining() {
                        return Err(format!("item claims {len} bytes, {} remain", c.remaining()));
                    }
                    if in_pixel_sequence {
                        c.pos += len as usize; // a compressed fragment: raw bytes
                    }
                }
                0xE0DD => in_pixel_sequence = false,
                _ => {}
            }
            continue;
        }
        let (len, is_sq, vr) = match mode {
            Mode::ImplicitLe => {
                let len = c.u32(false).unwrap();
                let is_sq = StandardDataDictionary
                    .by_tag(tag)
                    .map(|e| e.vr().relaxed() == dicom_core::VR::SQ)
                    .unwrap_or(false);
                (len, is_sq, *b"  ")
            }
            _ => {
                let vr: [u8; 2] = c.take(2).unwrap().try_into().unwrap();
                if !vr.iter().all(|b| b.is_ascii_uppercase()) {
                    return Err(format!("element {name} has no valid VR"));
                }
                let len = if long_form(&vr) {
                    let Some(_) = c.take(2) else { return Ok(()) };
                    let Some(l) = c.u32(be) else { return Ok(()) };
                    l
                } else {
                    let Some(l) = c.u16(be) else { return Ok(()) };
                    l as u32
                };
                (len, &vr == b"SQ", vr)
            }
        };
        if len == u32::MAX {
            if tag == Tag(0x7FE0, 0x0010) {
                in_pixel_sequence = true;
            } else if &vr == b"UN" {
                // Undefined-length UN holds implicit-VR content: stop checking here
                // rather than misread it (dicom-rs parses it as a sequence).
                return Ok(());
            }
            continue; // sequence contents follow inline
        }
        if len as usize > c.remaining() {
            return Err(format!("element {name} claims {len} bytes, {} remain", c.remaining()));
        }
        if !is_sq {
            c.pos += len as usize;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part10(ts: &str, dataset: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 128];
        f.extend(b"DICM");
        let mut uid = ts.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        f.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        f.extend((uid.len() as u16).to_le_bytes());
        f.extend(uid);
        f.extend(dataset);
        f
    }

    #[test]
    fn finds_impossible_lengths() {
        // (0028,0010) US 2 bytes, then a LO claiming more than remains.
        let mut ds = vec![0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0, 16, 0];
        assert!(check_lengths(&part10("1.2.840.10008.1.2.1", &ds)).is_ok());
        ds.extend([0x10, 0x00, 0x10, 0x00, b'L', b'O', 0xF0, 0xFF, b'a', b'b']);
        let e = check_lengths(&part10("1.2.840.10008.1.2.1", &ds)).unwrap_err();
        assert!(e.contains("(0010,0010)"), "{e}");
        // Implicit VR: OB-sized bomb inside a sequence item.
        let mut ds = vec![0x08, 0x00, 0x15, 0x11, 0xFF, 0xFF, 0xFF, 0xFF]; // (0008,1115) SQ undefined
        ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]); // item undefined
        ds.extend([0x08, 0x00, 0x50, 0x11, 0x00, 0x00, 0x00, 0x80]); // (0008,1150) 2 GiB
        let e = check_lengths(&part10("1.2.840.10008.1.2", &ds)).unwrap_err();
        assert!(e.contains("(0008,1150)"), "{e}");
        // Meta group element too long.
        let mut f = part10("1.2.840.10008.1.2.1", &[]);
        assert_eq!(meta(&f).unwrap().unwrap().0, "1.2.840.10008.1.2.1");
        f[138] = 0xFF;
        f[139] = 0x7F;
        assert!(check_lengths(&f).unwrap_err().contains("meta"));
    }

    /// No false alarms: every Part-10 file of the corpora that dicom-rs reads passes.
    #[test]
    fn accepts_every_readable_corpus_file() {
        let Some(root) = liverseg_testdata::require_shared!("corpora") else { return };
        let mut stack = vec![root];
        let (mut checked, mut refused) = (0, Vec::new());
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else { continue };
                if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
                    continue;
                }
                let scanned = check_lengths(&bytes);
                let parsed = std::panic::catch_unwind(|| dicom_object::open_file(&path).is_ok()).unwrap_or(false);
                if parsed {
                    checked += 1;
                    assert!(scanned.is_ok(), "{}: {:?}", path.display(), scanned);
                } else if scanned.is_err() {
                    refused.push(path.file_name().unwrap().to_string_lossy().to_string());
                }
            }
        }
        eprintln!("length scan: {checked} readable files accepted; unreadable ones also refused by the scan: {refused:?}");
        assert!(checked > 100);
    }
}
