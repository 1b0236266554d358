//! A real CT series (../shared/data/dicom, JPEG 2000 lossless, 512x512) through
//! the node with dcmtk's storescu/storescp. SKIPs when dcmtk or ../shared is
//! absent.

mod common;

use common::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use liverseg_node::{Destination, ReplyTo};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shared series is anonymised down to empty SOP Class/Instance, Study and
/// Series UIDs in the data set, which no C-STORE can carry. Copies (in a temp
/// folder) get them back: SOP UIDs from the file meta group, made-up study and
/// series UIDs. Pixel data stays as it is (encapsulated JPEG 2000).
fn repaired_copy(src: &Path, dst: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dst).unwrap();
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    for (i, p) in names.iter().enumerate() {
        let Ok(mut obj) = dicom_object::open_file(p) else {
            continue;
        };
        let class = obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        let instance = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
        let empty = |o: &dicom_object::DefaultDicomObject, t| {
            o.element_opt(t)
                .ok()
                .flatten()
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_end_matches(['\0', ' ']).is_empty())
                .unwrap_or(true)
        };
        for (tag, v) in [
            (tags::SOP_CLASS_UID, class.clone()),
            (tags::SOP_INSTANCE_UID, instance.clone()),
            (
                tags::STUDY_INSTANCE_UID,
                "1.2.826.0.1.3680043.10.1137.990.1".to_string(),
            ),
            (
                tags::SERIES_INSTANCE_UID,
                "1.2.826.0.1.3680043.10.1137.990.2".to_string(),
            ),
        ] {
            if empty(&obj, tag) {
                obj.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(v)));
            }
        }
        let path = dst.join(format!("IM{i:03}.dcm"));
        obj.write_to_file(&path).unwrap();
        out.push(path);
    }
    out
}

#[test]
fn a_real_jpeg2000_ct_series_comes_back_as_a_seg_on_its_grid() {
    require_dcmtk!();
    let Some(src) = liverseg_testdata::require_shared!("data/dicom/totalseg-example-20slices")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let files = repaired_copy(&src, &tmp.path().join("ct"));
    assert!(files.len() >= 10, "{} files", files.len());
    let ts = dicom_object::open_file(&files[0])
        .unwrap()
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();

    let scp = StoreScp::start(&tmp.path().join("received"), "RESULTS");
    let storage = tmp.path().join("storage");
    let node = start(config(
        &storage,
        ReplyTo::Fixed(Destination {
            ae_title: "RESULTS".into(),
            host: "127.0.0.1".into(),
            port: scp.port,
        }),
    ));
    // -xv: propose JPEG 2000 lossless (dcmtk proposes only uncompressed by
    // default and cannot decompress JPEG 2000 itself).
    let out = storescu(
        "SENDER",
        "LIVERSEG",
        node.local_addr().port(),
        &files,
        &["-xv"],
    );
    assert!(out.status.success(), "storescu failed: {}", text(&out));
    let received = scp.wait_files(2, Duration::from_secs(120));
    let seg_file = received
        .iter()
        .find(|p| {
            dicom_object::open_file(p)
                .unwrap()
                .meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                == liverseg_io::dicom::seg_write::SEG_SOP_CLASS
        })
        .expect("a SEG came back");
    wait_for("the job", Duration::from_secs(120), || {
        jobs(&storage, "done").len() == 1
    });
    let job = &jobs(&storage, "done")[0];
    assert_eq!(job.instances, files.len());
    // Stored in the sender's transfer syntax (no re-encoding on the way in).
    let stored = std::fs::read_dir(storage.join(&job.series_dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect::<Vec<_>>();
    assert_eq!(stored.len(), files.len());
    for p in &stored {
        assert_eq!(
            dicom_object::open_file(p)
                .unwrap()
                .meta()
                .transfer_syntax()
                .trim_end_matches('\0'),
            ts
        );
    }

    // Expected: the same threshold on the series as sent, read by liverseg-io.
    let ct = liverseg_io::read_image(&tmp.path().join("ct"), &liverseg_io::ReadOptions::default())
        .unwrap()
        .volume;
    let expected = ct.to_mask(|v| v >= THRESHOLD as f64);
    let seg = liverseg_io::dicom::seg::read_seg(
        seg_file,
        Some(ct.geometry()),
        liverseg_io::dicom::seg::SegmentChoice::Auto,
    )
    .unwrap();
    assert!(expected.count_foreground() > 1000);
    let differ = seg
        .mask
        .data()
        .iter()
        .zip(expected.data())
        .filter(|(a, b)| (**a != 0) != (**b != 0))
        .count();
    assert_eq!(
        differ, 0,
        "{differ} voxel(s) differ between the received SEG and the thresholded CT"
    );
    node.shutdown();
}
