//! The pull client: one per connector (so one per credential), shared by every pull of
//! that connector in the process.
//!
//! - A governor limiter sized by the platform's quota (overridable per connector): every
//!   attempt, retries included, waits for a permit, so the request rate never exceeds it.
//! - `Retry-After` (seconds or an HTTP date) on 429 and 503 pauses the whole client, and
//!   platform headers ([`Puller::throttle`]) pause it before the bucket runs dry.
//! - 429, 5xx, timeouts and connection errors are retried with exponential backoff and full
//!   jitter; other 4xx fail at once (retrying a 401 helps nobody).
//! - A circuit breaker: after `breaker_threshold` consecutive failed attempts the client
//!   refuses to send for `breaker_cooldown`, so one failing platform costs its own pulls a
//!   fast failure and nobody else anything. After the cool-down one trial request goes
//!   through (half-open); success closes the circuit.
//! - Every URL's host is checked against the puller's [`HostPolicy`].

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;

use crate::pull::{Endpoint, HostPolicy, HttpRequest, HttpResponse, Method, PullError, RateQuota};

/// How the client retries and protects itself.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of a 5xx / timeout / connection error before giving up.
    pub max_retries: u32,
    /// Retries of a 429 before giving up (platforms send storms; they are not failures).
    pub max_rate_limited_retries: u32,
    /// First backoff; doubles per attempt, full jitter, capped at `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this ends the pull (the scheduler tries again later).
    pub max_retry_after: Duration,
    /// Consecutive failed attempts that open the circuit.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Skip the host check (tests and mock servers only; never exposed per connector).
    pub allow_any_host: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 5,
            max_rate_limited_retries: 30,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            breaker_threshold: 8,
            breaker_cooldown: Duration::from_secs(60),
            allow_any_host: false,
        }
    }
}

/// What one [`PullClient::send`] went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Requests actually sent (including retries).
    pub attempts: u32,
    /// 429 answers (or platform rate-limit signals).
    pub rate_limited: u32,
    /// 5xx answers, timeouts and connection errors.
    pub failures: u32,
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// A rate-limited, retrying, circuit-breaking HTTP client for one connector.
pub struct PullClient {
    http: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    quota: RateQuota,
    settings: ClientSettings,
    breaker: Mutex<Breaker>,
    /// No request before this instant (Retry-After, platform throttle headers).
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for PullClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullClient").field("quota", &self.quota).finish_non_exhaustive()
    }
}

