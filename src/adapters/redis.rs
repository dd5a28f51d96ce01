//! Rate-limit, quota and concurrency counters in Redis, shared by every replica. One Lua script
//! checks and charges a whole [`Charge`] atomically in one round trip, with the same arithmetic as
//! [`MemoryCounters::admit_now`] and the caller's clock (never Redis `TIME`). While Redis cannot be
//! reached the counters either decide with this process's own memory or refuse to decide, as
//! configured, and find Redis again by themselves through [`Counters::ping`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script};

use keygate_core::instruments::LimitsInstruments;
use keygate_core::limits::gcra;
use keygate_core::limits::memory::MemoryCounters;
use keygate_core::model::{Admission, Charge, QuotaWindow, RateState};
use keygate_core::ports::{CounterError, Counters};

/// How long a month's quota counter outlives its month: long enough for a replica whose clock
/// lags to still find it, and short next to the month itself. The database keeps the usage.
const QUOTA_GRACE_SECS: i64 = 2 * 86_400;

/// The admission script. Keys: the subject's TAT, its quota counter for the month, its slots
/// (a sorted set scored by lease end). Every time is in microseconds from the caller.
///
/// Lua numbers are doubles: integers are exact below 2^53 (microseconds until the year 2255), but
/// `tostring` keeps only 14 digits, so every number written back is formatted with `%d`.
/// Replies: `{0, ahead, used}` admitted (`-1` for a limit not in the charge), `{1, retry}` rate
/// limited, `{2, used}` quota exceeded, `{3, retry}` concurrency limit, `{4}` needs a seed.
const ADMIT_LUA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local quota_max = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local seed = ARGV[6]
local quota_ttl = ARGV[7]
local slot_max = tonumber(ARGV[8])
local slot_id = ARGV[9]
local slot_end = tonumber(ARGV[10])
local function int(n) return string.format('%d', n) end

local ahead = -1
local new_tat
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  -- More than a burst ahead: this replica's clock went back (see gcra::decide).
  if tat > now + tolerance then tat = now + tolerance - interval end
  new_tat = math.max(tat, now) + interval
  ahead = new_tat - now
  if ahead > tolerance then return {1, ahead - tolerance} end
end
local used = -1
local seeded = false
if quota_max >= 0 then
  local current = redis.call('GET', KEYS[2])
  if current then
    used = tonumber(current)
  elseif seed ~= '' then
    used = tonumber(seed)
    seeded = true
  else
    return {4}
  end
  if used + cost > quota_max then return {2, used} end
  used = used + cost
end
if slot_max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', int(now))
  if redis.call('ZCARD', KEYS[3]) >= slot_max then
    local soonest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {3, tonumber(soonest[2]) - now}
  end
end

-- Every limit has room: charge them all. Keys expire once they no longer limit anything, with a
-- second to spare for replicas whose clocks differ a little.
if interval > 0 then
  redis.call('SET', KEYS[1], int(new_tat), 'PX', int(math.ceil(ahead / 1000) + 1000))
end
if quota_max >= 0 then
  if seeded then
    redis.call('SET', KEYS[2], int(used), 'EX', quota_ttl)
  elseif cost > 0 then
    redis.call('INCRBY', KEYS[2], int(cost))
  end
end
if slot_max > 0 then
  redis.call('ZADD', KEYS[3], int(slot_end), slot_id)
  local ttl = math.ceil((slot_end - now) / 1000) + 1000
  if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], int(ttl)) end
end
return {0, ahead, used}
";

/// What the counters do while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOutage {
    /// Decide with this process's own counters: each replica then admits up to the limits alone.
    LocalLimits,
    /// Refuse to decide ([`CounterError::Unavailable`]), so that the caller's failure mode applies.
    Refuse,
}

/// Where Redis is and how patient to be with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// A `redis://` or `rediss://` URL; it may hold a password, so it is never logged.
    pub url: String,
    /// PEM CA certificates that sign a `rediss://` server's certificate (else the system's).
    pub ca_pem: Option<Vec<u8>>,
    /// The longest one call or connection attempt may take before Redis counts as down.
    pub timeout: Duration,
    pub on_outage: OnOutage,
}

