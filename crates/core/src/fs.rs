//! Crash-safe writes: a file or a whole directory appears complete or not at all, so that
//! a run killed at any point (SIGKILL included) never leaves a half-written result.

pub use crate::atomic::write_atomic;
use crate::atomic::{alive, file_name, parent};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replace the directory `dir` by one holding exactly `files` (name, bytes): the new
/// directory is written and synced beside it, then swapped in by renames. If the process
/// dies part-way, `dir` is either the old or the new directory, or missing with the old
/// one kept at [`previous_dir`] (which [`recover_dir`] puts back).
pub fn replace_dir(dir: &Path, files: &[(&str, &[u8])]) -> std::io::Result<()> {
    let parent = parent(dir);
    std::fs::create_dir_all(parent)?;
    remove_dead_leftovers(parent, &format!(".{}.new-", file_name(dir)));
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

/// Write `value` as pretty JSON with a final newline, atomically ([`write_atomic`]). Keys
/// come out sorted (through `serde_json::Value`), as the files written with `json!` always
/// had them, so a typed record and its older untyped writer give the same bytes.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_value(value)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(std::io::Error::other)?;
    write_atomic(path, (text + "\n").as_bytes())
}

/// Why a command may not write into its output directory.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{}: a file, not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} already holds {what}; pass --force to replace it", path.display())]
    Exists { path: PathBuf, what: String },
    #[error("{} holds files that are not {what} ({found}); fairrec replaces only its own outputs: choose another directory", path.display())]
    Foreign {
        path: PathBuf,
        what: String,
        found: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The output files a command writes into a directory, and whether it owns the whole
/// directory (replaces it as one, so nothing else may live there).
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    /// What the outputs are, for messages ("a model", "an audit").
    pub what: &'a str,
    pub files: &'a [&'a str],
    pub whole_dir: bool,
}

