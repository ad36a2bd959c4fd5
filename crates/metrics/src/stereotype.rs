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
//!   (population std); item i belongs to group s when `z_s(i) > z*` (`z_threshold`; its
//!   default `auto` is ours, [`auto_threshold`]; paper B's Figure 6 studies it). Other
//!   items are neutral.
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

/// z*: a number, or `auto` ([`auto_threshold`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ZThreshold {
    Auto,
    Fixed(f64),
}

impl std::str::FromStr for ZThreshold {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "auto" {
            return Ok(ZThreshold::Auto);
        }
        match s.trim().parse::<f64>() {
            Ok(z) if z.is_finite() => Ok(ZThreshold::Fixed(z)),
            _ => Err(format!("`{s}` is neither `auto` nor a finite number")),
        }
    }
}

impl std::fmt::Display for ZThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZThreshold::Auto => f.write_str("auto"),
            ZThreshold::Fixed(z) => write!(f, "{z}"),
        }
    }
}

impl serde::Serialize for ZThreshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ZThreshold::Auto => s.serialize_str("auto"),
            ZThreshold::Fixed(z) => s.serialize_f64(*z),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ZThreshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(z) => Ok(ZThreshold::Fixed(z)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Settings of the item grouping.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StereotypeConfig {
    pub z_threshold: ZThreshold,
    pub normalize: bool,
}

impl Default for StereotypeConfig {
    fn default() -> Self {
        StereotypeConfig {
            z_threshold: ZThreshold::Auto,
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
    /// The z* the groups were drawn at (`auto` resolved).
    pub z_threshold: f64,
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

/// Every item's stereotype z-score for every group (module docs): what the grouping
/// thresholds, and what `fairrec data stereotypes` shows (paper B's Figure 3).
#[derive(Debug, Clone, PartialEq)]
pub struct Degrees {
    /// The user groups (attribute values), sorted.
    pub groups: Vec<String>,
    /// The users of each group.
    pub users: Vec<usize>,
    /// The items seen in training, sorted.
    pub items: Vec<String>,
    /// `z[g][i]`: item i's z-score for group g (empty for a group whose degrees are all
    /// equal, or with fewer than two groups).
    pub z: Vec<Vec<f64>>,
}

impl Degrees {
    /// The degrees and z-scores of the items of `train` (module docs).
    pub fn of(train: &[Interactions<'_>], normalize: bool) -> Degrees {
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
                        if normalize {
                            n / (users[g].len().max(1)) as f64
                        } else {
                            n
                        }
                    })
                    .collect()
            })
            .collect();
        let z = (0..k)
            .filter(|_| k >= 2)
            .map(|g| {
                let d: Vec<f64> = r
                    .iter()
                    .map(|ri| {
                        ri[g]
                            - (0..k).filter(|&o| o != g).map(|o| ri[o]).sum::<f64>()
                                / (k - 1) as f64
                    })
                    .collect();
                let n = d.len().max(1) as f64;
                let mean = d.iter().sum::<f64>() / n;
                let std = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                if std == 0.0 {
                    return Vec::new();
                }
                d.iter().map(|di| (di - mean) / std).collect()
            })
            .collect();
        Degrees {
            users: users.iter().map(HashSet::len).collect(),
            groups,
            items: items.into_iter().map(str::to_string).collect(),
            z,
        }
    }

    /// How many items each group holds at `z_threshold`.
    pub fn sizes_at(&self, z_threshold: f64) -> Vec<usize> {
        self.z
            .iter()
            .map(|z| z.iter().filter(|&&x| x > z_threshold).count())
            .chain(std::iter::repeat(0))
            .take(self.groups.len())
            .collect()
    }

    /// The item groups at `z_threshold`.
    pub fn groups_at(&self, z_threshold: f64) -> ItemGroups {
        let mut membership: HashMap<String, Vec<usize>> = HashMap::new();
        for (g, z) in self.z.iter().enumerate() {
            for (i, zi) in self.items.iter().zip(z) {
                if *zi > z_threshold {
                    membership.entry(i.clone()).or_default().push(g);
                }
            }
        }
        ItemGroups {
            groups: self.groups.clone(),
            membership,
            n_items: self.items.len(),
            z_threshold,
        }
    }
}

/// The thresholds `auto` tries, largest first: the usual outlier cut-offs 3 and 2 (paper B
/// takes "commonly-used settings", chosen per dataset from its Figure 3), then lower ones.
pub const AUTO_CANDIDATES: [f64; 6] = [3.0, 2.5, 2.0, 1.5, 1.0, 0.5];

/// `auto` keeps the largest candidate at which every group holds at least this many items.
pub const AUTO_MIN_ITEMS: usize = 20;

/// z* = `auto` (ours): the largest of [`AUTO_CANDIDATES`] at which every group holds at
/// least [`AUTO_MIN_ITEMS`] items, else the smallest candidate. Paper B picks its
/// thresholds by eye from the z-score distributions; this rule picks an outlier threshold
/// that leaves every group enough items to measure. On ML-100K's mos split (seed 0,
/// normalised rates) it gives 2.
pub fn auto_threshold(d: &Degrees) -> f64 {
    AUTO_CANDIDATES
        .into_iter()
        .find(|&z| d.sizes_at(z).iter().all(|&n| n >= AUTO_MIN_ITEMS))
        .unwrap_or(AUTO_CANDIDATES[AUTO_CANDIDATES.len() - 1])
}

/// Group items by stereotype degree; see the module docs.
pub fn item_groups(train: &[Interactions<'_>], cfg: &StereotypeConfig) -> ItemGroups {
    let d = Degrees::of(train, cfg.normalize);
    let z = match cfg.z_threshold {
        ZThreshold::Auto => auto_threshold(&d),
        ZThreshold::Fixed(z) => z,
    };
    d.groups_at(z)
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

    impl<'a> Interactions<'a> {
        fn with(mut self, items: Vec<&'a str>) -> Self {
            self.items = items;
            self
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
        let fixed = |z| StereotypeConfig {
            z_threshold: ZThreshold::Fixed(z),
            normalize: true,
        };
        let g = item_groups(&train, &fixed(1.0));
        assert_eq!(g.groups, ["female", "male"]);
        assert_eq!(g.membership["a"], [0]);
        assert_eq!(g.membership["b"], [1]);
        assert!(!g.membership.contains_key("c"));
        let strict = item_groups(
            &train,
            &StereotypeConfig {
                z_threshold: ZThreshold::Fixed(1.2),
                normalize: true,
            },
        );
        assert!(!strict.membership.contains_key("b"), "z_m(b) = 1.147 < 1.2");
        assert_eq!(g.sizes(), [1, 1]);
    }

    #[test]
    fn auto_threshold_keeps_the_largest_cut_off_with_enough_items() {
        // 60 items, 40 women and 40 men; item k is seen by min(k, 40) women and no man for
        // k < 30, by men only otherwise: z-scores spread over the whole range.
        let items: Vec<String> = (0..60).map(|k| format!("i{k}")).collect();
        let users: Vec<String> = (0..80).map(|u| u.to_string()).collect();
        let train: Vec<Interactions<'_>> = (0..80)
            .map(|u| {
                let female = u < 40;
                let mine = (0..60).filter(|&k| {
                    let w = (k % 30) + 1;
                    (female == (k < 30)) && (u % 40) < w
                });
                inter(&users[u], if female { "female" } else { "male" }, &[])
                    .with(mine.map(|k| items[k].as_str()).collect())
            })
            .collect();
        let d = Degrees::of(&train, true);
        let z = auto_threshold(&d);
        assert!(AUTO_CANDIDATES.contains(&z));
        assert!(d.sizes_at(z).iter().all(|&n| n >= AUTO_MIN_ITEMS), "{z}");
        // every larger candidate leaves a group short
        for c in AUTO_CANDIDATES.iter().filter(|&&c| c > z) {
            assert!(d.sizes_at(*c).iter().any(|&n| n < AUTO_MIN_ITEMS), "{c}");
        }
        let auto = item_groups(&train, &StereotypeConfig::default());
        assert_eq!(auto.z_threshold, z);
        assert_eq!(auto.sizes(), d.sizes_at(z));
        // a dataset too small for any candidate falls back to the smallest
        let tiny = [inter("1", "female", &["a"]), inter("2", "male", &["b"])];
        assert_eq!(auto_threshold(&Degrees::of(&tiny, true)), 0.5);
        assert_eq!("auto".parse::<ZThreshold>(), Ok(ZThreshold::Auto));
        assert_eq!("2".parse::<ZThreshold>(), Ok(ZThreshold::Fixed(2.0)));
        assert!("NaN".parse::<ZThreshold>().is_err() && "two".parse::<ZThreshold>().is_err());
    }

    #[test]
    fn delta_by_hand() {
        let groups = ItemGroups {
            groups: vec!["female".into(), "male".into()],
            membership: HashMap::from([("a".to_string(), vec![0]), ("b".to_string(), vec![1])]),
            n_items: 4,
            z_threshold: 1.0,
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
            z_threshold: 1.0,
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
