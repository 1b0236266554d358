//! End-to-end tests of the node against real dcmtk peers (echoscu, storescu,
//! storescp), with the transport test double as processor. They SKIP (with a
//! message) when the dcmtk binaries are not installed.

mod common;

use common::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};
use liverseg_node::{Destination, ReplyTo};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn dest(scp: &StoreScp) -> ReplyTo {
    ReplyTo::Fixed(Destination {
        ae_title: scp.ae.clone(),
        host: "127.0.0.1".into(),
        port: scp.port,
    })
}

fn no_patient_data_logged() {
    for line in liverseg_node::captured_logs() {
        for secret in [PATIENT_NAME, "Testpatient", PATIENT_ID, BIRTH_DATE] {
            assert!(!line.contains(secret), "patient data in a log line: {line}");
        }
    }
}

#[test]
fn echo_answers_and_unknown_callers_are_refused_at_association() {
    require_dcmtk!();
    liverseg_node::capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let node = start(config(&tmp.path().join("storage"), ReplyTo::Nowhere));
    let port = node.local_addr().port();

    let ok = echoscu("SENDER", "LIVERSEG", port);
    assert!(
        ok.status.success(),
        "C-ECHO from an allowed AE failed: {}",
        text(&ok)
    );

    let bad_caller = echoscu("INTRUDER", "LIVERSEG", port);
    assert!(
        !bad_caller.status.success(),
        "an unknown calling AE was accepted"
    );
    let t = text(&bad_caller).to_lowercase();
    assert!(
        t.contains("rejected") && t.contains("calling ae title not recognized"),
        "expected an A-ASSOCIATE-RJ naming the calling AE: {t}"
    );

    let bad_called = echoscu("SENDER", "SOMEONE-ELSE", port);
    assert!(
        !bad_called.status.success(),
        "a wrong called AE title was accepted"
    );
    assert!(
        text(&bad_called)
            .to_lowercase()
            .contains("called ae title not recognized"),
        "{}",
        text(&bad_called)
    );

    // An unknown caller cannot store either: nothing reaches the storage.
    let ct = write_ct_series(&tmp.path().join("ct"), "1.2.826.0.1.3680043.10.1137.901", 1);
    let out = storescu("INTRUDER", "LIVERSEG", port, &ct.files, &[]);
    assert!(
        !out.status.success(),
        "storescu from an unknown AE succeeded: {}",
        text(&out)
    );
    assert!(stored_instances(node.storage(), &ct).is_empty());
    node.shutdown();
    no_patient_data_logged();
}

#[test]
fn a_series_sent_with_storescu_comes_back_as_a_seg_that_maps_onto_the_ct() {
    require_dcmtk!();
    liverseg_node::capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let node = start(config(&storage, dest(&scp)));
    let ct = write_ct_series(&tmp.path().join("ct"), "1.2.826.0.1.3680043.10.1137.902", 2);

    let out = storescu(
        "SENDER",
        "LIVERSEG",
        node.local_addr().port(),
        &ct.files,
        &[],
    );
    assert!(out.status.success(), "storescu failed: {}", text(&out));
    assert_eq!(
        stored_instances(&storage, &ct).len(),
        ct.files.len(),
        "every instance stored under <study>/<series>/"
    );

    wait_for("the job to finish", LONG, || {
        !jobs(&storage, "done").is_empty() || !jobs(&storage, "failed").is_empty()
    });
    let done = jobs(&storage, "done");
    assert_eq!(done.len(), 1, "failed jobs: {:?}", jobs(&storage, "failed"));
    let job = &done[0];
    assert_eq!(
        (
            job.series_uid.as_str(),
            job.instances,
            job.calling_ae.as_str()
        ),
        (ct.series_uid.as_str(), ct.files.len(), "SENDER")
    );
    assert_eq!(job.sent, ["rtstruct.dcm", "seg.dcm"]);
    assert_eq!(
        job.destination.as_deref(),
        Some(format!("RESULTS@127.0.0.1:{}", scp.port).as_str())
    );

    let files = scp.wait_files(2, LONG);
    check_results(&files, &[&ct]);
    // The series' "not yet queued" marker is gone, no temporaries are left.
    assert!(!storage
        .join(&ct.study_uid)
        .join(&ct.series_uid)
        .join(".pending")
        .exists());
    assert!(dir_is_empty(&storage.join("tmp")));
    node.shutdown();
    no_patient_data_logged();
}

