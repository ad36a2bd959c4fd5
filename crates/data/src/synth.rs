//! The synthetic stereotype world: a seeded generator of ML-100K-format raw files
//! (`u.user`, `u.item`, `u.data`, plus `u.genre`, `u.occupation`, `u.info`), so that the
//! real ML-100K loader and both protocols run on it unchanged.
//!
//! # Generative model
//! Items `i` have a gender lean `lg_i ~ U[-1, 1]` (positive: watched more by women), an age
//! lean `la_i ~ U[-1, 1]` (positive: watched more by the young), a popularity
//! `pi_i ~ N(0, 1)`, a base appeal `q_i ~ N(0, 0.5^2)` and a taste vector `v_i ~ N(0, I/d)`;
//! genres follow the leans (Romance/Musical lean female, Action/War male,
//! Animation/Children's young, Film-Noir/Documentary old) and titles are made-up words.
//! Users `u` have a gender (`s_g = +1` female, `-1` male; female with probability
//! `female_share`), an age in years drawn within a bucket (`s_a = +1` young, `0` middle
//! aged, `-1` old; bucket shares `age_shares`) and a taste vector `w_u ~ N(0, taste^2 I/d)`.
//! Let `a(u, i) = s_g lg_i + s_a la_i` be how much item `i` suits the stereotype of `u`'s
//! groups.
//!
//! * **Exposure** (which items `u` rates): `n_u ~ U{min_ratings..=max_ratings}` distinct
//!   items drawn without replacement with weights `exp(pi_i + exposure * a(u, i))`.
//! * **Rating**: `r* = base + q_i + lean_appeal * (lg_i + la_i) / 2 + w_u . v_i +
//!   group_effect * a(u, i) + noise * e`, `e ~ N(0, 1)`, rounded and clipped to 1..=5;
//!   timestamps increase in drawing order.
//!
//! With the default `group_effect = 0` the sensitive attributes carry no information about
//! how a user rates a given item: any change of a prediction under a counterfactual
//! attribute is unfair by construction. Group-correlated exposure together with
//! `lean_appeal > 0` (female- and young-leaning items are a little more appealing to
//! everyone) makes the *label* correlate with gender and age in the data, so a model can
//! learn the stereotype as a shortcut instead of reading the history and the target.

use crate::error::{DataError, Result};
use crate::loaders::ML100K_GENRES;
use crate::sample::write_set;
use fairrec_core::Rng;
use std::fmt::Write as _;
use std::path::Path;

/// Settings of the synthetic world; see the module docs for the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    pub users: usize,
    pub items: usize,
    pub min_ratings: usize,
    pub max_ratings: usize,
    pub seed: u64,
    /// Probability that a user is female.
    pub female_share: f64,
    /// Shares of young, middle aged and old users.
    pub age_shares: [f64; 3],
    /// Dimension of the taste vectors.
    pub dim: usize,
    /// Scale of personal taste.
    pub taste: f64,
    /// Mean rating offset.
    pub base: f64,
    /// True effect of the user's groups on ratings (0: none, the fair world).
    pub group_effect: f64,
    /// Strength of group-correlated exposure.
    pub exposure: f64,
    /// Extra appeal of female- and young-leaning items to everyone.
    pub lean_appeal: f64,
    /// Rating noise.
    pub noise: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            users: 1000,
            items: 400,
            min_ratings: 20,
            max_ratings: 60,
            seed: 0,
            female_share: 0.4,
            age_shares: [0.5, 0.3, 0.2],
            dim: 8,
            taste: 1.0,
            base: 3.3,
            group_effect: 0.0,
            exposure: 1.5,
            lean_appeal: 1.0,
            noise: 0.6,
        }
    }
}

