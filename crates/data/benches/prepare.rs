//! Benchmark: `data prepare` (load + paper A protocol + write) on an ML-1M-sized input
//! generated in the exact ML-1M format: 6,040 users, 3,952 movies, 1,000,209 ratings.
//!
//! Run with `cargo bench -p fairrec-data --bench prepare`.

use fairrec_core::Rng;
use fairrec_data::pipeline::prepare_dir;
use fairrec_data::protocol::{Protocol, ProtocolConfig};
use fairrec_data::raw::DatasetKind;
use std::fmt::Write as _;
use std::time::Instant;

const USERS: usize = 6040;
const MOVIES: usize = 3952;
const RATINGS: usize = 1_000_209;

fn write_ml1m(dir: &std::path::Path) {
    let mut rng = Rng::new(1);
    let mut users = String::new();
    for u in 1..=USERS {
        let g = if rng.below(10) < 3 { "F" } else { "M" };
        let age = [1, 18, 25, 35, 45, 50, 56][rng.below(7) as usize];
        writeln!(
            users,
            "{u}::{g}::{age}::{}::{:05}",
            rng.below(21),
            rng.below(100_000)
        )
        .unwrap();
    }
    // ISO-8859-1 like the original: `é` is the single byte 0xE9.
    let mut movies: Vec<u8> = Vec::new();
    for m in 1..=MOVIES {
        let line = format!("{m}::Mis\u{e9}rable Movie {m} (1995)::Drama|Comedy\n");
        movies.extend(line.chars().map(|c| c as u32 as u8));
    }
    let mut ratings = String::with_capacity(RATINGS * 24);
    // Every user gets at least 20 ratings, the rest spread at random (as in ML-1M).
    let mut left = RATINGS;
    for u in 1..=USERS {
        let extra = if u == USERS {
            left - 20
        } else {
            (rng.below(2 * ((RATINGS - 20 * USERS) / USERS) as u64) as usize)
                .min(left - 20 * (USERS - u + 1))
        };
        let n = 20 + extra;
        left -= n;
        let mut t = 956_703_932 + rng.below(10_000_000);
        for _ in 0..n {
            t += rng.below(5000);
            writeln!(
                ratings,
                "{u}::{}::{}::{t}",
                1 + rng.below(MOVIES as u64),
                1 + rng.below(5)
            )
            .unwrap();
        }
    }
    assert_eq!(ratings.lines().count(), RATINGS);
    std::fs::write(dir.join("users.dat"), users).unwrap();
    std::fs::write(dir.join("movies.dat"), movies).unwrap();
    std::fs::write(dir.join("ratings.dat"), ratings).unwrap();
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    write_ml1m(&raw);
    let cfg = ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml1m, 0);
    let mut times = Vec::new();
    for i in 0..5 {
        let out = tmp.path().join(format!("out{i}"));
        let t0 = Instant::now();
        let (m, _) = prepare_dir(DatasetKind::Ml1m, &raw, &cfg, &out, None).unwrap();
        times.push(t0.elapsed().as_secs_f64());
        assert_eq!(m.splits.values().map(|s| s.samples).sum::<usize>(), USERS);
    }
    let mos = ProtocolConfig::new(Protocol::Mos, DatasetKind::Ml1m, 0);
    let t0 = Instant::now();
    prepare_dir(DatasetKind::Ml1m, &raw, &mos, &tmp.path().join("mos"), None).unwrap();
    let t_mos = t0.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "data prepare, ML-1M size ({RATINGS} ratings), cl-moe: min {:.3}s median {:.3}s max {:.3}s (5 runs); mos: {t_mos:.3}s",
        times[0], times[2], times[4]
    );
}
