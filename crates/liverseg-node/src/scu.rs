//! C-STORE service class user: sends result files to an AE.

use crate::dimse::{self, *};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

impl Destination {
    /// `AE@host:port` (an IPv6 host in brackets: `AE@[::1]:104`).
    pub fn parse(s: &str) -> Result<Destination, String> {
        let err = || format!("destination {s:?} is not AE@host:port");
        let (ae, addr) = s.split_once('@').ok_or_else(err)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(err)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| err())?;
        if ae.is_empty() || host.is_empty() || port == 0 {
            return Err(err());
        }
        Ok(Destination {
            ae_title: ae.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.ae_title, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.ae_title, self.host, self.port)
        }
    }
}

struct Outgoing {
    sop_class: String,
    sop_instance: String,
    ts: String,
    obj: dicom_object::InMemDicomObject,
}

/// Send every file in one association. Each file's own transfer syntax is
/// proposed first, then explicit and implicit VR little endian.
pub fn send_files(
    calling_ae: &str,
    dest: &Destination,
    files: &[PathBuf],
    timeout: Duration,
) -> Result<(), String> {
    let mut out = Vec::new();
    for f in files {
        let obj = dicom_object::open_file(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let sop_class = trim_uid(obj.meta().media_storage_sop_class_uid()).to_string();
        let sop_instance = trim_uid(obj.meta().media_storage_sop_instance_uid()).to_string();
        let ts = trim_uid(obj.meta().transfer_syntax()).to_string();
        out.push(Outgoing {
            sop_class,
            sop_instance,
            ts,
            obj: obj.into_inner(),
        });
    }
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae.to_string())
        .called_ae_title(dest.ae_title.clone())
        .read_timeout(timeout)
        .write_timeout(timeout)
        .connection_timeout(timeout);
    let mut proposed: Vec<(String, String)> = Vec::new();
    for o in &out {
        if proposed
            .iter()
            .any(|(c, t)| *c == o.sop_class && *t == o.ts)
        {
            continue;
        }
        proposed.push((o.sop_class.clone(), o.ts.clone()));
        let mut tss = vec![o.ts.clone()];
        for t in [EXPLICIT_VR_LE, IMPLICIT_VR_LE] {
            if !tss.iter().any(|x| x == t) {
                tss.push(t.to_string());
            }
        }
        options = options.with_presentation_context(o.sop_class.clone(), tss);
    }
    let mut assoc = options
        .establish((dest.host.as_str(), dest.port))
        .map_err(|e| format!("association with {dest} failed: {e}"))?;
    for (i, o) in out.iter().enumerate() {
        let pc = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                trim_uid(&pc.abstract_syntax) == o.sop_class
                    && pc.reason == dicom_ul::pdu::PresentationContextResultReason::Acceptance
            })
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{dest} accepted no presentation context for SOP class {}",
                    o.sop_class
                )
            })?;
        let ts_uid = trim_uid(&pc.transfer_syntax).to_string();
        let ts = TransferSyntaxRegistry
            .get(&ts_uid)
            .ok_or_else(|| format!("transfer syntax {ts_uid} unknown"))?;
        if ts_uid != o.ts && ts.is_encapsulated_pixel_data() {
            return Err(format!(
                "{dest} accepted only {ts_uid}, which would need re-encoding {}",
                o.sop_instance
            ));
        }
        let mut data = Vec::new();
        o.obj
            .write_dataset_with_ts(&mut data, ts)
            .map_err(|e| format!("cannot encode {}: {e}", o.sop_instance))?;
        let message_id = (i + 1) as u16;
        let cmd = dimse::encode(&c_store_rq(message_id, &o.sop_class, &o.sop_instance))?;
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: cmd,
                }],
            })
            .map_err(|e| format!("sending to {dest}: {e}"))?;
        {
            let mut w = assoc.send_pdata(pc.id);
            w.write_all(&data)
                .map_err(|e| format!("sending to {dest}: {e}"))?;
            w.finish().map_err(|e| format!("sending to {dest}: {e}"))?;
        }
        let status = read_response(&mut assoc).map_err(|e| format!("{dest}: {e}"))?;
        if !store_status_ok(status) {
            let _ = assoc.abort();
            return Err(format!(
                "{dest} answered C-STORE of {} with status 0x{status:04X}",
                o.sop_instance
            ));
        }
    }
    assoc
        .release()
        .map_err(|e| format!("release of the association with {dest} failed: {e}"))?;
    Ok(())
}

fn read_response(
    assoc: &mut dicom_ul::ClientAssociation<std::net::TcpStream>,
) -> Result<u16, String> {
    let mut buf = Vec::new();
    loop {
        match assoc
            .receive()
            .map_err(|e| format!("no C-STORE response: {e}"))?
        {
            Pdu::PData { data } => {
                for pv in data {
                    if pv.value_type != PDataValueType::Command {
                        continue;
                    }
                    buf.extend_from_slice(&pv.data);
                    if pv.is_last {
                        let rsp = dimse::decode(&buf)?;
                        if get_u16(&rsp, tags::COMMAND_FIELD) != Some(C_STORE_RSP) {
                            return Err("the response is not a C-STORE-RSP".into());
                        }
                        return get_u16(&rsp, tags::STATUS)
                            .ok_or_else(|| "C-STORE-RSP without status".to_string());
                    }
                }
            }
            Pdu::AbortRQ { .. } => return Err("the peer aborted the association".into()),
            other => return Err(format!("unexpected {}", other.short_description())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_print_back() {
        let d = Destination::parse("PACS@10.0.0.5:104").unwrap();
        assert_eq!(
            d,
            Destination {
                ae_title: "PACS".into(),
                host: "10.0.0.5".into(),
                port: 104
            }
        );
        assert_eq!(d.to_string(), "PACS@10.0.0.5:104");
        let v6 = Destination::parse("X@[::1]:11112").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 11112));
        assert_eq!(v6.to_string(), "X@[::1]:11112");
        for bad in ["PACS", "PACS@host", "@h:1", "A@:1", "A@h:0", "A@h:x"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }
}
