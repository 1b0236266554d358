//! Synthetic abdominal CT with a known liver mask.
//!
//! A deliberately simple anatomy (body with fat and muscle, spine, a two-lobe
//! liver, spleen, kidneys, aorta, optional lesions and noise) on a grid in LPS,
//! so every stage of liverseg can be tested without patient data. It feeds
//! tests and the demo; it is not training data.

use liverseg_volume::{Geometry, Mask, Volume};
use rayon::prelude::*;

/// Phantom parameters. All lengths in mm, intensities in HU.
#[derive(Debug, Clone)]
pub struct PhantomConfig {
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    /// Standard deviation of the added Gaussian noise.
    pub noise_hu: f64,
    /// Liver enhancement (portal-venous phase ~110 HU, non-contrast ~55 HU).
    pub liver_hu: f64,
    /// Number of lesions inside the liver (alternately darker and brighter).
    pub lesions: usize,
    pub seed: u64,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self { dims: [192, 160, 72], spacing: [1.8, 1.8, 3.0], noise_hu: 12.0, liver_hu: 110.0, lesions: 2, seed: 1 }
    }
}

pub struct Phantom {
    pub ct: Volume<i16>,
    pub liver: Mask,
}

/// SplitMix64: tiny, and its sequence never changes with a dependency update, so
/// `--seed N` gives the same phantom (and the same training run) in every
/// release. Shared with the training sampler for that reason.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in 0..n (n > 0); the modulo bias is below 2^-40 for any
    /// volume size.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Ellipsoid test in world coordinates: centre and semi-axes in mm.
fn in_ellipsoid(p: [f64; 3], c: [f64; 3], r: [f64; 3]) -> bool {
    (0..3).map(|a| ((p[a] - c[a]) / r[a]).powi(2)).sum::<f64>() <= 1.0
}

/// Elliptic cylinder along z.
fn in_cylinder(p: [f64; 3], c: [f64; 2], r: [f64; 2]) -> bool {
    ((p[0] - c[0]) / r[0]).powi(2) + ((p[1] - c[1]) / r[1]).powi(2) <= 1.0
}

