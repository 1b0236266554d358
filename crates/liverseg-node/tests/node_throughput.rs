//! Receive throughput (not run by default: `cargo test -p liverseg-node
//! --test node_throughput -- --ignored --nocapture`). Sends 200 uncompressed
//! 512x512 CT slices (100 MiB) with storescu and reports the time until the
//! series is stored and queued, and the same transfer to dcmtk's storescp.

mod common;

use common::*;
use liverseg_node::ReplyTo;
use std::time::{Duration, Instant};

#[test]
#[ignore]
fn receive_throughput_200_slices_512() {
    require_dcmtk!();
    let tmp = tempfile::tempdir().unwrap();
    // One slice from the phantom writer, copied with new UIDs and positions is
    // more work than writing 200 slices directly; write them directly.
    let ct = write_ct_series_dims(
        &tmp.path().join("ct"),
        "1.2.826.0.1.3680043.10.1137.970",
        [512, 512, 200],
    );
    let storage = tmp.path().join("storage");
    let mut cfg = config(&storage, ReplyTo::Nowhere);
    cfg.concurrency = 0;
    let node = start(cfg);
    let t = Instant::now();
    let out = storescu(
        "SENDER",
        "LIVERSEG",
        node.local_addr().port(),
        &ct.files,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    wait_for("the job", Duration::from_secs(300), || {
        jobs(&storage, "pending").len() == 1
    });
    let s = t.elapsed().as_secs_f64();
    let mib = ct
        .files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum::<u64>() as f64
        / (1 << 20) as f64;
    eprintln!(
        "received {} instances, {mib:.1} MiB in {s:.2} s: {:.1} MiB/s, {:.0} instances/s",
        ct.files.len(),
        mib / s,
        ct.files.len() as f64 / s
    );
    assert_eq!(stored_instances(&storage, &ct).len(), 200);
    node.shutdown();

    // Baseline on the same machine: dcmtk to dcmtk (storescp, no fsync, no queue).
    let scp = StoreScp::start(&tmp.path().join("baseline"), "BASE");
    let t = Instant::now();
    let out = storescu("SENDER", "BASE", scp.port, &ct.files, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let b = t.elapsed().as_secs_f64();
    eprintln!(
        "baseline storescu -> storescp: {b:.2} s: {:.1} MiB/s",
        mib / b
    );
}