/// The governor quota for a rate: one permit every `1/per_second`, `burst` at once.
pub fn governor_quota(q: RateQuota) -> Quota {
    let period = Duration::from_secs_f64(1.0 / q.per_second.max(0.0001));
    let burst = NonZeroU32::new(q.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl PullClient {
    /// A client limited to `quota`.
    pub fn new(quota: RateQuota, settings: ClientSettings) -> Result<Self, PullError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("junction/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PullError::Exhausted { attempts: 0, last: format!("http client: {e}") })?;
        Ok(Self {
            http,
            limiter: RateLimiter::direct(governor_quota(quota)),
            quota,
            settings,
            breaker: Mutex::new(Breaker::default()),
            paused_until: Mutex::new(None),
        })
    }

    /// The quota this client was built with.
    pub fn quota(&self) -> RateQuota {
        self.quota
    }

    /// Whether the circuit is open now.
    pub fn circuit_open(&self) -> bool {
        self.breaker.lock().map(|b| b.open_until.is_some_and(|t| t > Instant::now())).unwrap_or(false)
    }

    fn check_host(&self, policy: &HostPolicy, url: &str) -> Result<reqwest::Url, PullError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| PullError::HostNotAllowed(url.chars().take(80).collect()))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        if self.settings.allow_any_host {
            return Ok(parsed);
        }
        if parsed.scheme() != "https" || !policy.allows(&host) {
            return Err(PullError::HostNotAllowed(host));
        }
        Ok(parsed)
    }

    fn pause_for(&self, d: Duration) {
        if let Ok(mut p) = self.paused_until.lock() {
            let until = Instant::now() + d;
            if p.is_none_or(|t| t < until) {
                *p = Some(until);
            }
        }
    }

    async fn wait_turn(&self) -> Result<(), PullError> {
        {
            let mut b = self.breaker.lock().map_err(|_| poisoned())?;
            if let Some(until) = b.open_until {
                let now = Instant::now();
                if until > now {
                    return Err(PullError::CircuitOpen { retry_in_secs: (until - now).as_secs().max(1) });
                }
                // Half-open: let this one through; a failure re-opens at once.
                b.open_until = None;
                b.consecutive_failures = self.settings.breaker_threshold.saturating_sub(1);
            }
        }
        let pause =
            self.paused_until.lock().map_err(|_| poisoned())?.map(|t| t.saturating_duration_since(Instant::now()));
        if let Some(p) = pause.filter(|p| !p.is_zero()) {
            tokio::time::sleep(p).await;
        }
        self.limiter.until_ready().await;
        Ok(())
    }

    fn record_failure(&self) {
        if let Ok(mut b) = self.breaker.lock() {
            b.consecutive_failures += 1;
            if b.consecutive_failures >= self.settings.breaker_threshold {
                b.open_until = Some(Instant::now() + self.settings.breaker_cooldown);
                tracing::warn!(failures = b.consecutive_failures, "pull circuit opened");
            }
        }
    }

    fn record_success(&self) {
        if let Ok(mut b) = self.breaker.lock() {
            b.consecutive_failures = 0;
            b.open_until = None;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.settings.base_backoff.saturating_mul(2u32.saturating_pow(attempt.min(16)));
        let cap = exp.min(self.settings.max_backoff);
        // Full jitter: uniform in [cap/2, cap] keeps some spacing while spreading retries.
        let ms = cap.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
    }

    /// Send `req` to `puller`'s API, waiting for the limiter, retrying what may succeed later.
    pub async fn send<E: Endpoint + ?Sized>(
        &self,
        puller: &E,
        req: &HttpRequest,
    ) -> Result<(HttpResponse, SendStats), PullError> {
        let url = self.check_host(&puller.hosts(), &req.url)?;
        let mut stats = SendStats::default();
        let mut last: String;
        loop {
            self.wait_turn().await?;
            stats.attempts += 1;
            let mut builder = match req.method {
                Method::Get => self.http.get(url.clone()),
                Method::Post => self.http.post(url.clone()),
            };
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            if let Some(b) = &req.body {
                builder = builder.body(b.clone());
            }
            let outcome = match builder.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers: Vec<(String, String)> = resp
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                        })
                        .collect();
                    match resp.bytes().await {
                        Ok(body) => Ok(HttpResponse { status, headers, body: body.to_vec() }),
                        Err(e) => Err(describe(&e)),
                    }
                }
                Err(e) => Err(describe(&e)),
            };
            let wait = match outcome {
                Ok(resp) if (200..300).contains(&resp.status) && !puller.is_rate_limited(&resp) => {
                    self.record_success();
                    if let Some(p) = puller.throttle(&resp) {
                        self.pause_for(p);
                    }
                    return Ok((resp, stats));
                }
                Ok(resp) if resp.status == 429 || puller.is_rate_limited(&resp) => {
                    stats.rate_limited += 1;
                    last = format!("HTTP {} (rate limited)", resp.status);
                    if stats.rate_limited > self.settings.max_rate_limited_retries {
                        return Err(PullError::Exhausted { attempts: stats.attempts, last });
                    }
                    let wait = retry_after(&resp).unwrap_or_else(|| self.backoff(stats.rate_limited - 1));
                    if wait > self.settings.max_retry_after {
                        return Err(PullError::Exhausted {
                            attempts: stats.attempts,
                            last: format!("{last}; Retry-After {} s is beyond the limit", wait.as_secs()),
                        });
                    }
                    tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limited");
                    self.pause_for(wait);
                    continue;
                }
                Ok(resp) if resp.status >= 500 || resp.status == 408 => {
                    stats.failures += 1;
                    last = format!("HTTP {}", resp.status);
                    retry_after(&resp).map(|d| d.min(self.settings.max_retry_after))
                }
                Ok(resp) => {
                    // A final answer: bad credentials, missing resource, bad request.
                    self.record_success();
                    return Err(PullError::Status { status: resp.status, detail: error_detail(&resp) });
                }
                Err(e) => {
                    stats.failures += 1;
                    last = e;
                    None
                }
            };
            self.record_failure();
            if stats.failures > self.settings.max_retries {
                return Err(PullError::Exhausted { attempts: stats.attempts, last });
            }
            let wait = wait.unwrap_or_else(|| self.backoff(stats.failures - 1));
            tracing::debug!(wait_ms = wait.as_millis() as u64, error = %last, "pull request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

fn poisoned() -> PullError {
    PullError::Exhausted { attempts: 0, last: "client state poisoned".into() }
}

/// Transport errors without the URL (it may carry a query a platform considers private).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "response body interrupted".into()
    } else {
        "request failed".into()
    }
}

