//! One dosimetry run: the chosen methods over one set of inputs, with every input,
//! result, skipped method and warning collected for the report.

use crate::formulas::{self, TnRatio};
use crate::methods::*;
use crate::regions::{RegionVolumes, Regions};
use crate::units::*;
use crate::voxel::{self, ActivityMap, DoseMap, RegionDose};
use crate::{DoseError, Limits, Result, Sphere, Warning};
use liverseg_volume::Volume;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Bsa,
    Mird,
    Partition,
    Voxel,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Bsa, Method::Mird, Method::Partition, Method::Voxel];
    pub fn name(self) -> &'static str {
        match self {
            Method::Bsa => "bsa",
            Method::Mird => "mird",
            Method::Partition => "partition",
            Method::Voxel => "voxel",
        }
    }
}

/// The activity map for voxel dosimetry, already on the CT grid.
#[derive(Debug, Clone)]
pub enum ActivityInput {
    /// Calibrated concentration in Bq/ml.
    Calibrated { name: String, bq_per_ml: Volume<f64> },
    /// Relative counts; scaled so the treated liver holds the administered activity
    /// x (1 - LSF). `administered` None: the activity prescribed by this run.
    Counts { name: String, counts: Volume<f64>, administered: Option<Gbq> },
}

#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub methods: Vec<Method>,
    /// `--method all`: a method whose inputs are missing is skipped with a note
    /// rather than failing the run.
    pub skip_unavailable: bool,
    /// Contours on the CT grid (None: volumes were given as numbers).
    pub regions: Option<&'a Regions>,
    pub volumes: RegionVolumes,
    pub height: Option<Centimetres>,
    pub weight: Option<Kilograms>,
    pub lsf: Option<ShuntFraction>,
    /// How the LSF was obtained, for the report.
    pub lsf_source: String,
    pub lung_mass: Kilograms,
    pub density: GramsPerMl,
    pub sphere: Sphere,
    pub limits: Limits,
    /// MIRD target mean dose to the treated liver.
    pub target_dose: Option<Gray>,
    pub target_normal: Option<Gray>,
    pub target_tumour: Option<Gray>,
    pub tn: Option<TnRatio>,
    pub tn_source: String,
    pub activity: Option<ActivityInput>,
    pub dvh_bin_width: Gray,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputsEcho {
    pub volumes: RegionVolumes,
    pub liver_mass_kg: Kilograms,
    pub treated_liver_mass_kg: Kilograms,
    pub tumour_mass_kg: Kilograms,
    pub treated_tumour_mass_kg: Kilograms,
    pub treated_normal_liver_mass_kg: Kilograms,
    pub density_g_per_ml: GramsPerMl,
    pub height_cm: Option<Centimetres>,
    pub weight_kg: Option<Kilograms>,
    pub lsf: Option<ShuntFraction>,
    pub lsf_source: String,
    pub lung_mass_kg: Kilograms,
    pub sphere: Sphere,
    pub limits: Limits,
    pub target_dose_gy: Option<Gray>,
    pub target_normal_liver_gy: Option<Gray>,
    pub target_tumour_gy: Option<Gray>,
    pub tn_ratio: Option<TnRatio>,
    pub tn_source: String,
    pub perfused_territory: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub method: Method,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VoxelSummary {
    pub activity_source: String,
    /// Activity the map holds inside the whole liver contour.
    pub activity_in_liver_gbq: Gbq,
    /// Gy per MBq/ml under local deposition at the run's density.
    pub gy_per_mbq_per_ml: f64,
    pub regions: Vec<RegionDose>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DoseSummary {
    pub inputs: InputsEcho,
    pub bsa: Option<BsaResult>,
    pub mird: Option<MirdResult>,
    pub partition: Option<PartitionResult>,
    pub voxel: Option<VoxelSummary>,
    pub skipped: Vec<Skipped>,
    /// Warnings about the inputs (tumour outside liver, assumed LSF, ...). Each
    /// method's own warnings sit in its result.
    pub warnings: Vec<Warning>,
}

impl DoseSummary {
    /// Every warning of the run, input and method ones.
    pub fn all_warnings(&self) -> Vec<&Warning> {
        let mut w: Vec<&Warning> = self.warnings.iter().collect();
        w.extend(self.bsa.iter().flat_map(|r| &r.warnings));
        w.extend(self.mird.iter().flat_map(|r| &r.warnings));
        w.extend(self.partition.iter().flat_map(|r| &r.warnings));
        w.extend(self.voxel.iter().flat_map(|r| &r.warnings));
        w
    }
}

fn mass_or_zero(v: Millilitres, density: GramsPerMl) -> Result<Kilograms> {
    if v.0 == 0.0 {
        Ok(Kilograms(0.0))
    } else {
        formulas::tissue_mass(v, density)
    }
}

/// A missing input: an error for an explicitly requested method, a skip note under
/// `--method all`.
enum Outcome<T> {
    Done(T),
    Missing(String),
}

fn need<T: Copy>(value: Option<T>, what: &str) -> std::result::Result<T, String> {
    value.ok_or_else(|| what.to_string())
}

pub fn run(input: &PlanInput) -> Result<(DoseSummary, Option<DoseMap>)> {
    let v = input.volumes;
    formulas::positive("density", input.density.0, "g/ml")?;
    formulas::positive("lung mass", input.lung_mass.0, "kg")?;
    input.limits.validate()?;
    v.validate()?;
    if v.liver_ml.0 <= 0.0 {
        return Err(DoseError::input("liver", "is empty: liver volume 0 ml"));
    }
    if v.treated_liver_ml.0 <= 0.0 {
        return Err(DoseError::input("perfused territory", "holds no liver (0 ml)"));
    }
    let echo = InputsEcho {
        volumes: v,
        liver_mass_kg: formulas::tissue_mass(v.liver_ml, input.density)?,
        treated_liver_mass_kg: formulas::tissue_mass(v.treated_liver_ml, input.density)?,
        tumour_mass_kg: mass_or_zero(v.tumour_ml, input.density)?,
        treated_tumour_mass_kg: mass_or_zero(v.treated_tumour_ml, input.density)?,
        treated_normal_liver_mass_kg: mass_or_zero(v.treated_normal_liver_ml, input.density)?,
        density_g_per_ml: input.density,
        height_cm: input.height,
        weight_kg: input.weight,
        lsf: input.lsf,
        lsf_source: input.lsf_source.clone(),
        lung_mass_kg: input.lung_mass,
        sphere: input.sphere,
        limits: input.limits,
        target_dose_gy: input.target_dose,
        target_normal_liver_gy: input.target_normal,
        target_tumour_gy: input.target_tumour,
        tn_ratio: input.tn,
        tn_source: input.tn_source.clone(),
        perfused_territory: v.treated_liver_ml.0 < v.liver_ml.0,
    };
    let mut summary = DoseSummary {
        inputs: echo,
        bsa: None,
        mird: None,
        partition: None,
        voxel: None,
        skipped: Vec::new(),
        warnings: input.regions.map(|r| r.warnings.clone()).unwrap_or_default(),
    };
    let lsf_missing = "lung shunt fraction (give --lsf or --lung-counts and --liver-counts)";
    let mut dose_map = None;
    for &method in &input.methods {
        let outcome: Outcome<()> = match method {
            Method::Bsa => match (need(input.height, "height (--height-cm)"), need(input.weight, "weight (--weight-kg)"), need(input.lsf, lsf_missing)) {
                (Ok(height), Ok(weight), Ok(lsf)) => {
                    let perfused = if summary.inputs.perfused_territory { Some(v.treated_liver_ml) } else { None };
                    summary.bsa = Some(bsa_method(&BsaInput {
                        height,
                        weight,
                        liver: v.liver_ml,
                        tumour: v.tumour_ml,
                        perfused,
                        lsf,
                        lung_mass: input.lung_mass,
                        density: input.density,
                        sphere: input.sphere,
                        limits: input.limits,
                    })?);
                    Outcome::Done(())
                }
                (h, w, l) => Outcome::Missing([h.err(), w.err(), l.err()].into_iter().flatten().collect::<Vec<_>>().join(", ")),
            },
            Method::Mird => match (need(input.target_dose, "target dose (--target-dose-gy)"), need(input.lsf, lsf_missing)) {
                (Ok(target), Ok(lsf)) => {
                    summary.mird = Some(mird_method(&MirdInput {
                        target,
                        treated_mass: summary.inputs.treated_liver_mass_kg,
                        lsf,
                        lung_mass: input.lung_mass,
                        limits: input.limits,
                    })?);
                    Outcome::Done(())
                }
                (t, l) => Outcome::Missing([t.err(), l.err()].into_iter().flatten().collect::<Vec<_>>().join(", ")),
            },
            Method::Partition => {
                let tumour = if v.treated_tumour_ml.0 > 0.0 { Ok(()) } else { Err("a tumour inside the treated liver (--tumour or --tumour-ml)".to_string()) };
                let normal = if v.treated_normal_liver_ml.0 > 0.0 { Ok(()) } else { Err("normal liver in the treated territory".to_string()) };
                match (tumour, normal, need(input.tn, "tumour-to-normal ratio (--tn or --spect)"), need(input.lsf, lsf_missing)) {
                    (Ok(()), Ok(()), Ok(tn), Ok(lsf)) => {
                        let target = match (input.target_tumour, input.target_normal) {
                            (Some(t), _) => PartitionTarget::TumourGy(t),
                            (None, Some(n)) => PartitionTarget::NormalLiverGy(n),
                            (None, None) => PartitionTarget::NormalLiverGy(input.limits.normal_liver_gy),
                        };
                        if input.target_tumour.is_none() && input.target_normal.is_none() {
                            summary.warnings.push(Warning::new(
                                "partition-target-default",
                                format!(
                                    "no partition target given: activity computed for the normal-liver advisory of {:.0} Gy (the maximum, not a recommendation)",
                                    input.limits.normal_liver_gy.0
                                ),
                            ));
                        }
                        summary.partition = Some(partition_method(&PartitionInput {
                            tn,
                            tumour_mass: summary.inputs.treated_tumour_mass_kg,
                            normal_mass: summary.inputs.treated_normal_liver_mass_kg,
                            lsf,
                            lung_mass: input.lung_mass,
                            target,
                            limits: input.limits,
                        })?);
                        Outcome::Done(())
                    }
                    (a, b, c, d) => Outcome::Missing([a.err(), b.err(), c.err(), d.err()].into_iter().flatten().collect::<Vec<_>>().join(", ")),
                }
            }
            Method::Voxel => match (input.regions, &input.activity) {
                (Some(regions), Some(activity)) => match run_voxel(input, regions, activity, &summary)? {
                    Outcome::Done((s, map)) => {
                        summary.voxel = Some(s);
                        dose_map = Some(map);
                        Outcome::Done(())
                    }
                    Outcome::Missing(m) => Outcome::Missing(m),
                },
                (None, _) => Outcome::Missing("the liver contour as a mask (--ct and --liver)".into()),
                (_, None) => Outcome::Missing("an activity map (--activity-map)".into()),
            },
        };
        if let Outcome::Missing(what) = outcome {
            if !input.skip_unavailable {
                return Err(DoseError::input(format!("method {}", method.name()), format!("needs {what}")));
            }
            summary.skipped.push(Skipped { method, reason: format!("needs {what}") });
        }
    }
    Ok((summary, dose_map))
}

fn run_voxel(input: &PlanInput, regions: &Regions, activity: &ActivityInput, summary: &DoseSummary) -> Result<Outcome<(VoxelSummary, DoseMap)>> {
    let mut warnings = Vec::new();
    let (map, source) = match activity {
        ActivityInput::Calibrated { name, bq_per_ml } => {
            crate::regions::require_same_grid(name, regions.geometry(), bq_per_ml.geometry())?;
            let (map, w) = ActivityMap::from_bq_per_ml(name, bq_per_ml.clone())?;
            warnings.extend(w);
            (map, format!("{name}: calibrated activity concentration (Bq/ml), used as is"))
        }
        ActivityInput::Counts { name, counts, administered } => {
            crate::regions::require_same_grid(name, regions.geometry(), counts.geometry())?;
            let (total, from) = match administered {
                Some(a) => {
                    formulas::positive("administered activity", a.0, "GBq")?;
                    (*a, "given".to_string())
                }
                None => {
                    let planned = summary
                        .partition
                        .as_ref()
                        .map(|p| (p.activity_gbq, "partition model"))
                        .or(summary.mird.as_ref().map(|m| (m.activity_gbq, "MIRD")))
                        .or(summary.bsa.as_ref().and_then(|b| b.prescribed_activity_gbq.map(|a| (a, "BSA"))));
                    match planned {
                        Some((a, m)) => (a, format!("prescribed by the {m} method of this run")),
                        None => return Ok(Outcome::Missing("the administered activity to scale a counts map (--total-activity-gbq, or a prescription method in the same run)".into())),
                    }
                }
            };
            let lsf = match input.lsf {
                Some(l) => l,
                None => {
                    warnings.push(Warning::new("lsf-assumed-zero", "no lung shunt fraction given: the whole administered activity is placed in the liver"));
                    ShuntFraction::from_fraction(0.0)?
                }
            };
            let in_liver = Gbq(total.0 * lsf.liver_share());
            let (map, w) = ActivityMap::from_counts(name, counts.clone(), in_liver, &regions.treated, "treated liver")?;
            warnings.extend(w);
            (
                map,
                format!(
                    "{name}: counts scaled so the treated liver holds {:.3} GBq = administered {:.3} GBq ({from}) x (1 - LSF {:.1} %)",
                    in_liver.0,
                    total.0,
                    lsf.percent()
                ),
            )
        }
    };
    let dose = voxel::local_deposition(&map, input.density)?;
    let v_levels: Vec<Gray> = voxel::V_LEVELS_GY.iter().map(|&g| Gray(g)).collect();
    // Without tumour contours the normal liver is the liver: it is not listed twice,
    // and the normal-liver advisory is checked on the liver.
    let has_tumour = regions.tumour.count_foreground() > 0;
    let normal_name = if has_tumour { "normal liver" } else { "liver" };
    let mut list: Vec<(&str, &liverseg_volume::Mask)> = vec![("liver", &regions.liver)];
    if has_tumour {
        list.push(("tumour", &regions.tumour));
        list.push(("normal liver", &regions.normal));
    }
    if regions.perfused_given {
        list.push(("treated liver", &regions.treated));
        if has_tumour {
            list.push(("treated normal liver", &regions.treated_normal));
        }
    }
    let mut stats = Vec::new();
    for (name, mask) in list {
        if mask.count_foreground() == 0 {
            warnings.push(Warning::new("empty-region", format!("{name} is empty: no dose statistics")));
            continue;
        }
        let r = voxel::region_dose(name, &dose, &map, mask, &voxel::D_LEVELS, &v_levels, input.dvh_bin_width)?;
        if name == normal_name {
            warnings.extend(input.limits.check_normal_liver(&format!("voxel mean dose to the {name}"), r.mean_gy));
        }
        stats.push(r);
    }
    let s = VoxelSummary {
        activity_source: source,
        activity_in_liver_gbq: map.activity_in(&regions.liver),
        gy_per_mbq_per_ml: voxel::gray_per_bq_per_ml(input.density) * 1e6,
        regions: stats,
        warnings,
    };
    Ok(Outcome::Done((s, dose)))
}
