//! Paper B's stereotype-aware fairness. The paper's equations are lost from our copy; these
//! definitions follow its prose and READING.md. Choices marked (ours) are options.
//!
//! **Item stereotype groups** (from training interactions, for one sensitive attribute
//! with user groups s):
//! * `n_s(i)` = number of distinct users of group s whose training interactions (history
//!   and target) hold item i; `r_s(i) = n_s(i) / |U_s|` (normalising by group size is ours;
//!   `normalize = false` uses raw counts);
//! * degree `d_s(i) = r_s(i) - mean_{s' != s} r_s'(i)` ("subtraction" for two groups);
//! * `z_s(i) = (d_s(i) - mean_i d_s) / std_i d_s` over all items seen in training
//!   (population std); item i belongs to group s when `z_s(i) > z*` (`z_threshold`,
//!   default 1.0, ours; paper B's Figure 6 studies it). Other items are neutral.
//!
//! **Over-/under-recommendation** in one prompt setting (implicit = `neutral` variant,
//! explicit = `original`, counterfactual = the single-attribute variants stating a value
//! other than the user's true one). For users of group s' and item group s:
//! `Delta(s', s) = p_s(targets predicted Yes for users of s') - p_s(those users' history
//! items)`, with `p_s(L)` the share of the items of list L (with multiplicity; every
//! prediction's own history counts) that belong to s. `Delta > 0` is over-recommendation.
//! Reported per pair, summed over same-group pairs (s' = s) and other-group pairs
//! (s' != s) as `100 * sum |Delta|`, and in total (both sums). A pair with no Yes
//! prediction or no history item is undefined and left out of the sums (and named).

use std::collections::{BTreeMap, HashMap, HashSet};

/// Settings of the item grouping.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StereotypeConfig {
    pub z_threshold: f64,
    pub normalize: bool,
}

impl Default for StereotypeConfig {
    fn default() -> Self {
        StereotypeConfig {
            z_threshold: 1.0,
            normalize: true,
        }
    }
}

/// One training interaction set: a user, their group, the items they interacted with.
pub struct Interactions<'a> {
    pub user: &'a str,
    pub group: &'a str,
    pub items: Vec<&'a str>,
}

/// The item groups of one attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemGroups {
    /// The user groups (attribute values), sorted.
    pub groups: Vec<String>,
    /// Item -> indices (into `groups`) of the stereotype groups it belongs to.
    pub membership: HashMap<String, Vec<usize>>,
    /// Items seen in training.
    pub n_items: usize,
}

impl ItemGroups {
    /// Number of items in each group.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.groups.len()];
        for gs in self.membership.values() {
            for &g in gs {
                s[g] += 1;
            }
        }
        s
    }

    /// The stereotype groups `item` belongs to (empty: a neutral item).
    pub fn of(&self, item: &str) -> &[usize] {
        self.membership.get(item).map_or(&[], Vec::as_slice)
    }
}

/// Group items by stereotype degree; see the module docs.
pub fn item_groups(train: &[Interactions<'_>], cfg: &StereotypeConfig) -> ItemGroups {
    let mut groups: Vec<String> = train
        .iter()
        .map(|t| t.group.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    groups.sort();
    let gidx: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut users: Vec<HashSet<&str>> = vec![HashSet::new(); groups.len()];
    let mut seen: HashMap<&str, Vec<HashSet<&str>>> = HashMap::new();
    for t in train {
        let g = gidx[t.group];
        users[g].insert(t.user);
        for &i in &t.items {
            seen.entry(i)
                .or_insert_with(|| vec![HashSet::new(); groups.len()])[g]
                .insert(t.user);
        }
    }
    let mut items: Vec<&str> = seen.keys().copied().collect();
    items.sort_unstable();
    let k = groups.len();
    let r: Vec<Vec<f64>> = items
        .iter()
        .map(|i| {
            (0..k)
                .map(|g| {
                    let n = seen[i][g].len() as f64;
                    if cfg.normalize {
                        n / (users[g].len().max(1)) as f64
                    } else {
                        n
                    }
                })
                .collect()
        })
        .collect();
    let mut membership: HashMap<String, Vec<usize>> = HashMap::new();
    if k >= 2 {
        for g in 0..k {
            let d: Vec<f64> = r
                .iter()
                .map(|ri| {
                    ri[g] - (0..k).filter(|&o| o != g).map(|o| ri[o]).sum::<f64>() / (k - 1) as f64
                })
                .collect();
            let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
            let std =
                (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len().max(1) as f64).sqrt();
            if std == 0.0 {
                continue;
            }
            for (i, di) in items.iter().zip(&d) {
                if (di - mean) / std > cfg.z_threshold {
                    membership.entry(i.to_string()).or_default().push(g);
                }
            }
        }
    }
    ItemGroups {
        groups,
        membership,
        n_items: items.len(),
    }
}

/// The three prompt settings of paper B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// No user profile (`neutral`).
    Implicit,
    /// The true profile (`original`).
    Explicit,
    /// The profile with another value.
    Counterfactual,
}

impl Setting {
    pub const ALL: [Setting; 3] = [
        Setting::Implicit,
        Setting::Explicit,
        Setting::Counterfactual,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Setting::Implicit => "implicit",
            Setting::Explicit => "explicit",
            Setting::Counterfactual => "counterfactual",
        }
    }
}

