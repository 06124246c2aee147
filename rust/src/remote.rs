//! Remote stores: Zarr hierarchies in S3-compatible buckets (`s3://`) and
//! on HTTP(S) servers, read through `object_store` (request signing,
//! retries with backoff, ranged GETs) on one tokio runtime owned by this
//! library.
//!
//! Design:
//! - A [`RemoteStore`] is opened per root URL and configuration and shared
//!   by every array under it ([`open`] returns the same store for the same
//!   settings), so connections, credentials and caches are shared.
//! - Callers on worker threads block on the runtime ([`RemoteStore::block_on`]);
//!   batches of requests run concurrently up to the store's `concurrency`
//!   ([`RemoteStore::fetch_all`]): a region read never serializes on latency.
//! - Metadata objects read through [`RemoteStore::get_cached`] are cached
//!   (missing ones too) until [`invalidate`] drops them.
//! - Credentials never appear in error messages: every message is built
//!   from the URL (which may not hold user info) and scrubbed of the
//!   configured secrets.

use crate::error::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::http::HttpBuilder;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Requests in flight per store when the caller does not say.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Retries of a failed request (5xx, timeout, dropped connection) by default.
pub const DEFAULT_RETRIES: usize = 5;
/// Metadata objects kept per process.
const METADATA_CACHE_ENTRIES: usize = 4096;

/// Numeric settings of a remote store (the words of `tessera_remote_open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Requests in flight at most, per read.
    pub concurrency: usize,
    /// Retries of a failed request before the error surfaces.
    pub retries: usize,
    /// Time limit of one request (connect to last byte), in milliseconds.
    pub timeout_ms: u64,
    /// Time limit of connecting, in milliseconds.
    pub connect_timeout_ms: u64,
    /// First backoff between retries, in milliseconds (doubling, with jitter).
    pub backoff_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            retries: DEFAULT_RETRIES,
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            backoff_ms: 50,
        }
    }
}

impl Settings {
    /// Decodes `[concurrency, retries, timeout_ms, connect_timeout_ms,
    /// backoff_ms]`; a negative word takes the default.
    pub fn decode(words: &[i64]) -> Result<Self> {
        let d = Self::default();
        let word = |i: usize, default: u64, min: u64, max: u64, what: &str| -> Result<u64> {
            match words.get(i) {
                None => Ok(default),
                Some(&v) if v < 0 => Ok(default),
                Some(&v) if (v as u64) < min || v as u64 > max => Err(Error::invalid(format!(
                    "remote option {what} is {v}, expected {min}..={max}"
                ))),
                Some(&v) => Ok(v as u64),
            }
        };
        Ok(Self {
            concurrency: word(0, d.concurrency as u64, 1, 1024, "concurrency")? as usize,
            retries: word(1, d.retries as u64, 0, 100, "retries")? as usize,
            timeout_ms: word(2, d.timeout_ms, 1, 3_600_000, "timeoutMs")?,
            connect_timeout_ms: word(3, d.connect_timeout_ms, 1, 600_000, "connectTimeoutMs")?,
            backoff_ms: word(4, d.backoff_ms, 1, 60_000, "backoffMs")?,
        })
    }
}

/// The runtime every remote request runs on (I/O only: decoding stays on
/// the rayon pool).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-io")
            .enable_all()
            .build()
            .expect("building the I/O runtime")
    })
}

/// An object store under a root URL, with its settings.
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    /// The root URL as given (no credentials), for messages and cache keys.
    url: String,
    /// Path of the root inside the store (an S3 key prefix; empty for HTTP).
    prefix: String,
    settings: Settings,
    /// Configured secret values, scrubbed from every message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("url", &self.url)
            .finish()
    }
}

