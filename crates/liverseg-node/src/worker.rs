//! Workers: take a queued job, run the processor subprocess on the series,
//! send its `*.dcm` outputs, record everything in the job file.

use crate::queue::{Job, ProcessorRun};
use crate::scu::{send_files, Destination};
use crate::{log, ReplyTo, Shared};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(shared: Arc<Shared>) {
    while !shared.stopping() {
        if let Some(job) = shared.queue.claim() {
            process(&shared, job);
            continue;
        }
        let g = shared.work.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = shared.work.1.wait_timeout(g, Duration::from_millis(500));
    }
}

/// `{input}` and `{output}` replaced in each argument (no shell: paths with
/// spaces stay one argument).
pub fn expand(template: &[String], input: &Path, output: &Path) -> Vec<String> {
    template
        .iter()
        .map(|a| {
            a.replace("{input}", &input.to_string_lossy())
                .replace("{output}", &output.to_string_lossy())
        })
        .collect()
}

fn process(shared: &Shared, mut job: Job) {
    log(&format!(
        "job {}: series {} ({} instance(s)), attempt {}",
        job.id, job.series_uid, job.instances, job.attempts
    ));
    match run_job(shared, &mut job) {
        Ok(()) if job.skipped.is_some() => {
            log(&format!(
                "job {}: not processed: {}",
                job.id,
                job.skipped.as_deref().unwrap_or_default()
            ));
            if let Err(e) = shared.queue.finish(&job, true) {
                log(&format!("job {}: cannot record completion: {e}", job.id));
            }
        }
        Ok(()) => {
            log(&format!(
                "job {}: done, {} object(s) sent{}",
                job.id,
                job.sent.len(),
                job.destination
                    .as_ref()
                    .map(|d| format!(" to {d}"))
                    .unwrap_or_default()
            ));
            if let Err(e) = shared.queue.finish(&job, true) {
                log(&format!("job {}: cannot record completion: {e}", job.id));
            }
        }
        Err(e) => {
            log(&format!("job {}: failed: {e}", job.id));
            job.error = Some(e);
            if let Err(e) = shared.queue.finish(&job, false) {
                log(&format!("job {}: cannot record failure: {e}", job.id));
            }
        }
    }
}

fn run_job(shared: &Shared, job: &mut Job) -> Result<(), String> {
    let cfg = &shared.config;
    let input = cfg.storage.join(&job.series_dir);
    // A scout series (localizer images only) has nothing to segment: recorded
    // as done and not processed, rather than a failed job for every study that
    // comes with a scout. The reader's own scan decides; anything else (even
    // images without position) still goes to the processor, which may be a
    // custom `--run`.
    if let Ok(Some(n)) = liverseg_io::dicom::only_localizers(&input) {
        job.skipped = Some(format!(
            "no image series to segment: {n} localizer image(s) only (a scout series)"
        ));
        return Ok(());
    }
    let out_dir = cfg.storage.join("results").join(&job.id);
    let log_rel = PathBuf::from("results").join(format!("{}.log", job.id));
    // A previous attempt (before a restart) may have left partial output.
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let argv = expand(&cfg.processor, &input, &out_dir);
    let log_file = std::fs::File::create(cfg.storage.join(&log_rel))
        .map_err(|e| format!("{}: {e}", log_rel.display()))?;
    let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut cmd = Command::new(&argv[0]);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot start the processor {:?}: {e}", argv[0]))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() > cfg.processor_timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for the processor: {e}")),
        }
    };
    let outputs = dcm_files(&out_dir);
    job.processor = Some(ProcessorRun {
        command: argv,
        exit_code: status.and_then(|s| s.code()),
        seconds: started.elapsed().as_secs_f64(),
        outputs: outputs
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .collect(),
        log: log_rel.clone(),
    });
    let _ = shared.queue.update(job);
    match status {
        None => {
            return Err(format!(
                "the processor ran longer than {} s and was stopped (log: {})",
                cfg.processor_timeout.as_secs(),
                log_rel.display()
            ))
        }
        Some(s) if !s.success() => {
            return Err(format!(
                "the processor failed ({s}; log: {})",
                log_rel.display()
            ))
        }
        Some(_) => {}
    }
    // What the read found (series chosen, others beside it, reader warnings),
    // as `liverseg segment` prints it: a warning about the CT must not stay
    // inside the result folder of an unattended node.
    for line in input_lines(&out_dir) {
        log(&format!("job {}: {line}", job.id));
    }
    if outputs.is_empty() {
        return Err(format!(
            "the processor left no .dcm file in {}",
            out_dir.display()
        ));
    }
    let dest = match &cfg.reply_to {
        ReplyTo::Nowhere => return Ok(()),
        ReplyTo::Fixed(d) => d.clone(),
        ReplyTo::Caller { port } => Destination {
            ae_title: job.calling_ae.clone(),
            host: job
                .peer_ip
                .clone()
                .ok_or("the caller's address is unknown")?,
            port: *port,
        },
    };
    job.destination = Some(dest.to_string());
    let mut wait = cfg.retry_backoff;
    for attempt in 0..=cfg.send_retries {
        match send_files(
            &cfg.ae_title,
            &dest,
            &outputs,
            cfg.association_timeout.min(Duration::from_secs(60)),
        ) {
            Ok(()) => {
                job.sent = job
                    .processor
                    .as_ref()
                    .map(|p| p.outputs.clone())
                    .unwrap_or_default();
                return Ok(());
            }
            Err(e) => {
                log(&format!(
                    "job {}: send attempt {} failed: {e}",
                    job.id,
                    attempt + 1
                ));
                job.send_errors
                    .push(format!("attempt {}: {e}", attempt + 1));
                let _ = shared.queue.update(job);
                if attempt < cfg.send_retries && !shared.stopping() {
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
            }
        }
    }
    Err(format!(
        "sending to {dest} failed {} time(s)",
        cfg.send_retries + 1
    ))
}