#[test]
fn two_series_sent_at_once_both_come_back_to_the_calling_ae() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    // Reply-to-caller mode: the caller's AE title is SENDER / SENDER2, the node
    // connects back to the caller's IP at the configured port, where storescp
    // answers to any called AE title.
    let scp = StoreScp::start(&tmp.path().join("received"), "SENDER");
    let storage = tmp.path().join("storage");
    let mut cfg = config(&storage, ReplyTo::Caller { port: scp.port });
    cfg.concurrency = 2;
    let node = start(cfg);
    let port = node.local_addr().port();
    let a = write_ct_series(&tmp.path().join("a"), "1.2.826.0.1.3680043.10.1137.903", 3);
    let b = write_ct_series(&tmp.path().join("b"), "1.2.826.0.1.3680043.10.1137.904", 4);
    let (fa, fb) = (a.files.clone(), b.files.clone());
    let ta = std::thread::spawn(move || storescu("SENDER", "LIVERSEG", port, &fa, &[]));
    // b goes as implicit VR little endian (storescu converts), a as explicit.
    let tb = std::thread::spawn(move || storescu("SENDER", "LIVERSEG", port, &fb, &["-xi"]));
    for o in [ta.join().unwrap(), tb.join().unwrap()] {
        assert!(o.status.success(), "storescu failed: {}", text(&o));
    }
    let files = scp.wait_files(4, LONG);
    wait_for("both jobs done", LONG, || jobs(&storage, "done").len() == 2);
    check_results(&files, &[&a, &b]);
    // Stored as received: each file keeps the transfer syntax it came in.
    let ts = |p: &PathBuf| {
        dicom_object::open_file(p)
            .unwrap()
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string()
    };
    assert!(stored_instances(&storage, &a)
        .iter()
        .all(|p| ts(p) == "1.2.840.10008.1.2.1"));
    assert!(stored_instances(&storage, &b)
        .iter()
        .all(|p| ts(p) == "1.2.840.10008.1.2"));
    node.shutdown();
}

