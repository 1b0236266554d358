//! RT Structure Set: the liver mask as closed planar contours per axial slice
//! (writer), and contours rasterised back onto a grid (reader).
//!
//! * Contours come from marching squares on each slice at the 0.5 level: vertices
//!   at midpoints between a foreground and a background pixel centre, so every
//!   foreground pixel centre is strictly inside and every background centre
//!   strictly outside, and rasterising with the pixel-centre rule gives the mask
//!   back. Diagonal neighbours are joined (8-connected foreground). Collinear
//!   vertices are dropped (exact, the vertices lie on a half-pixel lattice).
//! * Islands and holes are separate CLOSED_PLANAR contours; a hole is a contour
//!   inside an outer contour, and the slice's region is the even-odd (XOR) union of
//!   its contours, the convention of most planning systems. Outer contours run
//!   counter-clockwise and holes clockwise in image index space (i along rows, j
//!   down the columns), for readers that use winding instead.
//! * Contour points are patient coordinates (mm) from `Geometry::index_to_world`.
//! * The reader matches each contour to a slice by position (within a quarter
//!   slice) and fills pixels whose centre is inside (even-odd over all contours of
//!   the slice).
use super::seg_write::{
    check_uid_root, ds, el, item, new_uid, now_da_tm, patient_study_elements, s, seq, text, write_part10, AlgorithmType, SourceSeries, LIVER_RGB,
};
use crate::{Error, Result};
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use liverseg_volume::{Geometry, Mask};
use std::path::Path;

pub const RTSTRUCT_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.481.3";

#[derive(Debug, Clone)]
pub struct RtStructWriteOptions {
    pub uid_root: Option<String>,
    pub algorithm: AlgorithmType,
    /// ROIGenerationDescription (e.g. model and version).
    pub algorithm_name: String,
    pub roi_name: String,
    pub color_rgb: [u8; 3],
    pub structure_set_label: String,
    /// StructureSetDescription (ST, up to 1024 characters); empty = not written.
    pub structure_set_description: String,
    /// ROIDescription of the ROI (ST, up to 1024 characters); empty = not written.
    pub roi_description: String,
    pub series_number: i32,
    pub instance_number: i32,
    /// SeriesDescription (LO, cut to 64 characters): what a PACS list shows.
    pub series_description: String,
    pub software_version: String,
}

