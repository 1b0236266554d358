//! DeepMedic's training sampling: patches centred on liver and on background
//! inside the body, in configurable shares (default half and half), cut from
//! augmented training images.

use liverseg_volume::SplitMix64;
use liverseg_volume::{Mask, Volume};
use rayon::prelude::*;

use liverseg_preprocess::patches::{PathwayInput, PatchSource};
use crate::{Error, Result};

/// One training image ready for sampling.
pub struct SamplingVolume {
    source: PatchSource,
    label: Vec<u8>,
    /// Linear indices of liver voxels, and of body voxels that are not liver.
    liver: Vec<u32>,
    background: Vec<u32>,
    /// Background voxels near the liver (see [`SamplingVolume::with_border`]),
    /// and the share of background patches centred on them.
    border: Vec<u32>,
    border_share: f64,
    /// Liver and background voxels the current model gets wrong (see
    /// [`SamplingVolume::with_hard`]), and the share of each class's patches
    /// centred on them.
    hard_liver: Vec<u32>,
    hard_background: Vec<u32>,
    hard_share: f64,
}

impl SamplingVolume {
    /// `image` is normalised; `label` and `body` are on its grid.
    pub fn new(image: &Volume<f32>, label: &Mask, body: &Mask, pad: f32) -> Result<Self> {
        if !image.geometry().same_grid(label.geometry()) || !image.geometry().same_grid(body.geometry()) {
            return Err(Error::param("sampling volume", "image, label and body are not on one grid"));
        }
        if image.len() > u32::MAX as usize {
            return Err(Error::param("sampling volume", format!("{} voxels is more than 2^32", image.len())));
        }
        let (mut liver, mut background) = (Vec::new(), Vec::new());
        for (i, (&l, &b)) in label.data().iter().zip(body.data()).enumerate() {
            if l != 0 {
                liver.push(i as u32);
            } else if b != 0 {
                background.push(i as u32);
            }
        }
        if liver.is_empty() && background.is_empty() {
            return Err(Error::param("sampling volume", "the volume has no voxel"));
        }
        if background.is_empty() {
            // A body outline can miss on odd data; any non-liver voxel is background then.
            background = (0..label.len() as u32).filter(|&i| label.data()[i as usize] == 0).collect();
        }
        Ok(Self { source: PatchSource::new(image, pad), label: label.data().to_vec(), liver, background, border: Vec::new(), border_share: 0.0, hard_liver: Vec::new(), hard_background: Vec::new(), hard_share: 0.0 })
    }

    /// Centre `share` of the background patches on body voxels within
    /// `radius_mm` of the liver: where the network's errors are (the liver's
    /// border, and the heart, stomach wall, spleen, kidney and muscle that
    /// touch it), instead of anywhere in the body. `label` and `body` are the
    /// ones given to [`SamplingVolume::new`]. A volume without liver keeps
    /// sampling the whole body.
    pub fn with_border(mut self, label: &Mask, body: &Mask, radius_mm: f64, share: f64) -> Result<Self> {
        if !((0.0..=1.0).contains(&share) && radius_mm.is_finite() && radius_mm > 0.0) {
            return Err(Error::param("border sampling", format!("share {share} must be in [0, 1] and radius {radius_mm} mm positive")));
        }
        if share == 0.0 || self.liver.is_empty() {
            return Ok(self);
        }
        let near = liverseg_imgproc::morphology::dilate(label, radius_mm).map_err(|e| Error::param("border sampling", e.to_string()))?;
        self.border = near
            .data()
            .iter()
            .zip(label.data())
            .zip(body.data())
            .enumerate()
            .filter(|(_, ((&n, &l), &b))| n != 0 && l == 0 && b != 0)
            .map(|(i, _)| i as u32)
            .collect();
        self.border_share = share;
        Ok(self)
    }