impl SynthConfig {
    fn validate(&self) -> Result<()> {
        let bad = |option: &str, message: String| {
            Err(DataError::Config {
                option: option.into(),
                message,
            })
        };
        if self.users == 0 || self.items == 0 {
            return bad("users/items", "need at least one user and one item".into());
        }
        if self.min_ratings == 0
            || self.min_ratings > self.max_ratings
            || self.max_ratings > self.items
        {
            return bad(
                "min-ratings/max-ratings",
                format!(
                    "need 1 <= min_ratings ({}) <= max_ratings ({}) <= items ({})",
                    self.min_ratings, self.max_ratings, self.items
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.female_share) {
            return bad(
                "female-share",
                format!("must be in [0, 1], got {}", self.female_share),
            );
        }
        if self.age_shares.iter().any(|s| *s < 0.0 || !s.is_finite())
            || self.age_shares.iter().sum::<f64>() <= 0.0
        {
            return bad(
                "age-shares",
                format!(
                    "must be non-negative and not all zero, got {:?}",
                    self.age_shares
                ),
            );
        }
        if self.dim == 0 {
            return bad("dim", "must be at least 1".into());
        }
        for (option, v) in [
            ("taste", self.taste),
            ("base", self.base),
            ("group-effect", self.group_effect),
            ("exposure", self.exposure),
            ("lean-appeal", self.lean_appeal),
            ("noise", self.noise),
        ] {
            if !v.is_finite() {
                return bad(option, format!("must be a finite number, got {v}"));
            }
        }
        if self.noise < 0.0 {
            return bad("noise", format!("must be >= 0, got {}", self.noise));
        }
        Ok(())
    }
}

/// The latent truth of one generated item (written to `item_truth.tsv`).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemTruth {
    pub gender_lean: f64,
    pub age_lean: f64,
    pub appeal: f64,
}

const ADJ: [&str; 24] = [
    "Silent", "Crimson", "Golden", "Broken", "Hidden", "Last", "Wild", "Electric", "Quiet", "Lost",
    "Midnight", "Burning", "Frozen", "Secret", "Distant", "Little", "Iron", "Velvet", "Hollow",
    "Bright", "Restless", "Paper", "Glass", "Endless",
];
const NOUN: [&str; 24] = [
    "River", "Garden", "Empire", "Summer", "Letter", "Harbor", "Kingdom", "Promise", "Station",
    "Orchard", "Frontier", "Melody", "Shadow", "Voyage", "Island", "Canyon", "Lantern", "Season",
    "Highway", "Mirror", "Castle", "Meadow", "Signal", "Journey",
];
const OCCUPATIONS: [&str; 8] = [
    "student",
    "engineer",
    "educator",
    "writer",
    "healthcare",
    "artist",
    "retired",
    "other",
];

/// Genres by lean: (female, male, young, old, neutral).
fn genres_for(lg: f64, la: f64, rng: &mut Rng) -> Vec<&'static str> {
    let pick = |xs: &[&'static str], rng: &mut Rng| xs[rng.below(xs.len() as u64) as usize];
    let mut g = Vec::new();
    if lg > 0.3 {
        g.push(pick(&["Romance", "Musical", "Drama"], rng));
    } else if lg < -0.3 {
        g.push(pick(&["Action", "War", "Western", "Sci-Fi"], rng));
    }
    if la > 0.3 {
        g.push(pick(
            &["Animation", "Children's", "Comedy", "Adventure"],
            rng,
        ));
    } else if la < -0.3 {
        g.push(pick(&["Film-Noir", "Documentary", "Mystery"], rng));
    }
    if g.is_empty() {
        g.push(pick(&["Drama", "Comedy", "Thriller", "Crime"], rng));
    }
    g.sort();
    g.dedup();
    g
}

fn normal_vec(rng: &mut Rng, d: usize, scale: f64) -> Vec<f64> {
    (0..d)
        .map(|_| rng.normal() * scale / (d as f64).sqrt())
        .collect()
}

/// Generate the world and write its raw files into `dir` (created if needed).
/// Returns the items' latent truth.
pub fn write_world(cfg: &SynthConfig, dir: &Path) -> Result<Vec<ItemTruth>> {
    cfg.validate()?;
    let items = synth_items(cfg);
    let (u_user, u_data, n_ratings) = synth_users(cfg, &items);
    let truth = items.truth;
    let mut genre = String::new();
    for (k, g) in ML100K_GENRES.iter().enumerate() {
        writeln!(genre, "{g}|{k}").unwrap();
    }
    let mut item_truth = String::from("item_id\tgender_lean\tage_lean\tappeal\n");
    for (i, t) in truth.iter().enumerate() {
        writeln!(
            item_truth,
            "{}\t{:.6}\t{:.6}\t{:.6}",
            i + 1,
            t.gender_lean,
            t.age_lean,
            t.appeal
        )
        .unwrap();
    }
    let info = format!(
        "{} users\n{} items\n{n_ratings} ratings\n",
        cfg.users, cfg.items
    );
    let config = serde_json::to_string_pretty(cfg).expect("config serializes") + "\n";
    let files = [
        ("u.item", items.u_item),
        ("u.user", u_user),
        ("u.data", u_data),
        ("u.genre", genre),
        ("u.occupation", OCCUPATIONS.join("\n") + "\n"),
        ("u.info", info),
        ("item_truth.tsv", item_truth),
        ("synth.json", config),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_bytes())).collect();
    write_set(dir, OUTPUTS.files, &files)?;
    Ok(truth)
}

