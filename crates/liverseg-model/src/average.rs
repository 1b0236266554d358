//! Weight averaging (stochastic weight averaging, Izmailov et al. 2018): one
//! network whose every parameter and batch-norm running statistic is the
//! element-wise mean of several checkpoints of one network config, typically
//! the last epochs of one run. Unlike an ensemble ([`crate::Segmenter::load_ensemble`])
//! it costs one network pass.
//!
//! Why: at the end of the built-in recipe the held-out result of single
//! checkpoints swings from epoch to epoch (a leak into a neighbouring organ
//! appears and disappears), and averaging the weights of one learning-rate
//! phase is the standard way to land in the middle of the region those
//! checkpoints wander through. Measured on one fold it did not help there
//! (most checkpoints leaked, so their average did: models/next/README.md);
//! it stays a tool, not part of the recipe. The batch-norm statistics are averaged too
//! rather than re-estimated: the checkpoints of one phase are close, and
//! re-estimating them would need the training data.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::checkpoint::{self, ModelInfo};
use crate::network::DeepMedic;
use crate::{Error, Result};

/// Every float tensor of a network (parameters and running statistics), in
/// visiting order.
fn floats(net: &DeepMedic) -> Result<Vec<Vec<f32>>> {
    struct Collect(Vec<Result<Vec<f32>>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data().try_to_vec::<f32>().map_err(|e| Error::Model(format!("{e:?}"))));
        }
    }
    let mut c = Collect(Vec::new());
    net.visit(&mut c);
    c.0.into_iter().collect()
}

/// The element-wise mean of networks of one config (checked by the caller:
/// the same config gives the same tensors in the same order; their sizes are
/// checked here).
pub fn average(nets: &[DeepMedic]) -> Result<DeepMedic> {
    let Some(first) = nets.first() else {
        return Err(Error::Config("averaging needs at least one network".into()));
    };
    let mut sums: Vec<Vec<f64>> = floats(first)?.into_iter().map(|t| t.into_iter().map(f64::from).collect()).collect();
    for (i, net) in nets.iter().enumerate().skip(1) {
        let tensors = floats(net)?;
        let same = tensors.len() == sums.len() && tensors.iter().zip(&sums).all(|(t, s)| t.len() == s.len());
        if !same {
            return Err(Error::Config(format!("network {} of {} has other tensors than the first: not the same network", i + 1, nets.len())));
        }
        for (s, t) in sums.iter_mut().zip(tensors) {
            s.iter_mut().zip(t).for_each(|(s, v)| *s += f64::from(v));
        }
    }
    let n = nets.len() as f64;
    let means: Vec<Vec<f32>> = sums.into_iter().map(|s| s.into_iter().map(|v| (v / n) as f32).collect()).collect();

    struct Replace(std::vec::IntoIter<Vec<f32>>);
    impl ModuleMapper for Replace {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // Same visiting order as `floats`, and one mean per tensor, checked above.
            let mean = self.0.next().expect("one mean per tensor of the network");
            param.map(|t| Tensor::from_data(TensorData::new(mean, t.shape()), &t.device()))
        }
    }
    Ok(first.clone().map(&mut Replace(means.into_iter())))
}

/// Average model files of one network config into `out` (written atomically).
/// The result's threshold is the mean of theirs; its id is the preset, `avg`,
/// the count and the weights' hash, and its training summary lists the
/// members' ids.
pub fn average_files(paths: &[PathBuf], out: &Path, device: &burn::tensor::Device) -> Result<ModelInfo> {
    let (nets, infos): (Vec<DeepMedic>, Vec<ModelInfo>) =
        checkpoint::load_same_network(paths, device, "only checkpoints of one network can be averaged")?.into_iter().unzip();
    let net = average(&nets)?;
    let threshold = infos.iter().map(|i| i.threshold).sum::<f32>() / infos.len() as f32;
    let members: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
    let training = serde_json::json!({ "weight_average_of": members });
    checkpoint::save_derived(out, &net, infos[0].network.clone(), threshold, training, &format!("avg{}", paths.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PathwayConfig;
    use crate::NetworkConfig;
    use burn::tensor::Device;

    fn tiny() -> NetworkConfig {
        NetworkConfig {
            name: "tiny".into(),
            pathways: vec![PathwayConfig { factor: 1, features: vec![3, 4] }, PathwayConfig { factor: 3, features: vec![3, 4] }],
            kernel: 3,
            residual: vec![],
            fc: vec![5],
            dropout: 0.0,
            train_patch: 3,
            infer_patch: 3,
            preprocess: Default::default(),
        }
    }

    #[test]
    fn the_average_is_the_element_wise_mean_of_every_tensor() {
        let device = Device::flex();
        let nets: Vec<DeepMedic> = (0..3).map(|_| DeepMedic::new(&tiny(), &device)).collect();
        let each: Vec<Vec<Vec<f32>>> = nets.iter().map(|n| floats(n).unwrap()).collect();
        // Batch norm's running statistics are visited too (mean 0, variance 1 at start).
        assert!(each[0].len() > 10, "{} tensors", each[0].len());
        let avg = floats(&average(&nets).unwrap()).unwrap();
        let mut differed = false;
        for (t, mean) in avg.iter().enumerate() {
            for (k, &m) in mean.iter().enumerate() {
                let want = (each[0][t][k] + each[1][t][k] + each[2][t][k]) / 3.0;
                assert!((m - want).abs() < 1e-6, "tensor {t} element {k}: {m} against {want}");
                differed |= each[0][t][k] != each[1][t][k];
            }
        }
        assert!(differed, "the random networks should differ, else the test sees nothing");
        // One network averages to itself.
        assert_eq!(floats(&average(&nets[..1]).unwrap()).unwrap(), each[0]);
    }

    #[test]
    fn files_of_another_network_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let save = |name: &str, network: NetworkConfig, threshold: f32| {
            let path = dir.path().join(name);
            let info = ModelInfo { id: name.into(), network: network.clone(), threshold, training: serde_json::Value::Null };
            checkpoint::save(&path, &DeepMedic::new(&network, &device), &info).unwrap();
            path
        };
        let a = save("a.lsm", tiny(), 0.4);
        let b = save("b.lsm", tiny(), 0.6);
        let c = save("c.lsm", NetworkConfig { fc: vec![6], ..tiny() }, 0.5);
        let out = dir.path().join("avg.lsm");
        let e = average_files(&[a.clone(), c.clone()], &out, &device).unwrap_err().to_string();
        assert!(e.contains("c.lsm") && e.contains("another network config"), "{e}");
        assert!(!out.exists(), "nothing written on a refusal");

        let info = average_files(&[a, b], &out, &device).unwrap();
        assert!(info.id.starts_with("liverseg-tiny-avg2-"), "{}", info.id);
        assert!((info.threshold - 0.5).abs() < 1e-6);
        let (_, read) = checkpoint::load(&out, &device).unwrap();
        assert_eq!(read.id, info.id);
        assert_eq!(read.training["weight_average_of"], serde_json::json!(["a.lsm", "b.lsm"]));
    }
}
