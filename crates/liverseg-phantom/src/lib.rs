//! Synthetic abdominal CT with known truth masks.
//!
//! A deliberately simple anatomy on a grid in LPS (head-first supine, axial):
//! a body with subcutaneous fat, an abdominal muscle wall and visceral fat; a
//! vertebral body and ribs; a liver with a large right lobe and a smaller left
//! lobe reaching across the midline, with the inferior vena cava running along
//! its posterior surface; spleen, both kidneys, a stomach (wall, fluid and a gas
//! bubble) and the aorta; the lung bases and the heart above a diaphragm that
//! wraps the tops of the liver, spleen and stomach (a real abdominal CT for
//! SIRT starts above the liver dome, and a model learns that the liver ends
//! under the lung); optional lesions alternately darker and brighter than the
//! liver; Gaussian noise; and a contrast level from 0 (non-contrast: liver,
//! vessels and muscle within ~15 HU of each other) to 1 (portal-venous phase).
//! Every structure has a truth label ([`Phantom::labels`], names in
//! [`LABELS`]). It feeds tests and the demo; it is not training data.
//!
//! Structures are analytic shapes (ellipsoids, elliptic cylinders) in mm scaled
//! by the field of view, so a coarse test grid and a fine demo grid hold the
//! same anatomy.

use liverseg_volume::{Geometry, Mask, SplitMix64, Volume};
use rayon::prelude::*;

/// Phantom parameters. All lengths in mm, intensities in HU.
#[derive(Debug, Clone)]
pub struct PhantomConfig {
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    /// Standard deviation of the added Gaussian noise (0 = none).
    pub noise_hu: f64,
    /// Contrast enhancement, 0 (non-contrast) to 1 (portal-venous phase);
    /// values outside are clamped. Every organ's HU is interpolated between
    /// its native and its enhanced value (see [`tissue_hu`]).
    pub contrast: f64,
    /// Liver parenchyma HU regardless of `contrast` (`None`: from `contrast`,
    /// 55 HU native to 110 HU portal-venous).
    pub liver_hu: Option<f64>,
    /// Number of lesions inside the liver (alternately darker and brighter).
    pub lesions: usize,
    pub seed: u64,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self {
            dims: [192, 160, 72],
            spacing: [1.8, 1.8, 3.0],
            noise_hu: 12.0,
            contrast: 1.0,
            liver_hu: None,
            lesions: 2,
            seed: 1,
        }
    }
}

/// Truth label values of [`Phantom::labels`]: (value, name). The liver mask is
/// labels `LIVER` and `LESION` together (lesions are part of the liver, as in
/// the LiTS and 3D-IRCADb references).
pub const LABELS: [(u8, &str); 11] = [
    (1, "liver"),
    (2, "spleen"),
    (3, "kidney_right"),
    (4, "kidney_left"),
    (5, "stomach"),
    (6, "aorta"),
    (7, "ivc"),
    (8, "bone"),
    (9, "lesion"),
    (10, "lung"),
    (11, "heart"),
];
pub const LIVER: u8 = 1;
pub const LESION: u8 = 9;

pub struct Phantom {
    pub ct: Volume<i16>,
    /// Liver including lesions.
    pub liver: Mask,
    /// One label per voxel (see [`LABELS`]; 0 = none of them: air, fat, muscle,
    /// stomach contents count as stomach).
    pub labels: Mask,
}

impl Phantom {
    /// The truth mask (0/1) of a structure named in [`LABELS`]; "liver"
    /// includes its lesions.
    pub fn mask(&self, name: &str) -> Option<Mask> {
        if name == "liver" {
            return Some(self.liver.clone());
        }
        let (value, _) = LABELS.iter().find(|(_, n)| *n == name)?;
        Some(self.labels.map(|&l| u8::from(l == *value)))
    }

    /// Every structure's truth mask, in [`LABELS`] order.
    pub fn masks(&self) -> Vec<(&'static str, Mask)> {
        LABELS
            .iter()
            .filter_map(|(_, n)| Some((*n, self.mask(n)?)))
            .collect()
    }
}

