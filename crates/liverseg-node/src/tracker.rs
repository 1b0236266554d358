//! Which series are complete: per series, the associations still delivering to
//! it and the time of its last instance. See the crate doc for the rules.

use crate::queue::{new_job_id, unix_now, Job};
use crate::{log, Shared};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Marker in a series folder: instances there are not yet in a job.
pub const MARKER: &str = ".pending";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    calling_ae: String,
    peer_ip: Option<String>,
}

type Key = (String, String);

struct SeriesState {
    /// Associations that delivered to this series and are still open.
    open: BTreeSet<u64>,
    last_instance: Instant,
    caller: Marker,
    received: usize,
}

pub struct Tracker {
    storage: PathBuf,
    quiet: Duration,
    /// Series with instances not yet in a job.
    dirty: BTreeMap<Key, SeriesState>,
    by_association: BTreeMap<u64, BTreeSet<Key>>,
}

impl Tracker {
    pub fn new(storage: PathBuf, quiet: Duration) -> Self {
        Tracker {
            storage,
            quiet,
            dirty: BTreeMap::new(),
            by_association: BTreeMap::new(),
        }
    }

    fn series_dir(&self, key: &Key) -> PathBuf {
        self.storage.join(&key.0).join(&key.1)
    }

    /// Series left with a marker by a previous run: ready after the quiet period.
    pub fn recover(&mut self) -> usize {
        let Ok(studies) = std::fs::read_dir(&self.storage) else {
            return 0;
        };
        for study in studies.flatten() {
            let study_uid = study.file_name().to_string_lossy().to_string();
            if !crate::dimse::is_valid_uid(&study_uid) {
                continue; // tmp/, queue/, results/
            }
            let Ok(series) = std::fs::read_dir(study.path()) else {
                continue;
            };
            for s in series.flatten() {
                let marker = s.path().join(MARKER);
                let Ok(bytes) = std::fs::read(&marker) else {
                    continue;
                };
                let caller = serde_json::from_slice(&bytes).unwrap_or(Marker {
                    calling_ae: String::new(),
                    peer_ip: None,
                });
                let key = (
                    study_uid.clone(),
                    s.file_name().to_string_lossy().to_string(),
                );
                self.dirty.insert(
                    key,
                    SeriesState {
                        open: BTreeSet::new(),
                        last_instance: Instant::now(),
                        caller,
                        received: 0,
                    },
                );
            }
        }
        self.dirty.len()
    }

    /// A complete instance was stored in the series folder.
    pub fn instance_stored(
        &mut self,
        association: u64,
        study: &str,
        series: &str,
        calling_ae: &str,
        peer_ip: Option<String>,
    ) {
        let key = (study.to_string(), series.to_string());
        let caller = Marker {
            calling_ae: calling_ae.to_string(),
            peer_ip,
        };
        if !self.dirty.contains_key(&key) {
            let text = serde_json::to_vec(&caller).unwrap_or_default();
            let path = self.series_dir(&key).join(MARKER);
            if let Err(e) = liverseg_io::atomic::write_atomic(&path, |w| w.write_all(&text)) {
                log(&format!("cannot write {}: {e} (series will still be processed unless the node restarts first)", path.display()));
            }
        }
        let st = self
            .dirty
            .entry(key.clone())
            .or_insert_with(|| SeriesState {
                open: BTreeSet::new(),
                last_instance: Instant::now(),
                caller: caller.clone(),
                received: 0,
            });
        st.open.insert(association);
        st.last_instance = Instant::now();
        st.caller = caller;
        st.received += 1;
        self.by_association
            .entry(association)
            .or_default()
            .insert(key);
    }

    /// The association ended. Released: its series whose other deliverers are done
    /// are queued. Aborted: nothing is queued.
    pub fn association_ended(&mut self, association: u64, released: bool, shared: &Shared) {
        let keys = self.by_association.remove(&association).unwrap_or_default();
        for key in keys {
            let Some(st) = self.dirty.get_mut(&key) else {
                continue;
            };
            st.open.remove(&association);
            if released && st.open.is_empty() {
                self.enqueue(&key, "association released", shared);
            } else if !released {
                log(&format!(
                    "series {}: association aborted; {} complete instance(s) kept, not processed until a released association or {} s without new instances",
                    key.1,
                    st.received,
                    self.quiet.as_secs_f64()
                ));
            }
        }
    }

    /// Series quiet for the quiet period are queued.
    pub fn tick(&mut self, shared: &Shared) {
        let due: Vec<Key> = self
            .dirty
            .iter()
            .filter(|(_, st)| st.last_instance.elapsed() >= self.quiet)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.enqueue(&key, "quiet period elapsed", shared);
        }
    }

    fn enqueue(&mut self, key: &Key, why: &str, shared: &Shared) {
        let Some(st) = self.dirty.remove(key) else {
            return;
        };
        let dir = self.series_dir(key);
        let instances = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".dcm"))
                    .count()
            })
            .unwrap_or(0);
        if shared.queue.has_pending(&key.1) {
            log(&format!(
                "series {} ({instances} instance(s)) ready ({why}); a job for it is already queued",
                key.1
            ));
        } else {
            let job = Job {
                id: new_job_id(),
                study_uid: key.0.clone(),
                series_uid: key.1.clone(),
                series_dir: PathBuf::from(&key.0).join(&key.1),
                calling_ae: st.caller.calling_ae.clone(),
                peer_ip: st.caller.peer_ip.clone(),
                instances,
                created_unix_s: unix_now(),
                attempts: 0,
                processor: None,
                sent: Vec::new(),
                destination: None,
                send_errors: Vec::new(),
                error: None,
                skipped: None,
            };
            if let Err(e) = shared.queue.submit(&job) {
                // Keep it dirty: the next tick tries again.
                log(&format!("series {}: cannot queue: {e}", key.1));
                self.dirty.insert(key.clone(), st);
                return;
            }
            log(&format!(
                "series {} ({instances} instance(s)) ready ({why}): job {}",
                key.1, job.id
            ));
            shared.notify_work();
        }
        // Only once the job file exists: a crash in between leaves the marker, and
        // the series is queued again at start (at worst processed twice, never lost).
        let _ = std::fs::remove_file(dir.join(MARKER));
    }
}

pub fn timer(shared: Arc<Shared>) {
    while !shared.stopping() {
        std::thread::sleep(Duration::from_millis(200));
        let mut t = shared.tracker.lock().unwrap_or_else(|e| e.into_inner());
        t.tick(&shared);
    }
}
