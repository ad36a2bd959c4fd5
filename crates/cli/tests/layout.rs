//! The architecture as tests: the crate graph points one way, no crate's modules import
//! each other in a circle, library functions stay readable, and the binary holds flags and
//! glue (no method logic). Each check reads the workspace's sources and manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, as (module path, text); `lib.rs`, `main.rs` and `mod.rs`
/// name their directory's module.
fn modules(dir: &Path) -> BTreeMap<Vec<String>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<String>, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).unwrap().with_extension("");
                let mut m: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    m.pop();
                }
                out.insert(m, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `text` without `//` comments and without its `#[cfg(test)] mod tests` (last in a file).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file names: `crate::a::b`, `super::a`, `self::a`, and the items of
/// `use x::{a, b::c}` groups, each resolved to the longest prefix that is a module.
fn imports(module: &[String], text: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let base = |head: &str| -> Vec<String> {
        match head {
            "crate" => Vec::new(),
            "self" => module.to_vec(),
            _ => module[..module.len().saturating_sub(1)].to_vec(),
        }
    };
    let resolve = |path: Vec<String>| -> Option<Vec<String>> {
        (0..=path.len())
            .rev()
            .map(|k| path[..k].to_vec())
            .find(|p| known.contains(p))
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = BTreeSet::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = |w: &str| text_at(&bytes, i, w) && (i == 0 || !ident(bytes[i - 1]));
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|w| starts(w));
        let Some(head) = head else {
            i += 1;
            continue;
        };
        let mut j = i + head.len();
        let mut path = base(head.trim_end_matches("::"));
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if j > start {
                path.push(bytes[start..j].iter().collect());
            }
            if text_at(&bytes, j, "::{") {
                let end = bytes[j..]
                    .iter()
                    .position(|&c| c == '}')
                    .map_or(bytes.len(), |e| j + e);
                let group: String = bytes[j + 3..end].iter().collect();
                for item in group.split(',') {
                    let item = item.split(" as ").next().unwrap_or("").trim();
                    let mut p = path.clone();
                    p.extend(
                        item.split("::")
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(str::to_string),
                    );
                    out.extend(resolve(p));
                }
                j = end;
                break;
            }
            if text_at(&bytes, j, "::") && j + 2 < bytes.len() && ident(bytes[j + 2]) {
                j += 2;
                continue;
            }
            out.extend(resolve(path.clone()));
            break;
        }
        i = j.max(i + 1);
    }
    out.remove(module);
    out
}

fn text_at(chars: &[char], i: usize, w: &str) -> bool {
    w.chars()
        .enumerate()
        .all(|(k, c)| chars.get(i + k) == Some(&c))
}

/// The circles among a crate's modules, ignoring a module's use of its own ancestors and
/// descendants (a parent dispatching to its children, children using their parent).
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mods = modules(src);
    let known: BTreeSet<Vec<String>> = mods.keys().cloned().collect();
    let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
    let edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = mods
        .iter()
        .map(|(m, text)| {
            let to = imports(m, &code(text), &known)
                .into_iter()
                .filter(|t| !related(m, t))
                .collect();
            (m.clone(), to)
        })
        .collect();
    // A module is on a circle when it reaches itself.
    let reach = |from: &Vec<String>| -> BTreeSet<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Vec<String>> = edges[from].iter().cloned().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(edges[&m].iter().cloned());
            }
        }
        seen
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in mods.keys() {
        let r = reach(m);
        if r.contains(m) {
            let mut circle: Vec<String> = r
                .iter()
                .filter(|o| reach(o).contains(m))
                .map(|o| o.join("::"))
                .collect();
            circle.sort();
            if !out.contains(&circle) {
                out.push(circle);
            }
        }
    }
    out
}

/// Every crate, each after those it may depend on (`python` is the Python module, beside
/// the binary: both are leaves).
const CRATES: [&str; 8] = [
    "core", "data", "metrics", "lm", "train", "serve", "cli", "python",
];

#[test]
fn no_crate_imports_its_own_modules_in_a_circle() {
    for c in CRATES {
        let found = circles(&crates_dir().join(c).join("src"));
        assert!(
            found.is_empty(),
            "crates/{c}: modules in a circle: {found:?}"
        );
    }
}

#[test]
fn the_checker_sees_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let w = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).unwrap();
    w("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    w("a.rs", "use crate::b::{X, Y as Z};\n");
    w("b.rs", "pub fn f() { crate::c::g() }\n");
    w("c.rs", "// crate::a is only named in a comment\n");
    assert!(circles(dir.path()).is_empty());
    w("c.rs", "use super::a;\n");
    assert_eq!(circles(dir.path()), vec![vec!["a", "b", "c"]]);
}

