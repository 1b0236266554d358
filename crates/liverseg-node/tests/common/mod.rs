//! Helpers for the node's end-to-end tests: a phantom CT written as a DICOM
//! series, dcmtk peers (storescu, storescp, echoscu) run as real processes, and
//! the node started in-process with the transport test-double processor.
#![allow(dead_code)]

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use liverseg_node::{NodeConfig, NodeHandle, ReplyTo};
use liverseg_phantom::{generate, PhantomConfig};
use liverseg_volume::{Geometry, Mask, Volume};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PATIENT_NAME: &str = "Testpatient^Secret";
pub const PATIENT_ID: &str = "PID-77123-SECRET";
pub const BIRTH_DATE: &str = "19450317";
/// The test double marks voxels at or above this value.
pub const THRESHOLD: i16 = 100;

/// dcmtk binaries on PATH, or a SKIP line naming what is missing.
pub fn dcmtk() -> bool {
    for tool in ["storescu", "storescp", "echoscu"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            eprintln!("SKIP: dcmtk `{tool}` not found (apt-get install dcmtk); the end-to-end DICOM network test did not run");
            return false;
        }
    }
    true
}

#[macro_export]
macro_rules! require_dcmtk {
    () => {
        if !common::dcmtk() {
            return;
        }
    };
}

pub struct CtSeries {
    pub dir: PathBuf,
    pub study_uid: String,
    pub series_uid: String,
    pub geometry: Geometry,
    pub ct: Volume<i16>,
    pub files: Vec<PathBuf>,
}

impl CtSeries {
    /// What the test double must find: voxels >= THRESHOLD, on the CT grid.
    pub fn expected_mask(&self) -> Mask {
        self.ct.map(|&v| u8::from(v >= THRESHOLD))
    }
}