/// A short, safe description of an error answer: a JSON `code`/`error`/`message`-like
/// field when there is one (platform error codes), else nothing from the body.
fn error_detail(resp: &HttpResponse) -> String {
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    let code = ["/errors/0/code", "/error/code", "/code", "/error", "/category", "/errors"].iter().find_map(|p| {
        v.pointer(p).and_then(|c| c.as_str().map(str::to_string).or_else(|| c.as_i64().map(|n| n.to_string())))
    });
    code.map(|c| c.chars().take(80).collect()).unwrap_or_else(|| "error".into())
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    let raw = resp.header("retry-after")?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::Value;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    use super::*;
    use crate::pull::{PullPosition, PullSettings, PulledPage, Puller};
    use crate::ConnectorKind;

    struct Echo {
        base: String,
        settings: PullSettings,
    }

    impl Puller for Echo {
        fn kind(&self) -> ConnectorKind {
            ConnectorKind::Shopify
        }
        fn streams(&self) -> &'static [&'static str] {
            &["things"]
        }
        fn quota(&self) -> RateQuota {
            RateQuota { per_second: 1000.0, burst: 1 }
        }
        fn hosts(&self) -> HostPolicy {
            HostPolicy::Platform(&["example.com"])
        }
        fn settings(&self) -> &PullSettings {
            &self.settings
        }
        fn request(&self, _pos: &PullPosition<'_>) -> Result<HttpRequest, PullError> {
            Ok(HttpRequest::get(&format!("{}/things", self.base), &[]))
        }
        fn parse(&self, _pos: &PullPosition<'_>, _r: &HttpResponse) -> Result<PulledPage, PullError> {
            Ok(PulledPage::default())
        }
    }

    fn fast() -> ClientSettings {
        ClientSettings {
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            allow_any_host: true,
            ..ClientSettings::default()
        }
    }

    /// Answers the scripted statuses in order, then 200.
    struct Script(Vec<ResponseTemplate>, Arc<AtomicUsize>);

    impl Respond for Script {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.1.fetch_add(1, Ordering::SeqCst);
            self.0.get(n).cloned().unwrap_or_else(|| ResponseTemplate::new(200).set_body_json(Value::Null))
        }
    }

    async fn scripted(responses: Vec<ResponseTemplate>) -> (MockServer, Arc<AtomicUsize>) {
        let server = MockServer::start().await;
        let count = Arc::new(AtomicUsize::new(0));
        Mock::given(method("GET"))
            .and(path("/things"))
            .respond_with(Script(responses, count.clone()))
            .mount(&server)
            .await;
        (server, count)
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_5xx_bursts_are_retried() {
        let (server, count) = scripted(vec![
            ResponseTemplate::new(429).insert_header("retry-after", "1"),
            ResponseTemplate::new(503),
            ResponseTemplate::new(502),
        ])
        .await;
        let puller = Echo { base: server.uri(), settings: PullSettings::default() };
        let client = PullClient::new(puller.quota(), fast()).unwrap();
        let started = Instant::now();
        let (resp, stats) = client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(stats, SendStats { attempts: 4, rate_limited: 1, failures: 2 });
        assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_401_fails_at_once_with_the_platform_code() {
        let (server, count) = scripted(vec![
            ResponseTemplate::new(401).set_body_json(serde_json::json!({"errors": "[API] Invalid API key"}))
        ])
        .await;
        let puller = Echo { base: server.uri(), settings: PullSettings::default() };
        let client = PullClient::new(puller.quota(), fast()).unwrap();
        let err = client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap_err();
        assert!(matches!(err, PullError::Status { status: 401, .. }), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_circuit_opens_after_repeated_failures_and_fails_fast() {
        let (server, count) = scripted((0..100).map(|_| ResponseTemplate::new(500)).collect()).await;
        let puller = Echo { base: server.uri(), settings: PullSettings::default() };
        let settings = ClientSettings { breaker_threshold: 3, max_retries: 10, ..fast() };
        let client = PullClient::new(puller.quota(), settings).unwrap();
        let err = client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap_err();
        assert!(matches!(err, PullError::CircuitOpen { .. }), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 3);
        let started = Instant::now();
        let err = client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap_err();
        assert!(matches!(err, PullError::CircuitOpen { .. }));
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(count.load(Ordering::SeqCst), 3, "an open circuit sends nothing");
    }

    #[tokio::test]
    async fn hosts_outside_the_platform_are_refused() {
        let puller = Echo { base: "https://evil.test".into(), settings: PullSettings::default() };
        let client = PullClient::new(puller.quota(), ClientSettings::default()).unwrap();
        let err = client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap_err();
        assert!(matches!(err, PullError::HostNotAllowed(h) if h == "evil.test"));
        let puller = Echo { base: "http://api.example.com".into(), settings: PullSettings::default() };
        let err = client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap_err();
        assert!(matches!(err, PullError::HostNotAllowed(_)), "plain http is refused");
    }

    #[tokio::test]
    async fn the_limiter_spaces_requests() {
        let (server, _count) = scripted(vec![]).await;
        let puller = Echo { base: server.uri(), settings: PullSettings::default() };
        let client = PullClient::new(RateQuota { per_second: 20.0, burst: 1 }, fast()).unwrap();
        let started = Instant::now();
        for _ in 0..11 {
            client.send(&puller, &puller.request(&pos()).unwrap()).await.unwrap();
        }
        // 11 requests at 20/s: the first is free, ten more need 10 × 50 ms.
        assert!(started.elapsed() >= Duration::from_millis(480), "{:?}", started.elapsed());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let r = |v: &str| HttpResponse { status: 429, headers: vec![("retry-after".into(), v.into())], body: vec![] };
        assert_eq!(retry_after(&r("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&r("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(&r("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        assert_eq!(retry_after(&r("soon")), None);
    }

    fn pos() -> PullPosition<'static> {
        PullPosition { stream: "things", page: None, since: None, page_size: 10 }
    }
}
