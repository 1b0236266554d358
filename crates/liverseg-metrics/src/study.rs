//! The paper's inter-observer study: several named segmentation sets over the
//! same cases (e.g. the CNN, two experts' manual contours, their adjustments of
//! the CNN), every pairwise comparison, the expert scores, the time spent and
//! the regions the experts corrected; tables, box plots and a Markdown report.
//!
//! In a comparison "first vs second" the first set is `a` (the reference) and
//! the second `b`: DSC, RV = V_second / V_first, MSD = MedPy-convention
//! symmetric mean surface distance (`assd`, pooled), HD = its maximum, and
//! HD95. RV outside [0.9, 1.1] is counted per comparison, as in the paper.

use crate::cohort::{csv_field, read_csv};
use crate::evaluate::{evaluate_resampling, EvalOptions, Evaluation, MetricsError};
use crate::plot::{bar_chart, box_plot, BoxSeries};
use crate::stats::Summary;
use liverseg_io::atomic::write_atomic;
use liverseg_volume::Mask;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metrics of a comparison: (key, title, unit).
pub const STUDY_METRICS: [(&str, &str, &str); 5] =
    [("dsc", "DSC", ""), ("rv", "RV = V(second) / V(first)", ""), ("msd", "MSD (mm)", "mm"), ("hd", "HD (mm)", "mm"), ("hd95", "HD95 (mm)", "mm")];

