//! Crash-safe writes: a file or a whole directory appears complete or not at all, so that
//! a run killed at any point (SIGKILL included) never leaves a half-written result.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` through a temporary file in the same directory, synced and
/// renamed over the target (creating the parent directories).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Replace the directory `dir` by one holding exactly `files` (name, bytes): the new
/// directory is written and synced beside it, then swapped in by renames. If the process
/// dies part-way, `dir` is either the old or the new directory, or missing with the old
/// one kept at [`previous_dir`] (which [`recover_dir`] puts back).
pub fn replace_dir(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<()> {
    let parent = parent(dir);
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".{}.new-{}", file_name(dir), std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    for (name, bytes) in files {
        let mut f = std::fs::File::create(staging.join(name))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let old = previous_dir(dir);
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&staging, dir)?;
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Where [`replace_dir`] keeps the old directory while it swaps.
pub fn previous_dir(dir: &Path) -> PathBuf {
    parent(dir).join(format!(".{}.old", file_name(dir)))
}

/// After a crash inside [`replace_dir`]: if `dir` is missing but its previous version
/// survives, put it back. Returns whether `dir` exists afterwards.
pub fn recover_dir(dir: &Path) -> std::io::Result<bool> {
    let old = previous_dir(dir);
    if !dir.exists() && old.exists() {
        std::fs::rename(&old, dir)?;
    }
    Ok(dir.exists())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Write `value` as pretty JSON with a final newline, atomically ([`write_atomic`]). Keys
/// come out sorted (through `serde_json::Value`), as the files written with `json!` always
/// had them, so a typed record and its older untyped writer give the same bytes.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_value(value)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(std::io::Error::other)?;
    write_atomic(path, (text + "\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_dir_swaps_and_recovers() {
        let t = std::env::temp_dir().join(format!("fairrec-fs-{}", std::process::id()));
        let d = t.join("ckpt");
        replace_dir(&d, &[("a", b"1")]).unwrap();
        replace_dir(&d, &[("b", b"2")]).unwrap();
        assert!(!d.join("a").exists());
        assert_eq!(std::fs::read(d.join("b")).unwrap(), b"2");
        // a crash between the two renames: only the old copy is left
        std::fs::rename(&d, previous_dir(&d)).unwrap();
        assert!(recover_dir(&d).unwrap());
        assert_eq!(std::fs::read(d.join("b")).unwrap(), b"2");
        write_atomic(&t.join("x/y.txt"), b"hi").unwrap();
        assert_eq!(std::fs::read(t.join("x/y.txt")).unwrap(), b"hi");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
