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
//!
//! **The headline: a per-recommendation average** (ours; READING.md's correction of
//! 2026-12). Paper B's tables cannot be the sum: in all six dataset x setting cases the
//! LLM-RS headline of its Table IV lies *between* Table I's inconsistent and consistent
//! parts (ML-100K implicit: 12.02 and 78.82 -> 75.22; explicit 17.14 / 83.13 -> 79.17;
//! counterfactual 10.76 / 76.11 -> 72.09), and a sum of two non-negative parts is at least
//! each of them. An average over recommendations dominated by consistent pairs fits. For a
//! prediction answered Yes, by a user u of group s_u, whose target i belongs to a stereotype
//! group, `v = 1[i in s_u] - p_{s_u}(H_u)` with `H_u` that prediction's history:
//! * consistent (`i in s_u`): `v = 1 - p_{s_u}(H_u)`, how far the recommendation of an own-group
//!   item exceeds the user's own-group share;
//! * inconsistent (i in another group only): `v = -p_{s_u}(H_u)`, an own-group share the
//!   recommendation ignores (never positive; shown as its magnitude, like Table I).
//!
//! `average = 100 * mean |v|` over both kinds, `average_same` / `average_other` over each; targets
//! in no group (neutral) and predictions without history are left out (and counted). On
//! oracle predictions (Yes = the label) this gives the paper's magnitudes (consistent ~56-76,
//! inconsistent ~2-19), where the sum gives 18.3 for a perfect recommender at z* = 1, so the
//! experiment tables compare the average with the published figures and show the sum
//! beside it under its own name (Σ|Δ|).

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
    /// [setting][user group] -> the per-recommendation average's sums (module docs):
    /// [sum |v| consistent, n consistent, sum |v| inconsistent, n inconsistent, Yes answers
    /// without history].
    recs: Vec<[f64; 5]>,
}

impl Counts {
    pub fn new(k: usize) -> Self {
        Counts {
            k,
            totals: vec![[0.0; 2]; 3 * k],
            inside: vec![[0.0; 2]; 3 * k * k],
            recs: vec![[0.0; 5]; 3 * k],
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
        let target_groups = groups.of(target);
        if yes && !target_groups.is_empty() {
            let r = &mut self.recs[s * self.k + user_group];
            if history.is_empty() {
                r[4] += 1.0;
                return;
            }
            let own = history
                .iter()
                .filter(|h| groups.of(h).contains(&user_group))
                .count() as f64;
            let p = own / history.len() as f64;
            if target_groups.contains(&user_group) {
                r[0] += 1.0 - p;
                r[1] += 1.0;
            } else {
                r[2] += p;
                r[3] += 1.0;
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
        for (a, b) in self.recs.iter_mut().zip(&other.recs) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += w * y;
            }
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
    /// The headline (module docs): `100 * mean |1[i in s_u] - p_{s_u}(H_u)|` over the
    /// recommendations (Yes answers) whose target is in a stereotype group; `None` in audits
    /// written before it existed or with no such recommendation.
    #[serde(default)]
    pub average: Option<f64>,
    /// The same over consistent recommendations (target in the user's own group).
    #[serde(default)]
    pub average_same: Option<f64>,
    /// The same over inconsistent recommendations (target in another group only).
    #[serde(default)]
    pub average_other: Option<f64>,
    /// How many recommendations each average takes: consistent, inconsistent, and those
    /// left out for want of a history.
    #[serde(default)]
    pub recommendations: Recommended,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undefined: BTreeMap<String, String>,
}

/// How many recommendations the per-recommendation averages take ([`SettingFairness`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recommended {
    pub consistent: f64,
    pub inconsistent: f64,
    pub without_history: f64,
}

/// `100 * sum / n`, or `None` when `n` is 0.
fn mean100(sum: f64, n: f64) -> Option<f64> {
    (n > 0.0).then(|| 100.0 * sum / n)
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
            average: None,
            average_same: None,
            average_other: None,
            recommendations: Recommended::default(),
            undefined: BTreeMap::new(),
        };
        let mut r = [0.0; 5];
        for u in 0..k {
            for (a, b) in r.iter_mut().zip(&counts.recs[s * k + u]) {
                *a += b;
            }
        }
        f.average = mean100(r[0] + r[2], r[1] + r[3]);
        f.average_same = mean100(r[0], r[1]);
        f.average_other = mean100(r[2], r[3]);
        f.recommendations = Recommended {
            consistent: r[1],
            inconsistent: r[3],
            without_history: r[4],
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

    #[test]
    fn per_recommendation_average_by_hand() {
        let groups = ItemGroups {
            groups: vec!["female".into(), "male".into()],
            membership: HashMap::from([
                ("a".to_string(), vec![0]),
                ("b".to_string(), vec![1]),
                ("ab".to_string(), vec![0, 1]),
            ]),
            n_items: 5,
        };
        let cf = Setting::Counterfactual;
        let mut c = Counts::new(2);
        // a woman, own-group item, history share of female items 1/4: |v| = 0.75
        c.add(&groups, cf, 0, "a", true, &["a", "c", "d", "d"]);
        // a woman, male item, female share 2/4: inconsistent, |v| = 0.5
        c.add(&groups, cf, 0, "b", true, &["a", "a", "c", "d"]);
        // a man, female item, male share 1/5: inconsistent, |v| = 0.2
        c.add(&groups, cf, 1, "a", true, &["b", "c", "c", "c", "c"]);
        // a man, an item of both groups: consistent, male share 1/2: |v| = 0.5
        c.add(&groups, cf, 1, "ab", true, &["b", "c"]);
        // left out: no history (counted), a neutral target, a No answer
        c.add(&groups, cf, 1, "b", true, &[]);
        c.add(&groups, cf, 1, "c", true, &["b"]);
        c.add(&groups, cf, 1, "b", false, &["b"]);
        let close = |x: Option<f64>, y: f64| assert!((x.unwrap() - y).abs() < 1e-12, "{x:?} {y}");
        let f = &fairness(&groups, &c)[&cf];
        close(f.average_same, 62.5);
        close(f.average_other, 35.0);
        close(f.average, 100.0 * 1.95 / 4.0);
        assert_eq!(
            f.recommendations,
            Recommended {
                consistent: 2.0,
                inconsistent: 2.0,
                without_history: 1.0
            }
        );
        // The average lies between its parts, unlike the sum.
        assert!(f.average < f.average_same && f.average > f.average_other);
        // A resampling weight scales sums and counts alike: the averages stay.
        let mut twice = Counts::new(2);
        twice.add_scaled(&c, 2.0);
        let g = &fairness(&groups, &twice)[&cf];
        close(g.average, 100.0 * 1.95 / 4.0);
        assert_eq!(g.recommendations.consistent, 4.0);
        // No recommendation of a grouped item: undefined.
        let mut none = Counts::new(2);
        none.add(&groups, cf, 0, "c", true, &["a"]);
        let h = &fairness(&groups, &none)[&cf];
        assert_eq!(
            (h.average, h.average_same, h.average_other),
            (None, None, None)
        );
    }
}
