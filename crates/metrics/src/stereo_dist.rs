//! The distribution of items' stereotype z-scores and the group sizes it gives at several
//! thresholds: what paper B's Figure 3 shows to pick z* per dataset, and what `fairrec
//! data stereotypes` prints. The z-scores are those of [`crate::stereotype`].

use crate::report::svg::{hbars, Bar};
use crate::report::Block;
use crate::stereotype::{auto_threshold, Degrees, AUTO_CANDIDATES, AUTO_MIN_ITEMS};
use fairrec_data::sample::{History, Sample};
use std::collections::{BTreeMap, HashMap};

/// The distributions of the prepared dataset `dir`'s train split for `attributes` (all of
/// the dataset's when `None`; one it lacks is an error naming those it has), with its
/// manifest: what `fairrec data stereotypes` and the Python package show.
pub fn of_dataset(
    dir: &std::path::Path,
    attributes: Option<&[String]>,
    normalize: bool,
) -> crate::Result<(fairrec_data::pipeline::Manifest, Vec<Distribution>)> {
    let manifest = fairrec_data::pipeline::read_manifest(dir)?;
    let known: Vec<String> = manifest.attribute_values.keys().cloned().collect();
    let attributes = attributes.map_or_else(|| known.clone(), <[String]>::to_vec);
    if let Some(attr) = attributes.iter().find(|a| !known.contains(a)) {
        return Err(crate::MetricsError::Invalid(format!(
            "attributes: `{attr}` is not an attribute of {} (it has: {})",
            dir.display(),
            known.join(", ")
        )));
    }
    let train = fairrec_data::pipeline::read_split(dir, "train")?;
    let dists = distributions(&train, &attributes, normalize);
    Ok((manifest, dists))
}

/// The distribution of every attribute of `attributes` over the train split `train`, with
/// the items' titles as the samples give them.
pub fn distributions(
    train: &[Sample],
    attributes: &[String],
    normalize: bool,
) -> Vec<Distribution> {
    let mut titles: HashMap<String, String> = HashMap::new();
    for s in train {
        titles.insert(s.target_id.clone(), s.target.clone());
        if let History::Sequence {
            history,
            history_ids,
        } = &s.history
        {
            for (id, t) in history_ids.iter().zip(history) {
                titles.entry(id.clone()).or_insert_with(|| t.clone());
            }
        }
    }
    attributes
        .iter()
        .map(|attr| {
            let d = Degrees::of(&crate::join::interactions(train, attr), normalize);
            Distribution::new(attr, &d, normalize, &titles)
        })
        .collect()
}

/// Width of a histogram bin of z-scores.
pub const BIN: f64 = 0.5;
/// Histogram range: z below `LOW` or at/above `HIGH` fall into the end bins.
pub const LOW: f64 = -2.0;
pub const HIGH: f64 = 4.0;
/// Items listed per group, by highest z-score.
pub const TOP: usize = 5;

/// One group's z-scores in short.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupDistribution {
    pub group: String,
    pub users: usize,
    /// `[lower edge, count]` per bin; the first bin also holds z < `LOW`, the last z >= `HIGH`.
    pub histogram: Vec<(f64, usize)>,
    /// The items of highest z-score: `(item id, title, z)`.
    pub top: Vec<(String, String, f64)>,
}

/// One attribute's distribution and group sizes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Distribution {
    pub attribute: String,
    pub normalize: bool,
    pub n_items: usize,
    pub groups: Vec<GroupDistribution>,
    /// z* -> items per group (in `groups` order) at that threshold.
    pub sizes: BTreeMap<String, Vec<usize>>,
    /// What `auto` picks.
    pub auto: f64,
}

impl Distribution {
    /// Summarise `d`; `titles` maps item ids to titles where known.
    pub fn new(
        attribute: &str,
        d: &Degrees,
        normalize: bool,
        titles: &HashMap<String, String>,
    ) -> Self {
        let bins = ((HIGH - LOW) / BIN).round() as usize;
        let groups = d
            .groups
            .iter()
            .enumerate()
            .map(|(g, name)| {
                let z = d.z.get(g).map_or(&[][..], Vec::as_slice);
                let mut histogram: Vec<(f64, usize)> =
                    (0..bins).map(|b| (LOW + b as f64 * BIN, 0)).collect();
                for &x in z {
                    let b = ((x - LOW) / BIN).floor().clamp(0.0, (bins - 1) as f64) as usize;
                    histogram[b].1 += 1;
                }
                let mut order: Vec<usize> = (0..z.len()).collect();
                order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
                let top = order
                    .into_iter()
                    .take(TOP)
                    .map(|i| {
                        let id = d.items[i].clone();
                        let title = titles.get(&id).cloned().unwrap_or_default();
                        (id, title, z[i])
                    })
                    .collect();
                GroupDistribution {
                    group: name.clone(),
                    users: d.users[g],
                    histogram,
                    top,
                }
            })
            .collect();
        Distribution {
            attribute: attribute.to_string(),
            normalize,
            n_items: d.items.len(),
            groups,
            sizes: AUTO_CANDIDATES
                .iter()
                .rev()
                .map(|&z| (format!("{z:.1}"), d.sizes_at(z)))
                .collect(),
            auto: auto_threshold(d),
        }
    }