/// Accumulated counts for the Delta of every (setting, user group, item group); one per
/// resampling unit so that the bootstrap can reweight units.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    k: usize,
    /// [setting][user group] -> (yes total, history total)
    totals: Vec<[f64; 2]>,
    /// [setting][user group][item group] -> (yes in group, history in group)
    inside: Vec<[f64; 2]>,
}

impl Counts {
    pub fn new(k: usize) -> Self {
        Counts {
            k,
            totals: vec![[0.0; 2]; 3 * k],
            inside: vec![[0.0; 2]; 3 * k * k],
        }
    }

    /// Add one prediction: a user of group `user_group` in `setting`, its target, whether it
    /// was predicted Yes, and its history.
    pub fn add(
        &mut self,
        groups: &ItemGroups,
        setting: Setting,
        user_group: usize,
        target: &str,
        yes: bool,
        history: &[&str],
    ) {
        let s = setting as usize;
        let t = &mut self.totals[s * self.k + user_group];
        if yes {
            t[0] += 1.0;
        }
        t[1] += history.len() as f64;
        let base = (s * self.k + user_group) * self.k;
        if yes {
            for &g in groups.of(target) {
                self.inside[base + g][0] += 1.0;
            }
        }
        for h in history {
            for &g in groups.of(h) {
                self.inside[base + g][1] += 1.0;
            }
        }
    }

    /// `self += w * other`.
    pub fn add_scaled(&mut self, other: &Counts, w: f64) {
        for (a, b) in self
            .totals
            .iter_mut()
            .zip(&other.totals)
            .chain(self.inside.iter_mut().zip(&other.inside))
        {
            a[0] += w * b[0];
            a[1] += w * b[1];
        }
    }
}

/// Stereotype-aware fairness in one setting.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SettingFairness {
    /// `100 * sum |Delta|` over all defined pairs.
    pub total: Option<f64>,
    /// `100 * sum |Delta|` over pairs with s' = s.
    pub same_group: Option<f64>,
    /// `100 * sum |Delta|` over pairs with s' != s.
    pub other_group: Option<f64>,
    /// `users=<s'>,items=<s>` -> Delta (signed, as a fraction).
    pub pairs: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undefined: BTreeMap<String, String>,
}

