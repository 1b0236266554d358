//! The K-th of N slices of a case list, for the tasks of a job array.
//!
//! Slicing is round-robin over the list's order: case `i` (0-based) belongs
//! to shard `i mod N + 1`. Every machine computes the same slices from the
//! same list, the slices are disjoint and together hold every case, and their
//! sizes differ by at most one. (Contiguous blocks would be as balanced by
//! count; round-robin also spreads a manifest sorted by size or by site over
//! the tasks.)

use super::BatchError;
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count`, both counted from 1 as in `--shard 2/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = BatchError;

    fn from_str(s: &str) -> Result<Self, BatchError> {
        let bad = |why: &str| BatchError::Shard(format!("--shard {s:?}: {why}"));
        let (k, n) = s.split_once('/').ok_or_else(|| bad("expected K/N, e.g. 2/8"))?;
        let k: usize = k.trim().parse().map_err(|_| bad("K is not a whole number"))?;
        let n: usize = n.trim().parse().map_err(|_| bad("N is not a whole number"))?;
        Shard::new(k, n).map_err(|why| bad(&why))
    }
}

impl Shard {
    /// The whole list as one shard.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if index == 0 {
            return Err("shards are counted from 1 (1..N)".into());
        }
        if index > count {
            return Err(format!("shard {index} of {count} does not exist (K must be 1..{count})"));
        }
        Ok(Shard { index, count })
    }

    /// Positions (0-based, ascending) of this shard's cases in a list of `n`.
    pub fn select(&self, n: usize) -> Vec<usize> {
        (self.index - 1..n).step_by(self.count).collect()
    }

    /// The shard of a job array task, from its environment (`get` reads a
    /// variable; pass `|k| std::env::var(k).ok()`). Returns the shard and
    /// where it came from, or `None` outside an array task.
    ///
    /// - Slurm: `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN` and
    ///   `SLURM_ARRAY_TASK_COUNT` give K = id - min + 1 of N = count. Arrays
    ///   with gaps (`--array=1,3,8`) cannot be sliced this way and are
    ///   refused. With `shard_count` given, the task id itself is K (arrays
    ///   numbered 1..N), so that a resubmission of some tasks
    ///   (`--array=3,7`) still takes shards 3 and 7 of N.
    /// - Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` (0-based) + 1 of N =
    ///   `shard_count` (the Job's `completions`), which must be given.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        shard_count: Option<usize>,
    ) -> Result<Option<(Shard, String)>, BatchError> {
        let num = |key: &str| -> Result<Option<usize>, BatchError> {
            match get(key) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    BatchError::Shard(format!("{key}={v:?} is not a whole number"))
                }),
            }
        };
        let fail = |m: String| Err(BatchError::Shard(m));
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            if let Some(n) = shard_count {
                return match Shard::new(id, n) {
                    Ok(s) => Ok(Some((s, format!("SLURM_ARRAY_TASK_ID={id} with --shard-count {n}")))),
                    Err(why) => fail(format!(
                        "SLURM_ARRAY_TASK_ID={id} with --shard-count {n}: {why}; number the array 1-{n}"
                    )),
                };
            }
            let (Some(min), Some(count)) = (num("SLURM_ARRAY_TASK_MIN")?, num("SLURM_ARRAY_TASK_COUNT")?) else {
                return fail("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT; pass --shard K/N".into());
            };
            let contiguous = match num("SLURM_ARRAY_TASK_MAX")? {
                Some(max) => max >= min && max - min + 1 == count,
                None => true,
            };
            if id < min || id - min >= count || !contiguous {
                return fail(format!(
                    "Slurm array task {id} is not one of {count} tasks numbered from {min} without gaps; submit --array=1-N, or pass --shard K/N or --shard-count N"
                ));
            }
            let shard = Shard::new(id - min + 1, count).map_err(BatchError::Shard)?;
            return Ok(Some((
                shard,
                format!("Slurm array task {id} of tasks {min}-{}", min + count - 1),
            )));
        }
        if let Some(idx) = num("JOB_COMPLETION_INDEX")? {
            let Some(n) = shard_count else {
                return fail(format!(
                    "JOB_COMPLETION_INDEX={idx} is set: give --shard-count N (the Job's completions)"
                ));
            };
            return match Shard::new(idx + 1, n) {
                Ok(s) => Ok(Some((s, format!("JOB_COMPLETION_INDEX={idx} of {n} completions")))),
                Err(why) => fail(format!("JOB_COMPLETION_INDEX={idx} with --shard-count {n}: {why}")),
            };
        }
        match shard_count {
            Some(n) => fail(format!(
                "--shard-count {n} needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment; outside a job array pass --shard K/N"
            )),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/8".parse::<Shard>().unwrap(), Shard { index: 2, count: 8 });
        assert_eq!(" 1 / 1 ".parse::<Shard>().unwrap(), Shard::ALL);
        for (bad, why) in [
            ("0/2", "counted from 1"),
            ("3/2", "does not exist"),
            ("1/0", "at least 1"),
            ("2", "expected K/N"),
            ("a/2", "K is not"),
            ("1/-2", "N is not"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_slurm_and_kubernetes_array_tasks() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let (s, from) = Shard::from_env(&slurm, None).unwrap().unwrap();
        assert_eq!(s, Shard { index: 2, count: 4 });
        assert!(from.contains("Slurm array task 5"), "{from}");
        // A resubmitted subset keeps its shard numbers with --shard-count.
        let subset = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        assert_eq!(Shard::from_env(&subset, Some(8)).unwrap().unwrap().0, Shard { index: 3, count: 8 });
        let gaps = env(&[
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(Shard::from_env(&gaps, None).unwrap_err().to_string().contains("without gaps"));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(Shard::from_env(&k8s, Some(3)).unwrap().unwrap().0, Shard { index: 1, count: 3 });
        assert!(Shard::from_env(&k8s, None).unwrap_err().to_string().contains("--shard-count"));
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "3")]), Some(3)).is_err());
        assert!(Shard::from_env(env(&[]), None).unwrap().is_none());
        assert!(Shard::from_env(env(&[]), Some(2)).is_err());
        assert!(Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")]), None).is_err());
    }

    proptest! {
        /// Every case lands in exactly one shard, shards are balanced by count,
        /// and each shard's list is in manifest order.
        #[test]
        fn shards_are_disjoint_complete_and_balanced(n in 0usize..=200, count in 1usize..=64) {
            let mut owner = vec![0usize; n];
            let mut sizes = Vec::new();
            for k in 1..=count {
                let picked = Shard::new(k, count).unwrap().select(n);
                prop_assert!(picked.windows(2).all(|w| w[0] < w[1]));
                for &i in &picked {
                    prop_assert!(i < n);
                    owner[i] += 1;
                }
                sizes.push(picked.len());
            }
            prop_assert!(owner.iter().all(|&o| o == 1));
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(hi - lo <= 1);
            prop_assert_eq!(sizes.iter().sum::<usize>(), n);
        }
    }
}