fn study_values(e: &Evaluation) -> [Option<f64>; 5] {
    let m = e.medpy.as_ref();
    [e.dice, e.volume_ratio, m.and_then(|m| m.assd), m.and_then(|m| m.hd), m.and_then(|m| m.hd95)]
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseRow {
    pub case: String,
    /// DSC, RV, MSD, HD, HD95 (None = undefined).
    pub values: [Option<f64>; 5],
    pub resampled: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub first: String,
    pub second: String,
    pub cases: Vec<CaseRow>,
    pub summary: BTreeMap<String, Summary>,
    /// Cases with RV < 0.9 or RV > 1.1, of the cases with a defined RV.
    pub rv_outside: usize,
    pub rv_defined: usize,
}

impl Comparison {
    pub fn label(&self) -> String {
        format!("{} vs {}", self.first, self.second)
    }
}

/// Expert scores (1-5 in steps of 0.5) per reviewer.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ScoreTable {
    pub reviewers: Vec<String>,
    /// Bins 1.0, 1.5, ..., 5.0.
    pub bins: Vec<f64>,
    /// counts[reviewer][bin]
    pub counts: Vec<Vec<usize>>,
    /// Scores >= 3 ("usable after limited adjustment") per reviewer, and n.
    pub usable: Vec<(usize, usize)>,
    pub median: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeRow {
    pub reviewer: String,
    pub task: String,
    /// Minutes.
    pub minutes: Summary,
    /// Every row's minutes, for the plot (the summary is what the report shows).
    #[serde(skip)]
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagRow {
    pub region: String,
    /// Distinct cases tagged with the region by anyone.
    pub cases: usize,
    /// Percent of the study's cases.
    pub percent_of_cases: f64,
    /// Tags per reviewer.
    pub per_reviewer: BTreeMap<String, usize>,
    /// Distinct cases where the CNN missed liver in the region, leaked into
    /// it, or the tag says neither (a tags.csv without a `kind` column, or
    /// an empty kind).
    pub missed_cases: usize,
    pub leaked_cases: usize,
    pub unspecified_cases: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudyReport {
    pub sets: Vec<String>,
    pub cases: Vec<String>,
    pub comparisons: Vec<Comparison>,
    pub scores: Option<ScoreTable>,
    pub times: Option<Vec<TimeRow>>,
    pub tags: Option<Vec<TagRow>>,
    pub warnings: Vec<String>,
}

/// Where the masks come from: `load(case, set index)`; `Ok(None)` = the set has no such case.
pub trait MaskSource: Sync {
    fn load(&self, case: &str, set: usize, reference: Option<&liverseg_volume::Geometry>) -> Result<Option<Mask>, String>;
}

/// Sets given as folders of masks named by case id (see [`crate::cohort::case_id`]).
pub struct FolderSets {
    pub entries: Vec<BTreeMap<String, PathBuf>>,
}

impl FolderSets {
    pub fn new(dirs: &[PathBuf]) -> Result<Self, MetricsError> {
        Ok(Self { entries: dirs.iter().map(|d| crate::cohort::case_entries(d)).collect::<Result<_, _>>()? })
    }
    pub fn case_ids(&self) -> Vec<String> {
        self.entries.iter().flat_map(|e| e.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
    }
}

impl MaskSource for FolderSets {
    fn load(&self, case: &str, set: usize, reference: Option<&liverseg_volume::Geometry>) -> Result<Option<Mask>, String> {
        let Some(p) = self.entries[set].get(case) else { return Ok(None) };
        liverseg_io::read_mask(p, reference, &Default::default()).map(|(m, _)| Some(m)).map_err(|e| e.to_string())
    }
}

/// Every requested comparison (pairs of set indices: first, second) on every case.
pub fn compare_sets(
    sets: &[String],
    cases: &[String],
    comparisons: &[(usize, usize)],
    source: &dyn MaskSource,
    options: &EvalOptions,
    warnings: &mut Vec<String>,
) -> Vec<Comparison> {
    let mut rows: Vec<Vec<CaseRow>> = vec![Vec::new(); comparisons.len()];
    for case in cases {
        // Load each set once per case; the first mask read fixes the grid for DICOM-SEG.
        let mut masks: Vec<Option<Result<Mask, String>>> = vec![None; sets.len()];
        let needed: BTreeSet<usize> = comparisons.iter().flat_map(|&(a, b)| [a, b]).collect();
        let mut reference = None;
        for &s in &needed {
            match source.load(case, s, reference.as_ref()) {
                Ok(Some(m)) => {
                    reference.get_or_insert_with(|| m.geometry().clone());
                    masks[s] = Some(Ok(m));
                }
                Ok(None) => {}
                Err(e) => masks[s] = Some(Err(e)),
            }
        }
        for (ci, &(fa, fb)) in comparisons.iter().enumerate() {
            let row = match (&masks[fa], &masks[fb]) {
                (Some(Ok(a)), Some(Ok(b))) => {
                    let e = evaluate_resampling(a, b, &EvalOptions { convention: crate::SurfaceConvention::Medpy, ..options.clone() });
                    for w in &e.warnings {
                        warnings.push(format!("case {case}, {} vs {}: {w}", sets[fa], sets[fb]));
                    }
                    CaseRow { case: case.clone(), values: study_values(&e), resampled: e.resampled, error: None }
                }
                (Some(Err(e)), _) | (_, Some(Err(e))) => CaseRow { case: case.clone(), values: [None; 5], resampled: false, error: Some(e.clone()) },
                _ => {
                    let missing: Vec<&str> = [fa, fb].iter().filter(|&&s| masks[s].is_none()).map(|&s| sets[s].as_str()).collect();
                    warnings.push(format!("case {case}: no mask in set {}", missing.join(" and ")));
                    continue;
                }
            };
            rows[ci].push(row);
        }
    }
    comparisons
        .iter()
        .zip(rows)
        .map(|(&(fa, fb), cases)| {
            let summary = STUDY_METRICS
                .iter()
                .enumerate()
                .map(|(k, (key, _, _))| (key.to_string(), Summary::of(&cases.iter().map(|c| c.values[k]).collect::<Vec<_>>())))
                .collect();
            let rvs: Vec<f64> = cases.iter().filter_map(|c| c.values[1]).collect();
            let rv_outside = rvs.iter().filter(|&&r| !(0.9..=1.1).contains(&r)).count();
            Comparison { first: sets[fa].clone(), second: sets[fb].clone(), cases, summary, rv_outside, rv_defined: rvs.len() }
        })
        .collect()
}

fn bad(path: &Path, row: usize, msg: String) -> MetricsError {
    liverseg_io::Error::invalid(path, format!("row {row}: {msg}")).into()
}

fn number(path: &Path, row: usize, field: &str, s: &str) -> Result<f64, MetricsError> {
    s.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| bad(path, row, format!("{field} {s:?} is not a number")))
}

/// Scores CSV: `case,reviewer,score`, score 1-5 in steps of 0.5.
pub fn read_scores(path: &Path) -> Result<ScoreTable, MetricsError> {
    let rows = read_csv(path, &["case", "reviewer", "score"])?;
    let bins: Vec<f64> = (0..9).map(|i| 1.0 + 0.5 * i as f64).collect();
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let s = number(path, i + 2, "score", &r["score"])?;
        if !(1.0..=5.0).contains(&s) || (s * 2.0).fract() != 0.0 {
            return Err(bad(path, i + 2, format!("score {s} is not one of 1, 1.5, ..., 5")));
        }
        by.entry(r["reviewer"].clone()).or_default().push(s);
    }
    let mut t = ScoreTable { bins: bins.clone(), ..Default::default() };
    for (rev, scores) in by {
        t.counts.push(bins.iter().map(|b| scores.iter().filter(|&&s| s == *b).count()).collect());
        t.usable.push((scores.iter().filter(|&&s| s >= 3.0).count(), scores.len()));
        t.median.push(Summary::of(&scores.iter().map(|&s| Some(s)).collect::<Vec<_>>()).median);
        t.reviewers.push(rev);
    }
    Ok(t)
}

/// Times CSV: `case,reviewer,task,seconds`, task `manual` or `adjust`.
pub fn read_times(path: &Path) -> Result<Vec<TimeRow>, MetricsError> {
    let rows = read_csv(path, &["case", "reviewer", "task", "seconds"])?;
    let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let task = r["task"].to_lowercase();
        if task != "manual" && task != "adjust" {
            return Err(bad(path, i + 2, format!("task {task:?} is neither manual nor adjust")));
        }
        let s = number(path, i + 2, "seconds", &r["seconds"])?;
        if s < 0.0 {
            return Err(bad(path, i + 2, format!("negative time {s}")));
        }
        by.entry((r["reviewer"].clone(), task.clone())).or_default().push(s / 60.0);
        by.entry(("all".into(), task)).or_default().push(s / 60.0);
    }
    Ok(by
        .into_iter()
        .map(|((reviewer, task), m)| TimeRow { reviewer, task, minutes: Summary::of(&m.iter().copied().map(Some).collect::<Vec<_>>()), values: m })
        .collect())
}

/// Cases of one tagged region: all, and by kind (missed, leaked, neither).
#[derive(Default)]
struct RegionTags {
    cases: BTreeSet<String>,
    per_reviewer: BTreeMap<String, usize>,
    by_kind: [BTreeSet<String>; 3],
}

/// Tags CSV: `case,reviewer,region[,kind]`, kind `missed`, `leaked` or empty
/// (`liverseg review` writes it; files from before it had the column are read
/// as tags without a kind).
pub fn read_tags(path: &Path, n_cases: usize) -> Result<Vec<TagRow>, MetricsError> {
    let rows = read_csv(path, &["case", "reviewer", "region"])?;
    let mut by: BTreeMap<String, RegionTags> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if r["region"].is_empty() {
            return Err(bad(path, i + 2, "empty region".into()));
        }
        let kind = match r.get("kind").map(|k| k.to_lowercase()).as_deref() {
            Some("missed") => 0,
            Some("leaked") => 1,
            None | Some("") => 2,
            Some(k) => return Err(bad(path, i + 2, format!("kind {k:?} is neither missed nor leaked (or empty)"))),
        };
        let e = by.entry(r["region"].clone()).or_default();
        e.cases.insert(r["case"].clone());
        e.by_kind[kind].insert(r["case"].clone());
        *e.per_reviewer.entry(r["reviewer"].clone()).or_default() += 1;
    }
    let mut out: Vec<TagRow> = by
        .into_iter()
        .map(|(region, t)| TagRow {
            region,
            cases: t.cases.len(),
            percent_of_cases: 100.0 * t.cases.len() as f64 / n_cases.max(1) as f64,
            per_reviewer: t.per_reviewer,
            missed_cases: t.by_kind[0].len(),
            leaked_cases: t.by_kind[1].len(),
            unspecified_cases: t.by_kind[2].len(),
        })
        .collect();
    out.sort_by(|a, b| b.cases.cmp(&a.cases).then(a.region.cmp(&b.region)));
    Ok(out)
}