impl Default for RtStructWriteOptions {
    fn default() -> Self {
        RtStructWriteOptions {
            uid_root: None,
            algorithm: AlgorithmType::Automatic,
            algorithm_name: "liverseg".into(),
            roi_name: "Liver".into(),
            color_rgb: LIVER_RGB,
            structure_set_label: "liverseg".into(),
            structure_set_description: String::new(),
            roi_description: String::new(),
            series_number: 902,
            instance_number: 1,
            series_description: "Liver contours (liverseg)".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Which ROI of a structure set becomes the mask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoiChoice {
    /// The ROI named "liver" (case-insensitive), else the only ROI.
    #[default]
    Auto,
    Number(i64),
    Name(String),
}

/// One closed contour in pixel index coordinates (x = column index i, y = row
/// index j) of a slice; vertices on the half-pixel lattice.
#[derive(Debug, Clone, PartialEq)]
pub struct Contour {
    pub points: Vec<[f64; 2]>,
}

impl Contour {
    /// Shoelace area in pixels; positive = outer (counter-clockwise in index space).
    pub fn signed_area(&self) -> f64 {
        let p = &self.points;
        let n = p.len();
        (0..n).map(|a| p[a][0] * p[(a + 1) % n][1] - p[(a + 1) % n][0] * p[a][1]).sum::<f64>() / 2.0
    }
}

/// Marching squares on one slice (`slice[j * nx + i] != 0` = foreground).
/// Hand-written: the contouring crates on crates.io (contour, imageproc) either
/// interpolate (no exact half-pixel lattice) or trace pixel borders, and none
/// guarantees the closed, consistently oriented, non-crossing rings needed here.
pub fn marching_squares(slice: &[u8], nx: usize, ny: usize) -> Vec<Contour> {
    // Padded lattice: corner (x, y) for x in -1..=nx, y in -1..=ny, stored at +1.
    let (w, h) = (nx + 2, ny + 2);
    let fg = |x: i64, y: i64| x >= 0 && y >= 0 && (x as usize) < nx && (y as usize) < ny && slice[y as usize * nx + x as usize] != 0;
    // Edge ids: horizontal edge (x,y)-(x+1,y) = 2 * (y' * w + x'), vertical (x,y)-(x,y+1) = +1.
    let hid = |x: i64, y: i64| 2 * ((y + 1) as usize * w + (x + 1) as usize);
    let vid = |x: i64, y: i64| 2 * ((y + 1) as usize * w + (x + 1) as usize) + 1;
    let point = |id: usize| {
        let cell = id / 2;
        let (x, y) = ((cell % w) as f64 - 1.0, (cell / w) as f64 - 1.0);
        if id.is_multiple_of(2) { [x + 0.5, y] } else { [x, y + 0.5] }
    };
    let mut next = vec![usize::MAX; 2 * w * h];
    let mut starts = Vec::new();
    for y in -1..ny as i64 {
        for x in -1..nx as i64 {
            // Corners counter-clockwise in index space; edge k joins corner k and k+1.
            let c = [fg(x, y), fg(x + 1, y), fg(x + 1, y + 1), fg(x, y + 1)];
            if c.iter().all(|&v| v) || c.iter().all(|&v| !v) {
                continue;
            }
            let e = [hid(x, y), vid(x + 1, y), hid(x, y + 1), vid(x, y)];
            // From each foreground-to-background edge to the next background-to-
            // foreground edge (counter-clockwise): foreground stays on the left, and
            // at a saddle the two foreground corners stay joined.
            for k in 0..4 {
                if c[k] && !c[(k + 1) % 4] {
                    let m = (1..4).map(|d| (k + d) % 4).find(|&m| !c[m] && c[(m + 1) % 4]).expect("a crossing cell has an entry edge");
                    next[e[k]] = e[m];
                    starts.push(e[k]);
                }
            }
        }
    }
    let mut contours = Vec::new();
    for &start in &starts {
        if next[start] == usize::MAX {
            continue;
        }
        let mut pts = Vec::new();
        let mut id = start;
        while next[id] != usize::MAX {
            pts.push(point(id));
            let n = next[id];
            next[id] = usize::MAX;
            id = n;
        }
        // Drop collinear vertices (exact on the half-pixel lattice).
        let n = pts.len();
        let kept: Vec<[f64; 2]> = (0..n)
            .filter(|&a| {
                let (p, q, r) = (pts[(a + n - 1) % n], pts[a], pts[(a + 1) % n]);
                (q[0] - p[0]) * (r[1] - q[1]) - (q[1] - p[1]) * (r[0] - q[0]) != 0.0
            })
            .map(|a| pts[a])
            .collect();
        contours.push(Contour { points: kept });
    }
    contours
}

/// Even-odd fill of pixel centres (x = i, y = j) inside the polygons, into
/// `out[j * nx + i]` (XOR, so contours of one slice may come in any order).
pub fn rasterise_even_odd(polygons: &[Vec<[f64; 2]>], nx: usize, ny: usize, out: &mut [u8]) {
    let mut xs = Vec::new();
    for j in 0..ny {
        let y = j as f64;
        xs.clear();
        for poly in polygons {
            let n = poly.len();
            for a in 0..n {
                let (p, q) = (poly[a], poly[(a + 1) % n]);
                // Half-open in y so a vertex on the scan line counts once.
                if (p[1] > y) != (q[1] > y) {
                    xs.push(p[0] + (y - p[1]) * (q[0] - p[0]) / (q[1] - p[1]));
                }
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            let lo = pair[0].ceil().max(0.0);
            let hi = pair[1].min(nx as f64);
            let mut i = lo as usize;
            while (i as f64) < hi && i < nx {
                out[j * nx + i] ^= 1;
                i += 1;
            }
        }
    }
}

/// Write `mask` as an RT Structure Set with one ROI, contoured per slice, referencing `source`.
pub fn write_rtstruct(path: &Path, mask: &Mask, source: &SourceSeries, opts: &RtStructWriteOptions) -> Result<()> {
    let obj = build_rtstruct(path, mask, source, opts)?;
    write_part10(path, obj)
}

/// The RTSTRUCT data set (without file meta).
pub fn build_rtstruct(path: &Path, mask: &Mask, source: &SourceSeries, opts: &RtStructWriteOptions) -> Result<InMemDicomObject> {
    source.check_grid(mask.geometry()).map_err(|m| Error::invalid(path, m))?;
    if let Some(root) = &opts.uid_root {
        check_uid_root(path, root)?;
    }
    let geometry = mask.geometry();
    let [nx, ny, nz] = geometry.dims();
    let plane = nx * ny;
    let root = opts.uid_root.as_deref();
    let (date, time) = now_da_tm();

    let mut contour_items = Vec::new();
    for k in 0..nz {
        let sl = &source.slices[k];
        for c in marching_squares(&mask.data()[k * plane..(k + 1) * plane], nx, ny) {
            let mut data = Vec::with_capacity(3 * c.points.len());
            for p in &c.points {
                data.extend(geometry.index_to_world([p[0], p[1], k as f64]));
            }
            contour_items.push(item(vec![
                seq(tags::CONTOUR_IMAGE_SEQUENCE, vec![item(vec![
                    s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &sl.sop_class_uid),
                    s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &sl.sop_instance_uid),
                ])]),
                s(tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR"),
                el(tags::NUMBER_OF_CONTOUR_POINTS, VR::IS, PrimitiveValue::from(c.points.len().to_string())),
                el(tags::CONTOUR_NUMBER, VR::IS, PrimitiveValue::from((contour_items.len() + 1).to_string())),
                ds(tags::CONTOUR_DATA, &data),
            ]));
        }
    }

    // No liver found: the ROI stays (a planning system shows "Liver" with no
    // contours, and the RT ROI Observations still refer to it), but its ROI
    // Contour item carries no Contour Sequence. That sequence is Type 3 and, when
    // present, needs one or more items (PS3.3 C.8.8.6); an empty one is what
    // dciodvfy reported. Dropping the ROI instead would leave the Type 1 Structure
    // Set ROI and ROI Contour sequences empty, which is invalid too.
    let mut roi_contour = vec![el(tags::ROI_DISPLAY_COLOR, VR::IS, PrimitiveValue::Strs(opts.color_rgb.iter().map(|c| c.to_string()).collect()))];
    if !contour_items.is_empty() {
        roi_contour.push(seq(tags::CONTOUR_SEQUENCE, contour_items));
    }
    roi_contour.push(el(tags::REFERENCED_ROI_NUMBER, VR::IS, PrimitiveValue::from("1")));
    let contour_images: Vec<InMemDicomObject> = super::seg_write::referenced_instances(source);
    let mut roi = vec![
        el(tags::ROI_NUMBER, VR::IS, PrimitiveValue::from("1")),
        s(tags::REFERENCED_FRAME_OF_REFERENCE_UID, VR::UI, &source.frame_of_reference_uid),
        text(tags::ROI_NAME, VR::LO, &opts.roi_name),
        s(tags::ROI_GENERATION_ALGORITHM, VR::CS, opts.algorithm.dicom()),
    ];
    if opts.algorithm != AlgorithmType::Manual {
        roi.push(text(tags::ROI_GENERATION_DESCRIPTION, VR::LO, &opts.algorithm_name));
    }
    if !opts.roi_description.is_empty() {
        roi.push(text(tags::ROI_DESCRIPTION, VR::ST, &opts.roi_description));
    }
    let mut elements = patient_study_elements(source);
    elements.extend([
        s(tags::SOP_CLASS_UID, VR::UI, RTSTRUCT_SOP_CLASS),
        s(tags::SOP_INSTANCE_UID, VR::UI, &new_uid(root)),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, &date),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, &time),
        s(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"),
        s(tags::SERIES_DATE, VR::DA, &date),
        s(tags::SERIES_TIME, VR::TM, &time),
        s(tags::MODALITY, VR::CS, "RTSTRUCT"),
        s(tags::MANUFACTURER, VR::LO, "liverseg"),
        text(tags::SERIES_DESCRIPTION, VR::LO, &opts.series_description),
        s(tags::OPERATORS_NAME, VR::PN, ""),
        s(tags::MANUFACTURER_MODEL_NAME, VR::LO, "liverseg"),
        s(tags::SOFTWARE_VERSIONS, VR::LO, &opts.software_version),
        s(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid(root)),
        el(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from(opts.series_number.to_string())),
        el(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from(opts.instance_number.to_string())),
        s(tags::FRAME_OF_REFERENCE_UID, VR::UI, &source.frame_of_reference_uid),
        s(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        text(tags::STRUCTURE_SET_LABEL, VR::SH, &opts.structure_set_label),
        s(tags::STRUCTURE_SET_DATE, VR::DA, &date),
        s(tags::STRUCTURE_SET_TIME, VR::TM, &time),
        seq(tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, vec![item(vec![
            s(tags::FRAME_OF_REFERENCE_UID, VR::UI, &source.frame_of_reference_uid),
            seq(tags::RT_REFERENCED_STUDY_SEQUENCE, vec![item(vec![
                // Detached Study Management SOP Class (PS3.3 C.8.8.5.1: the value to use here).
                s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, "1.2.840.10008.3.1.2.3.1"),
                s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &source.study_instance_uid),
                seq(tags::RT_REFERENCED_SERIES_SEQUENCE, vec![item(vec![
                    s(tags::SERIES_INSTANCE_UID, VR::UI, &source.series_instance_uid),
                    seq(tags::CONTOUR_IMAGE_SEQUENCE, contour_images),
                ])]),
            ])]),
        ])]),
        seq(tags::STRUCTURE_SET_ROI_SEQUENCE, vec![item(roi)]),
        seq(tags::ROI_CONTOUR_SEQUENCE, vec![item(roi_contour)]),
        seq(tags::RTROI_OBSERVATIONS_SEQUENCE, vec![item(vec![
            el(tags::OBSERVATION_NUMBER, VR::IS, PrimitiveValue::from("1")),
            el(tags::REFERENCED_ROI_NUMBER, VR::IS, PrimitiveValue::from("1")),
            s(tags::RTROI_INTERPRETED_TYPE, VR::CS, "ORGAN"),
            s(tags::ROI_INTERPRETER, VR::PN, ""),
        ])]),
        s(tags::APPROVAL_STATUS, VR::CS, "UNAPPROVED"),
    ]);
    if !opts.structure_set_description.is_empty() {
        elements.push(text(tags::STRUCTURE_SET_DESCRIPTION, VR::ST, &opts.structure_set_description));
    }
    Ok(InMemDicomObject::from_element_iter(elements))
}

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_str().ok()).map(|s| s.trim_matches(['\0', ' ']).to_string())
}
fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    get_str(obj, tag).and_then(|s| s.trim().parse().ok())
}
fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.items()).unwrap_or(&[])
}