/// A processor left running by a killed node would go on writing into a result
/// folder that the restarted node reuses for the same job; on Linux the kernel
/// kills it when the worker thread that started it dies.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe, which is all pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// The `input` block of the `report.json` that `liverseg segment` wrote into
/// `dir`, as the lines `segment` prints (`liverseg_io::InputInfo::lines`).
/// Nothing when there is no report or it has no input block (a custom `--run`,
/// an older liverseg); one line saying so when it cannot be read. The block
/// holds no patient name or ID by construction, so it may be logged.
pub(crate) fn input_lines(dir: &Path) -> Vec<String> {
    let path = dir.join("report.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
        Err(e) => return vec![format!("report.json not read ({e}): reader warnings not shown")],
    };
    let input = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(mut v) => match v.get_mut("input").map(serde_json::Value::take) {
            Some(block) => serde_json::from_value::<liverseg_io::InputInfo>(block),
            None => return vec![],
        },
        Err(e) => return vec![format!("report.json is not JSON ({e}): reader warnings not shown")],
    };
    match input {
        Ok(info) => info.lines(),
        Err(e) => vec![format!("report.json's input block not read ({e}): reader warnings not shown")],
    }
}

/// `*.dcm` files directly in `dir`, sorted by name.
fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("dcm"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_substitutes_paths_as_single_arguments() {
        let t: Vec<String> = ["seg", "{input}", "-o", "{output}", "--tag={input}/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let got = expand(&t, Path::new("/a b/in"), Path::new("/out"));
        assert_eq!(got, ["seg", "/a b/in", "-o", "/out", "--tag=/a b/in/x"]);
    }

    #[test]
    fn the_input_block_of_segments_report_becomes_log_lines() {
        let dir = tempfile::tempdir().unwrap();
        // No report (a custom processor): nothing.
        assert!(input_lines(dir.path()).is_empty());
        let report = dir.path().join("report.json");
        std::fs::write(
            &report,
            r#"{"liver_volume_ml": 1.0, "input": {"format": "dicom-series",
                "series": {"series_instance_uid": "1.2.3", "series_description": "Abdomen", "images": 20},
                "other_series": {"count": 1, "kinds": {"localizer": 1}, "series": []},
                "warnings": ["gantry tilt of 12.0 degrees kept as a sheared grid"]}}"#,
        )
        .unwrap();
        assert_eq!(
            input_lines(dir.path()),
            [
                "read DICOM series 1.2.3 \"Abdomen\" (20 images; also found: 1 localizer)",
                "reader warning: gantry tilt of 12.0 degrees kept as a sheared grid"
            ]
        );
        // A report from before the input block: nothing to say.
        std::fs::write(&report, r#"{"liver_volume_ml": 1.0}"#).unwrap();
        assert!(input_lines(dir.path()).is_empty());
        // Broken: said once, never a panic.
        std::fs::write(&report, "{\"input\": ").unwrap();
        let w = input_lines(dir.path());
        assert!(w.len() == 1 && w[0].contains("not JSON"), "{w:?}");
        std::fs::write(&report, r#"{"input": {"warnings": 3}}"#).unwrap();
        let w = input_lines(dir.path());
        assert!(w.len() == 1 && w[0].contains("input block not read"), "{w:?}");
    }
}
