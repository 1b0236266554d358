//! The model file: one self-describing file holding the network config (with
//! its pre-processing), the decision threshold, a training summary and the
//! weights, so `segment --model FILE` needs nothing else.
//!
//! Layout: the 8-byte magic `LSMODEL1`, the JSON header length (u64 little
//! endian), the JSON header ([`ModelInfo`]), then the weights as a burnpack
//! (burn's own format, which reloads exactly). Written atomically.

use std::path::Path;

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::config::NetworkConfig;
use crate::network::DeepMedic;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"LSMODEL1";
/// Headers are small; anything larger is a corrupt or foreign file.
const MAX_HEADER: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Stable identifier written into every report (preset + weight hash).
    pub id: String,
    pub network: NetworkConfig,
    /// Probability threshold chosen by the threshold search (0.5 if none).
    pub threshold: f32,
    /// Free-form training summary: data, epochs, validation DSC, time.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// Serialise a network and its description into model-file bytes.
pub fn to_bytes(net: &DeepMedic, info: &ModelInfo) -> Result<Vec<u8>> {
    let mut store = BurnpackStore::from_bytes(None);
    net.valid().save_into(&mut store).map_err(|e| Error::Model(format!("cannot serialise weights: {e}")))?;
    let weights = store.get_bytes().map_err(|e| Error::Model(format!("cannot serialise weights: {e}")))?;
    let header = serde_json::to_vec(info).map_err(|e| Error::Model(e.to_string()))?;
    let mut out = Vec::with_capacity(16 + header.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&weights);
    Ok(out)
}

/// Write a model file atomically.
pub fn save(path: &Path, net: &DeepMedic, info: &ModelInfo) -> Result<()> {
    let bytes = to_bytes(net, info)?;
    liverseg_io::atomic::write_atomic(path, |w| w.write_all(&bytes))?;
    Ok(())
}

/// Write a model made from other model files (an average, a recalibration)
/// atomically, with the id `liverseg-<network>-<kind>-<hash of the file>`;
/// returns its description.
pub fn save_derived(path: &Path, net: &DeepMedic, network: NetworkConfig, threshold: f32, training: serde_json::Value, kind: &str) -> Result<ModelInfo> {
    let provisional = ModelInfo { id: String::new(), network, threshold, training };
    let hash = weights_hash(&to_bytes(net, &provisional)?);
    let info = ModelInfo { id: format!("liverseg-{}-{kind}-{hash}", provisional.network.name), ..provisional };
    save(path, net, &info)?;
    Ok(info)
}

/// Parse model-file bytes; `origin` names the file in errors.
pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> Result<(DeepMedic, ModelInfo)> {
    let bad = |m: &str| Error::Model(format!("{origin}: {m}"));
    let (info, header_end) = parse_header(bytes, bytes.len() as u64, origin)?;
    let weights = &bytes[header_end..];
    let mut net = DeepMedic::new(&info.network, device);
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(weights.to_vec())));
    net.load_from(&mut store).map_err(|e| bad(&format!("weights do not match the network: {e}")))?;
    Ok((net, info))
}

/// The header of model-file bytes (`prefix` may be only the start of a file
/// of `file_len` bytes) and where the weights begin.
fn parse_header(prefix: &[u8], file_len: u64, origin: &str) -> Result<(ModelInfo, usize)> {
    let bad = |m: &str| Error::Model(format!("{origin}: {m}"));
    if prefix.len() < 16 || &prefix[..8] != MAGIC {
        return Err(bad("not a liverseg model file (magic LSMODEL1 missing)"));
    }
    let len = u64::from_le_bytes(prefix[8..16].try_into().expect("8 bytes"));
    if len > MAX_HEADER || 16 + len > file_len || 16 + len > prefix.len() as u64 {
        return Err(bad("header length is larger than the file"));
    }
    let header = &prefix[16..16 + len as usize];
    let info: ModelInfo = serde_json::from_slice(header).map_err(|e| bad(&format!("header is not valid: {e}")))?;
    info.network.validate().map_err(|e| bad(&e.to_string()))?;
    Ok((info, 16 + len as usize))
}

/// Whether a file starts with the model magic: tells a model file from an
/// image before deciding how to read it (a corrupt model is still a model).
pub fn is_model_file(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok() && &magic == MAGIC
}

/// A model file's description alone (no weights built): for `info` and
/// scripts that need the threshold or the training summary.
pub fn read_info(path: &Path) -> Result<ModelInfo> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::file(path, e))?.len();
    let mut prefix = Vec::new();
    (&mut f).take(16).read_to_end(&mut prefix).map_err(|e| Error::file(path, e))?;
    let len = if prefix.len() == 16 { u64::from_le_bytes(prefix[8..16].try_into().expect("8 bytes")).min(MAX_HEADER + 1) } else { 0 };
    // Read no more than the header claims (bounded), so a huge or foreign
    // file is not read whole; parse_header then judges the length.
    let want = len.min(file_len.saturating_sub(16));
    f.take(want).read_to_end(&mut prefix).map_err(|e| Error::file(path, e))?;
    Ok(parse_header(&prefix, file_len, &path.display().to_string())?.0)
}

