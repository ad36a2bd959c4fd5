//! Each loader on its real files (when `FAIRREC_DATA` points at them) and on fixtures in
//! the exact original formats.

mod common;

use common::{fixture, real_data};
use fairrec_data::loaders::{load, LoadOptions, SushiOrder};
use fairrec_data::raw::{Age, DatasetKind, Gender};

#[test]
fn ml1m_fixture_quirks() {
    let d = load(
        DatasetKind::Ml1m,
        &fixture("ml-1m-mini"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(d.users.len(), 12);
    assert_eq!(d.items.len(), 40);
    assert!(d.ratings.len() >= 240);
    // ISO-8859-1 titles decode to the right characters.
    assert!(d
        .items
        .iter()
        .any(|i| i.title == "Les Misérables Imaginaires (1975)"));
    assert!(d
        .items
        .iter()
        .any(|i| i.title == "Kådisbellan Fictive (1993)"));
    // Titles with single colons survive the `::` split.
    assert!(d
        .items
        .iter()
        .any(|i| i.title == "Colon: A Title, With: Colons (1999)"));
    // Age codes and occupations.
    assert_eq!(d.users[5].age, Some(Age::Ml1mCode(50)));
    assert_eq!(d.users[2].gender, Some(Gender::Female));
    assert_eq!(d.users[0].profile["occupation"], "executive/managerial"); // code 7
    assert_eq!(d.sources.len(), 3);
}

#[test]
fn ml1m_ties_keep_file_order() {
    let d = load(
        DatasetKind::Ml1m,
        &fixture("ml-1m-mini"),
        &LoadOptions::default(),
    )
    .unwrap();
    let by_user = d.ratings_by_user();
    let mut ties = 0;
    for rs in &by_user {
        for w in rs.windows(2) {
            assert!((w[0].time, w[0].seq) < (w[1].time, w[1].seq));
            if w[0].time == w[1].time {
                ties += 1;
                assert!(w[0].seq < w[1].seq);
            }
        }
    }
    assert!(ties > 10, "the fixture has timestamp ties ({ties})");
}

#[test]
fn ml100k_real_files() {
    let Some(dir) = real_data("ml-100k") else {
        return;
    };
    let d = load(DatasetKind::Ml100k, &dir, &LoadOptions::default()).unwrap();
    assert_eq!(
        (d.users.len(), d.items.len(), d.ratings.len()),
        (943, 1682, 100_000)
    );
    let female = d
        .users
        .iter()
        .filter(|u| u.gender == Some(Gender::Female))
        .count();
    assert_eq!(female, 273);
    assert!(
        d.items.iter().any(|i| i.title.contains("Misérables")),
        "u.item is Latin-1"
    );
    let toy = &d.items[0];
    assert_eq!(toy.title, "Toy Story (1995)");
    assert_eq!(toy.genres, ["Animation", "Children's", "Comedy"]);
    let hist: Vec<usize> = (1..=5)
        .map(|v| d.ratings.iter().filter(|r| r.value == v as f32).count())
        .collect();
    assert_eq!(hist, [6110, 11370, 27145, 34174, 21201]);
}

#[test]
fn ml1m_real_users_and_movies() {
    let Some(dir) = real_data("ml-1m") else {
        return;
    };
    // ratings.dat is not in shared/: the loader must say so, naming the file.
    let e = load(DatasetKind::Ml1m, &dir, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("ratings.dat"), "{e}");
    // With a ratings file beside links to the real users/movies, everything parses.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["users.dat", "movies.dat"] {
        std::os::unix::fs::symlink(dir.join(f), tmp.path().join(f)).unwrap();
    }
    std::fs::write(
        tmp.path().join("ratings.dat"),
        "1::1193::5::978300760\n6040::3952::2::978300761\n",
    )
    .unwrap();
    let d = load(DatasetKind::Ml1m, tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!((d.users.len(), d.items.len()), (6040, 3883));
    let codes = |c| {
        d.users
            .iter()
            .filter(|u| u.age == Some(Age::Ml1mCode(c)))
            .count()
    };
    assert_eq!(
        [1, 18, 25, 35, 45, 50, 56].map(codes),
        [222, 1103, 2096, 1193, 550, 496, 380]
    );
    assert!(d.items.iter().any(|i| i.title.contains("Misérables")));
}

#[test]
fn sushi3_real_files() {
    let Some(dir) = real_data("sushi3") else {
        return;
    };
    let d = load(DatasetKind::Sushi3, &dir, &LoadOptions::default()).unwrap();
    assert_eq!(
        (d.users.len(), d.items.len(), d.ratings.len()),
        (5000, 100, 50_000)
    );
    assert_eq!(
        d.users[0].id, "6371",
        "ids are the respondents' original ids"
    );
    assert_eq!(d.items[8].title, "toro");
    assert_eq!(d.items[19].title, "chu toro");
    let mean = |item: u32| {
        let v: Vec<f32> = d
            .ratings
            .iter()
            .filter(|r| r.item == item)
            .map(|r| r.value)
            .collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    // Post-2015 scale: 4 = most preferred; toro is loved, kappa maki much less.
    assert!((mean(8) - 3.43).abs() < 0.01, "{}", mean(8));
    assert!(mean(29) < 2.5);
    // Default order: by item id, so the target (last) is the user's highest item id.
    let by_user = d.ratings_by_user();
    assert!(by_user[0].windows(2).all(|w| w[0].item < w[1].item));
    // Inverted-scale option reads 4 - x.
    let mut o = LoadOptions::default();
    o.sushi.inverted_scale = true;
    let inv = load(DatasetKind::Sushi3, &dir, &o).unwrap();
    assert_eq!(inv.ratings[0].value, 4.0 - d.ratings[0].value);
    // Shuffled order is a seeded permutation of the same ratings.
    o = LoadOptions::default();
    o.sushi.order = SushiOrder::Shuffled;
    o.sushi.shuffle_seed = 3;
    let sh = load(DatasetKind::Sushi3, &dir, &o).unwrap();
    let sh2 = load(DatasetKind::Sushi3, &dir, &o).unwrap();
    assert_eq!(sh.ratings, sh2.ratings);
    assert_ne!(sh.ratings_by_user()[0], by_user[0]);
}

#[test]
fn book_crossing_fixture_quirks() {
    let d = load(
        DatasetKind::BookCrossing,
        &fixture("book-crossing-mini"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(d.users.len(), 14);
    assert_eq!(d.items.len(), 30);
    let title = |k: usize| d.items[k - 1].title.as_str();
    assert_eq!(title(2), "The \"Quoted\" Imaginary Book");
    assert_eq!(
        title(3),
        "Readers: An Imaginary Level (Level 4: Proficient Readers)"
    );
    assert_eq!(title(4), "Tom & Jerry Imaginary");
    assert_eq!(title(6), "“Curly” Imaginary Café");
    assert_eq!(title(7), "Utf8 Café Imaginary");
    assert_eq!(title(8), "Semi; Colon Imaginary");
    assert_eq!(d.users[0].profile["location"], "springfield; nowhere, usa");
    assert_eq!(d.users[2].age, None, "NULL age");
    assert_eq!(d.users[3].age, None, "age 0 is implausible");
    assert_eq!(d.users[4].age, None, "age 244 is implausible");
    assert_eq!(d.dropped["users_age_null"], 2);
    assert_eq!(d.dropped["users_age_out_of_range"], 2);
    assert_eq!(d.dropped["ratings_unknown_isbn"], 14);
    assert_eq!(d.dropped["ratings_implicit"], 14);
    assert_eq!(d.dropped["ratings_unknown_user"], 1);
    // Lowercase `x` check digits matched their books (no extra unknown ISBNs).
    assert!(d.ratings.iter().all(|r| (1.0..=10.0).contains(&r.value)));
    let mut o = LoadOptions::default();
    o.book_crossing.include_implicit = true;
    let with0 = load(
        DatasetKind::BookCrossing,
        &fixture("book-crossing-mini"),
        &o,
    )
    .unwrap();
    assert_eq!(with0.ratings.len(), d.ratings.len() + 14);
}