    /// Centre `share` of the liver patches on the liver voxels in `hard`, and
    /// `share` of the background patches on its body voxels that are not liver:
    /// hard-example mining, where `hard` marks the current model's errors
    /// (missed liver, and tissue taken for liver: heart, spleen, stomach wall).
    /// Background patches not drawn this way follow the border / body rule.
    /// `label` and `body` are the ones given to [`SamplingVolume::new`].
    pub fn with_hard(mut self, hard: &Mask, label: &Mask, body: &Mask, share: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&share) {
            return Err(Error::param("hard-example sampling", format!("share {share} must be in [0, 1]")));
        }
        if !hard.geometry().same_grid(label.geometry()) {
            return Err(Error::param("hard-example sampling", "the mask is not on the image's grid"));
        }
        if share == 0.0 {
            return Ok(self);
        }
        for (i, ((&h, &l), &b)) in hard.data().iter().zip(label.data()).zip(body.data()).enumerate() {
            if h == 0 {
                continue;
            }
            if l != 0 {
                self.hard_liver.push(i as u32);
            } else if b != 0 {
                self.hard_background.push(i as u32);
            }
        }
        self.hard_share = share;
        Ok(self)
    }

    /// Liver and background voxels marked hard.
    pub fn hard_voxels(&self) -> (usize, usize) {
        (self.hard_liver.len(), self.hard_background.len())
    }

    pub fn border_voxels(&self) -> usize {
        self.border.len()
    }

    pub fn liver_voxels(&self) -> usize {
        self.liver.len()
    }
}

/// A batch in the tensor layout: per pathway `batch * input^3` values, labels
/// `batch * patch^3` (0/1), each block x fastest.
pub struct Batch {
    pub size: usize,
    pub inputs: Vec<Vec<f32>>,
    pub labels: Vec<f32>,
    /// How many patches were centred on liver, on the zone near it, and on
    /// hard examples (either class).
    pub liver_centred: usize,
    pub border_centred: usize,
    pub hard_centred: usize,
}

/// A hard example with probability `share`. Nothing is drawn from `rng` when
/// there are none, so runs without hard examples keep their earlier random
/// sequence.
fn pick_hard(from: &[u32], share: f64, rng: &mut SplitMix64) -> Option<u32> {
    if from.is_empty() || rng.uniform() >= share {
        return None;
    }
    Some(from[rng.below(from.len())])
}