/// Rasterise one ROI of an RTSTRUCT onto `reference` (pixel centres inside the
/// contours, even-odd per slice). Contours must lie on slices of the grid.
pub fn read_rtstruct_onto(path: &Path, roi: RoiChoice, reference: &Geometry) -> Result<Mask> {
    // Element lengths checked against the file before dicom-object allocates for
    // them (a damaged length would otherwise allocate and read gigabytes).
    let obj = super::open_object(path)?.into_inner();
    if get_str(&obj, tags::SOP_CLASS_UID).as_deref() != Some(RTSTRUCT_SOP_CLASS) {
        return Err(Error::unsupported(path, "not an RT Structure Set (SOP class 1.2.840.10008.5.1.4.1.1.481.3)"));
    }
    let rois: Vec<(i64, String)> = items(&obj, tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .filter_map(|it| Some((get_int(it, tags::ROI_NUMBER)?, get_str(it, tags::ROI_NAME).unwrap_or_default())))
        .collect();
    let list = || rois.iter().map(|(n, name)| format!("{n} \"{name}\"")).collect::<Vec<_>>().join("; ");
    let found: Vec<&(i64, String)> = match &roi {
        RoiChoice::Number(n) => rois.iter().filter(|r| r.0 == *n).collect(),
        RoiChoice::Name(name) => rois.iter().filter(|r| r.1.trim().eq_ignore_ascii_case(name.trim())).collect(),
        RoiChoice::Auto => {
            let liver: Vec<_> = rois.iter().filter(|r| r.1.trim().eq_ignore_ascii_case("liver")).collect();
            if liver.is_empty() && rois.len() == 1 { rois.iter().collect() } else { liver }
        }
    };
    let number = match found.as_slice() {
        [one] => one.0,
        [] => return Err(Error::invalid(path, format!("no ROI {roi:?} in this structure set; it has: {}", list()))),
        _ => return Err(Error::Ambiguous { path: path.to_path_buf(), message: format!("several ROIs match {roi:?}; choose by number: {}", list()) }),
    };
    let [nx, ny, nz] = reference.dims();
    let plane = nx * ny;
    let mut polygons: Vec<Vec<Vec<[f64; 2]>>> = vec![Vec::new(); nz];
    for rc in items(&obj, tags::ROI_CONTOUR_SEQUENCE).iter().filter(|rc| get_int(rc, tags::REFERENCED_ROI_NUMBER) == Some(number)) {
        for (c, contour) in items(rc, tags::CONTOUR_SEQUENCE).iter().enumerate() {
            let kind = get_str(contour, tags::CONTOUR_GEOMETRIC_TYPE).unwrap_or_default();
            if kind != "CLOSED_PLANAR" {
                // POINT / OPEN_PLANAR / OPEN_NONPLANAR contours enclose no area.
                continue;
            }
            let data = contour
                .element_opt(tags::CONTOUR_DATA)
                .ok()
                .flatten()
                .and_then(|e| e.to_multi_float64().ok())
                .ok_or_else(|| Error::invalid(path, format!("contour {} of ROI {number} has no readable ContourData", c + 1)))?;
            if data.len() % 3 != 0 || data.len() < 9 || data.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(path, format!("contour {} of ROI {number}: ContourData is not a list of at least 3 points", c + 1)));
            }
            let idx: Vec<[f64; 3]> = data.chunks_exact(3).map(|p| reference.world_to_index([p[0], p[1], p[2]])).collect();
            let kf = idx.iter().map(|p| p[2]).sum::<f64>() / idx.len() as f64;
            let k = kf.round();
            let off = |p: &[f64; 3]| !p.iter().all(|v| v.is_finite()) || (p[2] - k).abs() > 0.25;
            if !k.is_finite() || idx.iter().any(off) || k < 0.0 || k >= nz as f64 {
                return Err(Error::invalid(
                    path,
                    format!("contour {} of ROI {number} is not on a slice of the reference grid (slice index {kf:.2}); the structure set belongs to another grid", c + 1),
                ));
            }
            polygons[k as usize].push(idx.iter().map(|p| [p[0], p[1]]).collect());
        }
    }
    let mut data = vec![0u8; reference.len()];
    for (k, polys) in polygons.iter().enumerate() {
        if !polys.is_empty() {
            rasterise_even_odd(polys, nx, ny, &mut data[k * plane..(k + 1) * plane]);
        }
    }
    Mask::new(reference.clone(), data).map_err(|e| Error::invalid(path, format!("mask: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(slice: &[u8], nx: usize, ny: usize) -> Vec<Contour> {
        let cs = marching_squares(slice, nx, ny);
        let mut out = vec![0u8; nx * ny];
        rasterise_even_odd(&cs.iter().map(|c| c.points.clone()).collect::<Vec<_>>(), nx, ny, &mut out);
        let want: Vec<u8> = slice.iter().map(|&v| u8::from(v != 0)).collect();
        assert_eq!(out, want, "contours {cs:?}");
        cs
    }

    #[test]
    fn single_pixel_is_a_diamond() {
        let cs = roundtrip(&[0, 0, 0, 0, 1, 0, 0, 0, 0], 3, 3);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].points.len(), 4);
        assert!((cs[0].signed_area() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ring_gives_outer_and_hole() {
        #[rustfmt::skip]
        let s = [
            1, 1, 1, 1,
            1, 0, 0, 1,
            1, 0, 0, 1,
            1, 1, 1, 1u8,
        ];
        let cs = roundtrip(&s, 4, 4);
        assert_eq!(cs.len(), 2);
        let mut areas: Vec<f64> = cs.iter().map(Contour::signed_area).collect();
        areas.sort_by(f64::total_cmp);
        assert!(areas[0] < 0.0 && areas[1] > 0.0, "{areas:?}");
    }

    #[test]
    fn saddles_and_border_pixels() {
        // Diagonal neighbours (saddle) are joined into one contour.
        let cs = roundtrip(&[1, 0, 0, 1], 2, 2);
        assert_eq!(cs.len(), 1);
        let cs = roundtrip(&[0, 1, 1, 0], 2, 2);
        assert_eq!(cs.len(), 1);
    }

    #[test]
    fn random_slices_round_trip_exactly() {
        let mut state = 0x1234_5678_u64;
        for _ in 0..200 {
            let (nx, ny) = (1 + (state % 13) as usize, 1 + (state / 13 % 11) as usize);
            let slice: Vec<u8> = (0..nx * ny)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    u8::from(state >> 61 >= 3)
                })
                .collect();
            roundtrip(&slice, nx, ny);
        }
    }
}
