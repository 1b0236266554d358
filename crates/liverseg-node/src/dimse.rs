//! DIMSE command sets (PS3.7 9.3 / 9.1.1) for C-ECHO and C-STORE. dicom-ul does
//! the upper layer (associations, PDUs); the command messages on top of it are
//! ours, as in dicom-rs' own storescp/storescu tools, which are binaries and not
//! a library we could call.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const ENHANCED_CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2.1";
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

pub const C_STORE_RQ: u16 = 0x0001;
pub const C_STORE_RSP: u16 = 0x8001;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_ECHO_RSP: u16 = 0x8030;
/// CommandDataSetType: no data set follows.
const NO_DATA_SET: u16 = 0x0101;

pub const STATUS_SUCCESS: u16 = 0x0000;
/// Refused: out of resources (the instance could not be stored).
pub const STATUS_OUT_OF_RESOURCES: u16 = 0xA700;
/// Error: data set does not match SOP class.
pub const STATUS_DATASET_MISMATCH: u16 = 0xA900;
/// Error: cannot understand.
pub const STATUS_CANNOT_UNDERSTAND: u16 = 0xC000;
/// Refused: SOP class not supported.
pub const STATUS_SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;

/// C-STORE status that counts as stored: success, or a warning (0001, Bxxx).
pub fn store_status_ok(status: u16) -> bool {
    status == STATUS_SUCCESS || status == 0x0001 || (status & 0xF000) == 0xB000
}

fn str_el(tag: Tag, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(v.to_string()))
}
fn u16_el(tag: Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// Commands are always implicit VR little endian (PS3.7 6.3.1).
pub fn encode(obj: &InMemDicomObject) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| format!("cannot encode a DIMSE command: {e}"))?;
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<InMemDicomObject, String> {
    InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| format!("malformed DIMSE command: {e}"))
}

pub fn get_u16(obj: &InMemDicomObject, tag: Tag) -> Option<u16> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<u16>().ok())
}

pub fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| trim_uid(&s).to_string())
}

/// UIDs are padded to even length with NUL (and sloppy peers use spaces).
pub fn trim_uid(s: &str) -> &str {
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

/// A UID fit to be a file or folder name: digits and dots only, as PS3.5 9.1
/// requires, so a peer cannot steer a path with `..` or `/`.
pub fn is_valid_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
}

pub fn c_echo_rsp(message_id: u16) -> InMemDicomObject {
    InMemDicomObject::command_from_element_iter([
        str_el(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
        u16_el(tags::COMMAND_FIELD, C_ECHO_RSP),
        u16_el(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        u16_el(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        u16_el(tags::STATUS, STATUS_SUCCESS),
    ])
}

pub fn c_store_rsp(
    message_id: u16,
    sop_class: &str,
    sop_instance: &str,
    status: u16,
) -> InMemDicomObject {
    InMemDicomObject::command_from_element_iter([
        str_el(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        u16_el(tags::COMMAND_FIELD, C_STORE_RSP),
        u16_el(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        u16_el(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        u16_el(tags::STATUS, status),
        str_el(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ])
}

pub fn c_store_rq(message_id: u16, sop_class: &str, sop_instance: &str) -> InMemDicomObject {
    InMemDicomObject::command_from_element_iter([
        str_el(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        u16_el(tags::COMMAND_FIELD, C_STORE_RQ),
        u16_el(tags::MESSAGE_ID, message_id),
        u16_el(tags::PRIORITY, 0),
        // Any value other than 0101H: a data set follows.
        u16_el(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        str_el(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_response_round_trips_with_group_length() {
        let bytes = encode(&c_store_rsp(
            7,
            CT_IMAGE_STORAGE,
            "1.2.3.4",
            STATUS_CANNOT_UNDERSTAND,
        ))
        .unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(get_u16(&back, tags::COMMAND_FIELD), Some(C_STORE_RSP));
        assert_eq!(get_u16(&back, tags::MESSAGE_ID_BEING_RESPONDED_TO), Some(7));
        assert_eq!(get_u16(&back, tags::STATUS), Some(STATUS_CANNOT_UNDERSTAND));
        assert_eq!(
            get_str(&back, tags::AFFECTED_SOP_INSTANCE_UID).as_deref(),
            Some("1.2.3.4")
        );
        // CommandGroupLength counts the bytes after itself (12 bytes: tag, length, UL value).
        let group_len = back
            .element(tags::COMMAND_GROUP_LENGTH)
            .unwrap()
            .to_int::<u32>()
            .unwrap();
        assert_eq!(group_len as usize, bytes.len() - 12);
    }

    #[test]
    fn uids_that_could_steer_a_path_are_refused() {
        assert!(is_valid_uid("1.2.840.113619.2.55"));
        for bad in [
            "",
            "..",
            "1..2",
            "1/2",
            "../1",
            ".1",
            "1.",
            "1.2 ",
            &"1".repeat(65),
        ] {
            assert!(!is_valid_uid(bad), "{bad:?}");
        }
    }

    #[test]
    fn warnings_count_as_stored_failures_do_not() {
        assert!(store_status_ok(0x0000));
        assert!(store_status_ok(0xB007));
        assert!(!store_status_ok(0xA700));
        assert!(!store_status_ok(0xC000));
    }
}
