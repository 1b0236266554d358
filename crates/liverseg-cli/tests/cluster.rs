//! Batch work across processes and machines, driving the real binary:
//! `segment --shard` over a manifest, two tasks given the same shard, the
//! `summary` command, and a real single-node Slurm (munged, slurmctld and
//! slurmd started here) running `deploy/slurm/segment-array.sbatch` as a job
//! array, cancelled with `scancel` mid-run and resubmitted.
//!
//! The Slurm test needs root and Debian's `slurm-wlm` and `munge` (`.ci/run`
//! installs them and sets LIVERSEG_REQUIRE_SLURM=1, so that in CI it must run,
//! not skip).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_liverseg")
}

/// `args`, with `--flip-average off --scale-average 1` after a `segment`
/// command: these tests are about how tasks share a list, not about the
/// contour, and one network pass instead of `segment`'s default twelve
/// (four flips on three grids) keeps them short.
fn one_pass<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    if v.first() == Some(&"segment") {
        v.extend(["--flip-average", "off", "--scale-average", "1"]);
    }
    v
}

fn liverseg(args: &[&str]) -> Output {
    Command::new(bin()).args(one_pass(args)).output().expect("binary runs")
}

fn spawn(args: &[&str]) -> Child {
    Command::new(bin())
        .args(one_pass(args))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` small phantoms (coarse grid, same anatomy) and a CSV manifest of them.
fn phantoms(dir: &Path, n: usize) -> PathBuf {
    let mut csv = String::from("case,ct\n");
    for i in 1..=n {
        let folder = dir.join(format!("ph{i}"));
        let o = liverseg(&[
            "phantom", "-o", s(&folder), "--seed", &i.to_string(), "--dims", "96,80,36", "--spacing", "3.6,3.6,6",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        csv.push_str(&format!("case{i},ph{i}/ct.nii.gz\n"));
    }
    let manifest = dir.join("cases.csv");
    std::fs::write(&manifest, csv).unwrap();
    manifest
}

/// Every event of every task log under `out/.tasks`.
fn events(out: &Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let Ok(dir) = std::fs::read_dir(out.join(".tasks")) else { return all };
    for e in dir {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        all.extend(text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()));
    }
    all
}

/// How many times each case was segmented and written (status "ok").
fn computed(out: &Path) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for e in events(out) {
        if e["event"] == "case" && e["status"] == "ok" {
            *n.entry(e["case"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    n
}

fn complete(out: &Path, case: &str) -> bool {
    ["liver.nii.gz", "overview.png", "report.json"].iter().all(|f| out.join(case).join(f).is_file())
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("case{i}")).collect()
}

#[test]
fn shards_cover_the_list_and_two_tasks_on_one_shard_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantoms(dir.path(), 4);
    let m = s(&manifest);

    // Two tasks of a 2-task array, at the same time, into one folder.
    let out = dir.path().join("out");
    let tasks: Vec<Child> = ["1/2", "2/2"]
        .iter()
        .map(|k| spawn(&["segment", "--manifest", m, "-o", s(&out), "--shard", k]))
        .collect();
    for t in tasks {
        let o = t.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("of 4 cases"), "{}", text(&o.stderr));
    }
    let once: BTreeMap<String, usize> = names(4).into_iter().map(|n| (n, 1)).collect();
    assert_eq!(computed(&out), once);
    for c in names(4) {
        assert!(complete(&out, &c), "{c}");
        assert!(!out.join(&c).join(".liverseg-lock").exists(), "lock left in {c}");
    }
    // Round-robin slices: task 1 took cases 1 and 3.
    let t1 = std::fs::read_to_string(out.join(".tasks/1.jsonl")).unwrap();
    assert!(t1.contains("\"case1\"") && t1.contains("\"case3\"") && !t1.contains("\"case2\""), "{t1}");

    // The cohort table.
    let o = liverseg(&["summary", s(&out), "--manifest", m, "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["counts"]["done"], 4);
    assert_eq!(summary["counts"]["missing"], 0);
    assert!(summary["cases"][0]["liver_volume_ml"].as_f64().unwrap() > 100.0);
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("case,status,liver_volume_ml"), "{csv}");

    // A task killed after writing case2's last output but before removing its
    // lock (scancel's window; it once failed CI) leaves a complete case with a
    // lock: the next run skips the case and clears that lock once its holder
    // is stale, while a live holder's fresh lock on case4 stays.
    let lock_of = |holder: &str| {
        format!(r#"{{"host":"another-node","pid":7,"task":"2/2","job":"9","since_unix_s":0.0,"token":"{holder}"}}"#)
    };
    let stale = out.join("case2").join(".liverseg-lock");
    std::fs::write(&stale, lock_of("killed")).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(an_hour_ago).unwrap();
    let live = out.join("case4").join(".liverseg-lock");
    std::fs::write(&live, lock_of("working")).unwrap();

    // Resubmitted: nothing is recomputed.
    let o = liverseg(&["segment", "--manifest", m, "-o", s(&out), "--shard", "2/2", "--lock-stale-after", "600"]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("0 done, 2 skipped"), "{}", text(&o.stdout));
    assert_eq!(computed(&out), once);
    assert!(!stale.exists(), "a dead holder's lock left on a finished case");
    assert!(live.exists(), "a live holder's lock removed");
    std::fs::remove_file(&live).unwrap();

    // The manifest changed between tasks: refused, nothing touched.
    let mut changed = std::fs::read_to_string(&manifest).unwrap();
    changed.push_str("case5,ph1/ct.nii.gz\n");
    let manifest2 = dir.path().join("changed.csv");
    std::fs::write(&manifest2, changed).unwrap();
    let o = liverseg(&["segment", "--manifest", s(&manifest2), "-o", s(&out), "--shard", "1/2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("manifest changed"), "{}", text(&o.stderr));
    assert!(!out.join("case5").exists());
    let o = liverseg(&["summary", s(&out)]);
    assert!(text(&o.stdout).contains("1 task(s) refused"), "{}", text(&o.stdout));

    // Two tasks given the same shard by mistake: each case written once.
    let out2 = dir.path().join("out2");
    let twins: Vec<Child> =
        (0..2).map(|_| spawn(&["segment", "--manifest", m, "-o", s(&out2), "--shard", "1/1"])).collect();
    for t in twins {
        let o = t.wait_with_output().unwrap();
        // 1 when the task found cases held by its twin.
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o.stderr));
    }
    assert_eq!(computed(&out2), once);
    for c in names(4) {
        assert!(complete(&out2, &c), "{c}");
    }
}

#[test]
fn bad_shards_are_usage_errors_and_an_empty_shard_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.csv");
    std::fs::write(&manifest, "case,ct\na,a.nii.gz\nb,b.nii.gz\n").unwrap();
    let out = dir.path().join("out");
    for (shard, why) in [("0/2", "counted from 1"), ("3/2", "does not exist"), ("1/0", "at least 1"), ("x", "K/N")] {
        let o = liverseg(&["segment", "--manifest", s(&manifest), "-o", s(&out), "--shard", shard]);
        assert_eq!(o.status.code(), Some(2), "{shard}");
        assert!(text(&o.stderr).contains(why), "{shard}: {}", text(&o.stderr));
    }
    // Kubernetes without --shard-count, and a Slurm task outside its array.
    let o = Command::new(bin())
        .args(["segment", "--manifest", s(&manifest), "-o", s(&out)])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--shard-count"), "{}", text(&o.stderr));
    // Three tasks over two cases: the third has none, says so, succeeds.
    let o = Command::new(bin())
        .args(["segment", "--manifest", s(&manifest), "-o", s(&out)])
        .env("SLURM_ARRAY_TASK_ID", "3")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_MAX", "3")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("shard 3/3") && err.contains("no cases"), "{err}");
}

// ---------------------------------------------------------------- Slurm

/// A single-node Slurm cluster in a temporary folder; its daemons are
/// stopped by process id when dropped.
struct Slurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    pids: Vec<PathBuf>,
}

impl Slurm {
    /// Why Slurm cannot run here, or None.
    fn unavailable() -> Option<String> {
        if uid() != 0 {
            return Some("not root (slurmd must start jobs as their user)".into());
        }
        for b in ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel"] {
            if !Command::new("sh").args(["-c", &format!("command -v {b}")]).output().is_ok_and(|o| o.status.success()) {
                return Some(format!("{b} is not installed (Debian: slurm-wlm munge)"));
            }
        }
        None
    }

    fn start() -> Result<Slurm, String> {
        let dir = tempfile::Builder::new().prefix("liverseg-slurm-").tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        for sub in ["munge", "state", "spool"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        // munged refuses a key or socket folder others can write to.
        // A random key: with it munge signs who submits jobs (as root here).
        let mut key = vec![0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?, &mut key)
            .map_err(|e| e.to_string())?;
        std::fs::write(d.join("munge/munge.key"), key).map_err(|e| e.to_string())?;
        run_ok("chmod", &["700", s(&d.join("munge"))])?;
        run_ok("chmod", &["400", s(&d.join("munge/munge.key"))])?;
        let sock = d.join("munge/munge.socket");
        let conf = d.join("slurm.conf");
        let pids = vec![d.join("munge/munged.pid"), d.join("slurmctld.pid"), d.join("slurmd.pid")];
        // From here on, dropping `slurm` stops whatever has started.
        let slurm = Slurm { pids, conf: conf.clone(), dir };
        let d = slurm.dir.path();
        run_ok(
            "munged",
            &[
                "-f",
                &format!("--socket={}", s(&sock)),
                &format!("--key-file={}", s(&d.join("munge/munge.key"))),
                &format!("--log-file={}", s(&d.join("munge/munged.log"))),
                &format!("--pid-file={}", s(&d.join("munge/munged.pid"))),
                &format!("--seed-file={}", s(&d.join("munge/munged.seed"))),
            ],
        )?;
        let host = text(&Command::new("hostname").arg("-s").output().map_err(|e| e.to_string())?.stdout).trim().to_string();
        let free_port = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let (p1, p2) = (free_port().map_err(|e| e.to_string())?, free_port().map_err(|e| e.to_string())?);
        let mem_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(4096, |kb| kb / 1024 * 9 / 10);
        std::fs::write(
            &conf,
            format!(
                "ClusterName=liverseg-test\n\
                 SlurmctldHost={host}(127.0.0.1)\n\
                 SlurmUser=root\nSlurmdUser=root\n\
                 SlurmctldPort={p1}\nSlurmdPort={p2}\n\
                 AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={sock}\n\
                 StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
                 SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
                 SchedulerType=sched/backfill\nJobCompType=jobcomp/none\n\
                 AccountingStorageType=accounting_storage/none\nMpiDefault=none\n\
                 ReturnToService=2\nKillWait=5\n\
                 NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN\n\
                 PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                sock = s(&sock),
                d = s(d),
                // The machine's own count: slurmd drains a node configured
                // with more CPUs than it has.
                cpus = std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
        )
        .map_err(|e| e.to_string())?;
        slurm.daemon("slurmctld", &["-i"])?;
        // Named explicitly: slurmd would otherwise match its own idea of the
        // host name against slurm.conf.
        slurm.daemon("slurmd", &["-N", &host])?;
        // Wait for the node to be idle.
        let t0 = Instant::now();
        loop {
            let o = slurm.cmd("sinfo", &["-h", "-o", "%T"]);
            if o.as_ref().is_ok_and(|o| text(&o.stdout).trim() == "idle") {
                return Ok(slurm);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(slurm.dir.path().join("slurmd.log")).unwrap_or_default();
                return Err(format!("the node did not become idle in 60 s: {o:?}\nslurmd.log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn daemon(&self, name: &str, args: &[&str]) -> Result<(), String> {
        let o = Command::new(name).args(args).env("SLURM_CONF", &self.conf).output().map_err(|e| format!("{name}: {e}"))?;
        if !o.status.success() {
            return Err(format!("{name} did not start: {}{}", text(&o.stdout), text(&o.stderr)));
        }
        Ok(())
    }

    fn cmd(&self, name: &str, args: &[&str]) -> Result<Output, String> {
        Command::new(name).args(args).env("SLURM_CONF", &self.conf).output().map_err(|e| format!("{name}: {e}"))
    }

    /// Submit the repository's job script as an array of `tasks`.
    fn submit(&self, tasks: usize, manifest: &Path, out: &Path, log_dir: &Path) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/slurm/segment-array.sbatch");
        let o = Command::new("sbatch")
            .args([
                "--parsable",
                &format!("--array=1-{tasks}"),
                "--cpus-per-task=1",
                &format!("--output={}/%A_%a.out", s(log_dir)),
                s(&script),
            ])
            .env("SLURM_CONF", &self.conf)
            .env("MANIFEST", manifest)
            .env("OUT", out)
            .env("LIVERSEG", bin())
            .env("LIVERSEG_ARGS", "--flip-average off")
            .output()
            .unwrap();
        assert!(o.status.success(), "sbatch: {}", text(&o.stderr));
        let id = text(&o.stdout).trim().split(';').next().unwrap().to_string();
        eprintln!("slurm test: submitted job array {id} ({tasks} tasks)");
        id
    }

    /// Array tasks of `job` still known to the controller, with their state.
    fn states(&self, job: &str) -> Vec<String> {
        let o = self.cmd("squeue", &["-h", "-j", job, "-o", "%i %T"]).unwrap();
        text(&o.stdout).lines().map(str::to_string).collect()
    }

    fn wait_gone(&self, job: &str, limit: Duration) {
        let t0 = Instant::now();
        let mut last = Vec::new();
        loop {
            let now = self.states(job);
            if now != last {
                eprintln!("slurm test: job {job} at {:.0} s: {:?}", t0.elapsed().as_secs_f64(), now);
                last = now.clone();
            }
            if now.is_empty() {
                return;
            }
            assert!(t0.elapsed() < limit, "job {job} still queued after {limit:?}: {now:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for pid_file in self.pids.iter().rev() {
            if let Some(pid) = std::fs::read_to_string(pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn run_ok(cmd: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {args:?}: {}", text(&o.stderr)))
    }
}

fn uid() -> u32 {
    Command::new("id").arg("-u").output().ok().and_then(|o| text(&o.stdout).trim().parse().ok()).unwrap_or(u32::MAX)
}

#[test]
fn slurm_job_array_segments_a_manifest_and_resumes_after_scancel() {
    let required = std::env::var("LIVERSEG_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    if let Some(why) = Slurm::unavailable() {
        assert!(!required, "LIVERSEG_REQUIRE_SLURM=1 but Slurm cannot run: {why}");
        eprintln!("SKIPPED slurm_job_array_segments_a_manifest_and_resumes_after_scancel: {why}");
        return;
    }
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(why) => {
            assert!(!required, "LIVERSEG_REQUIRE_SLURM=1 but Slurm did not start: {why}");
            eprintln!("SKIPPED slurm_job_array_segments_a_manifest_and_resumes_after_scancel: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = phantoms(dir.path(), 4);
    let logs = dir.path().join("slurm-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let once: BTreeMap<String, usize> = names(4).into_iter().map(|n| (n, 1)).collect();

    // 1. The whole array, to the end.
    let out = dir.path().join("out");
    let job = slurm.submit(2, &manifest, &out, &logs);
    slurm.wait_gone(&job, Duration::from_secs(900));
    for c in names(4) {
        assert!(complete(&out, &c), "{c}: {:?}", std::fs::read_dir(&logs).map(|d| d.count()));
    }
    assert_eq!(computed(&out), once);
    let per_task: Vec<(String, usize)> = ["1", "2"]
        .iter()
        .map(|k| {
            let t = std::fs::read_to_string(out.join(format!(".tasks/{k}.jsonl"))).unwrap();
            (k.to_string(), t.matches("\"status\":\"ok\"").count())
        })
        .collect();
    eprintln!("slurm test: cases done per task: {per_task:?}");
    assert_eq!(per_task, [("1".to_string(), 2), ("2".to_string(), 2)]);
    let o = liverseg(&["summary", s(&out), "--manifest", s(&manifest)]);
    eprintln!("slurm test: summary: {}", text(&o.stdout).trim());
    assert!(o.status.success() && text(&o.stdout).contains("4 cases: 4 done"), "{}", text(&o.stdout));
    // The task logs know their Slurm job.
    assert!(events(&out).iter().any(|e| e["event"] == "start" && e["job"].as_str().is_some_and(|j| j.starts_with(&job))));

    // 2. Cancelled mid-run, then resubmitted.
    let out2 = dir.path().join("out2");
    let job2 = slurm.submit(2, &manifest, &out2, &logs);
    let t0 = Instant::now();
    while !names(4).iter().any(|c| complete(&out2, c)) {
        assert!(t0.elapsed() < Duration::from_secs(600), "no case finished: {:?}", slurm.states(&job2));
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = slurm.cmd("scancel", &[&job2]).unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    slurm.wait_gone(&job2, Duration::from_secs(120));
    let before: Vec<String> = names(4).into_iter().filter(|c| complete(&out2, c)).collect();
    eprintln!("slurm test: after scancel {job2}: complete {before:?}");
    let o = liverseg(&["summary", s(&out2), "--manifest", s(&manifest)]);
    eprintln!("slurm test: summary after scancel: {}", text(&o.stdout).trim());
    assert_eq!(o.status.code(), Some(1), "incomplete output folder must not pass");

    let job3 = slurm.submit(2, &manifest, &out2, &logs);
    slurm.wait_gone(&job3, Duration::from_secs(900));
    for c in names(4) {
        assert!(complete(&out2, &c), "{c}");
        assert!(!out2.join(&c).join(".liverseg-lock").exists(), "lock left in {c}");
    }
    // No case computed twice: those finished before the cancel were skipped,
    // the others computed once after it. A case finished before the cancel may
    // lack its "ok" line: the kill can fall between its last output and the
    // log line (as between the output and the unlock, above).
    let counts = computed(&out2);
    for c in names(4) {
        let n = counts.get(&c).copied().unwrap_or(0);
        let expected = if before.contains(&c) { 0..=1 } else { 1..=1 };
        assert!(expected.contains(&n), "{c} computed {n} times: {counts:?} (finished before scancel: {before:?})");
    }
    let skipped: Vec<String> = events(&out2)
        .iter()
        .filter(|e| e["event"] == "case" && e["status"] == "skipped")
        .map(|e| e["case"].as_str().unwrap().to_string())
        .collect();
    eprintln!("slurm test: resubmission {job3} skipped {skipped:?}");
    for c in &before {
        assert!(skipped.contains(c), "{c} was finished before scancel but not skipped");
    }
    let o = liverseg(&["summary", s(&out2), "--manifest", s(&manifest)]);
    eprintln!("slurm test: summary after resubmission: {}", text(&o.stdout).trim());
    assert!(o.status.success() && text(&o.stdout).contains("4 cases: 4 done"), "{}", text(&o.stdout));
}