pub fn load(path: &Path, device: &Device) -> Result<(DeepMedic, ModelInfo)> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    from_bytes(&bytes, &path.display().to_string(), device)
}

/// Several model files that must share one network config (an ensemble, a
/// weight average): loaded in order; a file of another config is refused with
/// its name and the first file's. `purpose` ends the refusal ("an ensemble
/// averages models of one network").
pub fn load_same_network(paths: &[std::path::PathBuf], device: &Device, purpose: &str) -> Result<Vec<(DeepMedic, ModelInfo)>> {
    load_matching(paths, device, purpose, |a, b| a == b, "another network config")
}

/// Model files whose networks read a CT alike ([`NetworkConfig::reads_like`]):
/// an ensemble may mix widths, not grids, pre-processing or receptive fields.
pub fn load_same_inputs(paths: &[std::path::PathBuf], device: &Device, purpose: &str) -> Result<Vec<(DeepMedic, ModelInfo)>> {
    load_matching(paths, device, purpose, NetworkConfig::reads_like, "a network that reads the CT differently (grid, pre-processing, tile or receptive field)")
}

fn load_matching(
    paths: &[std::path::PathBuf],
    device: &Device,
    purpose: &str,
    matches: impl Fn(&NetworkConfig, &NetworkConfig) -> bool,
    mismatch: &str,
) -> Result<Vec<(DeepMedic, ModelInfo)>> {
    let Some(first) = paths.first() else {
        return Err(Error::Config(format!("no model file given: {purpose}")));
    };
    let mut models: Vec<(DeepMedic, ModelInfo)> = Vec::with_capacity(paths.len());
    for path in paths {
        let (net, info) = load(path, device)?;
        if let Some((_, first_info)) = models.first() {
            if !matches(&info.network, &first_info.network) {
                return Err(Error::Config(format!(
                    "{}: built with {mismatch} than {} ({} against {}): {purpose}",
                    path.display(),
                    first.display(),
                    info.network.name,
                    first_info.network.name
                )));
            }
        }
        models.push((net, info));
    }
    Ok(models)
}

/// FNV-1a over the weight bytes: a short, stable id suffix.
pub fn weights_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    #[test]
    fn save_and_load_give_the_same_outputs() {
        let dev = Device::flex();
        let config = NetworkConfig::fast();
        let net = DeepMedic::new(&config, &dev).valid();
        let info = ModelInfo { id: "test".into(), network: config.clone(), threshold: 0.4, training: serde_json::json!({"epochs": 0}) };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lsm");
        save(&path, &net, &info).unwrap();
        let (back, info_back) = load(&path, &dev).unwrap();
        assert_eq!(info_back, info);
        let inputs = config.pathway_inputs(15).unwrap();
        let make = || {
            inputs
                .iter()
                .map(|p| Tensor::<5>::random([1, 1, p.input, p.input, p.input], burn::tensor::Distribution::Normal(0.0, 0.1), &dev))
                .collect::<Vec<_>>()
        };
        let x = make();
        let a = net.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let b = back.valid().forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn foreign_and_truncated_files_are_refused() {
        let dev = Device::flex();
        assert!(from_bytes(b"hello world, not a model", "x.lsm", &dev).unwrap_err().to_string().contains("x.lsm"));
        let config = NetworkConfig::fast();
        let net = DeepMedic::new(&config, &dev);
        let info = ModelInfo { id: "t".into(), network: config, threshold: 0.5, training: serde_json::Value::Null };
        let bytes = to_bytes(&net, &info).unwrap();
        assert!(from_bytes(&bytes[..bytes.len() / 2], "half.lsm", &dev).is_err());
        assert!(from_bytes(&bytes[..20], "tiny.lsm", &dev).is_err());
    }

    #[test]
    fn the_header_reads_without_the_weights() {
        let dev = Device::flex();
        let config = NetworkConfig::fast();
        let net = DeepMedic::new(&config, &dev);
        let info = ModelInfo { id: "h".into(), network: config, threshold: 0.45, training: serde_json::json!({"averaged_epochs": [3, 4]}) };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lsm");
        save(&path, &net, &info).unwrap();
        assert!(is_model_file(&path));
        assert_eq!(read_info(&path).unwrap(), info);
        // A file cut inside its header is refused with its name; one cut in
        // its weights still has a whole header.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.lsm");
        std::fs::write(&cut, &bytes[..40]).unwrap();
        assert!(is_model_file(&cut));
        let e = read_info(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.lsm") && e.contains("header length"), "{e}");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        assert_eq!(read_info(&cut).unwrap(), info);
        let other = dir.path().join("image.nii");
        std::fs::write(&other, b"\x5c\x01\x00\x00 not a model").unwrap();
        assert!(!is_model_file(&other));
        assert!(read_info(&other).unwrap_err().to_string().contains("magic"));
        assert!(!is_model_file(&dir.path().join("missing.lsm")));
    }
}