/// Whether `url` names a remote store this library reads.
pub fn is_remote(url: &str) -> bool {
    ["s3://", "http://", "https://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme))
}

/// Opens (or finds already open) the store at `url` with S3 `config` pairs
/// (object_store's `AmazonS3ConfigKey` names, e.g. `aws_endpoint`,
/// `aws_region`, `aws_access_key_id`) and `settings`. S3 settings missing
/// from `config` come from the `AWS_*` environment variables.
pub fn open(
    url: &str,
    config: &[(String, String)],
    settings: Settings,
) -> Result<Arc<RemoteStore>> {
    type Registry = Mutex<HashMap<(String, Vec<(String, String)>, Settings), Arc<RemoteStore>>>;
    static OPEN: OnceLock<Registry> = OnceLock::new();
    let url = url.trim_end_matches('/').to_string();
    let key = (url.clone(), config.to_vec(), settings);
    let registry = OPEN.get_or_init(Default::default);
    if let Some(store) = registry.lock().expect("store registry").get(&key) {
        return Ok(store.clone());
    }
    let store = Arc::new(build(&url, config, settings)?);
    registry
        .lock()
        .expect("store registry")
        .insert(key, store.clone());
    Ok(store)
}

fn build(url: &str, config: &[(String, String)], settings: Settings) -> Result<RemoteStore> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::invalid(format!("remote store URL is malformed: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid(
            "remote store URL holds credentials: pass them as options or AWS_* environment variables instead",
        ));
    }
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(settings.backoff_ms),
            max_backoff: Duration::from_millis(settings.backoff_ms.saturating_mul(64).max(2_000)),
            base: 2.0,
        },
        max_retries: settings.retries,
        retry_timeout: Duration::from_millis(settings.timeout_ms.saturating_mul(4).max(60_000)),
    };
    let plain_http = |endpoint: &str| endpoint.to_ascii_lowercase().starts_with("http://");
    let mut client = ClientOptions::new()
        .with_timeout(Duration::from_millis(settings.timeout_ms))
        .with_connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .with_pool_max_idle_per_host(settings.concurrency);
    let mut secrets = Vec::new();
    let (store, prefix): (Arc<dyn ObjectStore>, String) = match parsed.scheme() {
        "s3" => {
            let bucket = parsed.host_str().unwrap_or_default().to_string();
            if bucket.is_empty() {
                return Err(Error::invalid(format!("{url}: the S3 URL names no bucket")));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
            for (name, value) in config {
                let key = name
                    .parse()
                    .map_err(|_| Error::invalid(format!("{url}: unknown S3 option {name}")))?;
                builder = builder.with_config(key, value);
            }
            for key in [
                object_store::aws::AmazonS3ConfigKey::SecretAccessKey,
                object_store::aws::AmazonS3ConfigKey::Token,
            ] {
                if let Some(value) = builder.get_config_value(&key) {
                    secrets.push(value);
                }
            }
            let endpoint = builder
                .get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint)
                .unwrap_or_default();
            if plain_http(&endpoint) {
                client = client.with_allow_http(true);
            }
            let store = builder
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| {
                    Error::invalid(format!("{url}: {}", scrub(&e.to_string(), &secrets)))
                })?;
            (Arc::new(store), parsed.path().trim_matches('/').to_string())
        }
        "http" | "https" => {
            if plain_http(url) {
                client = client.with_allow_http(true);
            }
            let store = HttpBuilder::new()
                .with_url(url)
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| Error::invalid(format!("{url}: {e}")))?;
            (Arc::new(store), String::new())
        }
        other => {
            return Err(Error::invalid(format!(
                "{url}: scheme {other}: is not supported (s3://, http://, https://)"
            )))
        }
    };
    secrets.retain(|s| !s.is_empty());
    Ok(RemoteStore {
        store,
        url: url.to_string(),
        prefix,
        settings,
        secrets,
    })
}

/// Replaces every secret in `message` with `***`.
fn scrub(message: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
}

/// An object's length and version (ETag), from a HEAD or a GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Length in bytes.
    pub len: u64,
    /// Version stamp: a hash of the ETag (0 when the server gives none).
    pub stamp: u64,
}

/// One ranged read of a batch: which object, which part of it.
#[derive(Debug, Clone)]
pub enum Fetch {
    /// Only the object's length and version (a HEAD request).
    Head,
    /// The whole object.
    Whole,
    /// The last `n` bytes (a trailing shard index).
    Suffix(u64),
    /// A byte range.
    Range(Range<u64>),
}

/// What one fetch gave: its bytes, where they start, and the object's info;
/// `None` when the object does not exist.
pub type Fetched = Option<(u64, Bytes, ObjectInfo)>;

impl RemoteStore {
    /// The root URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests in flight at most.
    pub fn concurrency(&self) -> usize {
        self.settings.concurrency
    }

