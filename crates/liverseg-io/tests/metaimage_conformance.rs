//! Every MetaImage in ../shared/corpora read by liverseg agrees with SimpleITK's
//! reading in readings.json: size, spacing, origin, direction, dtype, min, max,
//! mean, centre voxel and sha256 of the array (SimpleITK's z,y,x C-order array is
//! our x-fastest voxel order, so the bytes are the same).

use liverseg_io::{metaimage, read_image, Format, ReadOptions};
use sha2::{Digest, Sha256};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn every_corpus_metaimage_matches_simpleitk() {
    let Some(readings_path) = liverseg_testdata::require_shared!("corpora/readings.json") else { return };
    let corpora = readings_path.parent().unwrap();
    let readings: serde_json::Value = serde_json::from_slice(&std::fs::read(&readings_path).unwrap()).unwrap();
    let mut checked = Vec::new();
    for (rel, entry) in readings.as_object().unwrap() {
        if entry["kind"] != "metaimage" {
            continue;
        }
        let r = &entry["read"];
        assert!(r.get("error").is_none(), "{rel}: SimpleITK failed on it, update this test");
        let out = metaimage::read(&corpora.join(rel), &ReadOptions::default()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(out.info.format, Format::MetaImage);
        let v = &out.volume;
        let g = v.geometry();

        let size: Vec<usize> = r["size_xyz"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let n = size.len();
        let mut expected_dims = [1usize; 3];
        expected_dims[..n].copy_from_slice(&size);
        assert_eq!(g.dims(), expected_dims, "{rel}: dims");

        let spacing = f64s(&r["spacing"]);
        let origin = f64s(&r["origin"]);
        let direction = f64s(&r["direction"]);
        for i in 0..n {
            assert!(close(g.spacing()[i], spacing[i], 1e-12), "{rel}: spacing {:?} vs {spacing:?}", g.spacing());
            assert!(close(g.origin()[i], origin[i], 1e-12), "{rel}: origin {:?} vs {origin:?}", g.origin());
            for j in 0..n {
                assert!(
                    close(g.direction()[i][j], direction[i * n + j], 1e-12),
                    "{rel}: direction {:?} vs {direction:?}",
                    g.direction()
                );
            }
        }

        let a = &r["array_zyx"];
        assert_eq!(v.dtype().name(), a["dtype"].as_str().unwrap(), "{rel}: dtype");
        let (lo, hi) = v.min_max_f64().unwrap();
        assert_eq!(lo, a["min"].as_f64().unwrap(), "{rel}: min");
        assert_eq!(hi, a["max"].as_f64().unwrap(), "{rel}: max");
        let len = g.len();
        let mean = (0..len).map(|i| v.value_f64(i)).sum::<f64>() / len as f64;
        assert!((mean - a["mean"].as_f64().unwrap()).abs() < 1e-5, "{rel}: mean {mean}");

        let zyx: Vec<usize> = a["center_index"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let mut ijk = [0usize; 3];
        for (axis, &idx) in zyx.iter().rev().enumerate() {
            ijk[axis] = idx;
        }
        let center = v.value_f64(g.offset(ijk[0], ijk[1], ijk[2]));
        assert_eq!(center, a["center_value"].as_f64().unwrap(), "{rel}: centre voxel");

        let mut hasher = Sha256::new();
        liverseg_volume::dyn_dispatch!(v, vol => for x in vol.data() { hasher.update(x.to_le_bytes()) });
        let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, a["sha256_le_c_order"].as_str().unwrap(), "{rel}: sha256");
        checked.push(rel.clone());
    }
    eprintln!("checked {} MetaImage files against SimpleITK: {checked:?}", checked.len());
    assert!(checked.len() >= 15, "expected the 15 MetaImage corpus entries, found {}", checked.len());
}

/// The elastix example masks' .raw files are 12 bytes longer than DimSize needs;
/// ITK ignores the surplus and so must we (without a warning storm).
#[test]
fn longer_raw_payload_is_tolerated() {
    let Some(p) = liverseg_testdata::require_shared!("corpora/elastix/dox/exampleinput/mask_fixed.mhd") else { return };
    let raw = p.with_extension("raw");
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 256 * 256 + 12);
    let out = metaimage::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(out.volume.geometry().dims(), [256, 256, 1]);
}

/// Data file names with parentheses and commas, read through the generic entry point.
#[test]
fn odd_data_file_names_through_read_image() {
    let Some(p) = liverseg_testdata::require_shared!("corpora/elastix/Testing/Data/2D_2x2_square_object_at_(1,3).mhd")
    else {
        return;
    };
    let out = read_image(&p, &ReadOptions::default()).unwrap();
    assert_eq!(out.info.format, Format::MetaImage);
    assert_eq!(out.volume.geometry().dims(), [5, 6, 1]);
    // the 2x2 square sits at (1,3): x 1..=2, y 3..=4
    let g = out.volume.geometry().clone();
    for j in 0..6 {
        for i in 0..5 {
            let inside = (1..=2).contains(&i) && (3..=4).contains(&j);
            assert_eq!(out.volume.value_f64(g.offset(i, j, 0)), if inside { 1.0 } else { 0.0 }, "({i},{j})");
        }
    }
}

/// niivue's mha.mha has TransformMatrix 1 0 0 0 -1 0 0 0 1 and AnatomicalOrientation
/// RPI, which agree: no warning; world coordinates follow the flipped y axis.
#[test]
fn flipped_axis_world_coordinates() {
    let Some(p) = liverseg_testdata::require_shared!("corpora/niivue/demos/images/mha.mha") else { return };
    let out = metaimage::read(&p, &ReadOptions::default()).unwrap();
    assert!(out.info.warnings.is_empty(), "{:?}", out.info.warnings);
    let g = out.volume.geometry();
    let w = g.index_to_world([0.0, 10.0, 0.0]);
    assert!((w[1] - (82.37950000000001 - 10.0 * 3.437500000000001)).abs() < 1e-9, "{w:?}");
    assert_eq!(out.info.details["anatomical_orientation"], "RPI");
}
