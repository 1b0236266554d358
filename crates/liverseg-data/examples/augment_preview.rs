//! Write what training sees of one CT after augmentation, to look at a
//! family before a recipe uses it:
//!
//!     cargo run --release -p liverseg-data --example augment_preview -- \
//!         CT LIVER TRAIN.json NETWORK.json SEED OUT_DIR
//!
//! Prepares the CT as the network's config says, augments it with the
//! `augment` block of TRAIN.json and SEED, and writes `OUT_DIR/hu.nii.gz`
//! (HU on the network grid), `OUT_DIR/label.nii.gz` and what was applied.
use std::path::{Path, PathBuf};

use liverseg_data::augment::{augment, AugmentConfig};
use liverseg_io::{read_image, read_mask, write_image, ReadOptions};
use liverseg_preprocess::{prepare, PreprocessConfig};
use liverseg_volume::{DynVolume, SplitMix64};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ct, liver, train, network, seed, out] = args.as_slice() else {
        return Err("usage: augment_preview CT LIVER TRAIN.json NETWORK.json SEED OUT_DIR".into());
    };
    // Every failure names the file and the key it was reading.
    fn section<T: serde::de::DeserializeOwned>(path: &str, key: &str) -> Result<T, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?;
        let part = value.get(key).ok_or_else(|| format!("{path}: has no \"{key}\" section"))?;
        serde_json::from_value(part.clone()).map_err(|e| format!("{path}: \"{key}\": {e}"))
    }
    let augment_config: AugmentConfig = section(train, "augment")?;
    let preprocess: PreprocessConfig = section(network, "preprocess")?;
    let image = read_image(Path::new(ct), &ReadOptions::default())?.volume.to_f32();
    let (mask, _) = read_mask(Path::new(liver), Some(image.geometry()), &ReadOptions::default())?;
    let prepared = prepare(&image, Some(&mask), &preprocess)?;
    let a = augment(&prepared, &augment_config, &mut SplitMix64(seed.parse()?))?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    write_image(&out.join("hu.nii.gz"), &DynVolume::F32(a.hu))?;
    write_image(&out.join("label.nii.gz"), &DynVolume::U8(a.label))?;
    println!("{}", serde_json::to_string(&a.applied)?);
    Ok(())
}
