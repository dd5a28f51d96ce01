//! Where outside issuers' JWK Sets come from: an HTTP(S) URL or a local file. The adapters behind
//! `core::issuers::JwksSource`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::core::issuers::JwksSource;

/// The most a JWKS document may weigh; larger answers are refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A JWKS fetched over HTTP(S).
pub struct UrlSource {
    url: String,
    client: reqwest::Client,
}

impl UrlSource {
    pub fn new(url: String, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| e.to_string())?;
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
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("the document is larger than {MAX_JWKS_BYTES} bytes"));
        }
        String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
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