fn command(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(
        &mut out,
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    out
}

/// A C-STORE SCU written here (dicom-ul) that stores `complete` instances, then
/// sends half of the next one and drops the TCP connection: an association cut
/// mid-series and mid-instance.
fn send_then_drop_mid_instance(port: u16, files: &[PathBuf], complete: usize) {
    assert!(send_instances(port, &files[..complete + 1], true).is_none());
}

/// Store `files` in one association and return it still open; with `cut_last`,
/// the last file is sent only half and the connection is dropped (`None`).
fn send_instances(
    port: u16,
    files: &[PathBuf],
    cut_last: bool,
) -> Option<dicom_ul::ClientAssociation<std::net::TcpStream>> {
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title("SENDER")
        .called_ae_title("LIVERSEG")
        .with_presentation_context(liverseg_node::CT_IMAGE_STORAGE, vec!["1.2.840.10008.1.2.1"])
        .establish(("127.0.0.1", port))
        .unwrap();
    let pc = assoc.presentation_contexts()[0].clone();
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    for (i, f) in files.iter().enumerate() {
        let obj = dicom_object::open_file(f).unwrap();
        let sop = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
        let mut data = Vec::new();
        obj.write_dataset_with_ts(&mut data, &ts).unwrap();
        let cmd = command(vec![
            DataElement::new(
                tags::AFFECTED_SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(liverseg_node::CT_IMAGE_STORAGE),
            ),
            DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(0x0001u16)),
            DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(i as u16 + 1)),
            DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0u16)),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                PrimitiveValue::from(0u16),
            ),
            DataElement::new(
                tags::AFFECTED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(sop),
            ),
        ]);
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: cmd,
                }],
            })
            .unwrap();
        if cut_last && i + 1 == files.len() {
            // Half the data set, not marked last; then the connection goes away.
            let half = data[..data.len() / 2].to_vec();
            assoc
                .send(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: pc.id,
                        value_type: PDataValueType::Data,
                        is_last: false,
                        data: half,
                    }],
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let _ = assoc.inner_stream().shutdown(std::net::Shutdown::Both);
            return None;
        }
        {
            let mut w = assoc.send_pdata(pc.id);
            w.write_all(&data).unwrap();
            w.finish().unwrap();
        }
        match assoc.receive().unwrap() {
            Pdu::PData { data } => {
                let rsp = InMemDicomObject::read_dataset_with_ts(
                    &data[0].data[..],
                    &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                )
                .unwrap();
                assert_eq!(
                    rsp.element(tags::STATUS).unwrap().to_int::<u16>().unwrap(),
                    0,
                    "C-STORE of a complete instance must succeed"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    Some(assoc)
}

#[test]
fn a_series_split_over_two_associations_waits_for_both() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let node = start(config(&storage, dest(&scp)));
    let port = node.local_addr().port();
    let ct = write_ct_series(
        &tmp.path().join("ct"),
        "1.2.826.0.1.3680043.10.1137.910",
        10,
    );
    let half = ct.files.len() / 2;
    // First half over an association that stays open...
    let first = send_instances(port, &ct.files[..half], false).unwrap();
    // ...second half by storescu, released: the series is not complete yet.
    let out = storescu("SENDER2", "LIVERSEG", port, &ct.files[half..], &[]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        jobs(&storage, "pending").is_empty() && jobs(&storage, "done").is_empty(),
        "queued while an association still delivers"
    );
    // Releasing the first association completes it: one job with every instance
    // (the caller on record is the one whose instance arrived last).
    first.release().unwrap();
    let files = scp.wait_files(2, LONG);
    wait_for("the job to finish", LONG, || {
        jobs(&storage, "done").len() == 1
    });
    let done = jobs(&storage, "done");
    assert_eq!(
        (done.len(), done[0].instances, done[0].calling_ae.as_str()),
        (1, ct.files.len(), "SENDER2")
    );
    check_results(&files, &[&ct]);
    node.shutdown();
}

#[test]
fn an_association_cut_mid_series_leaves_nothing_half_written_or_processed() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let node = start(config(&storage, dest(&scp)));
    let port = node.local_addr().port();
    let ct = write_ct_series(&tmp.path().join("ct"), "1.2.826.0.1.3680043.10.1137.905", 5);

    liverseg_node::capture_logs();
    send_then_drop_mid_instance(port, &ct.files, 3);
    wait_for("the node to notice the dropped connection", LONG, || {
        liverseg_node::captured_logs().iter().any(|l| {
            l.contains("aborted: 3 instance(s) stored, 0 refused, 1 partial instance discarded")
        })
    });
    // Give it time to act wrongly.
    std::thread::sleep(Duration::from_secs(1));
    let stored = stored_instances(&storage, &ct);
    assert_eq!(
        stored.len(),
        3,
        "only the 3 complete instances are stored: {stored:?}"
    );
    for f in &stored {
        dicom_object::open_file(f).expect("every stored instance is a complete DICOM file");
    }
    assert!(
        dir_is_empty(&storage.join("tmp")),
        "the partial instance's temporary file was removed"
    );
    for state in ["pending", "running", "done", "failed"] {
        assert!(
            jobs(&storage, state).is_empty(),
            "an aborted association queued a job ({state})"
        );
    }
    assert!(
        scp.files().is_empty(),
        "something was sent for a half-received series"
    );
    assert!(
        storage
            .join(&ct.study_uid)
            .join(&ct.series_uid)
            .join(".pending")
            .exists(),
        "the kept instances are remembered for a later run"
    );

    // dcmtk's storescu sending every instance but ending with A-ABORT: still nothing starts.
    let out = storescu("SENDER", "LIVERSEG", port, &ct.files, &["--abort"]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stored_instances(&storage, &ct).len(), ct.files.len());
    assert!(
        jobs(&storage, "pending").is_empty() && jobs(&storage, "done").is_empty(),
        "A-ABORT must not start processing"
    );

    // A later complete (released) association: the whole series is processed once.
    let out = storescu("SENDER", "LIVERSEG", port, &ct.files[..1], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let files = scp.wait_files(2, LONG);
    wait_for("the job to finish", LONG, || {
        jobs(&storage, "done").len() == 1
    });
    assert_eq!(jobs(&storage, "done")[0].instances, ct.files.len());
    check_results(&files, &[&ct]);
    node.shutdown();
}

#[test]
fn after_an_abort_the_quiet_period_processes_what_was_received() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let mut cfg = config(&storage, dest(&scp));
    cfg.quiet_period = Duration::from_secs(5);
    let node = start(cfg);
    let ct = write_ct_series(&tmp.path().join("ct"), "1.2.826.0.1.3680043.10.1137.906", 6);
    let out = storescu(
        "SENDER",
        "LIVERSEG",
        node.local_addr().port(),
        &ct.files,
        &["--abort"],
    );
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        jobs(&storage, "pending").is_empty()
            && jobs(&storage, "running").is_empty()
            && jobs(&storage, "done").is_empty(),
        "queued before the quiet period"
    );
    let files = scp.wait_files(2, LONG);
    // Done = the node's sending association was released: storescp has the whole files.
    wait_for("the job to finish", LONG, || {
        jobs(&storage, "done").len() == 1
    });
    check_results(&files, &[&ct]);
    node.shutdown();
}

