//! Audit reports for people: `report.md` and a self-contained `report.html` (inline CSS and
//! SVG, no scripts, readable offline). Both render the same list of blocks.

mod groups;
pub mod svg;

use crate::audit::{ClassBlock, FairnessEntry, StereotypeEntry};
use crate::lists::ListFairness;
use crate::Metrics;
use svg::Bar;

/// One piece of a report.
pub enum Block {
    Heading(u8, String),
    Para(String),
    Note(String),
    Table(Vec<String>, Vec<Vec<String>>),
    /// HTML only (the Markdown report has the same numbers in tables).
    Chart(String),
    /// Blocks shown on request: a collapsed `<details>` section with its summary line, in
    /// HTML and in the Markdown (which GitHub renders the same way).
    Details(String, Vec<Block>),
}

/// Where the audited numbers came from.
pub struct Provenance {
    pub predictions: String,
    pub predictions_sha256: String,
    pub data: Option<String>,
    pub git_revision: Option<String>,
}

/// A fraction in percent with two decimals (`undefined` for `None`).
pub fn pct(v: Option<f64>) -> String {
    v.map_or("undefined".into(), |v| format!("{:.2}", 100.0 * v))
}

/// Scientific notation with three decimals, `0` for zero (`undefined` for `None`).
pub fn sci(v: Option<f64>) -> String {
    v.map_or("undefined".into(), |v| {
        if v == 0.0 {
            "0".into()
        } else {
            format!("{v:.3e}")
        }
    })
}

/// Mean and sample standard deviation (`None` with one value).
pub fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (m, sd)
}

/// Mean ± sample std of `xs` times `scale` (100 turns a fraction into % or ×10⁻²), as the
/// experiment tables print a figure over seeds; `(k/n)` after it when only `k` of the row's
/// `n` cells define the figure (the others left it undefined, e.g. no Yes answer).
pub fn mean_std_text(xs: &[f64], scale: f64, n: usize) -> String {
    if xs.is_empty() {
        return "–".into();
    }
    let figure = match mean_std(xs) {
        (m, Some(s)) => format!("{:.2} ± {:.2}", m * scale, s * scale),
        (m, None) => format!("{:.2}", m * scale),
    };
    if xs.len() < n {
        format!("{figure} ({}/{n})", xs.len())
    } else {
        figure
    }
}

/// `v [low, high]` with the interval printed by `f`, or `v` alone.
pub fn with_ci(v: String, ci: Option<&[f64; 2]>, f: &dyn Fn(f64) -> String) -> String {
    match ci {
        Some([a, b]) => format!("{v} [{}, {}]", f(*a), f(*b)),
        None => v,
    }
}

/// A classification row; `ci(figure)` is the figure's interval when the audit has one.
fn class_row(name: &str, c: &ClassBlock, ci: &dyn Fn(&str) -> Option<[f64; 2]>) -> Vec<String> {
    let p =
        |v: Option<f64>, k: &str| with_ci(pct(v), ci(k).as_ref(), &|x| format!("{:.2}", 100.0 * x));
    vec![
        name.into(),
        p(c.f1, "f1"),
        p(c.precision, "precision"),
        p(c.recall, "recall"),
        pct(c.auc),
        c.n.to_string(),
        c.positives.to_string(),
    ]
}

/// The header of a table of [`class_row`]s whose first column is `first`.
fn class_head(first: &str) -> Vec<String> {
    [
        first,
        "F1 %",
        "precision %",
        "recall %",
        "AUC %",
        "n",
        "positives",
    ]
    .map(String::from)
    .to_vec()
}

