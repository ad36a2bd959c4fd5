//! Property-based tests (issue 22): random mutations of valid raw files (bytes flipped,
//! inserted, deleted, lines cut or repeated) never panic a loader or the protocols; each
//! either loads or fails with an error naming a file of the dataset. Prepared files and
//! manifests are fuzzed the same way through their readers.

mod common;
#[path = "../../../testsupport/mutate.rs"]
mod mutate;

use common::{copy_fixture, ml100k, sushi};
use fairrec_data::loaders::{load, LoadOptions};
use fairrec_data::pipeline::{prepare_dir, read_manifest, read_split};
use fairrec_data::protocol::{prepare, Protocol, ProtocolConfig};
use fairrec_data::raw::DatasetKind;
use mutate::{edits, mutated, Edit};
use proptest::prelude::*;
use std::path::Path;

/// Mutate file number `which` (of those in `dir`, sorted) with `edits`; returns its name
/// and whether its bytes changed.
fn mutate(dir: &Path, which: usize, edits: &[Edit]) -> (String, bool) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let name = names[which % names.len()].clone();
    let path = dir.join(&name);
    let old = std::fs::read(&path).unwrap();
    let bytes = mutated(&old, edits);
    std::fs::write(&path, &bytes).unwrap();
    (name, bytes != old)
}

fn valid(kind: DatasetKind, dir: &Path) {
    match kind {
        DatasetKind::Ml100k => ml100k(dir),
        DatasetKind::Ml1m => copy_fixture("ml-1m-mini", dir),
        DatasetKind::BookCrossing => copy_fixture("book-crossing-mini", dir),
        DatasetKind::Sushi3 => sushi(dir),
    }
}

const KINDS: [DatasetKind; 4] = [
    DatasetKind::Ml100k,
    DatasetKind::Ml1m,
    DatasetKind::BookCrossing,
    DatasetKind::Sushi3,
];

proptest! {
    #![proptest_config(mutate::config(512))]

    #[test]
    fn mutated_raw_files_load_or_name_the_file(
        k in 0..KINDS.len(),
        which in any::<usize>(),
        edits in edits(6),
    ) {
        let kind = KINDS[k];
        let t = tempfile::tempdir().unwrap();
        valid(kind, t.path());
        let (name, _) = mutate(t.path(), which, &edits);
        match load(kind, t.path(), &LoadOptions::default()) {
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains(&t.path().display().to_string()), "{name}: `{e}` names no file");
            }
            Ok(raw) => {
                // What loads goes through both protocols without a panic.
                for protocol in [Protocol::ClMoe, Protocol::Mos] {
                    let _ = prepare(&raw, &ProtocolConfig::new(protocol, kind, 0));
                }
            }
        }
    }

    #[test]
    fn mutated_prepared_files_are_refused_naming_the_file(
        which in any::<usize>(),
        edits in edits(4),
    ) {
        let t = tempfile::tempdir().unwrap();
        let (raw, out) = (t.path().join("raw"), t.path().join("data"));
        std::fs::create_dir_all(&raw).unwrap();
        copy_fixture("ml-1m-mini", &raw);
        let cfg = ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml1m, 0);
        prepare_dir(DatasetKind::Ml1m, &raw, &cfg, &out, None).unwrap();
        let before = std::fs::read_dir(&out).unwrap().count();
        let (name, changed) = mutate(&out, which, &edits);
        prop_assert_eq!(std::fs::read_dir(&out).unwrap().count(), before);
        let dir = out.display().to_string();
        let named = |e: String| e.contains(&dir) || e.contains(&name);
        let read = read_manifest(&out).map(|_| ()).and_then(|()| {
            for split in ["train", "valid", "test"] {
                read_split(&out, split)?;
            }
            Ok(())
        });
        match read {
            Err(e) => prop_assert!(named(e.to_string()), "{name}: `{e}` names no file"),
            // A split is read only as its preparation wrote it.
            Ok(()) => prop_assert!(!changed || name == "manifest.json", "edited {name} was read"),
        }
    }
}
