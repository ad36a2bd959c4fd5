//! `--download`: fetch a Hugging Face model into the local cache (ours; issue 27), the one
//! place fairrec downloads a model, and only when asked. The Hub's API names the commit a
//! revision is at and the repository's files (`GET /api/models/<id>/revision/<rev>`:
//! `{"sha", "siblings": [{"rfilename"}]}`); each file fairrec loads
//! ([`fairrec_lm::hub::wanted`]) comes from `/<id>/resolve/<commit>/<file>` and lands in the
//! cache's snapshot ([`fairrec_lm::hub::Download`]); `refs/<revision>` is written last. A
//! token in `HF_TOKEN` travels in the `Authorization` header (gated models).

use crate::error::{Result, ServeError};
use fairrec_lm::hub::{wanted, Download, HubModel};
use std::path::Path;

/// The Hub's answer about a revision.
#[derive(serde::Deserialize)]
struct RevisionInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(serde::Deserialize)]
struct Sibling {
    rfilename: String,
}

/// Fetch `id` at `revision` into `cache` with `get` (URL -> body), from `endpoint`
/// (`https://huggingface.co`, or `$HF_ENDPOINT`).
pub fn download_with(
    cache: &Path,
    id: &str,
    revision: &str,
    endpoint: &str,
    get: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<HubModel> {
    let url = format!("{endpoint}/api/models/{id}/revision/{revision}");
    let info: RevisionInfo =
        serde_json::from_slice(&get(&url)?).map_err(|e| ServeError::Response {
            url: url.clone(),
            message: format!("not the Hub's description of a revision: {e}"),
        })?;
    let files: Vec<&str> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|f| wanted(f))
        .collect();
    if !files.contains(&"config.json") {
        return Err(ServeError::Response {
            url,
            message: format!("{id}@{revision} has no config.json: not a model fairrec loads"),
        });
    }
    let snapshot = Download::begin(cache, id, revision, &info.sha)?;
    for f in files {
        tracing::info!("downloading {id}/{f}");
        snapshot.file(
            f,
            &get(&format!("{endpoint}/{id}/resolve/{}/{f}", info.sha))?,
        )?;
    }
    Ok(snapshot.commit()?)
}

/// `model` (a `--model` value) resolved when it is a Hugging Face id, not a path
/// ([`fairrec_lm::hub::parse_id`]): from the cache, or fetched into it when `download` and
/// it is not there. `None`: a path, used as it is.
pub fn model(model: Option<&str>, download: bool) -> Result<Option<HubModel>> {
    let Some((id, rev)) = model.and_then(fairrec_lm::hub::parse_id) else {
        return Ok(None);
    };
    let cache = fairrec_lm::hub::cache_dir();
    let hub = match fairrec_lm::hub::resolve(&cache, &id, &rev) {
        Err(_) if download => download_model(&cache, &id, &rev)?,
        r => r?,
    };
    tracing::info!(
        "model {id}@{rev}: commit {} in {}",
        hub.commit,
        hub.path.display()
    );
    Ok(Some(hub))
}

/// [`download_with`] over HTTPS (ureq), `HF_ENDPOINT` and `HF_TOKEN` as `huggingface_hub`
/// reads them.
pub fn download_model(cache: &Path, id: &str, revision: &str) -> Result<HubModel> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let agent = ureq::AgentBuilder::new().build();
    let get = |url: &str| -> Result<Vec<u8>> {
        let mut rq = agent.get(url);
        if let Some(t) = &token {
            rq = rq.set("Authorization", &format!("Bearer {t}"));
        }
        let fail = |message: String| ServeError::GaveUp {
            url: url.into(),
            attempts: 1,
            message,
        };
        match rq.call() {
            Ok(resp) => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes)
                    .map_err(|e| fail(e.to_string()))?;
                Ok(bytes)
            }
            Err(ureq::Error::Status(status, resp)) => Err(ServeError::Refused {
                url: url.into(),
                status,
                message: resp
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect(),
            }),
            Err(e) => Err(fail(e.to_string())),
        }
    };
    download_with(cache, id, revision, &endpoint, &get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// A Hub answering from memory: the revision's description and three files, one of
    /// them of a framework fairrec does not load (never fetched).
    #[test]
    fn a_download_lands_in_the_cache_layout_and_resolves() {
        let cache = tempfile::tempdir().unwrap();
        let info = format!(
            r#"{{"sha": "{SHA}", "siblings": [{{"rfilename": "config.json"}}, {{"rfilename": "model.safetensors"}}, {{"rfilename": "pytorch_model.bin"}}, {{"rfilename": "sub/tokenizer.json"}}]}}"#
        );
        let served: BTreeMap<String, Vec<u8>> = [
            (
                "https://hub.test/api/models/org/tiny/revision/main".to_string(),
                info.into_bytes(),
            ),
            (
                format!("https://hub.test/org/tiny/resolve/{SHA}/config.json"),
                b"{}".to_vec(),
            ),
            (
                format!("https://hub.test/org/tiny/resolve/{SHA}/model.safetensors"),
                b"w".to_vec(),
            ),
            (
                format!("https://hub.test/org/tiny/resolve/{SHA}/sub/tokenizer.json"),
                b"t".to_vec(),
            ),
        ]
        .into();
        let asked = std::cell::RefCell::new(Vec::new());
        let get = |url: &str| {
            asked.borrow_mut().push(url.to_string());
            served.get(url).cloned().ok_or_else(|| ServeError::Refused {
                url: url.into(),
                status: 404,
                message: "not found".into(),
            })
        };
        let m = download_with(cache.path(), "org/tiny", "main", "https://hub.test", &get).unwrap();
        assert_eq!(m.commit, SHA);
        assert!(
            !asked.borrow().iter().any(|u| u.ends_with(".bin")),
            "{asked:?}"
        );
        assert_eq!(
            std::fs::read(m.path.join("sub/tokenizer.json")).unwrap(),
            b"t"
        );
        // What the cache now resolves is what was downloaded.
        let r = fairrec_lm::hub::resolve(cache.path(), "org/tiny", "main").unwrap();
        assert_eq!(r, m);
        // A revision without config.json is refused before anything is written.
        let none = |_: &str| Ok(format!(r#"{{"sha": "{SHA}", "siblings": []}}"#).into_bytes());
        let e = download_with(cache.path(), "org/other", "main", "https://hub.test", &none)
            .unwrap_err();
        assert!(e.to_string().contains("no config.json"), "{e}");
        assert!(!fairrec_lm::hub::repo_dir(cache.path(), "org/other").exists());
    }
}
