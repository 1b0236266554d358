//! TEST DOUBLE: [`HuWindowModel`] stands in for the network so `segment`,
//! its writers, the CLI and the demo can be built and tested without the
//! deep-learning framework or trained weights. It is NOT a liver segmentation
//! method: it calls "liver" whatever is enhanced soft tissue on the patient's
//! right, which happens to work on the portal-venous phantom and on few real
//! CTs.

use crate::{Prediction, Prepared, PreprocessConfig, ProbabilityModel};
use liverseg_imgproc::morphology::bounding_box;
use liverseg_volume::Volume;

/// Probability = soft HU window x "not too far to the patient's left".
#[derive(Debug, Clone)]
pub struct HuWindowModel {
    pub config: PreprocessConfig,
    /// Window on the pre-processed HU (portal-venous liver: ~100-130).
    pub window_hu: [f32; 2],
    /// Width of the sigmoid edges, HU.
    pub softness_hu: f32,
    /// Voxels further to the patient's left than this fraction of the body
    /// width from the body centre get probability ~0 (keeps the spleen out).
    pub left_limit: f64,
}

impl Default for HuWindowModel {
    fn default() -> Self {
        Self {
            config: PreprocessConfig::default(),
            window_hu: [80.0, 135.0],
            softness_hu: 4.0,
            left_limit: 0.2,
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl ProbabilityModel for HuWindowModel {
    fn id(&self) -> String {
        format!(
            "hu-window-test-double-{:.0}-{:.0}",
            self.window_hu[0], self.window_hu[1]
        )
    }
    fn preprocess_config(&self) -> &PreprocessConfig {
        &self.config
    }
    fn default_threshold(&self) -> f32 {
        0.5
    }
    fn predict(
        &self,
        prepared: &Prepared,
        _input: &Volume<f32>,
        _threshold: f32,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Prediction, crate::ModelError> {
        let g = prepared.hu.geometry().clone();
        let [_, _, nz] = g.dims();
        // Body centre and width along world x (LPS: +x = patient left).
        let (lo, hi) = bounding_box(&prepared.body).ok_or("no body in the image")?;
        let a = g.index_to_world([lo[0] as f64, lo[1] as f64, lo[2] as f64]);
        let b = g.index_to_world([(hi[0] - 1) as f64, (hi[1] - 1) as f64, (hi[2] - 1) as f64]);
        let (x_min, x_max) = (a[0].min(b[0]), a[0].max(b[0]));
        let cut = (x_min + x_max) / 2.0 + self.left_limit * (x_max - x_min);
        let [w0, w1] = self.window_hu;
        let s = self.softness_hu;
        let mut data = Vec::with_capacity(g.len());
        let slice = g.dims()[0] * g.dims()[1];
        let body = prepared.body.data();
        for (k, (hu_slice, body_slice)) in prepared
            .hu
            .data()
            .chunks(slice)
            .zip(body.chunks(slice))
            .enumerate()
        {
            for (n, (&h, &b)) in hu_slice.iter().zip(body_slice).enumerate() {
                let [i, j, kk] = g.index_of(k * slice + n);
                let x = g.index_to_world([i as f64, j as f64, kk as f64])[0];
                let p = sigmoid((h - w0) / s)
                    * sigmoid((w1 - h) / s)
                    * sigmoid(((cut - x) / 3.0) as f32);
                data.push(if b != 0 { p } else { 0.0 });
            }
            progress(k + 1, nz);
        }
        Ok(Volume::new(g, data).map(Prediction::from)?)
    }
}