/// The fairrec crates each crate's manifest depends on.
fn dependencies(c: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(crates_dir().join(c).join("Cargo.toml")).unwrap();
    let deps = text.split("[dependencies]").nth(1).unwrap_or("");
    let deps = deps.split("\n[").next().unwrap_or("");
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("fairrec-"))
        .map(|l| l.split(['.', ' ', '=']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn crate_arrows_point_one_way() {
    // Each crate may depend only on crates before it in this order.
    for (i, c) in CRATES.iter().enumerate() {
        for d in dependencies(c) {
            let j = CRATES.iter().position(|x| *x == d).unwrap();
            assert!(
                j < i,
                "crates/{c} depends on fairrec-{d}, which comes after it"
            );
        }
    }
    assert!(
        dependencies("train").contains("data"),
        "train owns the samples-to-model joins"
    );
    for c in ["data", "metrics", "python"] {
        let text = std::fs::read_to_string(crates_dir().join(c).join("Cargo.toml")).unwrap();
        assert!(!text.contains("candle"), "crates/{c} has no tensor code");
    }
}

/// Functions of `text` longer than `max` lines (from `fn` to its closing brace at the same
/// indentation).
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        let t = t
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ");
        let t = t.trim_start_matches("pub ").trim_start_matches("unsafe ");
        let Some(rest) = t.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(n) = lines[i + 1..].iter().position(|x| *x == close) {
            if n + 2 > max {
                out.push((name, n + 2));
            }
        }
    }
    out
}

#[test]
fn library_functions_stay_readable() {
    // The trainer's loop is one commented loop; everything else is split into named steps.
    let allowed = [("train", "engine::trainer", "train")];
    for c in ["core", "data", "metrics", "lm", "train", "serve", "python"] {
        for (m, text) in modules(&crates_dir().join(c).join("src")) {
            let m = m.join("::");
            for (name, n) in long_functions(&code(&text), 120) {
                if !allowed.contains(&(c, m.as_str(), name.as_str())) {
                    panic!("crates/{c} {m}::{name} is {n} lines (at most 120)");
                }
            }
        }
    }
}

#[test]
fn the_binary_is_flags_and_glue() {
    let mut lines = 0;
    for (m, text) in modules(&crates_dir().join("cli").join("src")) {
        lines += text.lines().count();
        // Method behaviour is looked up through `Method::def` in fairrec-train; naming a
        // method is for argument parsing only.
        if m != ["train_args"] {
            let c = code(&text);
            let named = c.match_indices("Method::").any(|(i, _)| {
                c[i + 8..].starts_with(|ch: char| ch.is_ascii_uppercase())
                    && !c[i + 8..].starts_with("ALL")
            });
            assert!(
                !named,
                "crates/cli/src/{}: a method named outside argument parsing",
                m.join("/")
            );
        }
    }
    // 4,600 until `serve` and `--endpoint` (2026-12-04) added their flags, 4,900 until
    // `audit-lists` and the `--force` flags (2026-12-05) did; their logic lives in
    // fairrec-serve, fairrec-data and fairrec-core. 5,100 until `data stereotypes`, the
    // audit's recorded grouping and paper B's headline columns (2026-12-05; their logic is
    // in fairrec_metrics::stereo_dist and fairrec_train::methods::stereo). 5,250 until the
    // prompt-shape, UP5-input and --allow-partial flags and the failed-cell report
    // (2026-12-05; their logic is in fairrec_lm::prompt, fairrec_train and
    // fairrec_metrics::join), which then moved the table's figures into
    // fairrec_metrics::audit::figures to stay within it. 5,400 since `--device`/`--dtype`
    // reached every command, experiment files and the quickstart (2026-12-05; where a run
    // goes and what joins a cell's identity is fairrec_lm::device::Place, a method's base
    // dtype fairrec_train's Method::base_dtype), which also holds paper A's readings as
    // flags (`--counterfactuals`, `--diff-over`: fairrec_data::augment, paper_a::loss) and
    // its Imp. columns (fairrec_metrics::fairness::improvement) after the named shapes moved
    // to LlamaConfig::named.
    assert!(
        lines <= 5_400,
        "crates/cli/src is {lines} lines: library code belongs in the library crates"
    );
}

#[test]
fn every_guarantee_in_the_readme_points_at_a_test_that_exists() {
    let root = crates_dir().join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("### Guarantees")
        .expect("README has a Guarantees list");
    let end = start + readme[start..].find("Not covered yet").unwrap();
    let mut tests = String::new();
    for c in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = c.unwrap().path().join("tests");
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "rs") {
                tests.push_str(&std::fs::read_to_string(&f).unwrap());
            }
        }
    }
    let mut cited = 0;
    for (i, part) in readme[start..end].split('`').enumerate() {
        // Inside backticks, a lower-case name with underscores and nothing else is a test.
        let is_name = part.contains('_')
            && part.len() > 20
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if i % 2 == 1 && is_name {
            assert!(
                tests.contains(&format!("fn {part}(")),
                "README's Guarantees cite `{part}`, which is no test in crates/*/tests"
            );
            cited += 1;
        }
    }
    assert!(cited >= 15, "only {cited} tests cited");
}
