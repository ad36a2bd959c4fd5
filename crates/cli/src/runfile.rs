//! TOML run files: `--config FILE` on any command reads flags from FILE.
//!
//! Each top-level key of the file is a long flag of the command it is given to
//! (`seed = 3` is `--seed 3`, `like_threshold = 3.5` or `like-threshold = 3.5` is
//! `--like-threshold 3.5`, `attributes = ["age", "gender"]` is `--attributes age,gender`,
//! `force = true` is `--force`). Flags given on the command line win over the file.
//! An unknown key is an error naming the file and the key.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::Path;

/// Replace `--config FILE` in `args` by the flags the file sets, placed right after the
/// subcommand so that flags on the command line override them.
pub fn expand(cmd: &clap::Command, args: Vec<OsString>) -> Result<Vec<OsString>> {
    let strs: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (pos, file) = match strs
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    {
        None => return Ok(args),
        Some(i) if strs[i] == "--config" => match strs.get(i + 1) {
            Some(f) => (i, f.clone()),
            None => bail!("--config needs a file"),
        },
        Some(i) => (i, strs[i]["--config=".len()..].to_string()),
    };
    let consumed = if strs[pos] == "--config" { 2 } else { 1 };
    // Walk down the subcommands named on the command line.
    let mut sub = cmd;
    let mut insert_at = 1;
    let mut path = vec![cmd.get_name().to_string()];
    for (i, a) in strs.iter().enumerate().skip(1) {
        if a.starts_with('-') {
            continue;
        }
        match sub.find_subcommand(a) {
            Some(s) => {
                sub = s;
                insert_at = i + 1;
                path.push(a.clone());
            }
            None => break,
        }
    }
    let flags = flags_from_file(Path::new(&file), sub, &path.join(" "))?;
    let mut out: Vec<OsString> = Vec::with_capacity(args.len() + flags.len());
    for (i, a) in args.into_iter().enumerate() {
        if i == insert_at {
            out.extend(flags.iter().map(OsString::from));
        }
        if i < pos || i >= pos + consumed {
            out.push(a);
        }
    }
    if insert_at >= strs.len() {
        out.extend(flags.into_iter().map(OsString::from));
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flags_from_file(file: &Path, sub: &clap::Command, cmd_name: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read run file {}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("run file {} is not valid TOML", file.display()))?;
    flags_from_table(
        &table,
        sub,
        cmd_name,
        &format!("run file {}", file.display()),
    )
}

/// The long flags that `table`'s keys set on subcommand `sub` (named `cmd_name`); errors
/// name `origin` and the key.
pub fn flags_from_table(
    table: &toml::Table,
    sub: &clap::Command,
    cmd_name: &str,
    origin: &str,
) -> Result<Vec<String>> {
    let mut flags = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = sub
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            bail!("{origin}: `{key}` is not an option of `{cmd_name}`");
        };
        let takes_value = arg.get_action().takes_values();
        match value {
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    flags.push(format!("--{long}"));
                }
            }
            toml::Value::Array(items) => {
                let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
                let Some(parts) = parts else {
                    bail!("{origin}: `{key}` must be a list of plain values");
                };
                push_valued(&mut flags, &long, parts.join(","));
            }
            v => match scalar(v) {
                Some(s) => push_valued(&mut flags, &long, s),
                None => bail!("{origin}: `{key}` must be a plain value, not a table"),
            },
        }
    }
    Ok(flags)
}

/// `--long value`, or `--long=value` when the value starts with `-` (a negative number),
/// which clap would otherwise read as a flag of its own.
fn push_valued(flags: &mut Vec<String>, long: &str, value: String) {
    if value.starts_with('-') {
        flags.push(format!("--{long}={value}"));
    } else {
        flags.push(format!("--{long}"));
        flags.push(value);
    }
}
