//! A corpus of malformed inputs: each must give an error that names the file and line
//! (or the missing file), never a panic.

mod common;

use common::{copy_fixture, ml100k, sushi, U_DATA, U_USER};
use fairrec_data::loaders::{load, LoadOptions};
use fairrec_data::pipeline::{read_manifest, read_split};
use fairrec_data::raw::DatasetKind;
use std::path::Path;

/// Load `kind` after `mutate` changed the inputs; the error must mention every `needle`.
fn expect_err(kind: DatasetKind, setup: impl Fn(&Path), needles: &[&str]) {
    let t = tempfile::tempdir().unwrap();
    setup(t.path());
    let e = match load(kind, t.path(), &LoadOptions::default()) {
        Ok(_) => panic!("expected an error mentioning {needles:?}"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(e.contains(n), "error `{e}` does not mention `{n}`");
    }
}

fn replace_in(path: &Path, from: &[u8], to: &[u8]) {
    let b = std::fs::read(path).unwrap();
    let pos = b
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} not in {}", path.display()));
    let mut out = b[..pos].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&b[pos + from.len()..]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn the_clean_mini_ml100k_loads() {
    let t = tempfile::tempdir().unwrap();
    ml100k(t.path());
    let d = load(DatasetKind::Ml100k, t.path(), &LoadOptions::default()).unwrap();
    assert_eq!(d.items[1].title, "Misérables (1995)");
}

#[test]
fn a_rating_given_twice_is_kept_once_and_two_different_ones_are_an_error() {
    let t = tempfile::tempdir().unwrap();
    ml100k(t.path());
    std::fs::write(
        t.path().join("u.data"),
        format!("{U_DATA}1\t1\t3\t881250999\n"),
    )
    .unwrap();
    let d = load(DatasetKind::Ml100k, t.path(), &LoadOptions::default()).unwrap();
    assert_eq!(d.ratings.len(), 2);
    assert_eq!(d.dropped.get("ratings_duplicate"), Some(&1));
    expect_err(
        DatasetKind::Ml100k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.data"), format!("{U_DATA}1\t1\t5\t881250999\n")).unwrap()
        },
        &[
            "u.data:3:",
            "rated this item 3 at line 1 and 5 here",
            "conflicting duplicate",
        ],
    );
}

#[test]
fn ml100k_corpus() {
    let k = DatasetKind::Ml100k;
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.data"), "1\t1\t3\n").unwrap()
        },
        &["u.data:1:", "expected 4 fields", "found 3"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.data"), "1\t1\t3\t5\n1\t2\tfive\t6\n").unwrap()
        },
        &["u.data:2:", "rating", "five"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.data"), "1\t1\t3\t5\n\n7\t2\t4\t6\n").unwrap()
        },
        &["u.data:3:", "unknown user id `7`"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.data"), "1\t9\t3\t5\n").unwrap()
        },
        &["u.data:1:", "unknown movie id `9`"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.data"), "1\t1\t3.5\t5\n").unwrap()
        },
        &["u.data:1:", "whole number 1-5"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.user"), "1|24|X|tech|1\n").unwrap()
        },
        &["u.user:1:", "gender", "M or F"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.user"), "1|24|M|tech|1\n1|30|F|x|2\n").unwrap()
        },
        &["u.user:2:", "duplicate id `1`"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.user"), "1|-3|M|tech|1\n").unwrap()
        },
        &["u.user:1:", "age"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::write(d.join("u.item"), "1|Only|Five|Fields|Here\n").unwrap()
        },
        &["u.item:1:", "expected 24 fields"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            std::fs::remove_file(d.join("u.item")).unwrap()
        },
        &["u.item", "file not found"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            let utf16: Vec<u8> = [0xFF, 0xFE]
                .into_iter()
                .chain(U_USER.encode_utf16().flat_map(|c| c.to_le_bytes()))
                .collect();
            std::fs::write(d.join("u.user"), utf16).unwrap()
        },
        &["u.user:1:", "UTF-16"],
    );
    expect_err(
        k,
        |d| {
            ml100k(d);
            replace_in(&d.join("u.item"), b"|0|0|", b"|0|2|")
        },
        &["u.item:1:", "genre flag", "0 or 1"],
    );
}

#[test]
fn ml1m_corpus() {
    let k = DatasetKind::Ml1m;
    let f = |d: &Path| copy_fixture("ml-1m-mini", d);
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(&d.join("users.dat"), b"1::M::1::", b"1::M::30::")
        },
        &["users.dat:1:", "ML-1M age code"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(&d.join("users.dat"), b"1::M::1::7::", b"1::M::1::27::")
        },
        &["users.dat:1:", "occupation"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(&d.join("users.dat"), b"2::M::18", b"2::M")
        },
        &["users.dat:2:", "expected 5 fields", "found 4"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(&d.join("movies.dat"), b"\n6::", b"\n2::")
        },
        &["movies.dat:", "duplicate id `2`"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(
                d.join("ratings.dat"),
                "1::2::5::978300760\n1::2::6::978300761\n",
            )
            .unwrap()
        },
        &["ratings.dat:2:", "whole number 1-5"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(d.join("ratings.dat"), "1::2::5::yesterday\n").unwrap()
        },
        &["ratings.dat:1:", "timestamp"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(d.join("ratings.dat"), "1\t2\t5\t978300760\n").unwrap()
        },
        &["ratings.dat:1:", "expected 4 fields separated by `::`"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::remove_file(d.join("ratings.dat")).unwrap()
        },
        &["ratings.dat", "file not found", "ML-1M ratings"],
    );
}

