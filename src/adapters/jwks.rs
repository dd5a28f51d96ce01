//! Where outside issuers' JWK Sets come from: an HTTP(S) URL or a local file. The adapters behind
//! `keygate_core::ports::JwksSource`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use keygate_core::ports::JwksSource;

/// The most a JWKS document may weigh; larger answers are refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A JWKS fetched over HTTP(S).
pub struct UrlSource {
    url: String,
    client: reqwest::Client,
}

impl UrlSource {
    pub fn new(url: String, timeout: Duration) -> Result<Self, String> {
        // At most three redirects, and never from https to http.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade =
                attempt.previous().iter().any(|url| url.scheme() == "https") && attempt.url().scheme() != "https";
            if downgrade || attempt.previous().len() > 3 { attempt.stop() } else { attempt.follow() }
        });
        let client =
            reqwest::Client::builder().timeout(timeout).redirect(redirects).build().map_err(|e| e.to_string())?;
        Ok(Self { url, client })
    }
}

#[async_trait]
impl JwksSource for UrlSource {
    async fn fetch(&self) -> Result<String, String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let too_large = || format!("the document is larger than {MAX_JWKS_BYTES} bytes");
        if response.content_length().is_some_and(|length| length > MAX_JWKS_BYTES as u64) {
            return Err(too_large());
        }
        // Read in chunks, so that a body without a length cannot grow past the limit.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// A JWKS read from a file (re-read on every refresh, so that replacing it takes effect).
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait]
impl JwksSource for FileSource {
    async fn fetch(&self) -> Result<String, String> {
        tokio::fs::read_to_string(&self.path).await.map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
