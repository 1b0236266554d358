//! The C-STORE / C-ECHO service class provider: one thread per association.

use crate::dimse::{self, *};
use crate::{log, Shared};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, OpenFileOptions};
use dicom_ul::association::server::AccessControl;
use dicom_ul::association::Association;
use dicom_ul::pdu::{AssociationRJServiceUserReason, PDataValue, PDataValueType, UserIdentity};
use dicom_ul::{Pdu, ServerAssociationOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Refuses a wrong called AE title and calling AE titles not on the list (an
/// empty list accepts any caller), with the A-ASSOCIATE-RJ reason that says which.
struct CallerList {
    allowed: Vec<String>,
}

impl AccessControl for CallerList {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.allowed.is_empty()
            && !self
                .allowed
                .iter()
                .any(|a| a.trim() == calling_ae_title.trim())
        {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Transfer syntaxes accepted for incoming images: those whose pixel data this
/// build can decode (the processor has to read them), in the sender's order of
/// preference. Explicit VR big endian is left out (retired, and a sender that
/// has it always offers little endian too); so are codecs not compiled in
/// (e.g. JPEG-LS without the `jpeg-ls` feature), so that the sender falls back
/// to one we can read instead of storing files nobody here can decode.
pub fn accepted_transfer_syntaxes() -> Vec<String> {
    let mut v: Vec<String> = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .iter()
        .filter(|ts| ts.can_decode_all() && ts.uid() != "1.2.840.10008.1.2.2")
        .map(|ts| trim_uid(ts.uid()).to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

pub fn listen(listener: TcpListener, shared: Arc<Shared>) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, peer)) => {
                let s = shared.clone();
                let id = NEXT.fetch_add(1, Ordering::Relaxed);
                let spawned = std::thread::Builder::new()
                    .name(format!("node-assoc-{id}"))
                    .spawn(move || association(stream, peer, id, s));
                if let Err(e) = spawned {
                    log(&format!(
                        "cannot start a thread for the association from {peer}: {e}"
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => {
                log(&format!("accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// An instance being received: its temporary file in `tmp/` (deleted if dropped).
struct Incoming {
    message_id: u16,
    pc_id: u8,
    sop_class: String,
    sop_instance: String,
    /// `None` when the instance is refused: its data is read and discarded.
    file: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
    refuse: u16,
}

fn association(stream: TcpStream, peer: SocketAddr, id: u64, shared: Arc<Shared>) {
    let cfg = &shared.config;
    let _ = stream.set_nonblocking(false);
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(CallerList {
            allowed: cfg.allowed_callers.clone(),
        })
        .ae_title(cfg.ae_title.clone())
        .with_abstract_syntax(VERIFICATION)
        .with_abstract_syntax(CT_IMAGE_STORAGE)
        .with_abstract_syntax(ENHANCED_CT_IMAGE_STORAGE)
        .max_pdu_length(cfg.max_pdu_length)
        // A PDU longer than our maximum is refused rather than buffered: the
        // first PDU (A-ASSOCIATE-RQ) arrives before any AE title check, so a
        // length field must not make us hold gigabytes.
        .strict(true)
        .read_timeout(cfg.association_timeout)
        .write_timeout(cfg.association_timeout);
    for ts in accepted_transfer_syntaxes() {
        options = options.with_transfer_syntax(ts);
    }
    let mut assoc = match options.establish(stream) {
        Ok(a) => a,
        Err(e) => {
            log(&format!("association from {peer} refused or failed: {e}"));
            return;
        }
    };
    let calling = assoc.peer_ae_title().trim().to_string();
    log(&format!("association {id} from {calling} at {peer}"));
    let peer_ip = Some(peer.ip().to_string());
    let mut incoming: Option<Incoming> = None;
    let mut command = Vec::new();
    let mut stored = 0usize;
    let mut refused = 0usize;
    let released = loop {
        let pdu = match assoc.receive() {
            Ok(p) => p,
            Err(e) => {
                log(&format!(
                    "association {id} from {calling}: connection lost ({e})"
                ));
                break false;
            }
        };
        match pdu {
            Pdu::PData { data } => {
                let mut failed = None;
                for pv in data {
                    if let Err(e) = on_pdata(
                        &mut assoc,
                        pv,
                        &mut command,
                        &mut incoming,
                        &shared,
                        id,
                        &calling,
                        &peer_ip,
                        &mut stored,
                        &mut refused,
                    ) {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    log(&format!("association {id} from {calling}: {e}; aborting"));
                    let _ = assoc.send(&Pdu::AbortRQ {
                        source: dicom_ul::pdu::AbortRQSource::ServiceProvider(
                            dicom_ul::pdu::AbortRQServiceProviderReason::UnexpectedPdu,
                        ),
                    });
                    break false;
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                break incoming.is_none();
            }
            Pdu::AbortRQ { .. } => break false,
            other => {
                log(&format!(
                    "association {id} from {calling}: unexpected {}; aborting",
                    other.short_description()
                ));
                let _ = assoc.send(&Pdu::AbortRQ {
                    source: dicom_ul::pdu::AbortRQSource::ServiceProvider(
                        dicom_ul::pdu::AbortRQServiceProviderReason::UnexpectedPdu,
                    ),
                });
                break false;
            }
        }
    };
    // An instance cut off mid-transfer: its temporary file goes with it.
    let partial = incoming.take().is_some();
    log(&format!(
        "association {id} from {calling} {}: {stored} instance(s) stored, {refused} refused{}",
        if released { "released" } else { "aborted" },
        if partial {
            ", 1 partial instance discarded"
        } else {
            ""
        }
    ));
    let mut t = shared.tracker.lock().unwrap_or_else(|e| e.into_inner());
    t.association_ended(id, released, &shared);
}

fn send_command<S: std::io::Read + std::io::Write + dicom_ul::association::CloseSocket>(
    assoc: &mut dicom_ul::ServerAssociation<S>,
    pc_id: u8,
    cmd: &dicom_object::InMemDicomObject,
) -> Result<(), String> {
    let data = dimse::encode(cmd)?;
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .map_err(|e| format!("cannot send a response: {e}"))
}

#[allow(clippy::too_many_arguments)]
fn on_pdata<S: std::io::Read + std::io::Write + dicom_ul::association::CloseSocket>(
    assoc: &mut dicom_ul::ServerAssociation<S>,
    pv: PDataValue,
    command: &mut Vec<u8>,
    incoming: &mut Option<Incoming>,
    shared: &Shared,
    id: u64,
    calling: &str,
    peer_ip: &Option<String>,
    stored: &mut usize,
    refused: &mut usize,
) -> Result<(), String> {
    match pv.value_type {
        PDataValueType::Command => {
            // C-ECHO/C-STORE commands are a few hundred bytes; a peer streaming an
            // endless command must not grow memory without bound.
            if command.len() + pv.data.len() > MAX_COMMAND_BYTES {
                return Err(format!(
                    "DIMSE command longer than {MAX_COMMAND_BYTES} bytes"
                ));
            }
            command.extend_from_slice(&pv.data);
            if !pv.is_last {
                return Ok(());
            }
            let cmd = dimse::decode(command)?;
            command.clear();
            let field = get_u16(&cmd, tags::COMMAND_FIELD).ok_or("command without CommandField")?;
            let message_id = get_u16(&cmd, tags::MESSAGE_ID).unwrap_or(0);
            match field {
                C_ECHO_RQ => {
                    send_command(assoc, pv.presentation_context_id, &c_echo_rsp(message_id))
                }
                C_STORE_RQ => {
                    if incoming.is_some() {
                        return Err("a new C-STORE began before the previous data set ended".into());
                    }
                    let sop_class = get_str(&cmd, tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default();
                    let sop_instance =
                        get_str(&cmd, tags::AFFECTED_SOP_INSTANCE_UID).unwrap_or_default();
                    let pc = assoc
                        .presentation_contexts()
                        .iter()
                        .find(|pc| pc.id == pv.presentation_context_id)
                        .cloned();
                    let mut refuse = STATUS_SUCCESS;
                    let mut file = None;
                    match pc {
                        None => refuse = STATUS_CANNOT_UNDERSTAND,
                        Some(_)
                            if sop_class != CT_IMAGE_STORAGE
                                && sop_class != ENHANCED_CT_IMAGE_STORAGE =>
                        {
                            refuse = STATUS_SOP_CLASS_NOT_SUPPORTED
                        }
                        Some(_) if !is_valid_uid(&sop_instance) => {
                            refuse = STATUS_CANNOT_UNDERSTAND
                        }
                        Some(pc) => match start_file(
                            shared,
                            &sop_class,
                            &sop_instance,
                            trim_uid(&pc.transfer_syntax),
                        ) {
                            Ok(f) => file = Some(f),
                            Err(e) => {
                                log(&format!(
                                    "association {id}: cannot create a temporary file: {e}"
                                ));
                                refuse = STATUS_OUT_OF_RESOURCES;
                            }
                        },
                    }
                    *incoming = Some(Incoming {
                        message_id,
                        pc_id: pv.presentation_context_id,
                        sop_class,
                        sop_instance,
                        file,
                        refuse,
                    });
                    Ok(())
                }
                other => Err(format!("unsupported DIMSE command 0x{other:04X}")),
            }
        }
        PDataValueType::Data => {
            let Some(inc) = incoming.as_mut() else {
                return Err("data without a C-STORE request".into());
            };
            if let Some(f) = inc.file.as_mut() {
                if let Err(e) = f.write_all(&pv.data) {
                    log(&format!(
                        "association {id}: cannot write a received instance: {e}"
                    ));
                    inc.file = None;
                    inc.refuse = STATUS_OUT_OF_RESOURCES;
                }
            }
            if !pv.is_last {
                return Ok(());
            }
            let inc = incoming.take().expect("checked above");
            let status = if inc.refuse != STATUS_SUCCESS {
                inc.refuse
            } else {
                match finish_file(
                    shared,
                    inc.file.expect("set when not refused"),
                    id,
                    calling,
                    peer_ip,
                ) {
                    Ok(()) => STATUS_SUCCESS,
                    Err((status, msg)) => {
                        log(&format!(
                            "association {id}: instance {} refused: {msg}",
                            inc.sop_instance
                        ));
                        status
                    }
                }
            };
            if status == STATUS_SUCCESS {
                *stored += 1;
            } else {
                *refused += 1;
            }
            send_command(
                assoc,
                inc.pc_id,
                &c_store_rsp(inc.message_id, &inc.sop_class, &inc.sop_instance, status),
            )
        }
    }
}

/// A temporary file in `tmp/` that already holds the preamble and the file meta
/// group; the data set bytes are appended as they arrive, unchanged, so the
/// stored file keeps the sender's transfer syntax (compressed pixel data included).
fn start_file(
    shared: &Shared,
    sop_class: &str,
    sop_instance: &str,
    ts: &str,
) -> Result<std::io::BufWriter<tempfile::NamedTempFile>, String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(ts)
        .build()
        .map_err(|e| e.to_string())?;
    let tmp = tempfile::Builder::new()
        .prefix("rx-")
        .suffix(".partial")
        .tempfile_in(shared.tmp_dir())
        .map_err(|e| e.to_string())?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
    w.write_all(&[0u8; 128])
        .and_then(|_| w.write_all(b"DICM"))
        .map_err(|e| e.to_string())?;
    meta.write(&mut w).map_err(|e| e.to_string())?;
    Ok(w)
}

/// Check the received file and move it into `<study>/<series>/<SOPInstanceUID>.dcm`.
fn finish_file(
    shared: &Shared,
    file: std::io::BufWriter<tempfile::NamedTempFile>,
    id: u64,
    calling: &str,
    peer_ip: &Option<String>,
) -> Result<(), (u16, String)> {
    let tmp = file
        .into_inner()
        .map_err(|e| (STATUS_OUT_OF_RESOURCES, e.error().to_string()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| (STATUS_OUT_OF_RESOURCES, e.to_string()))?;
    let parsed = std::panic::catch_unwind(|| {
        OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(tmp.path())
    });
    let obj = match parsed {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Err((
                STATUS_CANNOT_UNDERSTAND,
                format!("data set does not parse: {e}"),
            ))
        }
        Err(_) => {
            return Err((
                STATUS_CANNOT_UNDERSTAND,
                "data set does not parse (parser panicked)".into(),
            ))
        }
    };
    let uid = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(&s).to_string())
            .unwrap_or_default()
    };
    let (study, series, instance) = (
        uid(tags::STUDY_INSTANCE_UID),
        uid(tags::SERIES_INSTANCE_UID),
        uid(tags::SOP_INSTANCE_UID),
    );
    if !is_valid_uid(&study) || !is_valid_uid(&series) || !is_valid_uid(&instance) {
        return Err((
            STATUS_DATASET_MISMATCH,
            "StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID missing or not a valid UID"
                .into(),
        ));
    }
    let dir = shared.config.storage.join(&study).join(&series);
    std::fs::create_dir_all(&dir)
        .map_err(|e| (STATUS_OUT_OF_RESOURCES, format!("{}: {e}", dir.display())))?;
    let dest = dir.join(format!("{instance}.dcm"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    // The tracker lock orders this rename against a job being queued for the series.
    let mut t = shared.tracker.lock().unwrap_or_else(|e| e.into_inner());
    tmp.persist(&dest).map_err(|e| {
        (
            STATUS_OUT_OF_RESOURCES,
            format!("{}: {}", dest.display(), e.error),
        )
    })?;
    t.instance_stored(id, &study, &series, calling, peer_ip.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_transfer_syntaxes_are_the_decodable_ones() {
        let ts = accepted_transfer_syntaxes();
        for must in [
            IMPLICIT_VR_LE,
            EXPLICIT_VR_LE,
            "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.5",
        ] {
            assert!(ts.iter().any(|t| t == must), "{must} missing from {ts:?}");
        }
        assert!(
            !ts.iter().any(|t| t == "1.2.840.10008.1.2.2"),
            "big endian accepted"
        );
        // MPEG-2 video: no decoder here, so not accepted.
        assert!(!ts.iter().any(|t| t == "1.2.840.10008.1.2.4.100"));
    }
}
