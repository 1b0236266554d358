//! File names of images, for code that finds cases in folders by name.

/// Endings of the files that name a whole volume: one file (`.nii.gz`,
/// `.nii`, `.mha`) or the header of a pair (`.mhd` + `.raw`, `.hdr` + `.img`,
/// so the data file of a pair is not taken for a second image). `.nii.gz` comes
/// before `.nii` so that the longer ending is the one removed. Single DICOM
/// files (`.dcm`) are not listed: one is usually a slice, not a volume.
pub const VOLUME_FILE_EXTENSIONS: [&str; 5] = [".nii.gz", ".nii", ".mha", ".mhd", ".hdr"];

/// `name` without the first of `extensions` it ends with, ignoring ASCII case
/// (`CT.NII.GZ` -> `CT`); `None` when it ends with none of them.
pub fn strip_extension<'a>(name: &'a str, extensions: &[&str]) -> Option<&'a str> {
    extensions.iter().find_map(|e| {
        let cut = name.len().checked_sub(e.len())?;
        // An ASCII ending matched byte for byte starts on a char boundary.
        name.as_bytes()[cut..].eq_ignore_ascii_case(e.as_bytes()).then(|| &name[..cut])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_longest_volume_ending() {
        let s = |n| strip_extension(n, &VOLUME_FILE_EXTENSIONS);
        assert_eq!(s("ct.nii.gz"), Some("ct"));
        assert_eq!(s("Liver.NII"), Some("Liver"));
        assert_eq!(s("case03.mhd"), Some("case03"));
        assert_eq!(s("a.b.mha"), Some("a.b"));
        assert_eq!(s(".nii"), Some(""));
        assert_eq!(s("case03.raw"), None);
        assert_eq!(s("notes.txt"), None);
        assert_eq!(s("nii"), None);
        assert_eq!(s("ü.nii"), Some("ü"));
        assert_eq!(strip_extension("slice.DCM", &[".dcm"]), Some("slice"));
    }
}
