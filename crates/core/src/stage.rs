//! A set of output files that lands in a directory as one (ours): the files are written
//! into a staging directory inside it, then a journal naming them is written atomically
//! (the commit point), then they are renamed into place and the outputs they replace are
//! removed. A run killed before the journal leaves the old outputs untouched; one killed
//! after it leaves a journal that the next reader or writer of the directory completes
//! ([`settle`]). Either way nobody reads a mix of old and new outputs, and the
//! directory may hold other files (a response cache, the user's own) that stay as they
//! are.

use std::path::{Path, PathBuf};

use crate::atomic::{alive, write_atomic};

/// The staging directory inside an output directory.
pub const STAGE: &str = ".fairrec-stage";
/// The journal of a committed set, inside the output directory.
pub const JOURNAL: &str = ".fairrec-commit.json";

/// What a commit does: files of the staging directory to move into place, and earlier
/// outputs to remove.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Journal {
    moves: Vec<String>,
    removes: Vec<String>,
}

/// Outputs being written into [`Staged::path`]s; nothing in the directory changes until
/// [`Staged::commit`]. Dropped uncommitted (an error), the staged files are discarded.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    stage: PathBuf,
    old: Vec<PathBuf>,
    done: bool,
    /// Whether `dir` was made for this set (removed again if the set is abandoned).
    made_dir: bool,
}

impl Staged {
    /// Start a set of outputs for `dir` that replaces the files `old` (those
    /// [`crate::fs::claim_output`] found). The caller holds `dir`'s
    /// [`crate::fs::RunLock`].
    pub fn begin(dir: &Path, old: Vec<PathBuf>) -> std::io::Result<Staged> {
        settle(dir, true)?;
        let made_dir = !dir.exists();
        let stage = dir.join(STAGE);
        std::fs::create_dir_all(&stage)?;
        Ok(Staged {
            dir: dir.to_path_buf(),
            stage,
            old,
            done: false,
            made_dir,
        })
    }

    /// The directory the outputs are written into until the commit.
    pub fn staging_dir(&self) -> &Path {
        &self.stage
    }

    /// Where to write the output `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.stage.join(name)
    }

    /// `path` as it reads once committed: the staged copy when `path` names an output of
    /// this set already written, else `path` itself.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match (path.parent(), path.file_name()) {
            (Some(p), Some(name)) if same_dir(p, &self.dir) && self.stage.join(name).is_file() => {
                self.stage.join(name)
            }
            _ => path.to_path_buf(),
        }
    }

    /// Put the staged files in place of the old outputs, as one.
    pub fn commit(mut self) -> std::io::Result<()> {
        let mut moves = Vec::new();
        for e in std::fs::read_dir(&self.stage)? {
            let e = e?;
            if e.file_type()?.is_file() {
                moves.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        moves.sort();
        let removes = self
            .old
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !moves.contains(n))
            .collect();
        sync_dir(&self.stage);
        let journal = Journal { moves, removes };
        let text = serde_json::to_string(&journal).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join(JOURNAL), text.as_bytes())?;
        self.done = true;
        apply(&self.dir, &journal)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.stage);
            if self.made_dir {
                // Only if still empty: nothing but this set's files is ever removed.
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Carry out a committed journal; every step may already have been done (by a killed
/// writer, or by a reader finishing it at the same time).
fn apply(dir: &Path, j: &Journal) -> std::io::Result<()> {
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    for name in &j.removes {
        gone(std::fs::remove_file(dir.join(name)))?;
    }
    let stage = dir.join(STAGE);
    for name in &j.moves {
        gone(std::fs::rename(stage.join(name), dir.join(name)))?;
    }
    sync_dir(dir);
    gone(std::fs::remove_dir_all(&stage))?;
    gone(std::fs::remove_file(dir.join(JOURNAL)))
}

/// Bring `dir` to a whole state after a killed writer: a committed set of outputs is
/// completed (safe for any reader: it only finishes what the writer decided). With
/// `clean`, which only the holder of the directory's [`crate::fs::RunLock`] may pass, an
/// uncommitted staging directory and the temporary files of processes that no longer run
/// are removed too. A missing directory is left missing.
pub fn settle(dir: &Path, clean: bool) -> std::io::Result<()> {
    let journal = dir.join(JOURNAL);
    if journal.is_file() {
        let bytes = std::fs::read(&journal)?;
        match serde_json::from_slice::<Journal>(&bytes) {
            Ok(j) => apply(dir, &j)?,
            // write_atomic never leaves a partial journal; this one was edited.
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}; remove it and rerun", journal.display()),
                ))
            }
        }
    }
    if !clean || !dir.is_dir() {
        return Ok(());
    }
    if dir.join(STAGE).exists() {
        tracing::warn!(
            "{}: removing the outputs of a run killed before it finished",
            dir.join(STAGE).display()
        );
        std::fs::remove_dir_all(dir.join(STAGE))?;
    }
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if leftover_of_dead(&name) {
            tracing::warn!("{}: removing a killed run's temporary file", dir.display());
            let _ = std::fs::remove_file(dir.join(&name));
        }
    }
    Ok(())
}