/// The rule every command follows before it writes into `dir` (ours): a missing or empty
/// directory is taken; one holding any of the command's own output files is taken only
/// with `force`; a directory the command replaces whole is refused, even with `force`,
/// when it holds anything else (those files would be lost); a file is refused. Other
/// files (a response cache, the user's own) stay untouched. Returns the output files
/// present (for the caller's [`crate::stage::Staged`] to replace once it has decided
/// to run). Leftovers of a killed writer are settled first ([`crate::stage::settle`]).
pub fn claim_output(dir: &Path, out: Outputs, force: bool) -> Result<Vec<PathBuf>, OutputError> {
    let io = |source| OutputError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if dir.is_file() {
        return Err(OutputError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    if !dir.exists() {
        return Ok(Vec::new());
    }
    crate::stage::settle(dir, true).map_err(io)?;
    let mut ours = Vec::new();
    let mut foreign = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let name = e.map_err(io)?.file_name().to_string_lossy().into_owned();
        if out.files.contains(&name.as_str()) {
            ours.push(dir.join(&name));
        } else {
            foreign.push(name);
        }
    }
    foreign.sort();
    if out.whole_dir && !foreign.is_empty() {
        let more = foreign.len().saturating_sub(3);
        foreign.truncate(3);
        let mut found = foreign.join(", ");
        if more > 0 {
            found.push_str(&format!(" and {more} more"));
        }
        return Err(OutputError::Foreign {
            path: dir.to_path_buf(),
            what: out.what.to_string(),
            found,
        });
    }
    if !ours.is_empty() && !force {
        return Err(OutputError::Exists {
            path: dir.to_path_buf(),
            what: out.what.to_string(),
        });
    }
    ours.sort();
    Ok(ours)
}

/// One writer per output directory (ours): an advisory lock file beside it,
/// `.NAME.lock`, created exclusively and holding the writer's pid and command; removed
/// when the lock is dropped. A lock left by a process that no longer runs (a SIGKILL) is
/// stale: it is reported and taken over. (Where `/proc` is missing, every holder is taken
/// to be alive.)
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// Why an output directory cannot be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is being written by another fairrec process ({holder}); wait for it, or remove {} if no such process runs", dir.display(), lock.display())]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("{}: cannot create the lock file: {source}", lock.display())]
    Io {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RunLock {
    /// Lock `dir` for `command` (e.g. `fairrec train`); fails at once when another live
    /// process holds it.
    pub fn acquire(dir: &Path, command: &str) -> Result<RunLock, LockError> {
        let lock = parent(dir).join(format!(".{}.lock", file_name(dir)));
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        std::fs::create_dir_all(parent(dir)).map_err(io)?;
        let me = format!("pid {} ({command})", std::process::id());
        for _ in 0..2 {
            match create_with(&lock, me.as_bytes()) {
                Ok(()) => {
                    remove_dead_leftovers(parent(dir), &format!(".{}.", file_name(&lock)));
                    return Ok(RunLock { path: lock });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                    let pid = holder
                        .strip_prefix("pid ")
                        .and_then(|r| r.split_whitespace().next())
                        .and_then(|p| p.parse::<u32>().ok());
                    // A lock without a holder was cut short by a kill (only possible where
                    // hard links are missing); after a few seconds it is stale too.
                    let old = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|d| d.as_secs() >= 5);
                    if pid.map_or(old, |p| !alive(p)) {
                        tracing::warn!(
                            "{} was left by `{holder}`, which no longer runs; taking it over",
                            lock.display()
                        );
                        let _ = std::fs::remove_file(&lock);
                        continue;
                    }
                    return Err(LockError::Held {
                        dir: dir.to_path_buf(),
                        lock: lock.clone(),
                        holder,
                    });
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other(
            "the lock changed hands while being taken",
        )))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Create `path` holding `bytes`, failing with `AlreadyExists` if it exists. The file
/// appears with its content (written beside it, then hard-linked into place), so a kill
/// never leaves an empty lock; without hard links, created exclusively, then written.
fn create_with(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = parent(path).join(format!(".{}.{}", file_name(path), std::process::id()));
    std::fs::write(&tmp, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            f.write_all(bytes)
        }
        r => r,
    }
}

/// Remove the entries of `dir` named `PREFIX<pid>` whose process no longer runs: what a
/// killed writer left half-made (a lock's content, a directory being staged).
fn remove_dead_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dead = name
            .strip_prefix(prefix)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !alive(pid));
        if dead {
            tracing::warn!("removing {}, left by a killed run", e.path().display());
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_holds_a_directory_and_a_dead_ones_lock_is_taken_over() {
        let t = std::env::temp_dir().join(format!("fairrec-lock-{}", std::process::id()));
        let dir = t.join("run");
        let a = RunLock::acquire(&dir, "fairrec test").unwrap();
        let e = RunLock::acquire(&dir, "fairrec test")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("being written") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(a);
        let b = RunLock::acquire(&dir, "fairrec test").unwrap();
        drop(b);
        // A lock left by a process that is gone (pid beyond the kernel's range).
        std::fs::write(t.join(".run.lock"), "pid 4294967295 (fairrec train)").unwrap();
        let c = RunLock::acquire(&dir, "fairrec test").unwrap();
        drop(c);
        assert!(!t.join(".run.lock").exists());
        // An empty lock: held while fresh, stale once a few seconds old.
        let f = std::fs::File::create(t.join(".run.lock")).unwrap();
        assert!(RunLock::acquire(&dir, "fairrec test").is_err());
        let ago = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        f.set_modified(ago).unwrap();
        drop(RunLock::acquire(&dir, "fairrec test").unwrap());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn outputs_are_replaced_only_with_force_and_never_over_foreign_files() {
        let t = std::env::temp_dir().join(format!("fairrec-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let model = Outputs {
            what: "a model",
            files: &["config.json", "model.safetensors"],
            whole_dir: true,
        };
        let audit = Outputs {
            what: "an audit",
            files: &["run.json"],
            whole_dir: false,
        };
        assert!(claim_output(&t, model, false).unwrap().is_empty());
        std::fs::create_dir_all(&t).unwrap();
        assert!(claim_output(&t, model, false).unwrap().is_empty());
        write_atomic(&t.join("config.json"), b"{}").unwrap();
        let e = claim_output(&t, model, false).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(
            claim_output(&t, model, true).unwrap(),
            [t.join("config.json")]
        );
        write_atomic(&t.join("train.jsonl"), b"").unwrap();
        let e = claim_output(&t, model, true).unwrap_err().to_string();
        assert!(
            e.contains("train.jsonl") && e.contains("another directory"),
            "{e}"
        );
        // A command that writes only its own files leaves the others alone.
        assert!(claim_output(&t, audit, false).unwrap().is_empty());
        write_atomic(&t.join("run.json"), b"{}").unwrap();
        assert!(claim_output(&t, audit, false).is_err());
        let found = claim_output(&t, audit, true).unwrap();
        crate::stage::Staged::begin(&t, found)
            .unwrap()
            .commit()
            .unwrap();
        assert!(!t.join("run.json").exists() && t.join("train.jsonl").exists());
        assert!(matches!(
            claim_output(&t.join("train.jsonl"), audit, true),
            Err(OutputError::NotADirectory { .. })
        ));
        std::fs::remove_dir_all(&t).unwrap();
    }

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
