//! One writer per case folder across tasks and machines.
//!
//! A task takes `DIR/<case>/.liverseg-lock` by creating it exclusively
//! (`O_CREAT|O_EXCL`, atomic on local file systems and on NFS v3 and later),
//! and removes it when the case is written or has failed. A task that finds
//! the lock held skips the case ("busy"): two tasks given the same shard by
//! mistake split the cases between them instead of writing one folder twice.
//!
//! A task killed with its lock held (`scancel` after the grace period, a node
//! failure) leaves the file behind. The holder refreshes the file's
//! modification time while it works (see [`run_batch`](super::run_batch));
//! a lock is stale, and taken over, when its holder is a process of this
//! machine that no longer runs, or when it has not been refreshed for the
//! stale time (holders on other machines). Take-over renames the stale file
//! away first, so of two tasks taking over at once only one gets the lock.
//! A holder killed after its case's last write leaves a complete case that
//! later runs skip; they clear its stale lock as they skip it
//! ([`CaseLock::clear_stale`]).
//! The case's outputs are written as a group and `report.json` last
//! ([`write_outputs`](crate::write_outputs)), so even a case computed twice
//! (a holder that stalled longer than the stale time) stays a complete set.

use super::{host_name, unix_now};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const LOCK_FILE: &str = ".liverseg-lock";

/// Who holds a lock (the file's content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// The task, e.g. "2/8", and the scheduler's job id when there is one.
    pub task: Option<String>,
    pub job: Option<String>,
    pub since_unix_s: f64,
    /// Distinguishes this holder from an earlier one with the same pid.
    pub token: String,
}

impl Holder {
    /// This process, as task `task` of job `job`.
    pub fn me(task: Option<String>, job: Option<String>) -> Self {
        let since = unix_now();
        let (host, pid) = (host_name(), std::process::id());
        Holder {
            token: format!("{host}-{pid}-{:x}", (since * 1e6) as u64),
            host,
            pid,
            task,
            job,
            since_unix_s: since,
        }
    }

    /// "task 2/8 (job 41) on node3, pid 1234" for messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.task {
            s.push_str(&format!("task {t} "));
        }
        if let Some(j) = &self.job {
            s.push_str(&format!("(job {j}) "));
        }
        format!("{s}on {}, pid {}", self.host, self.pid)
    }
}

/// A held case lock; dropping it removes the file if it is still ours.
#[derive(Debug)]
pub struct CaseLock {
    path: PathBuf,
    token: String,
}

/// The result of trying to take a case.
#[derive(Debug)]
pub enum Acquire {
    Acquired(CaseLock),
    /// Another live task holds it (its description).
    Busy(String),
}