/// Deltas of every setting present in `counts`.
pub fn fairness(groups: &ItemGroups, counts: &Counts) -> BTreeMap<Setting, SettingFairness> {
    let k = groups.groups.len();
    let mut out = BTreeMap::new();
    for setting in Setting::ALL {
        let s = setting as usize;
        if (0..k).all(|u| counts.totals[s * k + u] == [0.0, 0.0]) {
            continue;
        }
        let mut f = SettingFairness {
            total: None,
            same_group: None,
            other_group: None,
            pairs: BTreeMap::new(),
            undefined: BTreeMap::new(),
        };
        let (mut same, mut other) = (None::<f64>, None::<f64>);
        for u in 0..k {
            let [yes, hist] = counts.totals[s * k + u];
            for g in 0..k {
                let key = format!("users={},items={}", groups.groups[u], groups.groups[g]);
                let [yin, hin] = counts.inside[(s * k + u) * k + g];
                let delta = if yes > 0.0 && hist > 0.0 {
                    Some(yin / yes - hin / hist)
                } else {
                    let why = if yes == 0.0 {
                        "no Yes prediction for these users"
                    } else {
                        "these users have no history item"
                    };
                    f.undefined.insert(key.clone(), why.into());
                    None
                };
                if let Some(d) = delta {
                    let acc = if u == g { &mut same } else { &mut other };
                    *acc = Some(acc.unwrap_or(0.0) + 100.0 * d.abs());
                }
                f.pairs.insert(key, delta);
            }
        }
        f.same_group = same;
        f.other_group = other;
        f.total = match (same, other) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        out.insert(setting, f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inter<'a>(user: &'a str, group: &'a str, items: &[&'a str]) -> Interactions<'a> {
        Interactions {
            user,
            group,
            items: items.to_vec(),
        }
    }

    #[test]
    fn degrees_and_z_scores_by_hand() {
        // 2 women, 2 men. Item a: both women, no men -> r_f = 1, r_m = 0, d_f = 1.
        // Item b: one man -> d_f = -0.5. Items c, d: everyone -> d_f = 0.
        let train = [
            inter("1", "female", &["a", "c", "d"]),
            inter("2", "female", &["a", "c", "d"]),
            inter("3", "male", &["b", "c", "d"]),
            inter("4", "male", &["c", "d"]),
        ];
        // d_f over items (a, b, c, d) = (1, -0.5, 0, 0): mean 0.125, population std
        // sqrt((0.875^2 + 0.625^2 + 2 * 0.125^2) / 4) = 0.5449; z_f(a) = 1.606, z_m(b) = 1.147.
        let g = item_groups(&train, &StereotypeConfig::default());
        assert_eq!(g.groups, ["female", "male"]);
        assert_eq!(g.membership["a"], [0]);
        assert_eq!(g.membership["b"], [1]);
        assert!(!g.membership.contains_key("c"));
        let strict = item_groups(
            &train,
            &StereotypeConfig {
                z_threshold: 1.2,
                normalize: true,
            },
        );
        assert!(!strict.membership.contains_key("b"), "z_m(b) = 1.147 < 1.2");
        assert_eq!(g.sizes(), [1, 1]);
    }

    #[test]
    fn delta_by_hand() {
        let groups = ItemGroups {
            groups: vec!["female".into(), "male".into()],
            membership: HashMap::from([("a".to_string(), vec![0]), ("b".to_string(), vec![1])]),
            n_items: 4,
        };
        let mut c = Counts::new(2);
        // Women: 2 Yes targets (a, c), history a, c, c, d -> p_f(rec) = 1/2, p_f(hist) = 1/4.
        c.add(&groups, Setting::Explicit, 0, "a", true, &["a", "c"]);
        c.add(&groups, Setting::Explicit, 0, "c", true, &["c", "d"]);
        c.add(&groups, Setting::Explicit, 0, "b", false, &[]);
        // Men: 1 Yes target (b), history b, b -> p_m(rec) = 1, p_m(hist) = 1.
        c.add(&groups, Setting::Explicit, 1, "b", true, &["b", "b"]);
        let f = &fairness(&groups, &c)[&Setting::Explicit];
        assert_eq!(f.pairs["users=female,items=female"], Some(0.25));
        assert_eq!(f.pairs["users=female,items=male"], Some(0.0));
        assert_eq!(f.pairs["users=male,items=male"], Some(0.0));
        assert_eq!(f.pairs["users=male,items=female"], Some(0.0));
        assert_eq!(f.same_group, Some(25.0));
        assert_eq!(f.other_group, Some(0.0));
        assert_eq!(f.total, Some(25.0));
        assert!(!fairness(&groups, &c).contains_key(&Setting::Implicit));
        // a group with no Yes is undefined, named, and left out of the sums
        let mut d = Counts::new(2);
        d.add(&groups, Setting::Implicit, 0, "a", false, &["a"]);
        d.add(&groups, Setting::Implicit, 1, "b", true, &["a"]);
        let f = &fairness(&groups, &d)[&Setting::Implicit];
        assert_eq!(f.pairs["users=female,items=female"], None);
        assert!(f.undefined["users=female,items=female"].contains("no Yes"));
        assert_eq!(f.same_group, Some(100.0));
    }
}
