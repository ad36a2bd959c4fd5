//! People's versions of the quickstart report: `report.md` and a self-contained
//! `report.html` (inline CSS and SVG), plus `report.json` for machines.

use super::report::{pts_ci, sci_ci, Est, MethodReport, Report};
use anyhow::Result;
use fairrec_data::sample::write_set;
use fairrec_metrics::report::svg::{diverging, extent, hbars, Bar};
use fairrec_metrics::report::{html, markdown, Block};
use fairrec_metrics::report::{pct, with_ci};
use std::path::Path;

fn blocks(r: &Report) -> Vec<Block> {
    let mut b = vec![Block::Heading(
        1,
        "fairrec quickstart: does the recommender stereotype, and what do CF-Diff and CL-MoE change?".into(),
    )];
    b.push(Block::Heading(2, "What we found".into()));
    for f in &r.findings {
        b.push(Block::Para(f.clone()));
    }
    b.push(Block::Para(format!(
        "GD is paper A's Eq. 2 with g = F1, in F1 points (×100); lower is fairer and 0 means every stated `{}` gives the same F1 as the neutral prompt. Brackets are 95 % bootstrap intervals over test users (GD cannot be negative, so its interval never reaches below the smallest resampled value; the paired per-group intervals say whether a group differs).",
        r.joint
    )));
    world_blocks(r, &mut b);
    results_blocks(r, &mut b);
    b.push(Block::Heading(2, "How it was made".into()));
    let w = &r.world;
    b.push(Block::Para(format!(
        "Seed {}; data hash `{}`; git revision `{}`. The built-in model ({} parameters: a Llama of {} layers, hidden size {}, with a tokenizer trained on the world's prompts) was fully fine-tuned for {} epoch(s) on the original prompts (best valid AUC {} %, {:.0} s); it plays the pretrained LLM. Each method then trained LoRA on top of that same model. The world: {} users, {} items, exposure {}, lean appeal {}, group effect {}, noise {}. Every step's command and log are in this directory (`experiment.json`, `cells/*/*/*/*/*/log.txt`); `results.md` is the experiment table. The steps took {:.0} s as they ran (fine-tuning, then each method's training and audit); this invocation took {:.0} s (steps finished by an earlier run are not redone).",
        r.seed,
        r.data_hash,
        r.git_revision.as_deref().unwrap_or("unknown"),
        r.base_model.parameters,
        r.base_model.layers,
        r.base_model.hidden,
        r.base_model.finetune_epochs,
        pct(r.base_model.finetune_valid_auc),
        r.base_model.finetune_seconds.unwrap_or(0.0),
        w["users"],
        w["items"],
        w["exposure"],
        w["lean_appeal"],
        w["group_effect"],
        w["noise"],
        r.steps_seconds,
        r.seconds
    )));
    b
}

fn world_blocks(r: &Report, b: &mut Vec<Block>) {
    b.push(Block::Heading(
        2,
        "The world and its planted stereotype".into(),
    ));
    b.push(Block::Para(format!(
        "A synthetic world of {} users and {} items. Items lean towards women or men and towards young or old users; users are shown the items of their own groups more often, and female- and young-leaning items are somewhat more appealing to everyone. How a user rates a given item does not depend on their gender or age (group effect {}), yet the share of liked targets differs a lot between groups (train split below). A recommender that answers by the stated gender or age instead of by the target item has learned the stereotype: any answer that changes when only the stated attributes change is unfair by construction.",
        r.world["users"], r.world["items"], r.world["group_effect"]
    )));
    let rows = r
        .train_label_rates
        .iter()
        .flat_map(|(a, vs)| {
            vs.iter().map(move |(v, (n, p))| {
                vec![
                    a.clone(),
                    v.clone(),
                    n.to_string(),
                    format!("{:.1}", 100.0 * p),
                ]
            })
        })
        .collect();
    b.push(Block::Table(
        vec![
            "attribute".into(),
            "value".into(),
            "train samples".into(),
            "liked %".into(),
        ],
        rows,
    ));
}