/// Plain-words summary of one attribute set.
fn summary(set: &str, f: &FairnessEntry) -> String {
    let (Some(b), Some(gd)) = (f.point.neutral_f1, f.point.gd) else {
        return format!("For `{set}`, GD is undefined (see the notes).");
    };
    let worst = f
        .point
        .groups
        .iter()
        .filter_map(|(k, g)| g.f1.map(|v| (k, v - b)))
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
    let mut s = format!(
        "Stating `{set}` moves F1 away from the neutral prompt by {:.2} points on average (GD)",
        100.0 * gd
    );
    if let Some((k, d)) = worst {
        s += &format!(
            "; the largest change is for `{k}` ({:+.2} points)",
            100.0 * d
        );
    }
    s += ".";
    let with_ci: Vec<(&String, [f64; 2])> = f
        .point
        .groups
        .keys()
        .filter_map(|k| f.ci.get(&format!("groups.{k}.diff")).map(|c| (k, *c)))
        .collect();
    if !with_ci.is_empty() {
        let apart: Vec<String> = with_ci
            .iter()
            .filter(|(_, c)| c[0] > 0.0 || c[1] < 0.0)
            .map(|(k, c)| format!("`{k}` [{:+.2}, {:+.2}]", 100.0 * c[0], 100.0 * c[1]))
            .collect();
        s += &if apart.is_empty() {
            " No group's paired interval of F1 minus the neutral F1 excludes 0: the difference is within resampling noise.".to_string()
        } else {
            format!(
                " Groups whose paired interval of F1 minus the neutral F1 excludes 0: {}.",
                apart.join(", ")
            )
        };
    }
    s
}

fn fairness_blocks(m: &Metrics, out: &mut Vec<Block>) {
    out.push(Block::Heading(
        2,
        "Fairness across sensitive attributes (paper A)".into(),
    ));
    out.push(Block::Para(
        "g = F1. Each group's F1 is computed over all test samples prompted with that value stated; `neutral` states no sensitive attribute. \
         GD (Eq. 2) is the root-mean-square difference to the neutral F1, shown ×100 (F1 points). \
         Rate is Eq. 3 as printed, the mean of |1 − g_i/g(B)|; `metrics.json` also has `rate_sq`, the mean of (1 − g_i/g(B))², which is (GD/g(B))² (no reading of Eq. 3 reproduces the Rate the paper prints). \
         Lower is fairer. Brackets are bootstrap intervals."
            .into(),
    ));
    if m.fairness.is_empty() {
        out.push(Block::Note(
            "No prediction states a sensitive attribute, so GD and Rate cannot be computed.".into(),
        ));
        return;
    }
    let rows = m
        .fairness
        .iter()
        .map(|(k, f)| {
            vec![
                k.clone(),
                with_ci(pct(f.point.gd), f.ci.get("gd"), &|v| {
                    format!("{:.2}", 100.0 * v)
                }),
                with_ci(sci(f.point.rate), f.ci.get("rate"), &|v| format!("{v:.2e}")),
            ]
        })
        .collect();
    out.push(Block::Table(
        vec!["attribute set".into(), "GD ×100".into(), "Rate".into()],
        rows,
    ));
    let max_gd = m
        .fairness
        .values()
        .flat_map(|f| f.point.gd.into_iter().chain(f.ci.get("gd").map(|c| c[1])))
        .fold(0.0_f64, f64::max);
    let bars: Vec<Bar> = m
        .fairness
        .iter()
        .map(|(k, f)| Bar {
            label: k.clone(),
            value: f.point.gd,
            ci: f.ci.get("gd").copied(),
        })
        .collect();
    out.push(Block::Chart(svg::hbars(
        "GD per attribute set (×100, lower is fairer)",
        &bars,
        None,
        0.0,
        (max_gd * 1.15).max(0.01),
        &|v| format!("{:.2}", 100.0 * v),
    )));
    for (k, f) in &m.fairness {
        set_blocks(k, f, &m.neutral, out);
    }
}

