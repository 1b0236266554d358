//! Small helpers shared by the SEG and RTSTRUCT writers: element construction,
//! UID generation, DS formatting, atomic Part-10 output.
use crate::{Error, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

pub(crate) const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Implementation Class UID of liverseg's Part-10 files (under the 2.25 UUID arc).
pub(crate) const IMPLEMENTATION_CLASS_UID: &str = "2.25.275741864483510678566144889372061815320";

pub(crate) fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, v.into())
}
pub(crate) fn s(tag: Tag, vr: VR, v: &str) -> InMemElement {
    // DICOM strings of odd length are padded by the encoder; empty = Type 2 "present but empty".
    if v.is_empty() {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    } else {
        DataElement::new(tag, vr, PrimitiveValue::from(v))
    }
}
/// A text value cut to what its VR allows (LO 64, SH 16, ST 1024, LT 10240
/// characters; PS3.5 6.2), so a long description from a caller (flag lists,
/// series descriptions) never makes an invalid file. LO/SH cannot hold a
/// backslash (the value separator): it becomes '/'.
pub(crate) fn text(tag: Tag, vr: VR, v: &str) -> InMemElement {
    let max = match vr {
        VR::SH => 16,
        VR::LO => 64,
        VR::ST => 1024,
        VR::LT => 10240,
        _ => usize::MAX,
    };
    let mut t: String = v.chars().map(|c| if c == '\\' && matches!(vr, VR::SH | VR::LO) { '/' } else { c }).collect();
    if t.chars().count() > max {
        t = t.chars().take(max - 3).collect::<String>() + "...";
    }
    s(tag, vr, t.trim_end())
}
pub(crate) fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}
pub(crate) fn item(elements: Vec<InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}
/// Multi-valued DS.
pub(crate) fn ds(tag: Tag, values: &[f64]) -> InMemElement {
    DataElement::new(tag, VR::DS, PrimitiveValue::Strs(values.iter().map(|&v| fmt_ds(v)).collect()))
}

/// A DS value: at most 16 characters (PS3.5 6.2), as precise as fits, without
/// trailing zeros.
pub(crate) fn fmt_ds(v: f64) -> String {
    let v = if v == 0.0 || !v.is_finite() { 0.0 } else { v };
    for decimals in (0..=6).rev() {
        let mut t = format!("{v:.decimals$}");
        if t.contains('.') {
            while t.ends_with('0') {
                t.pop();
            }
            if t.ends_with('.') {
                t.pop();
            }
        }
        if t == "-0" {
            t = "0".into();
        }
        if t.len() <= 16 {
            return t;
        }
    }
    format!("{v:.6e}")
}

/// A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning).
pub(crate) fn code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    use dicom_dictionary_std::tags;
    item(vec![
        s(tags::CODE_VALUE, VR::SH, value),
        s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        s(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// 128 random bits from the standard library's OS-seeded hasher keys (no extra
/// dependency for the one place that needs randomness), mixed with time and pid.
fn random_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let half = |salt: u8| {
        RandomState::new().hash_one((salt, n, t, std::process::id())) as u128
    };
    (half(1) << 64) | half(2)
}

/// A new UID: `<root>.<random decimal>` when a root is given (cut to 64
/// characters), else a UUID-derived `2.25.<decimal>` (PS3.5 B.2).
pub(crate) fn new_uid(root: Option<&str>) -> String {
    let r = random_u128();
    match root {
        None => {
            // Version-4 UUID bits, as PS3.5 B.2 expects a UUID.
            let u = (r & !(0xF000u128 << 64) | (0x4000u128 << 64)) & !(0xC000_0000_0000_0000u128) | 0x8000_0000_0000_0000u128;
            format!("2.25.{u}")
        }
        Some(root) => {
            let room = 64usize.saturating_sub(root.len() + 1).min(39);
            let mut digits = r.to_string();
            digits.truncate(room);
            let digits = digits.trim_start_matches('0');
            let digits = if digits.is_empty() { "1" } else { digits };
            format!("{root}.{digits}")
        }
    }
}

/// A UID root: digits and dots, components without leading zeros, short enough to
/// leave at least 10 random digits.
pub(crate) fn check_uid_root(path: &Path, root: &str) -> Result<()> {
    let ok = !root.is_empty()
        && root.len() <= 53
        && root.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(path, format!("UID root {root:?} is not a valid DICOM UID prefix (digits and dots, no leading zeros, at most 53 characters)")))
    }
}