/// Inputs of a study run.
pub struct StudyInput<'a> {
    pub sets: Vec<String>,
    pub cases: Vec<String>,
    /// Pairs of set indices; empty = every pair in the order given.
    pub comparisons: Vec<(usize, usize)>,
    pub source: &'a dyn MaskSource,
    pub scores: Option<PathBuf>,
    pub times: Option<PathBuf>,
    pub tags: Option<PathBuf>,
    pub options: EvalOptions,
}

pub fn run_study(input: &StudyInput) -> Result<StudyReport, MetricsError> {
    if input.sets.len() < 2 && input.comparisons.is_empty() {
        return Err(MetricsError::Invalid("a study needs at least two segmentation sets".into()));
    }
    let comparisons: Vec<(usize, usize)> = if input.comparisons.is_empty() {
        (0..input.sets.len()).flat_map(|i| (i + 1..input.sets.len()).map(move |j| (i, j))).collect()
    } else {
        input.comparisons.clone()
    };
    let mut warnings = vec![];
    let comps = compare_sets(&input.sets, &input.cases, &comparisons, input.source, &input.options, &mut warnings);
    Ok(StudyReport {
        sets: input.sets.clone(),
        cases: input.cases.clone(),
        comparisons: comps,
        scores: input.scores.as_deref().map(read_scores).transpose()?,
        times: input.times.as_deref().map(read_times).transpose()?,
        tags: input.tags.as_deref().map(|p| read_tags(p, input.cases.len())).transpose()?,
        warnings,
    })
}

