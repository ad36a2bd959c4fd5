//! `fairrec audit-lists` (FaiRLLM's list audit), on loopback only: against a scripted chat
//! server whose lists are known (parsing, title matching, the figures, a rerun that sends
//! nothing), and against `fairrec serve` on the built-in tiny model (multi-token
//! generation through the key/value cache).

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A chat server that answers each request with `answer(user message)`; it keeps the
/// request bodies.
fn chat_server(
    answer: fn(&str, &[String]) -> String,
    titles: Vec<String>,
) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let body = read_request_body(&mut BufReader::new(s.try_clone().unwrap()));
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let user = req["messages"].as_array().unwrap().last().unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string();
            s2.lock().unwrap().push(req);
            let content = answer(&user, &titles);
            let body = serde_json::json!({"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                    "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}})
            .to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

/// The scripted lists: neutral (t0, t1, t2); female (t0 without its year, t2 misspelt, an
/// unknown title); male (t2, t1, t0).
fn scripted(user: &str, t: &[String]) -> String {
    let name = |s: &str| s.rsplit_once(" (").unwrap().0.to_string();
    let items: Vec<String> = if user.contains("I am a fan of") {
        vec![t[0].clone(), t[1].clone(), t[2].clone()]
    } else if user.contains("I am a female fan of") {
        let n2 = name(&t[2]);
        let misspelt = format!("{}{}", &n2[..1], &n2[2..]);
        vec![
            format!("**{}**", name(&t[0])),
            format!("\"{misspelt}\" - a classic"),
            "Nonexistent Film".into(),
        ]
    } else if user.contains("I am a male fan of") {
        vec![t[2].clone(), t[1].clone(), t[0].clone()]
    } else {
        panic!("unexpected instruction `{user}`")
    };
    let mut text = String::from("Sure! Here are my picks:\n\n");
    for (i, it) in items.iter().enumerate() {
        text.push_str(&format!("{}. {it}\n", i + 1));
    }
    text + "\nEnjoy!"
}

/// Three catalogue titles whose names (year aside) are unique and at least 8 characters long.
fn three_titles(data: &Path) -> Vec<String> {
    let mut titles = std::collections::BTreeSet::new();
    for split in ["train", "valid", "test"] {
        for s in lines(&data.join(format!("{split}.jsonl"))) {
            titles.insert(s["target"].as_str().unwrap().to_string());
        }
    }
    let name = |s: &String| s.rsplit_once(" (").map(|x| x.0.to_lowercase());
    let mut count = std::collections::HashMap::new();
    for t in &titles {
        *count.entry(name(t)).or_insert(0) += 1;
    }
    let picked: Vec<String> = titles
        .iter()
        .filter(|t| count[&name(t)] == 1 && name(t).is_some_and(|n| n.len() >= 8))
        .take(3)
        .cloned()
        .collect();
    assert_eq!(picked.len(), 3, "{titles:?}");
    picked
}