#[test]
fn a_restart_loses_nothing_received() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let a = write_ct_series(&tmp.path().join("a"), "1.2.826.0.1.3680043.10.1137.907", 7);
    let b = write_ct_series(&tmp.path().join("b"), "1.2.826.0.1.3680043.10.1137.908", 8);

    // First run: receive only (no workers). Series a is complete and queued;
    // series b arrives in an aborted association, so it is not queued yet.
    let mut cfg = config(&storage, dest(&scp));
    cfg.concurrency = 0;
    let node = start(cfg);
    let port = node.local_addr().port();
    assert!(storescu("SENDER", "LIVERSEG", port, &a.files, &[])
        .status
        .success());
    assert!(storescu("SENDER", "LIVERSEG", port, &b.files, &["--abort"])
        .status
        .success());
    wait_for("series a queued", LONG, || {
        jobs(&storage, "pending").len() == 1
    });
    node.shutdown();
    // As if the node had died while processing a: its job is in running/.
    let job = &jobs(&storage, "pending")[0];
    assert_eq!(job.series_uid, a.series_uid);
    let name = format!("{}.json", job.id);
    std::fs::rename(
        storage.join("queue/pending").join(&name),
        storage.join("queue/running").join(&name),
    )
    .unwrap();
    // And a partial instance of some transfer was left in tmp/.
    std::fs::write(storage.join("tmp/rx-left-over.partial"), b"DICM half").unwrap();

    // Second run: the interrupted job runs again, series b becomes ready after
    // the quiet period, the leftover temporary is removed.
    let mut cfg = config(&storage, dest(&scp));
    cfg.quiet_period = Duration::from_secs(2);
    let node = start(cfg);
    assert!(dir_is_empty(&storage.join("tmp")));
    let files = scp.wait_files(4, LONG);
    wait_for("both jobs done", LONG, || jobs(&storage, "done").len() == 2);
    let done = jobs(&storage, "done");
    let ja = done
        .iter()
        .find(|j| j.series_uid == a.series_uid)
        .expect("series a processed");
    assert_eq!(
        ja.attempts, 1,
        "the recovered job ran once after the restart"
    );
    assert!(
        done.iter().any(|j| j.series_uid == b.series_uid),
        "series b processed"
    );
    check_results(&files, &[&a, &b]);
    node.shutdown();
}

#[test]
fn a_crashing_processor_or_an_unreachable_destination_fail_the_job_not_the_node() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    let ct = write_ct_series(&tmp.path().join("ct"), "1.2.826.0.1.3680043.10.1137.909", 9);

    let storage = tmp.path().join("s1");
    let mut cfg = config(&storage, ReplyTo::Nowhere);
    cfg.processor = processor(&["--exit", "3"]);
    let node = start(cfg);
    let port = node.local_addr().port();
    assert!(storescu("SENDER", "LIVERSEG", port, &ct.files, &[])
        .status
        .success());
    wait_for("the job to fail", LONG, || {
        jobs(&storage, "failed").len() == 1
    });
    let job = &jobs(&storage, "failed")[0];
    assert!(
        job.error.as_deref().unwrap().contains("processor failed"),
        "{:?}",
        job.error
    );
    assert_eq!(job.processor.as_ref().unwrap().exit_code, Some(3));
    let log = std::fs::read_to_string(storage.join(&job.processor.as_ref().unwrap().log)).unwrap();
    assert!(
        log.contains("exiting with 3"),
        "processor output kept in its log: {log}"
    );
    assert!(
        echoscu("SENDER", "LIVERSEG", port).status.success(),
        "the node still answers"
    );
    node.shutdown();

    // Nobody listens at the destination: retries, then failed with each attempt recorded.
    let storage = tmp.path().join("s2");
    let closed = free_port();
    let node = start(config(
        &storage,
        ReplyTo::Fixed(Destination {
            ae_title: "NOBODY".into(),
            host: "127.0.0.1".into(),
            port: closed,
        }),
    ));
    assert!(storescu(
        "SENDER",
        "LIVERSEG",
        node.local_addr().port(),
        &ct.files,
        &[]
    )
    .status
    .success());
    wait_for("the job to fail", LONG, || {
        jobs(&storage, "failed").len() == 1
    });
    let job = &jobs(&storage, "failed")[0];
    assert_eq!(
        job.send_errors.len(),
        3,
        "first attempt + 2 retries: {:?}",
        job.send_errors
    );
    assert_eq!(
        job.processor.as_ref().unwrap().outputs,
        ["rtstruct.dcm", "seg.dcm"],
        "the result is kept for a manual resend"
    );
    node.shutdown();

    // A processor that hangs is stopped after the timeout; the job fails.
    let storage = tmp.path().join("s3");
    let mut cfg = config(&storage, ReplyTo::Nowhere);
    cfg.processor = processor(&["--sleep-ms", "60000"]);
    cfg.processor_timeout = Duration::from_secs(1);
    let node = start(cfg);
    assert!(storescu(
        "SENDER",
        "LIVERSEG",
        node.local_addr().port(),
        &ct.files,
        &[]
    )
    .status
    .success());
    wait_for("the job to fail", LONG, || {
        jobs(&storage, "failed").len() == 1
    });
    let job = &jobs(&storage, "failed")[0];
    assert!(
        job.error.as_deref().unwrap().contains("longer than 1 s"),
        "{:?}",
        job.error
    );
    assert!(job.processor.as_ref().unwrap().seconds < 30.0);
    node.shutdown();
}