pub fn generate(config: &PhantomConfig) -> Phantom {
    let [nx, ny, nz] = config.dims;
    // Centre the field of view on the patient axis, LPS, head-first-supine axial.
    let origin = [
        -(nx as f64 - 1.0) * config.spacing[0] / 2.0,
        -(ny as f64 - 1.0) * config.spacing[1] / 2.0,
        -(nz as f64 - 1.0) * config.spacing[2] / 2.0,
    ];
    let geometry = Geometry::new(config.dims, config.spacing, origin, liverseg_volume::IDENTITY)
        .expect("phantom geometry is valid by construction");

    let fov = [nx as f64 * config.spacing[0], ny as f64 * config.spacing[1], nz as f64 * config.spacing[2]];
    let body_r = [fov[0] * 0.42, fov[1] * 0.36];
    // Patient's right is -x in LPS, anterior is -y, superior is +z.
    let liver_right_lobe = ([-0.16 * fov[0], -0.02 * fov[1], 0.12 * fov[2]], [0.17 * fov[0], 0.2 * fov[1], 0.3 * fov[2]]);
    let liver_left_lobe = ([0.02 * fov[0], -0.12 * fov[1], 0.2 * fov[2]], [0.13 * fov[0], 0.09 * fov[1], 0.16 * fov[2]]);
    let spleen = ([0.25 * fov[0], 0.12 * fov[1], 0.15 * fov[2]], [0.06 * fov[0], 0.09 * fov[1], 0.15 * fov[2]]);
    let kidneys = [
        ([-0.16 * fov[0], 0.2 * fov[1], -0.15 * fov[2]], [0.05 * fov[0], 0.06 * fov[1], 0.18 * fov[2]]),
        ([0.16 * fov[0], 0.2 * fov[1], -0.12 * fov[2]], [0.05 * fov[0], 0.06 * fov[1], 0.18 * fov[2]]),
    ];
    let spine = ([0.0, 0.26 * fov[1]], [0.045 * fov[0], 0.05 * fov[1]]);
    let aorta = ([0.03 * fov[0], 0.17 * fov[1]], [0.016 * fov[0], 0.016 * fov[1]]);

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
            let hu = if i % 2 == 0 { config.liver_hu - 70.0 } else { config.liver_hu + 80.0 };
            (centre, radius, hu)
        })
        .collect();

    let slice_len = nx * ny;
    let mut ct = vec![0i16; geometry.len()];
    let mut liver = vec![0u8; geometry.len()];
    ct.par_chunks_mut(slice_len).zip(liver.par_chunks_mut(slice_len)).enumerate().for_each(|(k, (ct_slice, liver_slice))| {
        let mut noise = SplitMix64(config.seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
        for j in 0..ny {
            for i in 0..nx {
                let p = geometry.index_to_world([i as f64, j as f64, k as f64]);
                let o = i + nx * j;
                let mut hu = -1000.0;
                let mut is_liver = false;
                if in_cylinder(p, [0.0, 0.0], body_r) {
                    hu = -100.0; // subcutaneous fat
                    if in_cylinder(p, [0.0, 0.0], [body_r[0] - 12.0, body_r[1] - 12.0]) {
                        hu = 40.0; // muscle wall
                    }
                    if in_cylinder(p, [0.0, 0.0], [body_r[0] - 22.0, body_r[1] - 22.0]) {
                        hu = -60.0; // visceral fat
                    }
                    if in_cylinder(p, spine.0, spine.1) {
                        hu = 650.0;
                    }
                    if in_cylinder(p, aorta.0, aorta.1) {
                        hu = 170.0;
                    }
                    for (c, r) in &kidneys {
                        if in_ellipsoid(p, *c, *r) {
                            hu = 160.0;
                        }
                    }
                    if in_ellipsoid(p, spleen.0, spleen.1) {
                        hu = 120.0;
                    }
                    if in_ellipsoid(p, liver_right_lobe.0, liver_right_lobe.1) || in_ellipsoid(p, liver_left_lobe.0, liver_left_lobe.1) {
                        hu = config.liver_hu;
                        is_liver = true;
                        for (c, r, lesion_hu) in &lesions {
                            if in_ellipsoid(p, *c, [*r; 3]) {
                                hu = *lesion_hu;
                            }
                        }
                    }
                }
                let noisy = hu + if hu > -1000.0 { config.noise_hu * noise.normal() } else { 0.0 };
                ct_slice[o] = noisy.round().clamp(-1024.0, 3071.0) as i16;
                liver_slice[o] = u8::from(is_liver);
            }
        }
    });
    Phantom {
        ct: Volume::new(geometry.clone(), ct).expect("sizes match"),
        liver: Volume::new(geometry, liver).expect("sizes match"),
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
        assert!(sum_x / (n as f64) < 0.0, "liver centroid must be at negative x (patient right in LPS)");
        let ml = p.liver.foreground_ml();
        assert!((800.0..2500.0).contains(&ml), "liver volume {ml} ml");
    }

    #[test]
    fn same_seed_same_phantom_other_seed_differs() {
        let small = PhantomConfig { dims: [48, 40, 12], spacing: [6.0, 6.0, 15.0], ..Default::default() };
        let a = generate(&small);
        let b = generate(&small);
        assert_eq!(a.ct, b.ct);
        let c = generate(&PhantomConfig { seed: 2, ..small });
        assert_ne!(a.ct, c.ct);
        assert_eq!(a.liver, c.liver, "anatomy does not depend on the noise seed");
    }

    #[test]
    fn liver_is_brighter_than_fat() {
        let p = generate(&PhantomConfig { noise_hu: 0.0, lesions: 0, ..Default::default() });
        let liver_mean: f64 = {
            let v: Vec<f64> = p.ct.data().iter().zip(p.liver.data()).filter(|(_, &m)| m != 0).map(|(&h, _)| h as f64).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!((liver_mean - 110.0).abs() < 1e-9);
    }
}