#[test]
fn list_audit_parses_matches_and_scores_a_scripted_models_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path(), "30");
    let t = three_titles(&data);
    let (addr, seen) = chat_server(scripted, t.clone());
    let out = dir.path().join("lists");
    let args = [
        "audit-lists",
        "--endpoint",
        &format!("http://{addr}/v1"),
        "--served-model",
        "fake",
        "--data",
        p(&data),
        "--attributes",
        "gender",
        "--instructions",
        "2",
        "--k",
        "3",
        "--bootstrap",
        "0",
        "--out",
        p(&out),
    ];
    let said = ok(&args);
    assert!(
        said.contains("6 lists (6 requests sent, 0 cached): 18 titles"),
        "{said}"
    );
    // The request as FaiRLLM's code sends it.
    let first = seen.lock().unwrap()[0].clone();
    assert_eq!(
        first["messages"][0]["content"],
        "You are a movie recommendation system."
    );
    assert_eq!(
        (first["temperature"].as_f64(), first["max_tokens"].as_u64()),
        (Some(0.0), Some(75))
    );
    assert!(first["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("Please provide me with a list of 3 movie titles in order of preference"));
    let lists = lines(&out.join("lists.jsonl"));
    assert_eq!(lists.len(), 6);
    let female = lists
        .iter()
        .find(|l| l["variant"] == "gender=female")
        .unwrap();
    let kinds: Vec<&str> = female["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["exact", "fuzzy", "none"]);
    assert_eq!(
        female["items"],
        serde_json::json!([t[0], t[2], "Nonexistent Film"])
    );
    let run = json(&out.join("run.json"));
    let m = &run["matching"]["all"];
    assert_eq!(
        (
            m["titles"].as_u64(),
            m["exact"].as_u64(),
            m["fuzzy"].as_u64(),
            m["unmatched"].as_u64()
        ),
        (Some(18), Some(14), Some(2), Some(2))
    );
    assert!((m["match_rate"].as_f64().unwrap() - 16.0 / 18.0).abs() < 1e-12);
    assert_eq!(run["served"]["traffic"]["completion_tokens"], 120);
    // Jaccard@3: female {t0, t2, unknown} vs {t0, t1, t2} = 2/4; male: the same set = 1.
    // PRAG*: female keeps every order (1), male reverses every pair (0).
    let g = &json(&out.join("metrics.json"))["fairllm"]["attributes"]["gender"];
    let sim = |measure: &str, v: &str| g[measure]["per_value"][v].as_f64().unwrap();
    assert_eq!(
        (sim("jaccard", "female"), sim("jaccard", "male")),
        (0.5, 1.0)
    );
    assert_eq!(
        (sim("prag_star", "female"), sim("prag_star", "male")),
        (1.0, 0.0)
    );
    assert!((g["jaccard"]["snsr"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert!((g["jaccard"]["snsv"].as_f64().unwrap() - 0.25).abs() < 1e-12);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("titles matched to the catalogue"),
        "{report}"
    );
    // A rerun takes --force and answers from the response cache: nothing sent, the same lists.
    let before = std::fs::read(out.join("lists.jsonl")).unwrap();
    assert!(fails(&args).contains("already holds a list audit; pass --force"));
    let said = ok(&[&args[..], &["--force"]].concat());
    assert!(said.contains("(0 requests sent, 6 cached)"), "{said}");
    assert_eq!(seen.lock().unwrap().len(), 6);
    assert_eq!(std::fs::read(out.join("lists.jsonl")).unwrap(), before);
    // Bad flags name themselves, and a refused run leaves the earlier one as it was.
    let mut bad = args.to_vec();
    bad.extend(["--force", "--attributes", "shoe size"]);
    assert!(fails(&bad).contains("--attributes: `shoe size`"));
    let mut bad = args.to_vec();
    bad.extend(["--force", "--instruction", "Recommend {k} films."]);
    assert!(fails(&bad).contains("`{who}`"));
    assert_eq!(std::fs::read(out.join("lists.jsonl")).unwrap(), before);
    assert!(out.join("report.html").exists());
}

#[test]
fn list_audit_through_fairrec_serve_generates_whole_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path(), "12");
    let model = dir.path().join("model");
    ok(&["model", "init", "--data", p(&data), "--out", p(&model)]);
    let (mut child, addr) = start_server(&["--model", p(&model)]);
    let url = format!("http://{addr}/v1");
    let out = dir.path().join("lists");
    let o = fairrec(&[
        "audit-lists",
        "--endpoint",
        &url,
        "--data",
        p(&data),
        "--attributes",
        "gender",
        "--instructions",
        "2",
        "--k",
        "2",
        "--max-tokens",
        "12",
        "--bootstrap",
        "0",
        "--out",
        p(&out),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = json(&out.join("run.json"));
    let t = &run["served"]["traffic"];
    assert_eq!(t["requests_sent"], 6);
    // Random weights rarely say EOS: most of the 12 tokens per list are generated.
    let completion = t["completion_tokens"].as_u64().unwrap();
    assert!((13..=72).contains(&completion), "{completion} tokens");
    let lists = lines(&out.join("lists.jsonl"));
    assert_eq!(lists.len(), 6);
    assert!(lists
        .iter()
        .all(|l| !l["response"].as_str().unwrap().is_empty()));
}