/// A small phantom CT as an axial DICOM series (CT Image Storage, explicit VR
/// LE). The grid is rotated 90 degrees in-plane (rows run along -x) and file
/// names and instance numbers do not follow slice order, so a reader that
/// ignores ImagePositionPatient/ImageOrientationPatient gets the mapping wrong.
pub fn write_ct_series(dir: &Path, root: &str, seed: u64) -> CtSeries {
    let ph = generate(&PhantomConfig {
        dims: [40, 32, 10],
        spacing: [5.0, 5.5, 8.0],
        noise_hu: 0.0,
        lesions: 0,
        seed,
        ..Default::default()
    });
    let dims = ph.ct.dims();
    let geometry = Geometry::new(
        dims,
        [5.0, 5.5, 8.0],
        [80.0, -60.0, -30.0 + seed as f64],
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    let ct = Volume::new(geometry, ph.ct.into_data()).unwrap();
    write_ct_volume(dir, root, ct)
}

/// A synthetic ramp volume of any size (throughput measurements).
pub fn write_ct_series_dims(dir: &Path, root: &str, dims: [usize; 3]) -> CtSeries {
    let geometry = Geometry::new(
        dims,
        [0.8, 0.8, 1.0],
        [200.0, -200.0, -100.0],
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    let ct = Volume::from_fn(geometry, |[i, j, k]| ((i + j + k) % 400) as i16 - 100);
    write_ct_volume(dir, root, ct)
}

/// Write `ct` as an axial series, one file per z index (see [`write_ct_series`]).
pub fn write_ct_volume(dir: &Path, root: &str, ct: Volume<i16>) -> CtSeries {
    let geometry = ct.geometry().clone();
    let dims = ct.dims();
    let study_uid = format!("{root}.1");
    let series_uid = format!("{root}.2");
    let for_uid = format!("{root}.3");
    std::fs::create_dir_all(dir).unwrap();
    let d = geometry.direction();
    let sp = geometry.spacing();
    let [nx, ny, nz] = dims;
    let mut files = Vec::new();
    for k in 0..nz {
        let sop = format!("{root}.10.{}", k + 1);
        let ipp = geometry.index_to_world([0.0, 0.0, k as f64]);
        let mut o = InMemDicomObject::new_empty();
        let s = |o: &mut InMemDicomObject, tag, vr, v: &str| {
            o.put(DataElement::new(
                tag,
                vr,
                PrimitiveValue::from(v.to_string()),
            ))
        };
        let ds = |v: &[f64]| PrimitiveValue::Strs(v.iter().map(|x| format!("{x}")).collect());
        s(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
        s(&mut o, tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL");
        s(
            &mut o,
            tags::SOP_CLASS_UID,
            VR::UI,
            liverseg_node::CT_IMAGE_STORAGE,
        );
        s(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &sop);
        s(&mut o, tags::STUDY_DATE, VR::DA, "20260101");
        s(&mut o, tags::STUDY_TIME, VR::TM, "120000");
        s(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
        s(&mut o, tags::MODALITY, VR::CS, "CT");
        s(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
        s(&mut o, tags::PATIENT_NAME, VR::PN, PATIENT_NAME);
        s(&mut o, tags::PATIENT_ID, VR::LO, PATIENT_ID);
        s(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, BIRTH_DATE);
        s(&mut o, tags::PATIENT_SEX, VR::CS, "O");
        s(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &study_uid);
        s(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
        s(&mut o, tags::STUDY_ID, VR::SH, "1");
        s(&mut o, tags::SERIES_NUMBER, VR::IS, "3");
        // Instance numbers shuffled on purpose (see the doc above).
        s(
            &mut o,
            tags::INSTANCE_NUMBER,
            VR::IS,
            &(((k * 7) % nz) + 1).to_string(),
        );
        o.put(DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            ds(&ipp),
        ));
        o.put(DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            ds(&[d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]]),
        ));
        s(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, &for_uid);
        o.put(DataElement::new(
            tags::SLICE_THICKNESS,
            VR::DS,
            ds(&[sp[2]]),
        ));
        o.put(DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        s(
            &mut o,
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        );
        o.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(ny as u16),
        ));
        o.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(nx as u16),
        ));
        o.put(DataElement::new(
            tags::PIXEL_SPACING,
            VR::DS,
            ds(&[sp[1], sp[0]]),
        ));
        o.put(DataElement::new(
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(16u16),
        ));
        o.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(16u16),
        ));
        o.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(15u16),
        ));
        o.put(DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        o.put(DataElement::new(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            ds(&[0.0]),
        ));
        o.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, ds(&[1.0])));
        s(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
        let words: Vec<u16> = ct.data()[k * nx * ny..(k + 1) * nx * ny]
            .iter()
            .map(|&v| v as u16)
            .collect();
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(words.into()),
        ));
        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax("1.2.840.10008.1.2.1")
                    .media_storage_sop_class_uid(liverseg_node::CT_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid(sop.as_str()),
            )
            .unwrap();
        let path = dir.join(format!("IM{:03}", (nz - k) * 3));
        file.write_to_file(&path).unwrap();
        files.push(path);
    }
    CtSeries {
        dir: dir.to_path_buf(),
        study_uid,
        series_uid,
        geometry,
        ct,
        files,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A dcmtk storescp receiving results; killed on drop.
pub struct StoreScp {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    pub ae: String,
}

impl StoreScp {
    pub fn start(dir: &Path, ae: &str) -> StoreScp {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let child = Command::new("storescp")
            .args(["-aet", ae, "-od"])
            .arg(dir)
            .args(["-fe", ".dcm", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start storescp");
        wait_for("storescp to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        StoreScp {
            child,
            dir: dir.to_path_buf(),
            port,
            ae: ae.to_string(),
        }
    }

    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
            .collect();
        v.sort();
        v
    }

    /// Wait for `n` received objects (storescp writes a file while receiving;
    /// it is complete once the node's association is released, which the node
    /// records by moving the job to done/).
    pub fn wait_files(&self, n: usize, timeout: Duration) -> Vec<PathBuf> {
        wait_for(&format!("{n} object(s) at storescp"), timeout, || {
            self.files().len() >= n
        });
        self.files()
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn storescu(
    calling: &str,
    called: &str,
    port: u16,
    files: &[PathBuf],
    extra: &[&str],
) -> Output {
    Command::new("storescu")
        .args(["-aet", calling, "-aec", called])
        .args(extra)
        .args(["127.0.0.1", &port.to_string()])
        .args(files)
        .output()
        .expect("run storescu")
}

pub fn echoscu(calling: &str, called: &str, port: u16) -> Output {
    Command::new("echoscu")
        .args([
            "-aet",
            calling,
            "-aec",
            called,
            "127.0.0.1",
            &port.to_string(),
        ])
        .output()
        .expect("run echoscu")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The transport test double as processor: `<bin> {input} {output} --threshold T [extra]`.
pub fn processor(extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        env!("CARGO_BIN_EXE_liverseg-node-test-processor").to_string(),
        "{input}".into(),
        "{output}".into(),
        "--threshold".into(),
        THRESHOLD.to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn config(storage: &Path, reply_to: ReplyTo) -> NodeConfig {
    let mut c = NodeConfig::new(storage.to_path_buf(), processor(&[]));
    c.bind = "127.0.0.1:0".parse().unwrap();
    c.ae_title = "LIVERSEG".into();
    c.allowed_callers = vec!["SENDER".into(), "SENDER2".into()];
    c.reply_to = reply_to;
    c.quiet_period = Duration::from_secs(60);
    c.retry_backoff = Duration::from_millis(200);
    c.send_retries = 2;
    c
}

pub fn start(c: NodeConfig) -> NodeHandle {
    liverseg_node::start(c).expect("node starts")
}

pub fn jobs(storage: &Path, state: &str) -> Vec<liverseg_node::queue::Job> {
    let dir = storage.join("queue").join(state);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Read a received SEG onto the CT grid and compare with the expected mask voxel by voxel.
pub fn assert_seg_maps_onto(seg: &Path, ct: &CtSeries) {
    let out = liverseg_io::dicom::seg::read_seg(
        seg,
        Some(&ct.geometry),
        liverseg_io::dicom::seg::SegmentChoice::Auto,
    )
    .expect("read the received SEG");
    let expected = ct.expected_mask();
    assert!(
        expected.count_foreground() > 0 && expected.count_foreground() < expected.len(),
        "test CT must give a non-trivial mask"
    );
    assert_eq!(out.mask.dims(), expected.dims());
    let differ = out
        .mask
        .data()
        .iter()
        .zip(expected.data())
        .filter(|(a, b)| (**a != 0) != (**b != 0))
        .count();
    assert_eq!(
        differ, 0,
        "{differ} voxel(s) of the received SEG differ from the expected mask on the CT grid"
    );
}

/// StudyInstanceUID of a DICOM file.
pub fn study_of(path: &Path) -> String {
    let o = dicom_object::open_file(path).unwrap();
    o.element(tags::STUDY_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Files (not folders, not markers) under the storage's series folder.
pub fn stored_instances(storage: &Path, ct: &CtSeries) -> Vec<PathBuf> {
    let dir = storage.join(&ct.study_uid).join(&ct.series_uid);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// The results received for some CT series: per series exactly one SEG, which
/// must equal the expected mask voxel for voxel, and one RTSTRUCT, whose
/// rasterised contours must reach the round-trip bar (Dice >= 0.99;
/// contours are polygons, so exact equality is not their contract).
pub fn check_results(files: &[PathBuf], cts: &[&CtSeries]) {
    assert_eq!(
        files.len(),
        2 * cts.len(),
        "one SEG and one RTSTRUCT per series: {files:?}"
    );
    for ct in cts {
        let mine: Vec<&PathBuf> = files
            .iter()
            .filter(|f| study_of(f) == ct.study_uid)
            .collect();
        let class = |p: &PathBuf| {
            dicom_object::open_file(p)
                .unwrap()
                .meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                .to_string()
        };
        let segs: Vec<&&PathBuf> = mine
            .iter()
            .filter(|f| class(f) == liverseg_io::dicom::seg_write::SEG_SOP_CLASS)
            .collect();
        let rts: Vec<&&PathBuf> = mine
            .iter()
            .filter(|f| class(f) == liverseg_io::dicom::rtstruct::RTSTRUCT_SOP_CLASS)
            .collect();
        assert_eq!(
            (segs.len(), rts.len()),
            (1, 1),
            "series {}: {mine:?}",
            ct.series_uid
        );
        assert_seg_maps_onto(segs[0], ct);
        let rt = liverseg_io::dicom::rtstruct::read_rtstruct_onto(
            rts[0],
            Default::default(),
            &ct.geometry,
        )
        .expect("read the received RTSTRUCT");
        let d = liverseg_volume::dice(rt.data(), ct.expected_mask().data()).unwrap_or(0.0);
        eprintln!(
            "series {}: RTSTRUCT rasterised onto the CT: Dice {d:.4}",
            ct.series_uid
        );
        assert!(d >= 0.99, "RTSTRUCT rasterised onto the CT: Dice {d:.4}");
    }
}
