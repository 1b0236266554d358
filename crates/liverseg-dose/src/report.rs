//! A readable report of one dosimetry run, as Markdown and as standalone HTML.
//! Both are rendered from one list of blocks so they never disagree.

use crate::plan::DoseSummary;
use crate::Y90_GY_KG_PER_GBQ;

#[derive(Debug, Clone)]
enum Block {
    Heading(u8, String),
    Para(String),
    Formula(String),
    Table(Vec<String>, Vec<Vec<String>>),
    List(Vec<String>),
    Image(String, String),
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

fn row(a: &str, b: String) -> Vec<String> {
    vec![a.to_string(), b]
}

fn blocks(s: &DoseSummary, images: &[(String, String)], files: &[String], notes: &[String]) -> Vec<Block> {
    use Block::*;
    let i = &s.inputs;
    let v = &i.volumes;
    let mut b = vec![
        Heading(1, "Y-90 SIRT dosimetry".into()),
        Para("Computed by liverseg from the liver contour. Every number here must be checked by a qualified medical physicist before use; warnings flag crossed limits, they do not make the decision.".into()),
        Heading(2, "Inputs".into()),
    ];
    let mut rows = vec![
        row("Liver volume (whole, tumour included)", format!("{:.1} ml", v.liver_ml.0)),
        row("Tumour volume", format!("{:.1} ml", v.tumour_ml.0)),
        row("Normal liver volume (liver - tumour)", format!("{:.1} ml", v.normal_liver_ml.0)),
    ];
    if i.perfused_territory {
        rows.push(row("Treated (perfused) liver volume", format!("{:.1} ml", v.treated_liver_ml.0)));
        rows.push(row("Treated tumour volume", format!("{:.1} ml", v.treated_tumour_ml.0)));
        rows.push(row("Treated normal liver volume", format!("{:.1} ml", v.treated_normal_liver_ml.0)));
    }
    rows.extend([
        row("Tissue density", format!("{:.3} g/ml", i.density_g_per_ml.0)),
        row("Liver mass", format!("{:.4} kg", i.liver_mass_kg.0)),
        row("Treated liver mass", format!("{:.4} kg", i.treated_liver_mass_kg.0)),
        row("Height", opt(i.height_cm, |h| format!("{:.1} cm", h.0))),
        row("Weight", opt(i.weight_kg, |w| format!("{:.1} kg", w.0))),
        row("Lung shunt fraction", opt(i.lsf, |l| format!("{:.2} % ({})", l.percent(), i.lsf_source))),
        row("Lung mass", format!("{:.3} kg", i.lung_mass_kg.0)),
        row("Microspheres", format!("{:?}", i.sphere).to_lowercase()),
        row("Target mean dose (MIRD)", opt(i.target_dose_gy, |d| format!("{:.1} Gy", d.0))),
        row("Target normal-liver dose (partition)", opt(i.target_normal_liver_gy, |d| format!("{:.1} Gy", d.0))),
        row("Target tumour dose (partition)", opt(i.target_tumour_gy, |d| format!("{:.1} Gy", d.0))),
        row("Tumour-to-normal ratio", opt(i.tn_ratio, |t| format!("{:.3} ({})", t.value(), i.tn_source))),
        row(
            "Limits",
            format!(
                "lung {:.0} Gy per treatment, {:.0} Gy cumulative (prior {:.1} Gy); normal-liver advisory {:.0} Gy",
                i.limits.lung_per_treatment_gy.0, i.limits.lung_cumulative_gy.0, i.limits.prior_lung_gy.0, i.limits.normal_liver_gy.0
            ),
        ),
    ]);
    b.push(Table(vec!["Input".into(), "Value".into()], rows));

    let warnings = s.all_warnings();
    b.push(Heading(2, "Warnings".into()));
    if warnings.is_empty() {
        b.push(Para("None: no limit crossed.".into()));
    } else {
        b.push(List(warnings.iter().map(|w| format!("**{}**: {}", w.code, w.message)).collect()));
    }

    b.push(Heading(2, "Common formulas".into()));
    b.push(Formula(format!(
        "M [kg] = V [ml] x rho [g/ml] / 1000\nD [Gy] = {Y90_GY_KG_PER_GBQ} x A [GBq] / M [kg]   (Y-90, complete decay, local deposition)\nD_lung [Gy] = {Y90_GY_KG_PER_GBQ} x A [GBq] x LSF / M_lung [kg]"
    )));
    // Physicists cross-check against vendor sheets, which use 50: say how far apart
    // the two conventions are so a 0.7 % difference is not taken for an error.
    b.push(Para(format!(
        "The factor {Y90_GY_KG_PER_GBQ} Gy kg/GBq is the Y-90 complete-decay dose; vendor dose sheets round it to 50, so for the same dose their activities are {:.2} % lower than these.",
        (1.0 - Y90_GY_KG_PER_GBQ / 50.0) * 100.0
    )));

    if let Some(r) = &s.bsa {
        b.push(Heading(2, "BSA method (resin spheres)".into()));
        b.push(Formula(
            "BSA [m^2] = 0.20247 x H[m]^0.725 x W[kg]^0.425   (DuBois)\nA [GBq] = (BSA - 0.2) + V_tumour / (V_tumour + V_normal)\nA_treated = A x V_perfused / V_liver;  reduced by 20 % (LSF 10-15 %) or 40 % (15-20 %); LSF > 20 %: do not treat"
                .into(),
        ));
        b.push(Table(
            vec!["Quantity".into(), "Value".into()],
            vec![
                row("BSA", format!("{:.4} m^2", r.bsa_m2.0)),
                row("Tumour involvement", format!("{:.2} %", r.tumour_involvement.percent())),
                row("Whole-liver activity", format!("{:.3} GBq", r.whole_liver_activity_gbq.0)),
                row("Perfused fraction", format!("{:.2} %", r.perfused_fraction.percent())),
                row("Activity before LSF reduction", format!("{:.3} GBq", r.activity_before_lsf_gbq.0)),
                row("LSF adjustment", r.lsf_adjustment.describe().into()),
                row("**Prescribed activity**", opt(r.prescribed_activity_gbq, |a| format!("**{:.3} GBq**", a.0))),
                row("Lung dose", opt(r.lung_dose_gy, |d| format!("{:.2} Gy", d.0))),
                row("Mean treated-liver dose (tumour included)", opt(r.mean_treated_liver_dose_gy, |d| format!("{:.1} Gy", d.0))),
            ],
        ));
    }
    if let Some(r) = &s.mird {
        b.push(Heading(2, "Mono-compartment MIRD".into()));
        b.push(Formula(format!("A [GBq] = D x M / ({Y90_GY_KG_PER_GBQ} x (1 - LSF))")));
        b.push(Table(
            vec!["Quantity".into(), "Value".into()],
            vec![
                row("Target mean dose", format!("{:.1} Gy", r.target_dose_gy.0)),
                row("Treated liver mass", format!("{:.4} kg", r.treated_mass_kg.0)),
                row("**Activity**", format!("**{:.3} GBq**", r.activity_gbq.0)),
                row("Lung dose", format!("{:.2} Gy", r.lung_dose_gy.0)),
                row("Maximum activity within the lung limits", opt(r.max_activity_lung_gbq, |a| format!("{:.3} GBq", a.0))),
            ],
        ));
    }
    if let Some(r) = &s.partition {
        b.push(Heading(2, "Partition model".into()));
        b.push(Formula(format!(
            "A [GBq] = D_N x (T/N x M_T + M_N) / ({Y90_GY_KG_PER_GBQ} x (1 - LSF))\nD_T = T/N x D_N"
        )));
        let target = match r.target {
            crate::methods::PartitionTarget::NormalLiverGy(d) => format!("normal liver {:.1} Gy", d.0),
            crate::methods::PartitionTarget::TumourGy(d) => format!("tumour {:.1} Gy", d.0),
            crate::methods::PartitionTarget::ActivityGbq(a) => format!("activity {:.3} GBq", a.0),
        };
        b.push(Table(
            vec!["Quantity".into(), "Value".into()],
            vec![
                row("T/N", format!("{:.3}", r.tn_ratio.value())),
                row("Tumour mass (treated)", format!("{:.4} kg", r.tumour_mass_kg.0)),
                row("Normal liver mass (treated)", format!("{:.4} kg", r.normal_liver_mass_kg.0)),
                row("Target", target),
                row("**Activity**", format!("**{:.3} GBq**", r.activity_gbq.0)),
                row("Tumour dose", format!("{:.1} Gy", r.tumour_dose_gy.0)),
                row("Normal liver dose", format!("{:.1} Gy", r.normal_liver_dose_gy.0)),
                row("Lung dose", format!("{:.2} Gy", r.lung_dose_gy.0)),
                row("Maximum activity, normal-liver advisory", format!("{:.3} GBq", r.max_activity_normal_liver_gbq.0)),
                row("Maximum activity, lung limits", opt(r.max_activity_lung_gbq, |a| format!("{:.3} GBq", a.0))),
            ],
        ));
    }
    if let Some(r) = &s.voxel {
        b.push(Heading(2, "Voxel dosimetry (local deposition)".into()));
        b.push(Para(r.activity_source.clone()));
        b.push(Formula(format!(
            "D_v [Gy] = {Y90_GY_KG_PER_GBQ} x A_v [GBq] / m_v [kg] = {Y90_GY_KG_PER_GBQ} x 1e-6 x c_v [Bq/ml] / rho [g/ml]   ({:.4} Gy per MBq/ml here)",
            r.gy_per_mbq_per_ml
        )));
        b.push(Para(format!(
            "Activity inside the liver contour: {:.3} GBq. D_x = minimum dose to the hottest x % of the region's volume; V_x = fraction of the volume receiving at least x Gy.",
            r.activity_in_liver_gbq.0
        )));
        let mut header: Vec<String> = ["Region", "Volume (ml)", "Activity (GBq)", "Mean (Gy)", "Min (Gy)", "Max (Gy)"].map(String::from).to_vec();
        if let Some(first) = r.regions.first() {
            header.extend(first.d.iter().map(|d| format!("D{} (Gy)", d.percent)));
            header.extend(first.v.iter().map(|v| format!("V{} (%)", v.dose_gy.0)));
        }
        let rows = r
            .regions
            .iter()
            .map(|g| {
                let mut row = vec![
                    g.region.clone(),
                    format!("{:.1}", g.volume_ml.0),
                    format!("{:.3}", g.activity_gbq.0),
                    format!("{:.1}", g.mean_gy.0),
                    format!("{:.1}", g.min_gy.0),
                    format!("{:.1}", g.max_gy.0),
                ];
                row.extend(g.d.iter().map(|d| format!("{:.1}", d.dose_gy.0)));
                row.extend(g.v.iter().map(|v| format!("{:.1}", v.volume_fraction.percent())));
                row
            })
            .collect();
        b.push(Table(header, rows));
        for (alt, path) in images {
            b.push(Image(alt.clone(), path.clone()));
        }
    }
    if !s.skipped.is_empty() {
        b.push(Heading(2, "Methods not run".into()));
        b.push(List(s.skipped.iter().map(|k| format!("{}: {}", k.method.name(), k.reason)).collect()));
    }
    if !files.is_empty() {
        b.push(Heading(2, "Files".into()));
        b.push(List(files.to_vec()));
    }
    if !notes.is_empty() {
        b.push(Heading(2, "Notes".into()));
        b.push(List(notes.to_vec()));
    }
    b
}

/// The report as Markdown. `images`: (caption, relative path) of the DVH plots;
/// `files`: other outputs to list (dose map).
/// `notes`: what the caller assumed or changed on the way (resampling, decay
/// correction), listed under "Notes" when any.
pub fn markdown(s: &DoseSummary, images: &[(String, String)], files: &[String], notes: &[String]) -> String {
    let mut out = String::new();
    for block in blocks(s, images, files, notes) {
        match block {
            Block::Heading(level, text) => out.push_str(&format!("{} {text}\n\n", "#".repeat(level as usize))),
            Block::Para(text) => out.push_str(&format!("{text}\n\n")),
            Block::Formula(text) => out.push_str(&format!("```\n{text}\n```\n\n")),
            Block::Table(header, rows) => {
                out.push_str(&format!("| {} |\n", header.join(" | ")));
                out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
                for r in rows {
                    out.push_str(&format!("| {} |\n", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | ")));
                }
                out.push('\n');
            }
            Block::List(items) => {
                for item in items {
                    out.push_str(&format!("- {item}\n"));
                }
                out.push('\n');
            }
            Block::Image(alt, path) => out.push_str(&format!("![{alt}]({path})\n\n")),
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `**bold**` (the only inline markup the blocks use) to <strong>.
fn inline(s: &str) -> String {
    let e = escape(s);
    let mut out = String::new();
    for (k, part) in e.split("**").enumerate() {
        if k % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The report as one standalone HTML page.
pub fn html(s: &DoseSummary, images: &[(String, String)], files: &[String], notes: &[String]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Y-90 SIRT dosimetry</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}pre{background:#f4f4f4;padding:.6em;overflow-x:auto}img{max-width:100%}</style>\n</head><body>\n",
    );
    for block in blocks(s, images, files, notes) {
        match block {
            Block::Heading(level, text) => out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(&text))),
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline(&text))),
            Block::Formula(text) => out.push_str(&format!("<pre>{}</pre>\n", escape(&text))),
            Block::Table(header, rows) => {
                out.push_str("<table><thead><tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", inline(&h)));
                }
                out.push_str("</tr></thead><tbody>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        out.push_str(&format!("<td>{}</td>", inline(&c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str(&format!("<li>{}</li>\n", inline(&item)));
                }
                out.push_str("</ul>\n");
            }
            Block::Image(alt, path) => out.push_str(&format!("<p><img src=\"{}\" alt=\"{}\"></p>\n", escape(&path), escape(&alt))),
        }
    }
    out.push_str("</body></html>\n");
    out
}
