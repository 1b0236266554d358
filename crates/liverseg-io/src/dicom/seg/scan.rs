//! A look at the file meta group without dicom-rs, to tell a SEG from a large CT
//! after reading only the first bytes. dicom-rs 0.10 zero-fills each declared
//! length before reading it, so this walks element headers by hand and refuses
//! lengths that run past the data; full files go through the shared opener
//! (`dicom::open_object`), whose pre-check covers the whole data set.

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