/// Counters in Redis, with a fallback in memory.
pub struct RedisCounters {
    connection: ConnectionManager,
    admit: Script,
    on_outage: OnOutage,
    fallback: MemoryCounters,
    /// Whether Redis answered last: while it does not, nothing is sent to it but the pings that
    /// look for it, so an outage costs requests no timeouts.
    up: AtomicBool,
    instruments: LimitsInstruments,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("on_outage", &self.on_outage)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    /// Counters on the Redis at `settings.url`. Connects on first use, so that a replica starts
    /// (and falls back, or reports itself unhealthy) while Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, CounterError> {
        let client = match &settings.ca_pem {
            None => redis::Client::open(settings.url.as_str()),
            Some(pem) => redis::Client::build_with_tls(
                settings.url.as_str(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            ),
        }
        // The error alone: the URL may hold a password.
        .map_err(|err| CounterError::Unavailable(format!("limits.redis_url is not usable ({:?})", err.kind())))?;
        // One connection attempt per call, no retries with backoff inside the client: a down Redis
        // must fail fast, and the periodic ping is what tries again.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| CounterError::Unavailable(format!("redis: {err}")))?;
        let instruments = LimitsInstruments { redis: true, ..LimitsInstruments::default() };
        instruments.backend_up.set(1);
        Ok(Self {
            connection,
            admit: Script::new(ADMIT_LUA),
            on_outage: settings.on_outage,
            fallback: MemoryCounters::default(),
            up: AtomicBool::new(true),
            instruments,
        })
    }

    /// The instruments these counters update, for registration with the metrics.
    pub fn instruments(&self) -> LimitsInstruments {
        self.instruments.clone()
    }

    /// Runs the admission script: one `EVALSHA` (an `EVAL` first when Redis does not know the
    /// script yet, e.g. after a restart).
    async fn admit_in_redis(&self, charge: &Charge<'_>) -> Result<Admission, RedisError> {
        let keys = Keys::of(charge.subject);
        let now = charge.now_micros;
        let mut call = self.admit.prepare_invoke();
        let quota_key = keys.quota(charge.quota.map(|q| q.window));
        call.key(keys.rate).key(quota_key).key(keys.slots).arg(now);
        match charge.rate {
            Some(limit) => call.arg(gcra::emission_interval(limit)).arg(gcra::tolerance(limit)),
            None => call.arg(0).arg(0),
        };
        match charge.quota {
            Some(quota) => {
                let until_end = (quota.window.end.timestamp_micros() - now).max(0) / 1_000_000;
                let ttl = until_end + 1 + QUOTA_GRACE_SECS;
                call.arg(quota.max).arg(quota.cost);
                match quota.seed {
                    Some(seed) => call.arg(seed),
                    None => call.arg(""),
                };
                call.arg(ttl)
            }
            None => call.arg(-1).arg(0).arg("").arg(0),
        };
        match charge.slot {
            Some(slot) => call.arg(slot.max).arg(slot.id).arg(slot.expires_micros),
            None => call.arg(0).arg("").arg(0),
        };
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = call.invoke_async(&mut connection).await?;
        decode(charge, &reply)
    }

    /// Notes that Redis did not answer: once per outage, logs it, resets the fallback and
    /// updates the metric.
    fn went_down(&self, err: &RedisError) {
        if self.up.swap(false, Ordering::AcqRel) {
            self.instruments.backend_up.set(0);
            // The fallback starts from nothing: what it counted in an earlier outage may since
            // have been counted in Redis too.
            self.fallback.clear();
            match self.on_outage {
                OnOutage::LocalLimits => {
                    tracing::warn!(error = %err, "redis unreachable; deciding rate limits with local counters")
                }
                OnOutage::Refuse => {
                    tracing::warn!(error = %err, "redis unreachable; refusing decisions that need rate limits")
                }
            }
        }
    }