/// One attribute set's section: F1 per group against the neutral prompt, as a table and a
/// chart.
fn set_blocks(k: &str, f: &FairnessEntry, neutral: &ClassBlock, out: &mut Vec<Block>) {
    out.push(Block::Heading(3, format!("{k}: F1 per group")));
    out.push(Block::Para(summary(k, f)));
    let mut rows = vec![vec![
        "neutral".into(),
        pct(neutral.f1),
        String::new(),
        neutral.n.to_string(),
    ]];
    let mut bars = Vec::new();
    for (g, s) in &f.point.groups {
        let ci = f.ci.get(&format!("groups.{g}.f1"));
        let diff = s.f1.zip(neutral.f1).map(|(a, b)| a - b);
        let dci = f.ci.get(&format!("groups.{g}.diff"));
        let cell = |c: Option<&[f64; 2]>| {
            c.map_or(String::new(), |c| {
                format!(" [{:+.2}, {:+.2}]", 100.0 * c[0], 100.0 * c[1])
            })
        };
        rows.push(vec![
            g.clone(),
            format!("{}{}", pct(s.f1), cell(ci).replace('+', "")),
            diff.map_or("undefined".into(), |d| format!("{:+.2}", 100.0 * d)) + &cell(dci),
            format!("{}", s.n),
        ]);
        bars.push(Bar {
            label: g.clone(),
            value: s.f1,
            ci: ci.copied(),
        });
    }
    out.push(Block::Table(
        vec![
            "group".into(),
            "F1 % [interval]".into(),
            "F1 − neutral [paired interval]".into(),
            "n".into(),
        ],
        rows,
    ));
    let vals: Vec<f64> = bars
        .iter()
        .flat_map(|b| b.value.into_iter().chain(b.ci.into_iter().flatten()))
        .chain(neutral.f1)
        .collect();
    let lo = (vals.iter().copied().fold(1.0_f64, f64::min) - 0.05).max(0.0);
    let hi = (vals.iter().copied().fold(0.0_f64, f64::max) + 0.05).min(1.0);
    let reference = neutral.f1.map(|v| ("neutral F1", v));
    out.push(Block::Chart(svg::hbars(
        &format!("{k}: F1 per stated value vs the neutral prompt (%)"),
        &bars,
        reference,
        lo,
        hi.max(lo + 0.01),
        &|v| format!("{:.1}", 100.0 * v),
    )));
    for (fig, why) in &f.point.undefined {
        out.push(Block::Note(format!("`{k}` {fig} is undefined: {why}.")));
    }
}

fn stereotype_blocks(attr: &str, s: &StereotypeEntry, out: &mut Vec<Block>) {
    let sizes: Vec<String> = s
        .item_groups
        .iter()
        .map(|(g, n)| format!("{n} `{g}` items"))
        .collect();
    out.push(Block::Heading(3, attr.to_string()));
    out.push(Block::Para(format!(
        "Item stereotype groups from the training interactions (z* = {}{}, {}): {} of {} items; the rest are neutral.",
        s.z_threshold,
        if s.z_auto { ", chosen by `auto`: the largest of 3, 2.5, 2, 1.5, 1, 0.5 that leaves every group 20 items" } else { "" },
        if s.normalize { "interaction rates normalised by group size" } else { "raw interaction counts" },
        sizes.join(", "),
        s.n_items
    )));
    let rows = s
        .settings
        .iter()
        .map(|(setting, f)| {
            let c = |k: &str| s.ci.get(&format!("{setting}.{k}"));
            let f2 = |v: f64| format!("{v:.2}");
            let fig =
                |v: Option<f64>, k: &str| with_ci(v.map_or("undefined".into(), f2), c(k), &f2);
            let r = &f.recommendations;
            vec![
                setting.clone(),
                fig(f.average, "average"),
                fig(f.average_same, "average_same"),
                fig(f.average_other, "average_other"),
                format!("{} / {}", r.consistent, r.inconsistent),
                fig(f.total, "total"),
                fig(f.same_group, "same_group"),
                fig(f.other_group, "other_group"),
                format!(
                    "{} of {}",
                    f.pairs.values().filter(|d| d.is_some()).count(),
                    f.pairs.len()
                ),
            ]
        })
        .collect();
    out.push(Block::Table(
        vec![
            "setting".into(),
            "average (headline)".into(),
            "consistent".into(),
            "inconsistent".into(),
            "recommendations (cons. / incons.)".into(),
            "Σ|Δ| total".into(),
            "Σ|Δ| same-group".into(),
            "Σ|Δ| other-group".into(),
            "pairs summed".into(),
        ],
        rows,
    ));
    out.push(Block::Note(
        "The headline is paper B's scale: 100 × the mean over recommendations (Yes answers) of grouped items of |1[item in the user's group] − the user's own-group share of their history|, over consistent (own-group item) and inconsistent (other-group item) recommendations; neutral items and recommendations without history are left out (`fairrec_metrics::stereotype` says why this reading is ours). Σ|Δ| sums over (user group, item group) pairs the difference between the recommended and the history share of the group's items.".into(),
    ));
    out.push(Block::Note(
        "The sums leave out the (user group, item group) pairs that are undefined (no Yes answer to the users of the group, or no history item); the pair tables below name them and why.".into(),
    ));
    for (setting, f) in &s.settings {
        let bars: Vec<Bar> = f
            .pairs
            .iter()
            .map(|(k, d)| Bar {
                label: k.clone(),
                value: d.map(|v| 100.0 * v),
                ci: s
                    .ci
                    .get(&format!("{setting}.{k}"))
                    .map(|c| [100.0 * c[0], 100.0 * c[1]]),
            })
            .collect();
        out.push(Block::Chart(svg::diverging(
            &format!("{attr}, {setting}: recommended share minus history share (points)"),
            &bars,
            ["under-recommended", "over-recommended"],
            None,
            &|v| format!("{v:+.1}"),
        )));
        let rows = f
            .pairs
            .iter()
            .map(|(k, d)| {
                vec![
                    k.clone(),
                    d.map_or("undefined".into(), |v| format!("{:+.2}", 100.0 * v)),
                ]
            })
            .collect();
        out.push(Block::Table(
            vec![format!("{setting}: users, items"), "Δ (points)".into()],
            rows,
        ));
        for (k, why) in &f.undefined {
            out.push(Block::Note(format!("{setting} {k} is undefined: {why}.")));
        }
    }
    if !s.performance.is_empty() {
        out.push(Block::Para("Explicit setting by side: the targets of each user group, of each item stereotype group, of the neutral items (below z*), and those in the user's own group (consistent) or another group (inconsistent).".into()));
        let rows = s
            .performance
            .iter()
            .map(|(side, c)| class_row(side, c, &|_| None))
            .collect();
        out.push(Block::Table(class_head("side"), rows));
    }
}