#[test]
fn garbage_and_oversized_pdus_are_refused_without_harm() {
    require_dcmtk!();
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let node = start(config(&tmp.path().join("storage"), ReplyTo::Nowhere));
    let port = node.local_addr().port();
    // An A-ASSOCIATE-RQ header claiming ~4 GiB, then a trickle of bytes.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&[0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xF0]).unwrap();
    let _ = s.write_all(&[0u8; 1024]);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    // The node closes the connection (possibly after an A-ABORT) instead of waiting for 4 GiB.
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            // Closing with our bytes unread makes the kernel send a reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the node kept the connection open: {e}"),
        }
    }
    assert!(total <= 64);
    // Random bytes.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(s);
    let ok = echoscu("SENDER", "LIVERSEG", port);
    assert!(ok.status.success(), "the node still answers: {}", text(&ok));
    node.shutdown();
}

/// A coronal scout (topogram) of `ct`'s study in a series of its own, as a
/// scanner sends it with the axial CT: one of the CT's files with a new SOP
/// Instance and Series UID, ImageType LOCALIZER and a coronal orientation.
fn write_scout(ct: &CtSeries, root: &str, file: &std::path::Path) -> String {
    let mut obj = dicom_object::open_file(&ct.files[0]).unwrap();
    let sop = format!("{root}.1");
    let series = format!("{root}.2");
    let put = |o: &mut dicom_object::DefaultDicomObject, tag, vr, v: &str| {
        o.put(DataElement::new(
            tag,
            vr,
            PrimitiveValue::from(v.to_string()),
        ))
    };
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop);
    put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &series);
    put(&mut obj, tags::SERIES_NUMBER, VR::IS, "1");
    put(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "Topogram");
    put(
        &mut obj,
        tags::IMAGE_TYPE,
        VR::CS,
        "ORIGINAL\\PRIMARY\\LOCALIZER",
    );
    obj.put(DataElement::new(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(
            ["1", "0", "0", "0", "0", "-1"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    ));
    obj.update_meta(|m| m.media_storage_sop_instance_uid = sop.clone());
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    obj.write_to_file(file).unwrap();
    series
}

/// Issue 18 item 6: a study pushed with storescu that holds a scout and a CT
/// series is segmented once, for the CT: SEG and RTSTRUCT of the CT come back
/// (and nothing for the scout), the scout's series is recorded as done but not
/// processed, and no job fails. Before, the scout's series became a job of its
/// own whose processor could only fail ("no DICOM image series ... (1
/// localizers)"): a failed job for every study that comes with a scout.
#[test]
fn a_study_with_a_scout_is_segmented_once_for_the_ct() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let node = start(config(&storage, dest(&scp)));
    let ct = write_ct_series(&tmp.path().join("ct"), "1.2.826.0.1.3680043.10.1137.905", 5);
    let scout_file = tmp.path().join("scout").join("IM_SCOUT");
    let scout_series = write_scout(&ct, "1.2.826.0.1.3680043.10.1137.906", &scout_file);
    // One association, the scout first (as scanners send it).
    let mut files = vec![scout_file];
    files.extend(ct.files.iter().cloned());
    let out = storescu("SENDER", "LIVERSEG", node.local_addr().port(), &files, &[]);
    assert!(out.status.success(), "storescu failed: {}", text(&out));

    wait_for("both series handled", LONG, || {
        jobs(&storage, "done").len() + jobs(&storage, "failed").len() == 2
    });
    assert_eq!(jobs(&storage, "failed"), Vec::new(), "no job may fail");
    let done = jobs(&storage, "done");
    let processed: Vec<_> = done.iter().filter(|j| j.processor.is_some()).collect();
    assert_eq!(processed.len(), 1, "processed once: {done:?}");
    assert_eq!(processed[0].series_uid, ct.series_uid);
    assert_eq!(processed[0].sent, ["rtstruct.dcm", "seg.dcm"]);
    let scout_job = done
        .iter()
        .find(|j| j.series_uid == scout_series)
        .expect("the scout's series is recorded");
    assert!(
        scout_job.processor.is_none() && scout_job.sent.is_empty(),
        "{scout_job:?}"
    );
    let why = scout_job.skipped.as_deref().unwrap_or_default();
    assert!(why.contains("localizer"), "{why:?}");

    let received = scp.wait_files(2, LONG);
    check_results(&received, &[&ct]);
    node.shutdown();
    assert_eq!(
        scp.files().len(),
        2,
        "only the CT's SEG and RTSTRUCT came back"
    );
}