fn results_blocks(r: &Report, b: &mut Vec<Block>) {
    let sets: Vec<String> = std::iter::once(r.joint.clone())
        .chain(
            r.joint
                .split(',')
                .map(String::from)
                .filter(|a| *a != r.joint),
        )
        .collect();
    b.push(Block::Heading(2, "Per method".into()));
    let mut head = vec!["method".to_string(), "F1 %".into(), "AUC %".into()];
    for s in &sets {
        head.push(format!("GD ×100 ({s})"));
    }
    head.extend([format!("Rate ({})", r.joint), "train s".into()]);
    let rows = r
        .methods
        .iter()
        .map(|m| {
            let mut row = vec![m.label.clone(), pts_ci(&m.f1), pct(m.auc)];
            for s in &sets {
                row.push(m.fairness.get(s).map_or("–".into(), |f| pts_ci(&f.gd)));
            }
            let j = m.fairness.get(&r.joint);
            row.push(j.map_or("–".into(), |f| sci_ci(&f.rate)));
            row.push(m.train_seconds.map_or("–".into(), |s| format!("{s:.0}")));
            row
        })
        .collect();
    b.push(Block::Table(head, rows));
    b.push(Block::Para("F1 and AUC are of the original prompts (true attributes stated). Rate is Eq. 3 as printed (mean |1 − g_i/g(B)|); `report.json` also has the squared deviation `rate_sq`, which is (GD / neutral F1)² (no reading of Eq. 3 reproduces the Rate the paper prints).".into()));
    let bars = |f: &dyn Fn(&MethodReport) -> Est| -> Vec<Bar> {
        r.methods
            .iter()
            .map(|m| {
                let e = f(m);
                Bar {
                    label: m.label.clone(),
                    value: e.value.map(|v| 100.0 * v),
                    ci: e.ci.map(|[a, c]| [100.0 * a, 100.0 * c]),
                }
            })
            .collect()
    };
    let fmt = |v: f64| format!("{v:.2}");
    for s in &sets {
        let gd = bars(&|m| {
            m.fairness.get(s).map_or(
                Est {
                    value: None,
                    ci: None,
                },
                |f| f.gd,
            )
        });
        let hi = gd
            .iter()
            .filter_map(|b| b.ci.map_or(b.value, |c| Some(c[1])))
            .fold(0.5, f64::max);
        b.push(Block::Chart(hbars(
            &format!("GD ({s}) in F1 points, 95 % interval; lower is fairer"),
            &gd,
            None,
            0.0,
            hi * 1.1,
            &fmt,
        )));
    }
    b.push(Block::Chart(hbars(
        "F1 % of the original prompts, 95 % interval",
        &bars(&|m| m.f1),
        None,
        0.0,
        100.0,
        &fmt,
    )));
    b.push(Block::Heading(
        3,
        format!(
            "F1 minus the neutral F1 when every test user is stated as one `{}` group",
            r.joint
        ),
    ));
    let mut head = vec!["group".to_string()];
    head.extend(r.methods.iter().map(|m| m.label.clone()));
    let groups: Vec<&String> = r
        .methods
        .first()
        .and_then(|m| m.fairness.get(&r.joint))
        .map_or(Vec::new(), |f| f.shift.keys().collect());
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = vec![(*g).clone()];
            for m in &r.methods {
                row.push(
                    m.fairness
                        .get(&r.joint)
                        .and_then(|f| f.shift.get(*g))
                        .map_or("–".into(), |e| {
                            let signed = |x: f64| format!("{:+.2}", 100.0 * x);
                            let v = e.value.map_or("undefined".into(), signed);
                            with_ci(v, e.ci.as_ref(), &signed)
                        }),
                );
            }
            row
        })
        .collect();
    b.push(Block::Table(head, rows));
    b.push(Block::Para("Points of F1, with paired 95 % intervals: an interval that excludes 0 means the group's prompts change the answers beyond resampling noise.".into()));
    // One chart per method on a common axis, so that the bars compare across methods.
    let charts: Vec<(&MethodReport, Vec<Bar>)> = r
        .methods
        .iter()
        .filter_map(|m| {
            let f = m.fairness.get(&r.joint)?;
            let bars = f
                .shift
                .iter()
                .map(|(k, e)| Bar {
                    label: k.clone(),
                    value: e.value.map(|v| 100.0 * v),
                    ci: e.ci.map(|[a, c]| [100.0 * a, 100.0 * c]),
                })
                .collect();
            Some((m, bars))
        })
        .collect();
    let half = charts.iter().map(|(_, b)| extent(b)).fold(0.5, f64::max);
    for (m, bars) in &charts {
        b.push(Block::Chart(diverging(
            &format!("{}: F1 − neutral F1 (points) per stated group", m.label),
            bars,
            ["lower F1", "higher F1"],
            Some(half),
            &|v| format!("{v:+.1}"),
        )));
    }
}

/// Write `report.json`, `report.md` and `report.html` into `out`.
pub fn write(out: &Path, r: &Report) -> Result<()> {
    let json = serde_json::to_string_pretty(r)? + "\n";
    let b = blocks(r);
    let (md, page) = (
        markdown(&b),
        html(&b, "fairrec quickstart report", "`report.json`"),
    );
    let files: [(&str, &[u8]); 3] = [
        ("report.json", json.as_bytes()),
        ("report.md", md.as_bytes()),
        ("report.html", page.as_bytes()),
    ];
    write_set(out, &files.map(|(n, _)| n), &files)?;
    Ok(())
}