/// The report's blocks.
pub fn blocks(m: &Metrics, p: &Provenance) -> Vec<Block> {
    let mut out = vec![Block::Heading(1, "fairrec audit report".into())];
    out.push(Block::Para(format!(
        "Predictions `{}` (sha256 {}…, {} lines){}. Threshold P(Yes) ≥ {}. Intervals: {} bootstrap resamples over {} {}s, {:.0}% percentile, seed {}.{}",
        p.predictions,
        &p.predictions_sha256[..12.min(p.predictions_sha256.len())],
        m.n_predictions,
        p.data.as_ref().map_or(String::new(), |d| format!(", prepared data `{d}`")),
        m.threshold,
        m.bootstrap.resamples,
        m.bootstrap.units,
        m.bootstrap.unit,
        100.0 * m.bootstrap.confidence,
        m.bootstrap.seed,
        p.git_revision.as_ref().map_or(String::new(), |g| format!(" fairrec {g}.")),
    )));
    if m.n_censored > 0 {
        out.push(Block::Para(format!(
            "**{} of {} predictions are censored**: the served model's listed log-probabilities missed an answer token, so their P(Yes) is a bound (ask for more alternatives, `--top-logprobs`).",
            m.n_censored, m.n_predictions
        )));
    }
    out.push(Block::Heading(2, "Recommendation quality".into()));
    let mut rows = vec![
        class_row("original (true attributes)", &m.original, &|k| {
            m.ci.get(&format!("original.{k}")).copied()
        }),
        class_row("neutral (no attribute)", &m.neutral, &|k| {
            m.ci.get(&format!("neutral.{k}")).copied()
        }),
    ];
    rows.extend(
        m.variants
            .iter()
            .filter(|(k, _)| *k != "original" && *k != "neutral")
            .map(|(k, c)| class_row(k, c, &|_| None)),
    );
    out.push(Block::Table(class_head("prompts"), rows));
    fairness_blocks(m, &mut out);
    if let Some(st) = &m.stereotype {
        out.push(Block::Heading(
            2,
            "Stereotype-aware fairness (paper B)".into(),
        ));
        out.push(Block::Para(
            "For users of group s′ and items of stereotype group s: Δ = share of s-items among the targets predicted Yes minus their share in those users' histories (> 0: over-recommended). \
             Totals are 100 × Σ|Δ| over same-group pairs (s′ = s), other-group pairs, and both. Settings: implicit = no profile, explicit = true profile, counterfactual = the other value. \
             These definitions are fairrec's reading of the paper's prose."
                .into(),
        ));
        for (attr, s) in st {
            stereotype_blocks(attr, s, &mut out);
        }
    }
    groups::group_blocks(m, &mut out);
    if !m.notes.is_empty() {
        out.push(Block::Heading(2, "Notes".into()));
        for n in &m.notes {
            out.push(Block::Note(n.clone()));
        }
    }
    out
}