/// Native (non-contrast) and portal-venous HU of each tissue. Native values
/// after the usual textbook ranges (liver 55, spleen 45, muscle 50, blood 40);
/// enhanced values typical of a 70 s portal-venous phase.
pub fn tissue_hu(tissue: &str, contrast: f64) -> f64 {
    let (native, enhanced) = match tissue {
        "fat" => (-100.0, -100.0),
        "visceral_fat" => (-80.0, -80.0),
        "muscle" => (50.0, 58.0),
        "liver" => (55.0, 110.0),
        "spleen" => (45.0, 120.0),
        "kidney" => (30.0, 160.0),
        "aorta" => (40.0, 170.0),
        "ivc" => (40.0, 145.0),
        "stomach_wall" => (40.0, 65.0),
        "stomach_fluid" => (8.0, 8.0),
        "gas" => (-950.0, -950.0),
        "lung" => (-850.0, -850.0),
        // One organ for blood pool and myocardium, enhanced like the blood in
        // the IVC and aorta beside it.
        "heart" => (40.0, 155.0),
        "vertebra" => (300.0, 300.0),
        "cortical_bone" => (700.0, 700.0),
        _ => (0.0, 0.0),
    };
    let c = if contrast.is_nan() {
        1.0
    } else {
        contrast.clamp(0.0, 1.0)
    };
    native + c * (enhanced - native)
}

