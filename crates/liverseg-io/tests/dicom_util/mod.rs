//! Writing small synthetic DICOM CT files with dicom-object, for tests and the
//! benchmark. Every value a test checks is set explicitly here.
#![allow(dead_code)]

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

pub const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

#[derive(Clone, Debug)]
pub struct SliceSpec {
    pub series_uid: String,
    pub series_description: String,
    pub series_number: i32,
    pub sop_class: &'static str,
    pub sop_instance: String,
    pub modality: &'static str,
    pub image_type: &'static str,
    pub instance_number: i32,
    pub acquisition_number: Option<i32>,
    pub rows: u16,
    pub cols: u16,
    /// [between rows, between columns]
    pub pixel_spacing: Option<[f64; 2]>,
    pub iop: Option<[f64; 6]>,
    pub ipp: Option<[f64; 3]>,
    pub slope: f64,
    pub intercept: f64,
    pub bits_stored: u16,
    pub signed: bool,
    pub padding: Option<i32>,
    pub transfer_syntax: &'static str,
    /// Stored values, row by row.
    pub pixels: Vec<i32>,
}

impl SliceSpec {
    pub fn ct(series: &str, k: usize, cols: u16, rows: u16, ipp: [f64; 3]) -> Self {
        SliceSpec {
            series_uid: series.to_string(),
            series_description: "synthetic CT".to_string(),
            series_number: 2,
            sop_class: CT_IMAGE,
            sop_instance: format!("{series}.{k}"),
            modality: "CT",
            image_type: "ORIGINAL\\PRIMARY\\AXIAL",
            instance_number: k as i32 + 1,
            acquisition_number: Some(1),
            rows,
            cols,
            pixel_spacing: Some([0.7, 0.8]),
            iop: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            ipp: Some(ipp),
            slope: 1.0,
            intercept: -1024.0,
            bits_stored: 16,
            signed: true,
            padding: None,
            transfer_syntax: EXPLICIT_LE,
            pixels: vec![0; rows as usize * cols as usize],
        }
    }
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v}")).collect())
}

pub fn write_slice(path: &Path, s: &SliceSpec) {
    let mut o = InMemDicomObject::new_empty();
    let put_str = |o: &mut InMemDicomObject, tag, vr, v: &str| {
        o.put(DataElement::new(tag, vr, PrimitiveValue::from(v.to_string())));
    };
    put_str(&mut o, tags::IMAGE_TYPE, VR::CS, s.image_type);
    put_str(&mut o, tags::SOP_CLASS_UID, VR::UI, s.sop_class);
    put_str(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &s.sop_instance);
    put_str(&mut o, tags::MODALITY, VR::CS, s.modality);
    put_str(&mut o, tags::PATIENT_NAME, VR::PN, "Synthetic^Phantom");
    put_str(&mut o, tags::SERIES_DESCRIPTION, VR::LO, &s.series_description);
    put_str(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &s.series_uid);
    put_str(&mut o, tags::SERIES_NUMBER, VR::IS, &s.series_number.to_string());
    put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, &s.instance_number.to_string());
    if let Some(a) = s.acquisition_number {
        put_str(&mut o, tags::ACQUISITION_NUMBER, VR::IS, &a.to_string());
    }
    if let Some(p) = s.ipp {
        o.put(DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&p)));
    }
    if let Some(p) = s.iop {
        o.put(DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&p)));
    }
    o.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)));
    put_str(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    o.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(s.rows)));
    o.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(s.cols)));
    if let Some(p) = s.pixel_spacing {
        o.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, ds(&p)));
    }
    o.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)));
    o.put(DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(s.bits_stored)));
    o.put(DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(s.bits_stored - 1)));
    o.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(u16::from(s.signed))));
    if let Some(p) = s.padding {
        if s.signed {
            o.put(DataElement::new(tags::PIXEL_PADDING_VALUE, VR::SS, PrimitiveValue::from(p as i16)));
        } else {
            o.put(DataElement::new(tags::PIXEL_PADDING_VALUE, VR::US, PrimitiveValue::from(p as u16)));
        }
    }
    o.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, ds(&[s.intercept])));
    o.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, ds(&[s.slope])));
    let words: Vec<u16> = s.pixels.iter().map(|&v| v as u16).collect();
    o.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into())));
    let file = o
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(s.transfer_syntax)
                .media_storage_sop_class_uid(s.sop_class)
                .media_storage_sop_instance_uid(s.sop_instance.as_str()),
        )
        .expect("valid meta");
    file.write_to_file(path).expect("write synthetic DICOM");
}

/// A regular axial series: slice k at z = z0 + k*dz; pixel (i, j) of slice k
/// stores `value(i, j, k)`.
pub fn write_series(dir: &Path, series: &str, dims: [usize; 3], z0: f64, dz: f64, value: impl Fn(usize, usize, usize) -> i32) -> Vec<SliceSpec> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for k in 0..dims[2] {
        let mut s = SliceSpec::ct(series, k, dims[0] as u16, dims[1] as u16, [-100.0, -120.0, z0 + dz * k as f64]);
        s.pixels = (0..dims[1]).flat_map(|j| (0..dims[0]).map(move |i| (i, j))).map(|(i, j)| value(i, j, k)).collect();
        out.push(s);
    }
    out
}

/// Write specs under `dir` with file names that do NOT follow slice order.
pub fn write_all(dir: &Path, specs: &[SliceSpec]) {
    std::fs::create_dir_all(dir).unwrap();
    let n = specs.len();
    for (k, s) in specs.iter().enumerate() {
        // Scramble: file names run opposite to position, instance numbers shuffled.
        let name = format!("IM{:04}", (n - k) * 7 % 10007);
        write_slice(&dir.join(name), s);
    }
}