/// FaiRLLM's list metrics, appended to a report.
pub fn list_blocks(lf: &ListFairness, path: &str, out: &mut Vec<Block>) {
    out.push(Block::Heading(
        2,
        format!(
            "Ranked lists: FaiRLLM's similarity to the neutral list (@{})",
            lf.k
        ),
    ));
    out.push(Block::Para(format!(
        "Lists `{path}`, {} instructions with a neutral list. Sim(a) is the mean similarity of the list for value a to the neutral list of the same instruction          (higher: closer to neutral); SNSR is the range of Sim(a) over values and SNSV their standard deviation (lower is fairer).          SERP* follows the paper's formula; `serp_star_notebook` uses the public notebook's constants and is shown for comparison only.",
        lf.instructions
    )));
    for (set, ms) in &lf.attributes {
        let values: Vec<&String> = ms
            .values()
            .next()
            .map(|m| m.per_value.keys().collect())
            .unwrap_or_default();
        let mut head = vec![format!("{set}: measure"), "SNSR".into(), "SNSV".into()];
        head.extend(values.iter().map(|v| format!("Sim({v})")));
        let rows = ms
            .iter()
            .map(|(name, f)| {
                let c = |k: &str, v: f64| {
                    with_ci(format!("{v:.4}"), f.ci.get(k), &|x| format!("{x:.4}"))
                };
                let mut r = vec![name.clone(), c("snsr", f.snsr), c("snsv", f.snsv)];
                r.extend(values.iter().map(|v| {
                    f.per_value
                        .get(*v)
                        .map_or("—".into(), |x| c(&format!("per_value.{v}"), *x))
                }));
                r
            })
            .collect();
        out.push(Block::Table(head, rows));
        if let Some(p) = ms.get("prag_star") {
            let bars: Vec<Bar> = p
                .per_value
                .iter()
                .map(|(v, x)| Bar {
                    label: v.clone(),
                    value: Some(*x),
                    ci: p.ci.get(&format!("per_value.{v}")).copied(),
                })
                .collect();
            out.push(Block::Chart(svg::hbars(
                &format!("{set}: PRAG*@{} similarity to the neutral list", lf.k),
                &bars,
                None,
                0.0,
                1.0,
                &|v| format!("{v:.2}"),
            )));
        }
    }
    for n in &lf.notes {
        out.push(Block::Note(n.clone()));
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Markdown rendering.
pub fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Heading(l, t) => s += &format!("{} {t}\n\n", "#".repeat(*l as usize)),
            Block::Para(t) => s += &format!("{t}\n\n"),
            Block::Note(t) => s += &format!("> **Note.** {t}\n\n"),
            Block::Table(h, rows) => {
                s += &format!(
                    "| {} |\n|{}|\n",
                    h.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "),
                    h.iter().map(|_| "---").collect::<Vec<_>>().join("|")
                );
                for r in rows {
                    s += &format!(
                        "| {} |\n",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                }
                s += "\n";
            }
            Block::Chart(_) => {}
            Block::Details(summary, inner) => {
                s += &format!(
                    "<details><summary>{}</summary>\n\n{}</details>\n\n",
                    html_text(summary),
                    markdown(inner)
                )
            }
        }
    }
    s
}

fn html_text(t: &str) -> String {
    // escape, then turn `code` spans into <code>
    let e = t
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let mut out = String::new();
    for (i, part) in e.split('`').enumerate() {
        if i % 2 == 1 {
            out += &format!("<code>{part}</code>");
        } else {
            out += part;
        }
    }
    out
}

/// Self-contained HTML rendering; the footer points to `numbers`, the file with the same
/// figures for machines.
pub fn html(blocks: &[Block], title: &str, numbers: &str) -> String {
    let s = format!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{}</style></head><body>\n", html_text(title), svg::CSS);
    html_blocks(blocks, s)
        + &format!(
            "<p class=\"muted\">Written by fairrec. The numbers are also in {}.</p>\n</body></html>\n",
            html_text(numbers)
        )
}