/// Ellipsoid test in world coordinates: centre and semi-axes in mm.
fn in_ellipsoid(p: [f64; 3], c: [f64; 3], r: [f64; 3]) -> bool {
    (0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum::<f64>() <= 1.0
}

/// Elliptic cylinder along z.
fn in_cylinder(p: [f64; 3], c: [f64; 2], r: [f64; 2]) -> bool {
    ((p[0] - c[0]) / r[0]).powi(2) + ((p[1] - c[1]) / r[1]).powi(2) <= 1.0
}

/// Build the phantom. Deterministic: the same config (seed included) gives the
/// same voxels in every release; the anatomy does not depend on the seed
/// except for lesion positions.
pub fn generate(config: &PhantomConfig) -> Phantom {
    let [nx, ny, nz] = config.dims;
    // Centre the field of view on the patient axis, LPS, head-first-supine axial.
    let origin = [
        -(nx as f64 - 1.0) * config.spacing[0] / 2.0,
        -(ny as f64 - 1.0) * config.spacing[1] / 2.0,
        -(nz as f64 - 1.0) * config.spacing[2] / 2.0,
    ];
    let geometry = Geometry::new(
        config.dims,
        config.spacing,
        origin,
        liverseg_volume::IDENTITY,
    )
    .expect("phantom geometry is valid by construction");

    let fov = [
        nx as f64 * config.spacing[0],
        ny as f64 * config.spacing[1],
        nz as f64 * config.spacing[2],
    ];
    let body_r = [fov[0] * 0.42, fov[1] * 0.36];
    // Patient's right is -x in LPS, anterior is -y, superior is +z.
    let liver_right_lobe = (
        [-0.16 * fov[0], -0.02 * fov[1], 0.12 * fov[2]],
        [0.17 * fov[0], 0.2 * fov[1], 0.3 * fov[2]],
    );
    let liver_left_lobe = (
        [0.02 * fov[0], -0.12 * fov[1], 0.2 * fov[2]],
        [0.13 * fov[0], 0.09 * fov[1], 0.16 * fov[2]],
    );
    let spleen = (
        [0.25 * fov[0], 0.12 * fov[1], 0.15 * fov[2]],
        [0.06 * fov[0], 0.09 * fov[1], 0.15 * fov[2]],
    );
    let kidneys = [
        (
            [-0.16 * fov[0], 0.2 * fov[1], -0.15 * fov[2]],
            [0.05 * fov[0], 0.06 * fov[1], 0.18 * fov[2]],
        ),
        (
            [0.16 * fov[0], 0.2 * fov[1], -0.12 * fov[2]],
            [0.05 * fov[0], 0.06 * fov[1], 0.18 * fov[2]],
        ),
    ];
    let stomach = (
        [0.13 * fov[0], -0.06 * fov[1], 0.1 * fov[2]],
        [0.08 * fov[0], 0.07 * fov[1], 0.14 * fov[2]],
    );
    let stomach_wall_mm = 4.0;
    let spine = ([0.0, 0.26 * fov[1]], [0.045 * fov[0], 0.05 * fov[1]]);
    let aorta = (
        [0.03 * fov[0], 0.17 * fov[1]],
        [0.016 * fov[0], 0.016 * fov[1]],
    );
    // The IVC runs along the liver's posterior surface, right of the aorta; it
    // is drawn after the liver so the liver truth excludes it, as references do.
    let ivc = (
        [-0.06 * fov[0], 0.15 * fov[1]],
        [0.02 * fov[0], 0.017 * fov[1]],
    );
    // Ribs: bands in the muscle wall on the upper part of the volume, every
    // 26 mm in z, 9 mm thick, sparing the anterior midline and the back.
    let rib_ring = (
        [body_r[0] - 13.0, body_r[1] - 13.0],
        [body_r[0] - 20.0, body_r[1] - 20.0],
    );
    let rib_z_from = -0.05 * fov[2];
    // Lungs: inside the rib cage, above a floor and above a 6 mm diaphragm
    // over the liver lobes, spleen and stomach, with the mediastinum (fat)
    // between them. Where no organ is below, the lung reaches down to the floor,
    // as the posterior and lateral recesses do.
    let lung_floor = 0.25 * fov[2];
    let diaphragm_mm = 6.0;
    let cavity = [body_r[0] - 22.0, body_r[1] - 22.0];
    let mediastinum_half_width = 0.06 * fov[0];
    let under_diaphragm = [liver_right_lobe, liver_left_lobe, spleen, stomach]
        .map(|(c, r)| (c, [r[0] + diaphragm_mm, r[1] + diaphragm_mm, r[2] + diaphragm_mm]));
    // The heart sits on the diaphragm, anterior and left, over the left lobe
    // (it is drawn only above the diaphragm, so the volume's top cuts it).
    let heart = (
        [0.05 * fov[0], -0.06 * fov[1], 0.5 * fov[2]],
        [0.14 * fov[0], 0.12 * fov[1], 0.14 * fov[2]],
    );
    // Height of the diaphragm's upper surface over (x, y): the top of the
    // highest organ grown by its thickness, or the floor.
    let diaphragm_top = |x: f64, y: f64| {
        under_diaphragm.iter().fold(lung_floor, |top, (c, r)| {
            let q = ((x - c[0]) / r[0]).powi(2) + ((y - c[1]) / r[1]).powi(2);
            if q <= 1.0 {
                top.max(c[2] + r[2] * (1.0 - q).sqrt())
            } else {
                top
            }
        })
    };

    let hu = |t: &str| tissue_hu(t, config.contrast);
    let liver_hu = config.liver_hu.unwrap_or_else(|| hu("liver"));
    let (fat, visceral_fat, muscle) = (hu("fat"), hu("visceral_fat"), hu("muscle"));
    let (spleen_hu, kidney_hu, aorta_hu, ivc_hu) =
        (hu("spleen"), hu("kidney"), hu("aorta"), hu("ivc"));
    let (wall_hu, fluid_hu, gas_hu) = (hu("stomach_wall"), hu("stomach_fluid"), hu("gas"));
    let (vertebra_hu, cortex_hu) = (hu("vertebra"), hu("cortical_bone"));
    let (lung_hu, heart_hu) = (hu("lung"), hu("heart"));

    let mut rng = SplitMix64(config.seed ^ 0x6C69_7665_7273_6567);
    let lesions: Vec<([f64; 3], f64, f64)> = (0..config.lesions)
        .map(|i| {
            let (c, r) = liver_right_lobe;
            let centre = [
                c[0] + (rng.uniform() - 0.5) * r[0],
                c[1] + (rng.uniform() - 0.5) * r[1],
                c[2] + (rng.uniform() - 0.5) * r[2],
            ];
            let radius = 6.0 + rng.uniform() * 10.0;
            let hu = if i % 2 == 0 {
                liver_hu - 70.0
            } else {
                liver_hu + 80.0
            };
            (centre, radius, hu)
        })
        .collect();

    let slice_len = nx * ny;
    let mut ct = vec![0i16; geometry.len()];
    let mut labels = vec![0u8; geometry.len()];
    ct.par_chunks_mut(slice_len)
        .zip(labels.par_chunks_mut(slice_len))
        .enumerate()
        .for_each(|(k, (ct_slice, label_slice))| {
            let mut noise = SplitMix64(config.seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
            for j in 0..ny {
                for i in 0..nx {
                    let p = geometry.index_to_world([i as f64, j as f64, k as f64]);
                    let o = i + nx * j;
                    let mut v = -1000.0;
                    let mut label = 0u8;
                    if in_cylinder(p, [0.0, 0.0], body_r) {
                        v = fat;
                        if in_cylinder(p, [0.0, 0.0], [body_r[0] - 12.0, body_r[1] - 12.0]) {
                            v = muscle;
                        }
                        if in_cylinder(p, [0.0, 0.0], [body_r[0] - 22.0, body_r[1] - 22.0]) {
                            v = visceral_fat;
                        }
                        if p[2] > lung_floor && in_cylinder(p, [0.0, 0.0], cavity) {
                            if p[2] > diaphragm_top(p[0], p[1]) {
                                if in_ellipsoid(p, heart.0, heart.1) {
                                    v = heart_hu;
                                    label = 11;
                                } else if p[0].abs() > mediastinum_half_width {
                                    v = lung_hu;
                                    label = 10;
                                }
                            } else {
                                // Organs drawn below overwrite their own part.
                                v = muscle;
                            }
                        }
                        let rib_band =
                            (p[2] - rib_z_from).rem_euclid(26.0) < 9.0 && p[2] > rib_z_from;
                        let rib_sector = p[1] < 0.55 * body_r[1] && p[0].abs() > 0.12 * body_r[0];
                        if rib_band
                            && rib_sector
                            && in_cylinder(p, [0.0, 0.0], rib_ring.0)
                            && !in_cylinder(p, [0.0, 0.0], rib_ring.1)
                        {
                            v = cortex_hu;
                            label = 8;
                        }
                        if in_cylinder(p, spine.0, spine.1) {
                            let inner =
                                in_cylinder(p, spine.0, [spine.1[0] - 4.0, spine.1[1] - 4.0]);
                            v = if inner { vertebra_hu } else { cortex_hu };
                            label = 8;
                        }
                        if in_cylinder(p, aorta.0, aorta.1) {
                            v = aorta_hu;
                            label = 6;
                        }
                        for (n, (c, r)) in kidneys.iter().enumerate() {
                            if in_ellipsoid(p, *c, *r) {
                                v = kidney_hu;
                                label = 3 + n as u8;
                            }
                        }
                        if in_ellipsoid(p, spleen.0, spleen.1) {
                            v = spleen_hu;
                            label = 2;
                        }
                        if in_ellipsoid(p, stomach.0, stomach.1) {
                            let (c, r) = stomach;
                            let inner = [
                                r[0] - stomach_wall_mm,
                                r[1] - stomach_wall_mm,
                                r[2] - stomach_wall_mm,
                            ];
                            v = if !in_ellipsoid(p, c, inner) {
                                wall_hu
                            } else if p[1] < c[1] - 0.55 * r[1] {
                                gas_hu // gas rises anteriorly in a supine patient
                            } else {
                                fluid_hu
                            };
                            label = 5;
                        }
                        if in_ellipsoid(p, liver_right_lobe.0, liver_right_lobe.1)
                            || in_ellipsoid(p, liver_left_lobe.0, liver_left_lobe.1)
                        {
                            v = liver_hu;
                            label = LIVER;
                            for (c, r, lesion_hu) in &lesions {
                                if in_ellipsoid(p, *c, [*r; 3]) {
                                    v = *lesion_hu;
                                    label = LESION;
                                }
                            }
                        }
                        if in_cylinder(p, ivc.0, ivc.1) && p[2] > -0.3 * fov[2] {
                            v = ivc_hu;
                            label = 7;
                        }
                    }
                    let noisy = v + if v > -1000.0 {
                        config.noise_hu * noise.normal()
                    } else {
                        0.0
                    };
                    ct_slice[o] = noisy.round().clamp(-1024.0, 3071.0) as i16;
                    label_slice[o] = label;
                }
            }
        });
    let liver = labels
        .iter()
        .map(|&l| u8::from(l == LIVER || l == LESION))
        .collect();
    Phantom {
        ct: Volume::new(geometry.clone(), ct).expect("sizes match"),
        liver: Volume::new(geometry.clone(), liver).expect("sizes match"),
        labels: Volume::new(geometry, labels).expect("sizes match"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liver_lies_on_the_patient_right_and_has_plausible_volume() {
        let p = generate(&PhantomConfig::default());
        let g = p.liver.geometry();
        let (mut sum_x, mut n) = (0.0, 0usize);
        for (o, &v) in p.liver.data().iter().enumerate() {
            if v != 0 {
                let idx = g.index_of(o);
                sum_x += g.index_to_world([idx[0] as f64, idx[1] as f64, idx[2] as f64])[0];
                n += 1;
            }
        }
        assert!(
            sum_x / (n as f64) < 0.0,
            "liver centroid must be at negative x (patient right in LPS)"
        );
        let ml = p.liver.foreground_ml();
        assert!((800.0..2500.0).contains(&ml), "liver volume {ml} ml");
    }

    #[test]
    fn same_seed_same_phantom_other_seed_differs() {
        let small = PhantomConfig {
            dims: [48, 40, 12],
            spacing: [6.0, 6.0, 15.0],
            ..Default::default()
        };
        let a = generate(&small);
        let b = generate(&small);
        assert_eq!(a.ct, b.ct);
        let c = generate(&PhantomConfig { seed: 2, ..small });
        assert_ne!(a.ct, c.ct);
        assert_eq!(
            a.liver, c.liver,
            "anatomy does not depend on the noise seed"
        );
    }

    #[test]
    fn liver_is_brighter_than_fat() {
        let p = generate(&PhantomConfig {
            noise_hu: 0.0,
            lesions: 0,
            ..Default::default()
        });
        let liver_mean: f64 = {
            let v: Vec<f64> =
                p.ct.data()
                    .iter()
                    .zip(p.liver.data())
                    .filter(|(_, &m)| m != 0)
                    .map(|(&h, _)| h as f64)
                    .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!((liver_mean - 110.0).abs() < 1e-9);
    }

    fn mean_hu(p: &Phantom, name: &str) -> f64 {
        let m = p.mask(name).unwrap();
        let v: Vec<f64> =
            p.ct.data()
                .iter()
                .zip(m.data())
                .filter(|(_, &m)| m != 0)
                .map(|(&h, _)| h as f64)
                .collect();
        assert!(!v.is_empty(), "{name} is missing");
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn every_structure_exists_where_expected_and_contrast_enhances_it() {
        let cfg = PhantomConfig {
            dims: [96, 80, 36],
            spacing: [3.6, 3.6, 6.0],
            noise_hu: 0.0,
            lesions: 2,
            ..Default::default()
        };
        let pv = generate(&cfg);
        let nc = generate(&PhantomConfig {
            contrast: 0.0,
            ..cfg.clone()
        });
        let g = pv.ct.geometry();
        for (name, mask) in pv.masks() {
            let n = mask.count_foreground();
            assert!(n > 5, "{name}: {n} voxels");
            assert_eq!(
                nc.mask(name).unwrap(),
                mask,
                "{name}: anatomy must not depend on contrast"
            );
        }
        let centroid_x = |name: &str| {
            let m = pv.mask(name).unwrap();
            let (mut s, mut n) = (0.0, 0.0);
            for (o, &v) in m.data().iter().enumerate() {
                if v != 0 {
                    let [i, j, k] = g.index_of(o);
                    s += g.index_to_world([i as f64, j as f64, k as f64])[0];
                    n += 1.0;
                }
            }
            s / n
        };
        // LPS: patient right is -x.
        assert!(centroid_x("kidney_right") < 0.0 && centroid_x("kidney_left") > 0.0);
        assert!(centroid_x("spleen") > 0.0 && centroid_x("ivc") < centroid_x("aorta"));
        // Lesions are part of the liver.
        let lesion = pv.mask("lesion").unwrap();
        assert!(lesion
            .data()
            .iter()
            .zip(pv.liver.data())
            .all(|(&l, &v)| l == 0 || v != 0));
        // Portal-venous: vessels and liver well above muscle; non-contrast: within 15 HU.
        assert!(mean_hu(&pv, "aorta") > 150.0 && mean_hu(&pv, "ivc") > 130.0);
        let liver_pv = tissue_hu("liver", 1.0);
        assert!(liver_pv - tissue_hu("muscle", 1.0) > 40.0);
        for t in ["liver", "aorta", "ivc", "spleen"] {
            assert!(
                (tissue_hu(t, 0.0) - tissue_hu("muscle", 0.0)).abs() <= 15.0,
                "{t}"
            );
        }
        assert!(mean_hu(&nc, "aorta") < 60.0);
        assert!(mean_hu(&pv, "bone") > 290.0);
        // The stomach holds a gas bubble (air inside the body, as in real CTs).
        assert!(pv
            .ct
            .data()
            .iter()
            .zip(pv.labels.data())
            .any(|(&h, &l)| l == 5 && h < -900));
        // Liver HU override and lesion contrast.
        let o = generate(&PhantomConfig {
            liver_hu: Some(70.0),
            ..cfg
        });
        let liver_only: Vec<f64> =
            o.ct.data()
                .iter()
                .zip(o.labels.data())
                .filter(|(_, &l)| l == LIVER)
                .map(|(&h, _)| h as f64)
                .collect();
        assert!(liver_only.iter().all(|&h| h == 70.0));
    }

    #[test]
    fn lungs_and_heart_sit_above_a_diaphragm_over_the_liver_dome() {
        let p = generate(&PhantomConfig { noise_hu: 0.0, lesions: 0, ..Default::default() });
        let g = p.ct.geometry();
        let [nx, ny, nz] = g.dims();
        let spacing_z = g.spacing()[2];
        let (mut columns, mut lateral, mut lung_columns) = (0, 0, 0);
        for j in 0..ny {
            for i in 0..nx {
                let Some(top) = (0..nz).rev().find(|&k| *p.liver.get(i, j, k) != 0) else { continue };
                assert!(top + 1 < nz, "liver reaches the top slice at ({i}, {j})");
                // The dome: where the liver rises above the lungs' floor (a
                // quarter of the field of view above its centre). Lower down,
                // at the liver's edges, fat lies above it, as in the abdomen.
                if g.index_to_world([i as f64, j as f64, top as f64])[2] <= 0.25 * nz as f64 * spacing_z {
                    continue;
                }
                columns += 1;
                // Right above the dome: diaphragm muscle (or the IVC), never lung or fat.
                let above = *p.ct.get(i, j, top + 1) as f64;
                let label = *p.labels.get(i, j, top + 1);
                assert!(label == 7 || (label == 0 && above == tissue_hu("muscle", 1.0)), "{above} HU, label {label} on the dome at ({i}, {j})");
                // Higher up, past the diaphragm (muscle only): lung, in every
                // column off the mediastinum that the IVC does not cross.
                let x = g.index_to_world([i as f64, j as f64, 0.0])[0];
                if x.abs() < 0.06 * nx as f64 * g.spacing()[0] + 2.0 || label == 7 {
                    continue;
                }
                lateral += 1;
                let first_other = (top + 1..nz).find(|&k| *p.labels.get(i, j, k) != 0 || *p.ct.get(i, j, k) as f64 != tissue_hu("muscle", 1.0));
                if let Some(k) = first_other {
                    if *p.labels.get(i, j, k) == 10 {
                        lung_columns += 1;
                        assert_eq!(*p.ct.get(i, j, k), tissue_hu("lung", 1.0) as i16);
                    }
                }
            }
        }
        assert!(columns > 500, "{columns} liver columns under the dome");
        assert!(lung_columns as f64 > 0.95 * lateral as f64, "lung over {lung_columns} of {lateral} dome columns off the mediastinum");
        // The heart is there, enhanced like blood in the portal-venous phase.
        let heart: Vec<i16> = p.ct.data().iter().zip(p.labels.data()).filter(|(_, &l)| l == 11).map(|(&h, _)| h).collect();
        assert!(heart.len() > 1000 && heart.iter().all(|&h| h == tissue_hu("heart", 1.0) as i16), "{} heart voxels", heart.len());
        // No lung or heart voxel touches the liver: the diaphragm is between them.
        for (o, &l) in p.labels.data().iter().enumerate() {
            if l == 10 || l == 11 {
                let [i, j, k] = g.index_of(o);
                for (di, dj, dk) in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
                    for sign in [-1i64, 1] {
                        let (a, b, c) = (i as i64 + sign * di, j as i64 + sign * dj, k as i64 + sign * dk);
                        if a < 0 || b < 0 || c < 0 || a >= nx as i64 || b >= ny as i64 || c >= nz as i64 {
                            continue;
                        }
                        assert_eq!(*p.liver.get(a as usize, b as usize, c as usize), 0, "label {l} at {:?} touches the liver", [i, j, k]);
                    }
                }
            }
        }
    }
}
