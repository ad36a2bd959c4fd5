//! TensorBoard event files of a training run (ours; issue 27): `tb/events.out.tfevents.fairrec`
//! in the run directory, made from `train_log.jsonl` (rewritten whole at every checkpoint
//! and at the end, so that it always shows exactly the steps of the log, a resumed run
//! included). `tensorboard --logdir RUN/tb` (or a directory of runs) reads it.
//!
//! Every step's numbers are scalars `train/<name>` (loss, lr, grad_norm, tokens_per_s and
//! the objective's parts, e.g. `train/ntp`, `train/diff`, MoS's `train/route/<group>/<k>`)
//! at that step; every valid evaluation's are `valid/<name>` (auc, f1, precision, recall,
//! mean_p_yes) at the step it followed. Wall time is the run's cumulative step time
//! (tokens / tokens_per_s) from 0, which TensorBoard's "relative" axis shows.
//!
//! The format: TFRecord framing (u64 length, masked CRC-32C of the length, the bytes,
//! masked CRC-32C of the bytes, all little-endian) around `tensorflow.Event` protocol
//! buffers (`wall_time` 1, `step` 2, `file_version` 3, `summary` 5 holding
//! `Summary.Value { tag 1, simple_value 2 }`), encoded here by hand.

use crate::error::{io_err, Result, TrainError};
use std::path::{Path, PathBuf};

/// The event file of run directory `dir`.
pub fn events_path(dir: &Path) -> PathBuf {
    dir.join("tb").join("events.out.tfevents.fairrec")
}

/// CRC-32C (Castagnoli), as TFRecord checksums it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's masked CRC.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(field: u64, b: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// One `Event`: its wall time, step, and either the file version or scalars.
fn event(wall_time: f64, step: i64, version: Option<&str>, scalars: &[(String, f32)]) -> Vec<u8> {
    let mut e = vec![0x09];
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step as u64, &mut e);
    if let Some(v) = version {
        bytes_field(3, v.as_bytes(), &mut e);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, v) in scalars {
            let mut value = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut value);
            value.push(0x15);
            value.extend_from_slice(&v.to_le_bytes());
            bytes_field(1, &value, &mut summary);
        }
        bytes_field(5, &summary, &mut e);
    }
    e
}

fn record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The numeric fields of a JSON object, flattened with `/` (`route: {f: [..]}` becomes
/// `route/f/0`, ...), except `skip`.
fn numbers(prefix: &str, v: &serde_json::Value, skip: &[&str], out: &mut Vec<(String, f32)>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x as f32));
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
                numbers(&format!("{prefix}/{k}"), x, &[], out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(&format!("{prefix}/{i}"), x, &[], out);
            }
        }
        _ => {}
    }
}

/// The event file's bytes for the log text `log` (`train_log.jsonl`).
pub fn events_of_log(log: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    record(&event(0.0, 0, Some("brain.Event:2"), &[]), &mut out);
    let (mut step, mut wall) = (0i64, 0.0f64);
    for (i, line) in log
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| TrainError::Config(format!("train_log.jsonl line {}: {e}", i + 1)))?;
        let mut scalars = Vec::new();
        if let Some(e) = v.get("eval") {
            numbers("valid", e, &["epoch", "n"], &mut scalars);
        } else {
            step = v.get("step").and_then(|s| s.as_i64()).unwrap_or(step);
            let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
            if let (Some(t), Some(r)) = (f("tokens"), f("tokens_per_s")) {
                wall += if r > 0.0 { t / r } else { 0.0 };
            }
            numbers("train", &v, &["step", "epoch", "tokens"], &mut scalars);
        }
        if !scalars.is_empty() {
            record(&event(wall, step, None, &scalars), &mut out);
        }
    }
    Ok(out)
}