fn f4(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.3}"))
}

impl StudyReport {
    pub fn per_case_csv(&self) -> String {
        let mut s = String::from("comparison,first,second,case,dsc,rv,msd_mm,hd_mm,hd95_mm,resampled,error\n");
        for c in &self.comparisons {
            for r in &c.cases {
                let vals: Vec<String> = r.values.iter().map(|v| v.map_or(String::new(), |x| format!("{x}"))).collect();
                s.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    csv_field(&c.label()),
                    csv_field(&c.first),
                    csv_field(&c.second),
                    csv_field(&r.case),
                    vals.join(","),
                    r.resampled,
                    csv_field(r.error.as_deref().unwrap_or(""))
                ));
            }
        }
        s
    }

    pub fn comparisons_csv(&self) -> String {
        let mut s = String::from("comparison,n_cases");
        for (k, _, _) in STUDY_METRICS {
            s.push_str(&format!(",{k}_median,{k}_q1,{k}_q3,{k}_min,{k}_max,{k}_mean"));
        }
        s.push_str(",rv_outside_0.9_1.1,rv_defined\n");
        let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
        for c in &self.comparisons {
            s.push_str(&format!("{},{}", csv_field(&c.label()), c.cases.len()));
            for (k, _, _) in STUDY_METRICS {
                let m = &c.summary[k];
                s.push_str(&format!(",{},{},{},{},{},{}", f(m.median), f(m.q1), f(m.q3), f(m.min), f(m.max), f(m.mean)));
            }
            s.push_str(&format!(",{},{}\n", c.rv_outside, c.rv_defined));
        }
        s
    }

    pub fn to_json(&self) -> Value {
        json!({
            "definitions": {
                "comparison": "first vs second: a = first set (reference), b = second set",
                "dsc": "2|a∩b|/(|a|+|b|)",
                "rv": "V_second / V_first",
                "msd": "MedPy 0.5.2 assd: mean of the pooled directed surface distances, mm (surface = foreground voxels with a background face-neighbour; image border counts)",
                "hd": "max of the pooled surface distances, mm",
                "hd95": "95th percentile of the pooled list, numpy linear interpolation, mm",
                "summary": "median, q1/q3 (numpy linear), min, max, mean over the cases where defined",
                "rv_outside": "cases with RV < 0.9 or RV > 1.1",
            },
            "report": self,
        })
    }

    /// Markdown report; `plots` are file names (PNG) relative to the report.
    pub fn markdown(&self, plots: &[(String, String)]) -> String {
        let mut s = String::from("# Segmentation study\n\n");
        s.push_str(&format!("Sets: {}. Cases: {}.\n\n", self.sets.join(", "), self.cases.len()));
        s.push_str("In a comparison *first vs second*, the first set is the reference a and the second is b. ");
        s.push_str("DSC = 2|a∩b|/(|a|+|b|); RV = V(second)/V(first); MSD = symmetric mean surface distance (MedPy 0.5.2 `assd`: the pooled list of both directed distances; surface = foreground voxels with a background face-neighbour, image border included); HD = maximum of that list; HD95 = its 95th percentile (linear interpolation). ");
        s.push_str("Medians with [q1, q3] (numpy linear percentiles) over the cases where the metric is defined.\n\n");
        s.push_str("## Comparisons (medians)\n\n*n* = cases compared; *undef.* = cases where the metrics are undefined (an empty mask), left out of the medians.\n\n| comparison | n | undef. | DSC | RV | MSD (mm) | HD (mm) | HD95 (mm) | RV outside [0.9, 1.1] |\n|---|---|---|---|---|---|---|---|---|\n");
        for c in &self.comparisons {
            let undefined = c.summary.values().map(|m| m.n_undefined).max().unwrap_or(0);
            s.push_str(&format!("| {} | {} | {undefined} |", c.label(), c.cases.len()));
            for (k, _, _) in STUDY_METRICS {
                let m = &c.summary[k];
                s.push_str(&format!(" {} [{}, {}] |", f4(m.median), f4(m.q1), f4(m.q3)));
            }
            s.push_str(&format!(" {}/{} |\n", c.rv_outside, c.rv_defined));
        }
        s.push_str("\nPer-case values: `per_case.csv`; summaries with min, max and mean: `comparisons.csv`; everything: `study.json`.\n\n");
        for (title, file) in plots {
            s.push_str(&format!("### {title}\n\n![{title}]({file})\n\n"));
        }
        if let Some(t) = &self.scores {
            s.push_str("## Expert scores\n\nNumber of cases per score (1 = unusable ... 5 = perfect; ≥ 3 = usable after limited adjustment).\n\n| score |");
            for r in &t.reviewers {
                s.push_str(&format!(" {r} |"));
            }
            s.push_str(" all |\n|---|");
            s.push_str(&"---|".repeat(t.reviewers.len() + 1));
            s.push('\n');
            for (bi, b) in t.bins.iter().enumerate() {
                s.push_str(&format!("| {b:.1} |"));
                let mut all = 0;
                for c in &t.counts {
                    s.push_str(&format!(" {} |", c[bi]));
                    all += c[bi];
                }
                s.push_str(&format!(" {all} |\n"));
            }
            s.push_str("| ≥ 3 |");
            for (u, n) in &t.usable {
                s.push_str(&format!(" {u}/{n} |"));
            }
            let (u, n) = t.usable.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            s.push_str(&format!(" {u}/{n} |\n| median |"));
            for m in &t.median {
                s.push_str(&format!(" {} |", f4(*m)));
            }
            s.push_str(" |\n\n");
        }
        if let Some(t) = &self.times {
            s.push_str("## Time spent (minutes)\n\n| reviewer | task | n | median | min | max | mean |\n|---|---|---|---|---|---|---|\n");
            for r in t {
                let m = &r.minutes;
                s.push_str(&format!("| {} | {} | {} | {} | {} | {} | {} |\n", r.reviewer, r.task, m.n, f4(m.median), f4(m.min), f4(m.max), f4(m.mean)));
            }
            s.push('\n');
        }
        if let Some(t) = &self.tags {
            s.push_str("## Regions corrected\n\n*missed*: cases where the CNN missed liver in the region; *leaked*: cases where it leaked into it; *unspecified*: tags without a kind (older tags.csv). A case can count in more than one.\n\n| region | cases | % of cases | missed | leaked | unspecified | tags per reviewer |\n|---|---|---|---|---|---|---|\n");
            for r in t {
                let per: Vec<String> = r.per_reviewer.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                s.push_str(&format!(
                    "| {} | {} | {:.0}% | {} | {} | {} | {} |\n",
                    r.region, r.cases, r.percent_of_cases, r.missed_cases, r.leaked_cases, r.unspecified_cases, per.join(", ")
                ));
            }
            s.push('\n');
        }
        if !self.warnings.is_empty() {
            s.push_str("## Warnings\n\n");
            for w in &self.warnings {
                s.push_str(&format!("- {w}\n"));
            }
        }
        s
    }

    /// Tables (CSV), `study.json`, box plots (PNG + SVG) and `report.md` in `out`.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>, MetricsError> {
        std::fs::create_dir_all(out).map_err(|e| liverseg_io::Error::io(out, e))?;
        let mut written = vec![];
        let mut plots = vec![];
        for (k, (key, title, _)) in STUDY_METRICS.iter().enumerate() {
            let series: Vec<BoxSeries> = self
                .comparisons
                .iter()
                .map(|c| BoxSeries { label: c.label(), values: c.cases.iter().filter_map(|r| r.values[k]).collect() })
                .collect();
            let stem = out.join(format!("box_{key}"));
            box_plot(&stem, title, title, &series)?;
            plots.push((title.to_string(), format!("box_{key}.png")));
            written.push(stem.with_extension("png"));
            written.push(stem.with_extension("svg"));
        }
        if let Some(t) = &self.scores {
            let stem = out.join("scores");
            let cats: Vec<String> = t.bins.iter().map(|b| format!("{b:.1}")).collect();
            let groups: Vec<(String, Vec<f64>)> = t.reviewers.iter().zip(&t.counts).map(|(r, c)| (r.clone(), c.iter().map(|&v| v as f64).collect())).collect();
            bar_chart(&stem, "Expert scores", &cats, &groups)?;
            plots.push(("Expert scores".into(), "scores.png".into()));
            written.push(stem.with_extension("png"));
            written.push(stem.with_extension("svg"));
        }
        if let Some(t) = self.times.as_ref().filter(|t| !t.is_empty()) {
            // One box per reviewer and task; "all" pools the reviewers.
            let series: Vec<BoxSeries> = t.iter().map(|r| BoxSeries { label: format!("{} {}", r.reviewer, r.task), values: r.values.clone() }).collect();
            let stem = out.join("times");
            box_plot(&stem, "Time spent", "minutes", &series)?;
            plots.push(("Time spent (minutes)".into(), "times.png".into()));
            written.push(stem.with_extension("png"));
            written.push(stem.with_extension("svg"));
        }
        if let Some(t) = self.tags.as_ref().filter(|t| !t.is_empty()) {
            let stem = out.join("tags");
            let cats: Vec<String> = t.iter().map(|r| r.region.clone()).collect();
            let mut groups: Vec<(String, Vec<f64>)> = vec![
                ("missed".into(), t.iter().map(|r| r.missed_cases as f64).collect()),
                ("leaked".into(), t.iter().map(|r| r.leaked_cases as f64).collect()),
            ];
            if t.iter().any(|r| r.unspecified_cases > 0) {
                groups.push(("unspecified".into(), t.iter().map(|r| r.unspecified_cases as f64).collect()));
            }
            bar_chart(&stem, "Regions corrected (cases)", &cats, &groups)?;
            plots.push(("Regions corrected (cases)".into(), "tags.png".into()));
            written.push(stem.with_extension("png"));
            written.push(stem.with_extension("svg"));
        }
        let mut files = vec![
            ("per_case.csv".to_string(), self.per_case_csv()),
            ("comparisons.csv".to_string(), self.comparisons_csv()),
            ("study.json".to_string(), serde_json::to_string_pretty(&self.to_json()).unwrap() + "\n"),
            ("report.md".to_string(), self.markdown(&plots)),
        ];
        if let Some(t) = &self.scores {
            let mut s = format!("score,{},all\n", t.reviewers.join(","));
            for (bi, b) in t.bins.iter().enumerate() {
                let c: Vec<String> = t.counts.iter().map(|c| c[bi].to_string()).collect();
                s.push_str(&format!("{b:.1},{},{}\n", c.join(","), t.counts.iter().map(|c| c[bi]).sum::<usize>()));
            }
            files.push(("scores.csv".into(), s));
        }
        if let Some(t) = &self.times {
            let mut s = String::from("reviewer,task,n,median_min,q1_min,q3_min,min_min,max_min,mean_min\n");
            let f = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
            for r in t {
                let m = &r.minutes;
                s.push_str(&format!("{},{},{},{},{},{},{},{},{}\n", csv_field(&r.reviewer), r.task, m.n, f(m.median), f(m.q1), f(m.q3), f(m.min), f(m.max), f(m.mean)));
            }
            files.push(("times.csv".into(), s));
        }
        if let Some(t) = &self.tags {
            let mut s = String::from("region,cases,percent_of_cases,reviewer,tags,missed_cases,leaked_cases,unspecified_cases\n");
            for r in t {
                for (rev, n) in &r.per_reviewer {
                    s.push_str(&format!(
                        "{},{},{},{},{},{},{},{}\n",
                        csv_field(&r.region),
                        r.cases,
                        r.percent_of_cases,
                        csv_field(rev),
                        n,
                        r.missed_cases,
                        r.leaked_cases,
                        r.unspecified_cases
                    ));
                }
            }
            files.push(("tags.csv".into(), s));
        }
        for (name, text) in files {
            let p = out.join(name);
            write_atomic(&p, |w: &mut dyn Write| w.write_all(text.as_bytes()))?;
            written.push(p);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_from(text: &str) -> Result<Vec<TagRow>, MetricsError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tags.csv");
        std::fs::write(&p, text).unwrap();
        read_tags(&p, 4)
    }

    fn row<'a>(rows: &'a [TagRow], region: &str) -> &'a TagRow {
        rows.iter().find(|r| r.region == region).unwrap_or_else(|| panic!("no {region}"))
    }

    /// `liverseg review` writes `case,reviewer,region,kind`: each region's
    /// cases are counted by kind (a case counts once per kind however many
    /// reviewers tagged it; empty kind = unspecified).
    #[test]
    fn the_kind_column_is_counted_per_region() {
        let rows = tags_from(
            "case,reviewer,region,kind\n\
             c1,alice,IVC,leaked\n\
             c1,bob,IVC,leaked\n\
             c2,alice,IVC,missed\n\
             c3,alice,IVC,\n\
             c2,bob,dome / diaphragm,MISSED\n\
             c4,bob,\"right lobe / inferior tip, posterior\",missed\n",
        )
        .unwrap();
        let ivc = row(&rows, "IVC");
        assert_eq!((ivc.cases, ivc.missed_cases, ivc.leaked_cases, ivc.unspecified_cases), (3, 1, 1, 1));
        assert_eq!(ivc.per_reviewer, BTreeMap::from([("alice".into(), 3), ("bob".into(), 1)]));
        assert!((ivc.percent_of_cases - 75.0).abs() < 1e-9);
        let dome = row(&rows, "dome / diaphragm");
        assert_eq!((dome.missed_cases, dome.leaked_cases, dome.unspecified_cases), (1, 0, 0), "kind is case-insensitive");
        assert_eq!(row(&rows, "right lobe / inferior tip, posterior").missed_cases, 1, "quoted region with a comma");
        // Most-tagged region first.
        assert_eq!(rows[0].region, "IVC");
        // A kind that is neither: the file and line are named.
        let e = tags_from("case,reviewer,region,kind\nc1,alice,IVC,both\n").unwrap_err().to_string();
        assert!(e.contains("tags.csv") && e.contains("\"both\""), "{e}");
    }

    /// A tags.csv from before the `kind` column (`case,reviewer,region`)
    /// still reads: every tag is unspecified.
    #[test]
    fn an_old_tags_csv_without_kind_still_reads() {
        let rows = tags_from("case,reviewer,region\nc1,alice,IVC\nc2,bob,IVC\nc2,bob,left liver tip\n").unwrap();
        let ivc = row(&rows, "IVC");
        assert_eq!((ivc.cases, ivc.missed_cases, ivc.leaked_cases, ivc.unspecified_cases), (2, 0, 0, 2));
        assert_eq!(row(&rows, "left liver tip").unspecified_cases, 1);
        // Columns in any order, as every case list.
        let rows = tags_from("region,case,reviewer\nIVC,c1,alice\n").unwrap();
        assert_eq!(row(&rows, "IVC").unspecified_cases, 1);
        // An empty region is an error, with or without kind.
        assert!(tags_from("case,reviewer,region\nc1,alice,\n").is_err());
    }
}