/// Draw `batch` patches of `patch^3` voxels. Each picks a volume uniformly,
/// then liver (with probability `liver_fraction`, when the volume has liver) or
/// background, then a voxel of that class as the patch centre.
pub fn sample_batch(
    volumes: &[SamplingVolume],
    batch: usize,
    patch: usize,
    pathways: &[PathwayInput],
    liver_fraction: f64,
    rng: &mut SplitMix64,
) -> Result<Batch> {
    if volumes.is_empty() {
        return Err(Error::param("training set", "no training volume to sample from"));
    }
    // Draw every random choice first, in order, so a seed fixes the batch
    // whatever the thread count.
    let (mut border_centred, mut hard_centred) = (0, 0);
    let picks: Vec<(usize, u32, bool)> = (0..batch)
        .map(|_| {
            let v = rng.below(volumes.len());
            let vol = &volumes[v];
            let want_liver = rng.uniform() < liver_fraction;
            // A volume that is all liver (or all background) serves the class it has.
            if (want_liver || vol.background.is_empty()) && !vol.liver.is_empty() {
                if let Some(centre) = pick_hard(&vol.hard_liver, vol.hard_share, rng) {
                    hard_centred += 1;
                    (v, centre, true)
                } else {
                    (v, vol.liver[rng.below(vol.liver.len())], true)
                }
            } else if let Some(centre) = pick_hard(&vol.hard_background, vol.hard_share, rng) {
                hard_centred += 1;
                (v, centre, false)
            } else if !vol.border.is_empty() && rng.uniform() < vol.border_share {
                // Drawn only when border sampling is on, so runs without it
                // keep their earlier random sequence.
                border_centred += 1;
                (v, vol.border[rng.below(vol.border.len())], false)
            } else {
                (v, vol.background[rng.below(vol.background.len())], false)
            }
        })
        .collect();
    let half = (patch / 2) as i64;
    let samples: Vec<(Vec<Vec<f32>>, Vec<f32>)> = picks
        .par_iter()
        .map(|&(v, centre, _)| {
            let vol = &volumes[v];
            let [nx, ny, nz] = vol.source.dims();
            let c = centre as usize;
            let centre = [(c % nx) as i64, ((c / nx) % ny) as i64, (c / (nx * ny)) as i64];
            let origin = centre.map(|x| x - half);
            let inputs = pathways
                .iter()
                .map(|&p| {
                    let mut buf = vec![0.0f32; p.input.pow(3)];
                    vol.source.extract(origin, patch, p, &mut buf);
                    buf
                })
                .collect();
            let mut labels = vec![0.0f32; patch.pow(3)];
            for (idx, l) in labels.iter_mut().enumerate() {
                let (i, j, k) = (idx % patch, (idx / patch) % patch, idx / (patch * patch));
                let (x, y, z) = (origin[0] + i as i64, origin[1] + j as i64, origin[2] + k as i64);
                if (0..nx as i64).contains(&x) && (0..ny as i64).contains(&y) && (0..nz as i64).contains(&z) {
                    *l = f32::from(vol.label[(z as usize * ny + y as usize) * nx + x as usize] != 0);
                }
            }
            (inputs, labels)
        })
        .collect();
    let mut inputs: Vec<Vec<f32>> = pathways.iter().map(|p| Vec::with_capacity(batch * p.input.pow(3))).collect();
    let mut labels = Vec::with_capacity(batch * patch.pow(3));
    for (ins, ls) in samples {
        for (dst, src) in inputs.iter_mut().zip(ins) {
            dst.extend_from_slice(&src);
        }
        labels.extend_from_slice(&ls);
    }
    Ok(Batch { size: batch, inputs, labels, liver_centred: picks.iter().filter(|p| p.2).count(), border_centred, hard_centred })
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_volume::{Geometry, IDENTITY};

    fn setup() -> SamplingVolume {
        let g = Geometry::new([30, 30, 30], [1.0; 3], [0.0; 3], IDENTITY).unwrap();
        let label = Volume::from_fn(g.clone(), |[i, j, k]| u8::from([i, j, k].iter().all(|v| (5..12).contains(v))));
        let body = Volume::from_fn(g.clone(), |[i, _, _]| u8::from(i < 25));
        let image = Volume::from_fn(g, |[i, j, k]| if [i, j, k].iter().all(|v| (5..12).contains(v)) { 0.1 } else { -0.1 });
        SamplingVolume::new(&image, &label, &body, -0.2).unwrap()
    }

    #[test]
    fn liver_share_and_centres_are_right() {
        let vol = setup();
        let p = [PathwayInput { factor: 1, input: 7 }, PathwayInput { factor: 3, input: 3 }];
        let mut rng = SplitMix64(5);
        let b = sample_batch(std::slice::from_ref(&vol), 400, 3, &p, 0.5, &mut rng).unwrap();
        assert!((160..240).contains(&b.liver_centred), "{} of 400", b.liver_centred);
        // Centre voxel of every patch is liver exactly when it was drawn as liver.
        let liver_centre_labels = (0..400).filter(|s| b.labels[s * 27 + 13] == 1.0).count();
        assert_eq!(liver_centre_labels, b.liver_centred);
        // Fine input centre equals the label there (image is 0.1 on liver).
        for s in 0..400 {
            let centre = b.inputs[0][s * 343 + 171];
            assert_eq!(centre > 0.0, b.labels[s * 27 + 13] == 1.0);
        }
        assert_eq!(b.inputs[1].len(), 400 * 27);
        // Background centres lie inside the body (x < 25): no sample has its
        // centre in the x >= 25 slab, which is all background. Same seed, same batch.
        let again = sample_batch(std::slice::from_ref(&vol), 400, 3, &p, 0.5, &mut SplitMix64(5)).unwrap();
        assert_eq!(again.labels, b.labels);
        assert_eq!(again.inputs, b.inputs);
    }

    #[test]
    fn an_all_liver_volume_still_samples() {
        let g = Geometry::new([6, 6, 6], [1.0; 3], [0.0; 3], IDENTITY).unwrap();
        let all = Volume::filled(g.clone(), 1u8);
        let vol = SamplingVolume::new(&Volume::filled(g, 0.1f32), &all, &all, -0.2).unwrap();
        let p = [PathwayInput { factor: 1, input: 3 }];
        let b = sample_batch(std::slice::from_ref(&vol), 10, 1, &p, 0.0, &mut SplitMix64(2)).unwrap();
        assert_eq!(b.liver_centred, 10);
    }

    #[test]
    fn all_background_when_the_share_is_zero() {
        let vol = setup();
        let p = [PathwayInput { factor: 1, input: 3 }];
        let b = sample_batch(std::slice::from_ref(&vol), 50, 1, &p, 0.0, &mut SplitMix64(1)).unwrap();
        assert_eq!(b.liver_centred, 0);
        assert!(b.labels.iter().all(|&l| l == 0.0));
        assert!(sample_batch(&[], 4, 1, &p, 0.5, &mut SplitMix64(1)).is_err());
    }

    #[test]
    fn border_sampling_centres_the_set_share_near_the_liver() {
        let g = Geometry::new([30, 30, 30], [1.0; 3], [0.0; 3], IDENTITY).unwrap();
        let label = Volume::from_fn(g.clone(), |[i, j, k]| u8::from([i, j, k].iter().all(|v| (5..12).contains(v))));
        let body = Volume::from_fn(g.clone(), |[i, _, _]| u8::from(i < 25));
        let image = Volume::from_fn(g, |[i, j, k]| if [i, j, k].iter().all(|v| (5..12).contains(v)) { 0.1 } else { -0.1 });
        let vol = SamplingVolume::new(&image, &label, &body, -0.2).unwrap().with_border(&label, &body, 3.0, 0.75).unwrap();
        assert!(vol.border_voxels() > 0);
        let p = [PathwayInput { factor: 1, input: 1 }];
        let b = sample_batch(std::slice::from_ref(&vol), 400, 1, &p, 0.0, &mut SplitMix64(8)).unwrap();
        assert_eq!(b.liver_centred, 0);
        assert!((270..330).contains(&b.border_centred), "{} of 400 near the liver", b.border_centred);
        // Every centre drawn from the border zone is background within 3 mm of the cube.
        for &c in &vol.border {
            let (i, j, k) = ((c % 30) as i64, ((c / 30) % 30) as i64, (c / 900) as i64);
            let dist = [i, j, k].iter().map(|&v| if v < 5 { 5 - v } else if v > 11 { v - 11 } else { 0 }).max().unwrap();
            assert!((1..=3).contains(&dist) && i < 25, "({i},{j},{k})");
        }
        assert!(SamplingVolume::new(&image, &label, &body, -0.2).unwrap().with_border(&label, &body, 3.0, 1.5).is_err());
    }

    #[test]
    fn hard_examples_take_their_share_of_each_class() {
        let g = Geometry::new([30, 30, 30], [1.0; 3], [0.0; 3], IDENTITY).unwrap();
        let cube = |[i, j, k]: [usize; 3]| [i, j, k].iter().all(|v| (5..12).contains(v));
        let label = Volume::from_fn(g.clone(), |p| u8::from(cube(p)));
        let body = Volume::from_fn(g.clone(), |[i, _, _]| u8::from(i < 25));
        let image = Volume::from_fn(g.clone(), |p| if cube(p) { 0.1 } else { -0.1 });
        // The "model" misses the cube's corner slab z = 5 and takes a far
        // blob (x in 18..22) for liver; a hard voxel outside the body is ignored.
        let hard = Volume::from_fn(g.clone(), |[i, j, k]| u8::from((cube([i, j, k]) && k == 5) || ((18..22).contains(&i) && (18..22).contains(&j) && (18..22).contains(&k)) || i == 28));
        let plain = SamplingVolume::new(&image, &label, &body, -0.2).unwrap();
        let vol = SamplingVolume::new(&image, &label, &body, -0.2).unwrap().with_hard(&hard, &label, &body, 0.5).unwrap();
        assert_eq!(vol.hard_voxels(), (49, 64));
        let p = [PathwayInput { factor: 1, input: 1 }];
        let b = sample_batch(std::slice::from_ref(&vol), 800, 1, &p, 0.5, &mut SplitMix64(3)).unwrap();
        assert!((340..460).contains(&b.hard_centred), "{} of 800 on hard examples", b.hard_centred);
        assert!((340..460).contains(&b.liver_centred), "{}", b.liver_centred);
        // The mask must not change the class a patch is labelled with: centre
        // labels are 1 exactly for the liver-centred patches.
        assert_eq!(b.labels.iter().filter(|&&l| l == 1.0).count(), b.liver_centred);
        // Share 0 (or an empty mask) draws exactly what a volume without hard examples draws.
        let off = SamplingVolume::new(&image, &label, &body, -0.2).unwrap().with_hard(&hard, &label, &body, 0.0).unwrap();
        let none = SamplingVolume::new(&image, &label, &body, -0.2).unwrap().with_hard(&Volume::filled(g, 0u8), &label, &body, 0.9).unwrap();
        let want = sample_batch(std::slice::from_ref(&plain), 64, 1, &p, 0.5, &mut SplitMix64(4)).unwrap();
        for v in [off, none] {
            let got = sample_batch(std::slice::from_ref(&v), 64, 1, &p, 0.5, &mut SplitMix64(4)).unwrap();
            assert_eq!((got.labels, got.inputs, got.hard_centred), (want.labels.clone(), want.inputs.clone(), 0));
        }
        assert!(plain.with_hard(&hard, &label, &body, 1.5).is_err());
    }
}