/// Whether `name` is a temporary file of [`write_atomic`] (`.NAME.tmp-PID`) whose
/// process no longer runs.
pub(crate) fn leftover_of_dead(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !alive(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let t = std::env::temp_dir().join(format!("fairrec-stage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(&t).unwrap();
        t
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_set_lands_whole_and_keeps_other_files() {
        let d = tmp("whole");
        std::fs::write(d.join("a"), "old a").unwrap();
        std::fs::write(d.join("b"), "old b").unwrap();
        std::fs::write(d.join("cache"), "mine").unwrap();
        let s = Staged::begin(&d, vec![d.join("a"), d.join("b")]).unwrap();
        std::fs::write(s.path("a"), "new a").unwrap();
        assert_eq!(s.resolve(&d.join("a")), s.path("a"));
        assert_eq!(s.resolve(&d.join("b")), d.join("b"));
        // Nothing changes before the commit.
        assert_eq!(read(d.join("a")), "old a");
        s.commit().unwrap();
        assert_eq!(read(d.join("a")), "new a");
        assert!(
            !d.join("b").exists(),
            "an old output the new set lacks is removed"
        );
        assert_eq!(read(d.join("cache")), "mine");
        assert!(!d.join(STAGE).exists() && !d.join(JOURNAL).exists());
        // An abandoned set (an error) changes nothing, and leaves no directory it made.
        let fresh = d.join("fresh");
        drop(Staged::begin(&fresh, Vec::new()).unwrap());
        assert!(!fresh.exists());
        let s = Staged::begin(&d, vec![d.join("a")]).unwrap();
        std::fs::write(s.path("a"), "newer").unwrap();
        drop(s);
        assert_eq!(read(d.join("a")), "new a");
        assert!(!d.join(STAGE).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_kill_leaves_old_or_new_never_a_mix() {
        // Killed before the journal: the staged files are discarded by the next writer,
        // and a reader never sees them.
        let d = tmp("kill");
        std::fs::write(d.join("a"), "old").unwrap();
        std::fs::create_dir_all(d.join(STAGE)).unwrap();
        std::fs::write(d.join(STAGE).join("a"), "half").unwrap();
        std::fs::write(d.join(".a.tmp-4294967295"), "x").unwrap();
        std::fs::write(d.join(".a.tmp-1"), "a live process's (pid 1)").unwrap();
        settle(&d, false).unwrap();
        assert_eq!(read(d.join("a")), "old");
        assert!(
            d.join(STAGE).exists(),
            "a reader leaves a writer's stage alone"
        );
        settle(&d, true).unwrap();
        assert!(!d.join(STAGE).exists() && !d.join(".a.tmp-4294967295").exists());
        assert!(d.join(".a.tmp-1").exists());
        // Killed after the journal, with one of two files moved: a reader completes it.
        std::fs::write(d.join("b"), "old b").unwrap();
        std::fs::create_dir_all(d.join(STAGE)).unwrap();
        std::fs::write(d.join(STAGE).join("b"), "new b").unwrap();
        std::fs::write(d.join("a"), "new a").unwrap();
        std::fs::write(d.join("c"), "old c").unwrap();
        std::fs::write(d.join(JOURNAL), r#"{"moves":["a","b"],"removes":["c"]}"#).unwrap();
        settle(&d, false).unwrap();
        assert_eq!(
            (read(d.join("a")), read(d.join("b"))),
            ("new a".into(), "new b".into())
        );
        assert!(!d.join("c").exists() && !d.join(JOURNAL).exists() && !d.join(STAGE).exists());
        // A damaged journal is reported, not guessed at.
        std::fs::write(d.join(JOURNAL), "{").unwrap();
        let e = settle(&d, false).unwrap_err().to_string();
        assert!(e.contains(JOURNAL), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