/// `blocks` in HTML after `s`; a table scrolls sideways inside the page when it is wider.
fn html_blocks(blocks: &[Block], mut s: String) -> String {
    for b in blocks {
        match b {
            Block::Heading(l, t) => s += &format!("<h{l}>{}</h{l}>\n", html_text(t)),
            Block::Para(t) => s += &format!("<p>{}</p>\n", html_text(t)),
            Block::Note(t) => s += &format!("<div class=\"note\">{}</div>\n", html_text(t)),
            Block::Table(h, rows) => {
                s += "<div class=\"tw\"><table><thead><tr>";
                for c in h {
                    s += &format!("<th>{}</th>", html_text(c));
                }
                s += "</tr></thead><tbody>";
                for r in rows {
                    s += "<tr>";
                    for c in r {
                        s += &format!("<td>{}</td>", html_text(c));
                    }
                    s += "</tr>";
                }
                s += "</tbody></table></div>\n";
            }
            Block::Chart(svg) => s += &format!("{svg}\n"),
            Block::Details(summary, inner) => {
                s += &format!("<details><summary>{}</summary>\n", html_text(summary));
                s = html_blocks(inner, s) + "</details>\n";
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::mean_std_text;
    use super::svg::{tradeoff, Series};

    /// Every seed is a dot, each series a mean cross, each paper point a diamond, and a
    /// figure that cannot be negative keeps its axis at 0 or above.
    #[test]
    fn a_tradeoff_chart_draws_every_seed_and_the_papers_points() {
        let s = |label: &str, points: Vec<[f64; 2]>, paper| Series {
            label: label.into(),
            points,
            paper,
        };
        let svg = tradeoff(
            "F1 against GD",
            ["F1 %", "GD"],
            &[
                s(
                    "a",
                    vec![[50.0, 1.0], [52.0, 0.5], [51.0, 0.0]],
                    Some([55.0, 2.0]),
                ),
                s("b", vec![[60.0, 3.0]], None),
            ],
            &|v| format!("{v:.1}"),
        );
        let seed_dots = svg.matches(r##"r="3" fill="#"##).count();
        assert_eq!(seed_dots, 4 + 1, "4 seeds and the legend's dot");
        assert_eq!(
            svg.matches(r#"r="4.5""#).count(),
            2 + 2,
            "2 means, 2 legend dots"
        );
        assert_eq!(
            svg.matches(r#"fill="white""#).count(),
            1 + 1,
            "1 paper point + legend"
        );
        assert!(!svg.contains(">-"), "no negative tick: {svg}");
        assert!(svg.contains("GD (lower is fairer)"));
        // Every point on one value (all-Yes cells): the axes still have distinct ticks.
        let flat = tradeoff(
            "flat",
            ["F1 %", "GD"],
            &[s("a", vec![[69.66, 0.0], [69.66, 0.0]], None)],
            &|v| format!("{v:.1}"),
        );
        let ticks: Vec<&str> = flat
            .split(r#"class="tick" text-anchor="middle">"#)
            .skip(1)
            .map(|t| t.split('<').next().unwrap())
            .collect();
        assert_eq!(ticks, ["69.2", "69.4", "69.7", "69.9", "70.2"]);
        assert!(flat.contains(">0.5<") && !flat.contains(">-"), "{flat}");
    }

    #[test]
    fn a_figure_defined_in_some_cells_says_in_how_many() {
        // 0.1 and 0.3 (x100): mean 20, sample std sqrt(((10)^2 + (10)^2) / 1) = 14.142...
        assert_eq!(mean_std_text(&[0.1, 0.3], 100.0, 3), "20.00 ± 14.14 (2/3)");
        assert_eq!(mean_std_text(&[0.1, 0.3], 100.0, 2), "20.00 ± 14.14");
        assert_eq!(mean_std_text(&[0.5], 1.0, 1), "0.50");
        assert_eq!(mean_std_text(&[0.5], 1.0, 3), "0.50 (1/3)");
        assert_eq!(mean_std_text(&[], 1.0, 3), "–");
    }
}