    /// Notes that Redis answers again.
    fn came_back(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            self.instruments.backend_up.set(1);
            tracing::info!("redis reachable again; rate limits are shared again");
        }
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn unavailable() -> CounterError {
        CounterError::Unavailable("redis is unreachable".to_owned())
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn admit(&self, charge: &Charge<'_>) -> Result<Admission, CounterError> {
        if self.is_up() {
            match self.admit_in_redis(charge).await {
                Ok(admission) => return Ok(admission),
                Err(err) => self.went_down(&err),
            }
        }
        match self.on_outage {
            OnOutage::Refuse => Err(Self::unavailable()),
            OnOutage::LocalLimits => {
                self.instruments.fallback_decisions.inc();
                Ok(self.fallback.admit_now(charge))
            }
        }
    }

    async fn quota_used(&self, subject: &str, window: QuotaWindow) -> Result<Option<u64>, CounterError> {
        if self.is_up() {
            let mut connection = self.connection.clone();
            let key = Keys::of(subject).quota(Some(window));
            match redis::cmd("GET").arg(key).query_async::<Option<u64>>(&mut connection).await {
                Ok(used) => return Ok(used),
                Err(err) => self.went_down(&err),
            }
        }
        match self.on_outage {
            OnOutage::Refuse => Err(Self::unavailable()),
            OnOutage::LocalLimits => self.fallback.quota_used(subject, window).await,
        }
    }

    async fn release_slot(&self, subject: &str, slot_id: &str) -> Result<bool, CounterError> {
        // A slot taken during an outage lives in the fallback, whether or not Redis is back.
        let released_locally = self.fallback.release_slot(subject, slot_id).await?;
        if self.is_up() {
            let mut connection = self.connection.clone();
            let key = Keys::of(subject).slots;
            match redis::cmd("ZREM").arg(key).arg(slot_id).query_async::<u32>(&mut connection).await {
                Ok(removed) => return Ok(removed > 0 || released_locally),
                Err(err) => self.went_down(&err),
            }
        }
        match self.on_outage {
            OnOutage::Refuse if !released_locally => Err(Self::unavailable()),
            _ => Ok(released_locally),
        }
    }

    /// Pings Redis, which also reconnects after an outage. With local limits the counters can
    /// always decide, so only [`OnOutage::Refuse`] makes an outage an error.
    async fn ping(&self) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        match redis::cmd("PING").query_async::<()>(&mut connection).await {
            Ok(()) => {
                self.came_back();
                Ok(())
            }
            Err(err) => {
                self.went_down(&err);
                match self.on_outage {
                    OnOutage::LocalLimits => Ok(()),
                    OnOutage::Refuse => Err(Self::unavailable()),
                }
            }
        }
    }

    fn sweep(&self, now_micros: i64, current: QuotaWindow) {
        // Redis expires its own keys; only the fallback needs sweeping.
        self.fallback.forget_idle(now_micros, current);
    }
}

/// A subject's keys. The hash tag `{subject}` keeps them in one slot of a Redis Cluster, as a
/// script's keys must be; each kind of key ends differently, so no two subjects share a key.
struct Keys {
    prefix: String,
    rate: String,
    slots: String,
}

impl Keys {
    fn of(subject: &str) -> Self {
        let prefix = format!("keygate:{{{subject}}}:");
        Self { rate: format!("{prefix}rate"), slots: format!("{prefix}slots"), prefix }
    }

    /// The month's quota counter, e.g. `keygate:{api_key:k_1}:quota:2026-11`; the script reads
    /// no quota key when the charge has no quota, but a script's keys are always passed.
    fn quota(&self, window: Option<QuotaWindow>) -> String {
        match window {
            Some(window) => format!("{}quota:{}", self.prefix, window.label()),
            None => format!("{}quota", self.prefix),
        }
    }
}