/// The files [`write_world`] writes.
pub const OUTPUTS: fairrec_core::fs::Outputs<'static> = fairrec_core::fs::Outputs {
    what: "a synthetic world",
    files: &[
        "u.item",
        "u.user",
        "u.data",
        "u.genre",
        "u.occupation",
        "u.info",
        "item_truth.tsv",
        "synth.json",
    ],
    whole_dir: false,
};

/// The items of a world: their hidden truth, popularity and taste vectors, and `u.item`.
struct Items {
    truth: Vec<ItemTruth>,
    pops: Vec<f64>,
    vecs: Vec<Vec<f64>>,
    u_item: String,
}

fn synth_items(cfg: &SynthConfig) -> Items {
    let mut rng = Rng::derive(cfg.seed, "synth-items");
    let mut truth = Vec::with_capacity(cfg.items);
    let mut pops = Vec::new();
    let mut vecs = Vec::new();
    let mut u_item = String::new();
    let mut seen_titles = std::collections::HashSet::new();
    for i in 0..cfg.items {
        let lg = rng.f64() * 2.0 - 1.0;
        let la = rng.f64() * 2.0 - 1.0;
        let q = 0.5 * rng.normal();
        pops.push(rng.normal());
        vecs.push(normal_vec(&mut rng, cfg.dim, 1.0));
        let year = 1950 + rng.below(49);
        let mut title = format!(
            "{} {}",
            ADJ[rng.below(24) as usize],
            NOUN[rng.below(24) as usize]
        );
        let mut k = 2;
        while !seen_titles.insert(format!("{title} ({year})")) {
            title = format!(
                "{} {}",
                title.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' '),
                k
            );
            k += 1;
        }
        let genres = genres_for(lg, la, &mut rng);
        let flags: Vec<&str> = ML100K_GENRES
            .iter()
            .map(|g| if genres.contains(g) { "1" } else { "0" })
            .collect();
        writeln!(
            u_item,
            "{}|{title} ({year})|01-Jan-{year}|||{}",
            i + 1,
            flags.join("|")
        )
        .unwrap();
        truth.push(ItemTruth {
            gender_lean: lg,
            age_lean: la,
            appeal: q,
        });
    }
    Items {
        truth,
        pops,
        vecs,
        u_item,
    }
}

/// The users (`u.user`) and their ratings (`u.data`) of a world with `items`, and the
/// number of ratings.
fn synth_users(cfg: &SynthConfig, items: &Items) -> (String, String, usize) {
    let (truth, pops, vecs) = (&items.truth, &items.pops, &items.vecs);
    let mut urng = Rng::derive(cfg.seed, "synth-users");
    let mut u_user = String::new();
    let mut u_data = String::new();
    let mut n_ratings = 0usize;
    for u in 0..cfg.users {
        let female = urng.f64() < cfg.female_share;
        let bucket = urng.weighted(&cfg.age_shares);
        let (lo, hi, sa) = [(15u64, 34u64, 1.0), (35, 50, 0.0), (51, 73, -1.0)][bucket];
        let age = lo + urng.below(hi - lo + 1);
        let sg = if female { 1.0 } else { -1.0 };
        let occ = OCCUPATIONS[urng.below(OCCUPATIONS.len() as u64) as usize];
        writeln!(
            u_user,
            "{}|{age}|{}|{occ}|{:05}",
            u + 1,
            if female { "F" } else { "M" },
            urng.below(100_000)
        )
        .unwrap();
        let w = normal_vec(&mut urng, cfg.dim, cfg.taste);
        let aff: Vec<f64> = truth
            .iter()
            .map(|t| sg * t.gender_lean + sa * t.age_lean)
            .collect();
        let mut weights: Vec<f64> = (0..cfg.items)
            .map(|i| (pops[i] + cfg.exposure * aff[i]).exp())
            .collect();
        let n =
            cfg.min_ratings + urng.below((cfg.max_ratings - cfg.min_ratings + 1) as u64) as usize;
        let mut t: u64 = 874_724_710 + urng.below(30_000_000);
        for _ in 0..n {
            let i = urng.weighted(&weights);
            weights[i] = 0.0;
            let dot: f64 = w.iter().zip(&vecs[i]).map(|(a, b)| a * b).sum();
            let tr = &truth[i];
            let r = cfg.base
                + tr.appeal
                + cfg.lean_appeal * (tr.gender_lean + tr.age_lean) / 2.0
                + dot
                + cfg.group_effect * aff[i]
                + cfg.noise * urng.normal();
            let rating = r.round().clamp(1.0, 5.0) as u8;
            t += 1 + urng.below(86_400 * 3);
            writeln!(u_data, "{}\t{}\t{rating}\t{t}", u + 1, i + 1).unwrap();
            n_ratings += 1;
        }
    }
    (u_user, u_data, n_ratings)
}