/// Write the event file of run directory `dir` from its log `log_path` (`train_log.jsonl`;
/// whole, through a temporary file).
pub fn write(dir: &Path, log_path: &Path) -> Result<()> {
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    let bytes = events_of_log(&log)?;
    let path = events_path(dir);
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(io_err(&path))?;
    fairrec_core::fs::write_atomic(&path, &bytes).map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event: wall time, step, scalars.
    type Ev = (f64, i64, Vec<(String, f32)>);

    /// The records of an event file, each CRC checked.
    fn read(bytes: &[u8]) -> Vec<Ev> {
        fn varint(b: &[u8], i: &mut usize) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let x = b[*i];
                *i += 1;
                v |= ((x & 0x7f) as u64) << shift;
                if x < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let (mut out, mut at) = (Vec::new(), 0);
        while at < bytes.len() {
            let len = &bytes[at..at + 8];
            assert_eq!(u32_at(bytes, at + 8), masked_crc(len), "length CRC");
            let n = u64::from_le_bytes(len.try_into().unwrap()) as usize;
            let data = &bytes[at + 12..at + 12 + n];
            assert_eq!(u32_at(bytes, at + 12 + n), masked_crc(data), "data CRC");
            at += 16 + n;
            let (mut i, mut ev) = (0, (0.0, 0, Vec::new()));
            while i < data.len() {
                match varint(data, &mut i) {
                    0x09 => {
                        ev.0 = f64::from_le_bytes(data[i..i + 8].try_into().unwrap());
                        i += 8;
                    }
                    0x10 => ev.1 = varint(data, &mut i) as i64,
                    0x1a => i += varint(data, &mut i) as usize,
                    0x2a => {
                        let end = varint(data, &mut i) as usize + i;
                        while i < end {
                            assert_eq!(varint(data, &mut i), 0x0a);
                            let vend = varint(data, &mut i) as usize + i;
                            assert_eq!(varint(data, &mut i), 0x0a);
                            let tl = varint(data, &mut i) as usize;
                            let tag = String::from_utf8(data[i..i + tl].to_vec()).unwrap();
                            i += tl;
                            assert_eq!(data[i], 0x15);
                            let v = f32::from_le_bytes(data[i + 1..i + 5].try_into().unwrap());
                            i += 5;
                            assert_eq!(i, vend);
                            ev.2.push((tag, v));
                        }
                    }
                    t => panic!("unexpected field tag {t}"),
                }
            }
            out.push(ev);
        }
        out
    }

    #[test]
    fn crc32c_matches_its_published_check_value() {
        // The CRC-32C check value (RFC 3720, B.4: "123456789").
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn the_event_file_holds_every_logged_number_at_its_step() {
        let log = r#"{"step":1,"epoch":0,"loss":0.5,"lr":0.001,"grad_norm":0.25,"tokens":100,"tokens_per_s":50.0,"ntp":0.5}
{"step":2,"epoch":0,"loss":0.25,"lr":0.002,"grad_norm":0.5,"tokens":300,"tokens_per_s":100.0,"route":{"female":[0.75,0.25]}}
{"event":"eval","eval":{"auc":0.625,"epoch":0,"f1":null,"n":8,"precision":0.5}}
"#;
        let ev = read(&events_of_log(log).unwrap());
        assert_eq!(ev.len(), 4, "the version record, 2 steps, 1 evaluation");
        assert_eq!((ev[0].0, ev[0].1, ev[0].2.len()), (0.0, 0, 0));
        let tags = |e: &Ev| -> Vec<(String, f32)> { e.2.clone() };
        // Step 1 took 100 / 50 = 2 s, step 2 3 s more; tags in name order.
        assert_eq!((ev[1].0, ev[1].1), (2.0, 1));
        assert_eq!(
            tags(&ev[1]),
            [
                ("train/grad_norm", 0.25),
                ("train/loss", 0.5),
                ("train/lr", 0.001),
                ("train/ntp", 0.5),
                ("train/tokens_per_s", 50.0)
            ]
            .map(|(t, v)| (t.to_string(), v as f32))
            .to_vec()
        );
        assert_eq!((ev[2].0, ev[2].1), (5.0, 2));
        assert!(ev[2].2.contains(&("train/route/female/0".into(), 0.75)));
        // The evaluation at the step it followed; an undefined figure is left out.
        assert_eq!(ev[3].1, 2);
        assert_eq!(
            tags(&ev[3]),
            vec![("valid/auc".into(), 0.625), ("valid/precision".into(), 0.5)]
        );
        let e = events_of_log("{\"step\": 1}\nnot json\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