    /// The URL of `key` under the root (a cache key and a message).
    pub fn key_url(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{key}", self.url)
        }
    }

    fn location(&self, key: &str) -> Path {
        let full = match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{key}", self.prefix),
        };
        Path::from(full)
    }

    /// Runs `future` on the I/O runtime and waits for it (from a non-runtime thread).
    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        runtime().block_on(future)
    }

    /// Turns an object_store error about `key` into a typed, scrubbed error;
    /// `Ok(None)` for a missing object.
    fn classify<T>(&self, key: &str, error: object_store::Error) -> Result<Option<T>> {
        let url = self.key_url(key);
        let detail = scrub(&error.to_string(), &self.secrets);
        Err(match error {
            object_store::Error::NotFound { .. } => return Ok(None),
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Error::storage(format!(
                "{url}: access denied ({detail}); check the credentials (AWS_ACCESS_KEY_ID / \
                 AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the credentials option), the region \
                 and the bucket's policy"
            )),
            _ => Error::storage(format!(
                "{url}: {detail} (after up to {} retries)",
                self.settings.retries
            )),
        })
    }

    /// Reads one part of the object under `key`.
    async fn fetch_one(&self, key: &str, what: Fetch) -> Result<Fetched> {
        let location = self.location(key);
        let range = match what {
            Fetch::Whole => None,
            Fetch::Suffix(n) => Some(GetRange::Suffix(n)),
            Fetch::Head => {
                return Ok(self.info(key).await?.map(|info| (0, Bytes::new(), info)));
            }
            Fetch::Range(r) => Some(GetRange::Bounded(r)),
        };
        let options = GetOptions {
            range,
            ..Default::default()
        };
        let result = match self.store.get_opts(&location, options).await {
            Ok(result) => result,
            Err(e) => return self.classify(key, e),
        };
        let info = ObjectInfo {
            len: result.meta.size,
            stamp: stamp(result.meta.e_tag.as_deref()),
        };
        let start = result.range.start;
        let expected = result.range.end - result.range.start;
        let bytes = match result.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return self.classify(key, e),
        };
        if bytes.len() as u64 != expected {
            return Err(Error::storage(format!(
                "{}: got {} bytes where {expected} were asked for",
                self.key_url(key),
                bytes.len()
            )));
        }
        Ok(Some((start, bytes, info)))
    }

    async fn info(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self.store.head(&self.location(key)).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                len: meta.size,
                stamp: stamp(meta.e_tag.as_deref()),
            })),
            Err(e) => self.classify(key, e),
        }
    }

    /// Length and version of the object under `key`; `None` when missing.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.block_on(self.info(key))
    }

    /// Reads one part of the object under `key`, waiting for it.
    pub fn fetch(&self, key: &str, what: Fetch) -> Result<Fetched> {
        self.block_on(self.fetch_one(key, what))
    }

    /// Reads every `(key, part)` of `requests` with up to `concurrency`
    /// requests in flight; results come in the order of `requests`. The
    /// first error (after retries) fails the batch.
    pub fn fetch_all(&self, requests: Vec<(String, Fetch)>) -> Result<Vec<Fetched>> {
        let concurrency = self.settings.concurrency;
        self.block_on(async {
            stream::iter(requests)
                .map(|(key, what)| async move { self.fetch_one(&key, what).await })
                .buffered(concurrency)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect()
        })
    }

    /// The object under `key`, whole, from the metadata cache when it was
    /// read before (missing objects too); `None` when it does not exist.
    pub fn get_cached(&self, key: &str) -> Result<Option<Bytes>> {
        let url = self.key_url(key);
        if let Some(hit) = metadata_cache().lock().expect("metadata cache").get(&url) {
            return Ok(hit.clone());
        }
        let bytes = self.fetch(key, Fetch::Whole)?.map(|(_, bytes, _)| bytes);
        metadata_cache()
            .lock()
            .expect("metadata cache")
            .put(url, bytes.clone());
        Ok(bytes)
    }

    /// The error for a write to this store.
    pub fn read_only(&self, key: &str) -> Error {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{}: remote stores are read-only", self.key_url(key)),
        )
    }
}

/// A version stamp of an ETag.
fn stamp(etag: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(etag) = etag else { return 0 };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    etag.hash(&mut h);
    h.finish() | 1
}

type MetadataCache = Mutex<lru::LruCache<String, Option<Bytes>>>;

fn metadata_cache() -> &'static MetadataCache {
    static CACHE: OnceLock<MetadataCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(METADATA_CACHE_ENTRIES).expect("non-zero"),
        ))
    })
}

/// Drops cached metadata and shard indexes of every object whose URL
/// starts with `prefix` (all remote objects when it is empty). Returns how
/// many entries were dropped.
pub fn invalidate(prefix: &str) -> usize {
    let mut dropped = 0;
    {
        let mut cache = metadata_cache().lock().expect("metadata cache");
        let keys: Vec<String> = cache
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            cache.pop(&k);
            dropped += 1;
        }
    }
    dropped + crate::index_cache::invalidate(|key| is_remote(key) && key.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets() {
        let s = scrub("key wJalrXUtnFEMI in text", &["wJalrXUtnFEMI".into()]);
        assert_eq!(s, "key *** in text");
    }

    #[test]
    fn decodes_settings() {
        assert_eq!(Settings::decode(&[]).unwrap(), Settings::default());
        let s = Settings::decode(&[8, 0, -1]).unwrap();
        assert_eq!((s.concurrency, s.retries, s.timeout_ms), (8, 0, 30_000));
        assert!(Settings::decode(&[0]).is_err());
    }

    #[test]
    fn refuses_credentials_in_urls() {
        let e = open(
            "https://user:hunter22@example.com/x",
            &[],
            Settings::default(),
        )
        .unwrap_err();
        assert!(!e.message.contains("hunter22"), "{}", e.message);
        assert!(is_remote("S3://b/x") && !is_remote("/data/x.zarr"));
    }
}