/// Issue 18 item 3: the node logs what the read found, as `segment` prints
/// it. Two contrast phases pushed in one series (the same positions twice,
/// AcquisitionNumber 1 and 2): the reader reads the first and warns naming
/// both; that warning and the series line reach the node's log (without
/// patient data), and the SEG of the first phase comes back.
#[test]
fn the_readers_warnings_reach_the_nodes_log() {
    require_dcmtk!();
    liverseg_node::capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let node = start(config(&storage, dest(&scp)));
    let root = "1.2.826.0.1.3680043.10.1137.907";
    let ct = write_ct_series(&tmp.path().join("ct"), root, 3);
    // The second phase: each CT file again, acquisition 2, its own instances.
    let mut files = Vec::new();
    for (k, f) in ct.files.iter().enumerate() {
        for acquisition in [1, 2] {
            let mut obj = dicom_object::open_file(f).unwrap();
            obj.put(DataElement::new(
                tags::ACQUISITION_NUMBER,
                VR::IS,
                PrimitiveValue::from(acquisition.to_string()),
            ));
            let file = if acquisition == 1 {
                f.clone()
            } else {
                let sop = format!("{root}.20.{}", k + 1);
                obj.put(DataElement::new(
                    tags::SOP_INSTANCE_UID,
                    VR::UI,
                    PrimitiveValue::from(sop.clone()),
                ));
                obj.update_meta(|m| m.media_storage_sop_instance_uid = sop.clone());
                tmp.path().join("phase2").join(format!("IM{k}"))
            };
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            obj.write_to_file(&file).unwrap();
            files.push(file);
        }
    }
    let out = storescu("SENDER", "LIVERSEG", node.local_addr().port(), &files, &[]);
    assert!(out.status.success(), "storescu failed: {}", text(&out));
    wait_for("the job to finish", LONG, || {
        !jobs(&storage, "done").is_empty() || !jobs(&storage, "failed").is_empty()
    });
    assert_eq!(jobs(&storage, "failed"), Vec::new(), "no job may fail");
    let received = scp.wait_files(2, LONG);
    check_results(&received, &[&ct]);
    node.shutdown();

    let logs = liverseg_node::captured_logs();
    let mine: Vec<&String> = logs.iter().filter(|l| l.contains(&ct.series_uid)).collect();
    let series_line = format!("read DICOM series {} ", ct.series_uid);
    assert!(
        mine.iter().any(|l| l.contains(&series_line) && l.contains("also found: 1 ")),
        "no series line in the log: {mine:#?}"
    );
    assert!(
        mine.iter().any(|l| l.contains("reader warning: series") && l.contains("holds 2 phases")),
        "no phase warning in the log: {mine:#?}"
    );
    no_patient_data_logged();
}