/// The script's reply as an admission, with the rate state derived as [`gcra::decide`] does.
fn decode(charge: &Charge<'_>, reply: &[i64]) -> Result<Admission, RedisError> {
    let admission = match *reply {
        [0, ahead, used] => Admission::Admitted {
            rate: charge.rate.filter(|_| ahead >= 0).map(|limit| RateState {
                limit: limit.per_minute,
                remaining: gcra::remaining(limit, ahead),
                reset_after: micros(ahead),
            }),
            quota_used: charge.quota.and_then(|_| u64::try_from(used).ok()),
        },
        [1, retry] => Admission::RateLimited {
            retry_after: micros(retry),
            limit: charge.rate.map_or(0, |limit| limit.per_minute),
        },
        [2, used] => Admission::QuotaExceeded { used: u64::try_from(used).unwrap_or(0) },
        [3, retry] => Admission::ConcurrencyLimit { retry_after: micros(retry) },
        [4] => Admission::NeedsSeed,
        _ => return Err(RedisError::from((ErrorKind::UnexpectedReturnType, "unexpected admission script reply"))),
    };
    Ok(admission)
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use keygate_core::model::{QuotaCharge, RateLimit, SlotCharge};

    /// The Redis the tests use unless `TEST_REDIS_URL` says otherwise.
    const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

    fn redis_url() -> String {
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
    }

    fn counters_at(url: &str, on_outage: OnOutage) -> RedisCounters {
        let settings =
            RedisSettings { url: url.to_owned(), ca_pem: None, timeout: Duration::from_millis(500), on_outage };
        RedisCounters::new(&settings).expect("redis counters")
    }

    /// Counters on the test Redis, which must be running (as PostgreSQL must for its tests).
    async fn live_counters() -> RedisCounters {
        let url = redis_url();
        let counters = counters_at(&url, OnOutage::Refuse);
        if let Err(err) = counters.ping().await {
            panic!(
                "Redis is needed for the Redis counter tests and {url} cannot be reached: {err}\n\
                 Start Redis or point TEST_REDIS_URL at one, e.g. TEST_REDIS_URL=redis://127.0.0.1:6379"
            );
        }
        counters
    }

    #[tokio::test]
    async fn redis_counters_pass_the_conformance_tests() {
        keygate_core::limits::conformance::run_all(&live_counters().await).await;
    }

    /// The script and the in-memory reference decide a long mixed sequence identically.
    #[tokio::test]
    async fn redis_counters_decide_exactly_as_memory_does() {
        let redis = live_counters().await;
        let memory = MemoryCounters::default();
        let subject = format!("test:differential:{}", uuid::Uuid::new_v4().simple());
        let start = Utc.timestamp_opt(1_796_083_140, 0).single().expect("time").timestamp_micros();
        let mut seen = [0_u32; 5];
        for step in 0..400_i64 {
            // Irregular arrivals faster than the rate, odd microseconds included, across the end of
            // November (the start is a minute before it).
            let now = start + step * 200_003 + (step * step % 7) * 1_001;
            let at = Utc.timestamp_micros(now).single().expect("time");
            let slot_id = format!("slot-{step}");
            let charge = Charge {
                subject: &subject,
                now_micros: now,
                rate: Some(RateLimit { per_minute: 130, burst: 4 }),
                quota: Some(QuotaCharge {
                    max: 90,
                    cost: u64::try_from(step % 3).unwrap_or(1),
                    window: QuotaWindow::containing(at),
                    // A seed only starts a missing counter: both must ignore it otherwise.
                    seed: Some(17),
                }),
                slot: (step % 2 == 0).then(|| SlotCharge { max: 3, id: &slot_id, expires_micros: now + 1_700_000 }),
            };
            let expected = memory.admit_now(&charge);
            let got = redis.admit(&charge).await.expect("redis answers");
            assert_eq!(got, expected, "step {step}");
            seen[match got {
                Admission::Admitted { .. } => 0,
                Admission::RateLimited { .. } => 1,
                Admission::QuotaExceeded { .. } => 2,
                Admission::ConcurrencyLimit { .. } => 3,
                Admission::NeedsSeed => 4,
            }] += 1;
        }
        // Every outcome but a missing seed came up.
        assert!(seen[..4].iter().all(|n| *n > 0), "{seen:?}");
    }

    /// Microsecond times past 2^53 would lose precision in Lua; until then values are exact,
    /// including ones that `tostring` would round.
    #[tokio::test]
    async fn sixteen_digit_times_survive_the_script() {
        let redis = live_counters().await;
        let subject = format!("test:digits:{}", uuid::Uuid::new_v4().simple());
        let now = 4_102_444_800_123_457; // 2100-01-01 and an odd microsecond.
        let mut charge = Charge { subject: &subject, now_micros: now, rate: None, quota: None, slot: None };
        charge.rate = Some(RateLimit { per_minute: 7, burst: 1 });
        let first = redis.admit(&charge).await.expect("admit");
        assert!(matches!(first, Admission::Admitted { rate: Some(RateState { remaining: 0, .. }), .. }));
        charge.now_micros = now + 1;
        let interval = gcra::emission_interval(RateLimit { per_minute: 7, burst: 1 });
        assert_eq!(
            redis.admit(&charge).await,
            Ok(Admission::RateLimited { retry_after: Duration::from_micros((interval - 1) as u64), limit: 7 })
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_or_refuses_as_configured() {
        // Nothing listens on port 1.
        let open = counters_at("redis://127.0.0.1:1", OnOutage::LocalLimits);
        let closed = counters_at("redis://127.0.0.1:1", OnOutage::Refuse);
        let subject = "test:outage";
        let mut charge = Charge { subject, now_micros: 1_000_000, rate: None, quota: None, slot: None };
        charge.rate = Some(RateLimit { per_minute: 60, burst: 1 });
        assert!(matches!(open.admit(&charge).await, Ok(Admission::Admitted { .. })));
        // The local counters limit: the burst of one is spent.
        assert!(matches!(open.admit(&charge).await, Ok(Admission::RateLimited { .. })));
        assert_eq!(open.instruments().fallback_decisions.get(), 2);
        assert_eq!(open.instruments().backend_up.get(), 0);
        assert_eq!(open.ping().await, Ok(()));
        assert!(matches!(closed.admit(&charge).await, Err(CounterError::Unavailable(_))));
        assert!(closed.ping().await.is_err());
        assert_eq!(closed.instruments().fallback_decisions.get(), 0);
    }
}