impl CaseLock {
    /// Take the lock of the case folder `dir` (created if needed).
    pub fn acquire(dir: &Path, me: &Holder, stale_after: Duration) -> std::io::Result<Acquire> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOCK_FILE);
        let body = serde_json::to_vec(me).map_err(std::io::Error::other)?;
        for _ in 0..3 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(&body)?;
                    f.sync_all()?;
                    return Ok(Acquire::Acquired(CaseLock {
                        path,
                        token: me.token.clone(),
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let holder = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            let Some(age) = age else {
                continue; // removed meanwhile: try to create again
            };
            let dead_here = holder
                .as_ref()
                .is_some_and(|h| (h.host == me.host && !process_alive(h.pid)) || h.token == me.token);
            if !(dead_here || age > stale_after) {
                return Ok(Acquire::Busy(holder.map_or_else(
                    || "a task that is writing its lock".to_string(),
                    |h| h.describe(),
                )));
            }
            // Move the stale lock out of the way; only one of several tasks
            // doing this at once finds it to rename.
            let aside = dir.join(format!("{LOCK_FILE}.stale-{}", me.token));
            if std::fs::rename(&path, &aside).is_ok() {
                let _ = std::fs::remove_file(&aside);
            }
        }
        Ok(Acquire::Busy("another task taking over a stale lock".into()))
    }

    /// Remove the lock of a finished case folder `dir` if its holder is
    /// gone (dead here, or not refreshed for `stale_after`). A task killed
    /// between writing the case's last output and removing its lock leaves a
    /// complete case with a lock that later runs skip without taking, so
    /// without this it would stay for ever and `summary` would keep seeing a
    /// lock. A live holder's lock is left alone. Returns whether one was removed.
    pub fn clear_stale(dir: &Path, me: &Holder, stale_after: Duration) -> std::io::Result<bool> {
        if !dir.join(LOCK_FILE).exists() {
            return Ok(false);
        }
        match Self::acquire(dir, me, stale_after)? {
            Acquire::Acquired(lock) => {
                drop(lock);
                Ok(true)
            }
            Acquire::Busy(_) => Ok(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Show the lock's holder is alive (refresh its modification time).
    pub fn touch(path: &Path) -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_modified(SystemTime::now())
    }
}

impl Drop for CaseLock {
    fn drop(&mut self) {
        let ours = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
            .is_some_and(|h| h.token == self.token);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a process of this machine still runs. Where the system cannot
/// tell, it is assumed alive and the stale time decides.
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: u32, host: &str) -> Holder {
        Holder {
            host: host.into(),
            pid,
            task: Some("1/2".into()),
            job: Some("7".into()),
            since_unix_s: 0.0,
            token: format!("t{pid}{host}"),
        }
    }

    #[test]
    fn a_live_holder_keeps_the_case_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let case = dir.path().join("p1");
        let me = Holder::me(Some("1/2".into()), None);
        let Acquire::Acquired(lock) = CaseLock::acquire(&case, &me, Duration::from_secs(600)).unwrap() else {
            panic!("free case")
        };
        // A second task (same machine, this live process, another token).
        let other = Holder { token: "other".into(), ..me.clone() };
        match CaseLock::acquire(&case, &other, Duration::from_secs(600)).unwrap() {
            Acquire::Busy(who) => assert!(who.contains("task 1/2"), "{who}"),
            Acquire::Acquired(_) => panic!("taken twice"),
        }
        drop(lock);
        assert!(!case.join(LOCK_FILE).exists());
        assert!(matches!(
            CaseLock::acquire(&case, &other, Duration::from_secs(600)).unwrap(),
            Acquire::Acquired(_)
        ));
    }

    #[test]
    fn a_dead_local_holder_or_an_old_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::me(None, None);
        // A pid beyond Linux's pid_max: no such process.
        let dead = holder(u32::MAX - 1, &me.host);
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a").join(LOCK_FILE), serde_json::to_vec(&dead).unwrap()).unwrap();
        if cfg!(target_os = "linux") {
            assert!(matches!(
                CaseLock::acquire(&dir.path().join("a"), &me, Duration::from_secs(600)).unwrap(),
                Acquire::Acquired(_)
            ));
        }
        // Another machine's holder: busy until the lock is older than the stale time.
        let remote = holder(1, "elsewhere");
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b").join(LOCK_FILE), serde_json::to_vec(&remote).unwrap()).unwrap();
        assert!(matches!(
            CaseLock::acquire(&dir.path().join("b"), &me, Duration::from_secs(600)).unwrap(),
            Acquire::Busy(_)
        ));
        std::thread::sleep(Duration::from_millis(50));
        let Acquire::Acquired(lock) =
            CaseLock::acquire(&dir.path().join("b"), &me, Duration::from_millis(10)).unwrap()
        else {
            panic!("stale remote lock not taken over")
        };
        let now: Holder = serde_json::from_slice(&std::fs::read(lock.path()).unwrap()).unwrap();
        assert_eq!(now.token, me.token);
        assert!(std::fs::read_dir(dir.path().join("b")).unwrap().count() == 1, "no stale file left");
    }

    #[test]
    fn clearing_a_finished_case_removes_only_a_stale_lock() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::me(None, None);
        let case = dir.path().join("c");
        std::fs::create_dir_all(&case).unwrap();
        assert!(!CaseLock::clear_stale(&case, &me, Duration::from_secs(600)).unwrap(), "no lock: nothing to clear");
        assert!(!case.join(LOCK_FILE).exists(), "clearing must not leave a lock of its own");
        std::fs::write(case.join(LOCK_FILE), serde_json::to_vec(&holder(1, "elsewhere")).unwrap()).unwrap();
        assert!(!CaseLock::clear_stale(&case, &me, Duration::from_secs(600)).unwrap());
        assert!(case.join(LOCK_FILE).exists(), "a fresh lock of another machine is kept");
        std::thread::sleep(Duration::from_millis(50));
        assert!(CaseLock::clear_stale(&case, &me, Duration::from_millis(10)).unwrap());
        assert_eq!(std::fs::read_dir(&case).unwrap().count(), 0, "lock and its stale copy gone");
    }

    #[test]
    fn dropping_a_lock_someone_took_over_leaves_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::me(None, None);
        let Acquire::Acquired(lock) = CaseLock::acquire(dir.path(), &me, Duration::from_secs(1)).unwrap() else {
            panic!()
        };
        let theirs = holder(1, "elsewhere");
        std::fs::write(lock.path(), serde_json::to_vec(&theirs).unwrap()).unwrap();
        let path = lock.path().to_path_buf();
        drop(lock);
        assert!(path.exists());
    }
}