#[test]
fn sushi3_corpus() {
    let k = DatasetKind::Sushi3;
    let t = tempfile::tempdir().unwrap();
    sushi(t.path());
    let ok = load(k, t.path(), &LoadOptions::default()).unwrap();
    assert_eq!(ok.ratings.len(), 4);
    expect_err(
        k,
        |d| {
            sushi(d);
            replace_in(&d.join("sushi3.idata"), b"anago", b"an\xe1go")
        },
        &["sushi3.idata:2:", "encoding"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            std::fs::write(d.join("sushi3b.5000.10.score"), "4 -1\n-1 0 2\n").unwrap()
        },
        &["sushi3b.5000.10.score:1:", "expected 3 fields", "found 2"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            std::fs::write(d.join("sushi3b.5000.10.score"), "4 -1 1\n-1 7 2\n").unwrap()
        },
        &["sushi3b.5000.10.score:2:", "score of item 1"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            std::fs::write(d.join("sushi3b.5000.10.score"), "4 -1 1\n").unwrap()
        },
        &["sushi3b.5000.10.score:2:", "1 score rows for 2 users"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            std::fs::write(d.join("sushi3b.5000.10.order"), "3 1\n0 2 0 2\n0 2 0 1\n").unwrap()
        },
        &["sushi3b.5000.10.order:3:", "other items than score row 2"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            std::fs::write(d.join("sushi3b.5000.10.order"), "10 1\n").unwrap()
        },
        &["sushi3b.5000.10.order:1:", "header"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            replace_in(&d.join("sushi3.udata"), b"6371\t0\t2", b"6371\t0\t9")
        },
        &["sushi3.udata:1:", "age code 0-5"],
    );
    expect_err(
        k,
        |d| {
            sushi(d);
            replace_in(&d.join("sushi3.idata"), b"1\tanago", b"5\tanago")
        },
        &["sushi3.idata:2:", "row positions"],
    );
}

#[test]
fn book_crossing_corpus() {
    let k = DatasetKind::BookCrossing;
    let f = |d: &Path| copy_fixture("book-crossing-mini", d);
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(
                &d.join("BX-Books.csv"),
                b"\"Imaginary Book 1\"",
                b"\"Imaginary Book 1",
            )
        },
        &["BX-Books.csv:2:", "unexpected"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(
                &d.join("BX-Users.csv"),
                b"\"User-ID\";\"Location\";\"Age\"",
                b"\"User-ID\";\"Age\"",
            )
        },
        &["BX-Users.csv:1:", "header"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(
                &d.join("BX-Book-Ratings.csv"),
                b"\r\n\"1001\";",
                b"\r\n\"1001\";\"extra\";",
            )
        },
        &["BX-Book-Ratings.csv:2:", "expected 3 fields"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            replace_in(&d.join("BX-Users.csv"), b"\"1002\";", b"\"1002\";\"x\";")
        },
        &["BX-Users.csv:3:", "expected 3 fields"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(
                d.join("BX-Book-Ratings.csv"),
                "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"1001\";\"0000000001\";\"ten\"\n",
            )
            .unwrap()
        },
        &["BX-Book-Ratings.csv:2:", "Book-Rating", "ten"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(
                d.join("BX-Book-Ratings.csv"),
                "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"1001\";\"0000000001\";\"11\"\n",
            )
            .unwrap()
        },
        &["BX-Book-Ratings.csv:2:", "0-10"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(
                d.join("BX-Users.csv"),
                "\"User-ID\";\"Location\";\"Age\"\n\"1\";\"x\";\"old\"\n",
            )
            .unwrap()
        },
        &["BX-Users.csv:2:", "Age"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::write(d.join("BX-Book-Ratings.csv"), "").unwrap()
        },
        &["BX-Book-Ratings.csv:1:", "empty file"],
    );
    expect_err(
        k,
        |d| {
            f(d);
            std::fs::remove_file(d.join("BX-Books.csv")).unwrap()
        },
        &["BX-Books.csv", "file not found"],
    );
}

#[test]
fn prepared_files_corpus() {
    let t = tempfile::tempdir().unwrap();
    let e = read_manifest(t.path()).unwrap_err().to_string();
    assert!(
        e.contains("manifest.json") && e.contains("data prepare"),
        "{e}"
    );
    std::fs::write(t.path().join("test.jsonl"), "{\"sample_id\": \"a\"}\n").unwrap();
    let e = fairrec_data::sample::read_samples(&t.path().join("test.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test.jsonl:1:") && e.contains("invalid JSON"),
        "{e}"
    );
    // A split is read only from a complete dataset (the manifest is written last).
    let e = read_split(t.path(), "test").unwrap_err().to_string();
    assert!(
        e.contains("manifest.json") && e.contains("file not found"),
        "{e}"
    );
    std::fs::write(
        t.path().join("manifest.json"),
        "{\"fairrec_version\": 1,\n}",
    )
    .unwrap();
    let e = read_manifest(t.path()).unwrap_err().to_string();
    assert!(e.contains("manifest.json:"), "{e}");
    assert!(read_split(t.path(), "dev")
        .unwrap_err()
        .to_string()
        .contains("unknown split"));
}