/// DICOM date and time (DA, TM) of now, UTC (no timezone crate in the tree; the
/// Timezone Offset From UTC attribute says so).
pub(crate) fn now_da_tm() -> (String, String) {
    let t = crate::utc::UtcTime::now();
    (format!("{:04}{:02}{:02}", t.year, t.month, t.day), format!("{:02}{:02}{:02}", t.hour, t.minute, t.second))
}

/// sRGB (0-255) to the scaled CIELab triple of RecommendedDisplayCIELabValue and
/// similar attributes (PS3.3 C.10.7.1.1: L 0-100 -> 0-65535, a/b -128..127 -> 0-65535),
/// with the D50 white point of the ICC profile connection space.
pub(crate) fn srgb_to_dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    // sRGB -> XYZ (D50, Bradford-adapted matrix).
    let x = 0.4360747 * r + 0.3850649 * g + 0.1430804 * b;
    let y = 0.2225045 * r + 0.7168786 * g + 0.0606169 * b;
    let z = 0.0139322 * r + 0.0971045 * g + 0.7141733 * b;
    let (xn, yn, zn) = (0.96422, 1.0, 0.82521);
    let f = |t: f64| if t > 216.0 / 24389.0 { t.cbrt() } else { (24389.0 / 27.0 * t + 16.0) / 116.0 };
    let (fx, fy, fz) = (f(x / xn), f(y / yn), f(z / zn));
    let l = 116.0 * fy - 16.0;
    let a = 500.0 * (fx - fy);
    let bb = 200.0 * (fy - fz);
    let scale = |v: f64, lo: f64, hi: f64| (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 65535.0).round() as u16;
    [scale(l, 0.0, 100.0), scale(a, -128.0, 127.0), scale(bb, -128.0, 127.0)]
}

/// Write a data set as a Part-10 file (explicit VR little endian), atomically.
pub(crate) fn write_part10(path: &Path, obj: InMemDicomObject) -> Result<()> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(format!("LIVERSEG_{}", env!("CARGO_PKG_VERSION")).chars().take(16).collect::<String>());
    let file = obj.with_meta(meta).map_err(|e| Error::invalid(path, format!("cannot build the DICOM file meta group: {e}")))?;
    crate::atomic::write_atomic(path, |w| file.write_all(w).map_err(|e| std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_16_chars() {
        for v in [0.0, -0.0, 1.5, -1234.567891234, 1e12, -987654.3210987, 0.000001234, 1.0 / 3.0] {
            let t = fmt_ds(v);
            assert!(t.len() <= 16, "{t}");
            let back: f64 = t.parse().unwrap();
            assert!((back - v).abs() <= 1e-6 * v.abs().max(1.0), "{v} -> {t}");
        }
        assert_eq!(fmt_ds(2.50), "2.5");
        assert_eq!(fmt_ds(-0.0000001), "0");
    }

    #[test]
    fn uids_are_valid_and_unique() {
        let a = new_uid(None);
        let b = new_uid(None);
        assert_ne!(a, b);
        for u in [&a, &b, &new_uid(Some("1.2.826.0.1.3680043.10.999")), &new_uid(Some("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.2"))] {
            assert!(u.len() <= 64, "{u}");
            assert!(u.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0'))), "{u}");
        }
        assert!(new_uid(Some("1.2.3")).starts_with("1.2.3."));
        assert!(check_uid_root(Path::new("x"), "1.2.03").is_err());
        assert!(check_uid_root(Path::new("x"), "1.2.").is_err());
        assert!(check_uid_root(Path::new("x"), "1.2.840.99").is_ok());
    }

    #[test]
    fn lab_of_white_black_and_red() {
        assert_eq!(srgb_to_dicom_lab([255, 255, 255]), [65535, 32896, 32896]);
        assert_eq!(srgb_to_dicom_lab([0, 0, 0])[0], 0);
        let red = srgb_to_dicom_lab([255, 0, 0]);
        // L* about 54, a* strongly positive.
        assert!((red[0] as f64 / 65535.0 * 100.0 - 54.3).abs() < 1.5 && red[1] > 50000, "{red:?}");
    }

    #[test]
    fn date_is_plausible() {
        let (d, t) = now_da_tm();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.as_str() > "20200101");
    }
}