    /// The report blocks: group sizes per threshold, each group's histogram (table and
    /// chart) and its most stereotyped items.
    pub fn blocks(&self) -> Vec<Block> {
        let mut out = vec![Block::Heading(2, self.attribute.clone())];
        let users: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{} `{}` users", g.users, g.group))
            .collect();
        out.push(Block::Para(format!(
            "{} items in the train split's interactions; {}; degrees from {}. `auto` picks z* = {} (the largest of {} that leaves every group at least {} items; ours).",
            self.n_items,
            users.join(", "),
            if self.normalize { "interaction rates per group size" } else { "raw interaction counts" },
            self.auto,
            AUTO_CANDIDATES.map(|z| z.to_string()).join(", "),
            AUTO_MIN_ITEMS,
        )));
        let mut head = vec!["z*".to_string()];
        head.extend(self.groups.iter().map(|g| format!("`{}` items", g.group)));
        head.push("neutral or in several".into());
        let rows = self
            .sizes
            .iter()
            .rev()
            .map(|(z, sizes)| {
                let mark = if z.parse::<f64>().ok() == Some(self.auto) {
                    " (auto)"
                } else {
                    ""
                };
                let mut row = vec![format!("{z}{mark}")];
                row.extend(sizes.iter().map(usize::to_string));
                row.push((self.n_items.saturating_sub(sizes.iter().sum())).to_string());
                row
            })
            .collect();
        out.push(Block::Table(head, rows));
        for g in &self.groups {
            let label = |lo: f64| match lo {
                x if x <= LOW => format!("z < {}", LOW + BIN),
                x if x + BIN >= HIGH => format!("z ≥ {x}"),
                x => format!("{x} ≤ z < {}", x + BIN),
            };
            let bars: Vec<Bar> = g
                .histogram
                .iter()
                .map(|&(lo, n)| Bar {
                    label: label(lo),
                    value: Some(n as f64),
                    ci: None,
                })
                .collect();
            let max = g.histogram.iter().map(|h| h.1).max().unwrap_or(1).max(1) as f64;
            out.push(Block::Chart(hbars(
                &format!(
                    "{} = {}: items by stereotype z-score",
                    self.attribute, g.group
                ),
                &bars,
                None,
                0.0,
                max,
                &|v| format!("{v:.0}"),
            )));
            out.push(Block::Table(
                vec![format!("z ({})", g.group), "items".into()],
                g.histogram
                    .iter()
                    .map(|&(lo, n)| vec![label(lo), n.to_string()])
                    .collect(),
            ));
            out.push(Block::Table(
                vec![
                    format!("most `{}` items", g.group),
                    "title".into(),
                    "z".into(),
                ],
                g.top
                    .iter()
                    .map(|(id, t, z)| vec![id.clone(), t.clone(), format!("{z:.2}")])
                    .collect(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stereotype::Interactions;

    #[test]
    fn histogram_sizes_and_top_items_by_hand() {
        // The items of stereotype::tests: z_f = (1.606, -1.147, -0.229, -0.229) for a, b, c, d.
        let inter = |user, group, items: &[&'static str]| Interactions {
            user,
            group,
            items: items.to_vec(),
        };
        let train = [
            inter("1", "female", &["a", "c", "d"]),
            inter("2", "female", &["a", "c", "d"]),
            inter("3", "male", &["b", "c", "d"]),
            inter("4", "male", &["c", "d"]),
        ];
        let d = Degrees::of(&train, true);
        let titles = HashMap::from([("a".to_string(), "Alpha".to_string())]);
        let dist = Distribution::new("gender", &d, true, &titles);
        let f = &dist.groups[0];
        assert_eq!((f.group.as_str(), f.users), ("female", 2));
        let count = |lo: f64| f.histogram.iter().find(|h| h.0 == lo).unwrap().1;
        assert_eq!(count(1.5), 1, "a: z 1.606");
        assert_eq!(count(-0.5), 2, "c, d: z -0.229");
        assert_eq!(count(-1.5), 1, "b: z -1.147");
        assert_eq!(f.histogram.iter().map(|h| h.1).sum::<usize>(), 4);
        assert_eq!(f.top[0].0, "a");
        assert_eq!(f.top[0].1, "Alpha");
        assert_eq!(dist.sizes["1.0"], [1, 1]);
        assert_eq!(dist.sizes["1.5"], [1, 0]);
        assert_eq!(dist.auto, 0.5, "4 items: no threshold leaves 20 per group");
        let md = crate::report::markdown(&dist.blocks());
        assert!(md.contains("| 0.5 (auto) | 1 | 1 | 2 |"), "{md}");
    }
}
