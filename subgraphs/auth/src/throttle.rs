//! Brute-force defences: throttles that refuse attempts for a growing time after too many, and a
//! gate that bounds how many password hashes run at once and the memory they use.
//!
//! A [`Throttle`] counts attempts per key (an account's email hash, a client address). The first
//! `free` attempts in a row go through; each one after that, while allowed, blocks the key for
//! `base_delay × 2^(n-1)` (capped at `max_delay`), and attempts while blocked are refused without
//! touching a password — so a correct password is refused too until the block ends, and a
//! guesser gets a handful of tries per hour instead of thousands. An attempt is counted *before*
//! its password is checked, so concurrent or batched guesses cannot all slip past one check.
//! State is in memory, per instance: with several replicas the attempt budget multiplies by
//! their number, which the exponential delay keeps small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How a [`Throttle`] allows and blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Attempts in a row before blocking starts.
    pub free: u32,
    /// The first block; each further attempt doubles it.
    pub base_delay: Duration,
    /// The longest block.
    pub max_delay: Duration,
    /// A key left alone this long after its block ends starts afresh.
    pub forget_after: Duration,
}

/// Most keys remembered; beyond it the least recently seen quarter is forgotten, so a flood of
/// distinct keys costs bounded memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    attempts: u32,
    blocked_until: Instant,
    last: Instant,
}

/// Attempt counts per key with growing blocks (see the module docs).
#[derive(Debug)]
pub struct Throttle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

/// An attempt refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked(pub Duration);

impl Blocked {
    /// Whole seconds to wait, at least 1 (what `retryAfter` says).
    pub fn retry_after_secs(&self) -> u64 {
        self.0.as_millis().div_ceil(1000).max(1) as u64
    }
}

impl Throttle {
    /// An empty throttle.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Throttle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `key`, or refuses it while `key` is blocked. An allowed attempt past
    /// the free ones blocks the key for the next delay at once.
    pub fn attempt(&self, key: &str) -> Result<u32, Blocked> {
        self.attempt_at(key, Instant::now())
    }

    fn attempt_at(&self, key: &str, now: Instant) -> Result<u32, Blocked> {
        let policy = self.policy;
        let mut entries = self.entries.lock().expect("throttle lock poisoned");
        if let Some(entry) = entries.get_mut(key) {
            if now < entry.blocked_until {
                return Err(Blocked(entry.blocked_until - now));
            }
            if now.duration_since(entry.blocked_until.max(entry.last)) >= policy.forget_after {
                entry.attempts = 0;
            }
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last = now;
            if entry.attempts > policy.free {
                entry.blocked_until = now + delay(&policy, entry.attempts - policy.free);
            }
            return Ok(entry.attempts);
        }
        if entries.len() >= MAX_KEYS {
            forget_oldest(&mut entries, &policy, now);
        }
        let blocked_until = if policy.free == 0 {
            now + delay(&policy, 1)
        } else {
            now
        };
        entries.insert(
            key.to_owned(),
            Entry {
                attempts: 1,
                blocked_until,
                last: now,
            },
        );
        Ok(1)
    }

    /// Forgets `key`'s attempts (after a successful log-in).
    pub fn forgive(&self, key: &str) {
        self.entries
            .lock()
            .expect("throttle lock poisoned")
            .remove(key);
    }

    /// Takes back one counted attempt of `key` (one that turned out not to be a guess), and
    /// lifts the block that attempt set.
    pub fn refund(&self, key: &str) {
        let policy = self.policy;
        let mut entries = self.entries.lock().expect("throttle lock poisoned");
        if let Some(entry) = entries.get_mut(key) {
            entry.attempts = entry.attempts.saturating_sub(1);
            if entry.attempts <= policy.free {
                entry.blocked_until = entry.last;
            } else {
                entry.blocked_until = entry.last + delay(&policy, entry.attempts - policy.free);
            }
        }
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("throttle lock poisoned").len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The block after the `n`-th attempt past the free ones (n ≥ 1).
fn delay(policy: &ThrottlePolicy, n: u32) -> Duration {
    let factor = 1u32 << (n - 1).min(30);
    policy
        .base_delay
        .checked_mul(factor)
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay)
}

fn forget_oldest(entries: &mut HashMap<String, Entry>, policy: &ThrottlePolicy, now: Instant) {
    entries
        .retain(|_, e| now < e.blocked_until || now.duration_since(e.last) < policy.forget_after);
    if entries.len() < MAX_KEYS {
        return;
    }
    let mut seen: Vec<Instant> = entries.values().map(|e| e.last).collect();
    seen.sort_unstable();
    let cut = seen[seen.len() / 4];
    entries.retain(|_, e| e.last > cut);
}

/// The throttle key of a client address: the address itself for IPv4, its /64 network for IPv6
/// (one host usually holds a whole /64).
pub fn address_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Bounds the password hashes (argon2, ~19 MiB each) running at once, and how many may wait:
/// a flood of log-ins queues a little and is then refused, instead of taking the memory of one
/// hash per request.
///
/// Each slot owns its argon2 working memory and hands it to the next hash, rather than every
/// hash allocating its own: freed 19 MiB blocks tend to stay with the allocator (one arena per
/// blocking thread), so a cap on concurrency alone still let memory grow with the number of
/// threads that ever hashed (measured: 16 log-ins, 2 at a time, +305 MiB peak). Now the memory
/// is at most `concurrent × argon2_memory_kib`, kept once touched.
#[derive(Debug, Clone)]
pub struct HashGate {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

/// The hash queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A slot to run one hash in, with working memory; both go back to the gate when it drops.
#[derive(Debug)]
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
    memory: Vec<Block>,
    pool: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
        let memory = std::mem::take(&mut self.memory);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(memory);
        }
    }
}

impl HashSlot {
    /// A new argon2id PHC string for `password` (on the calling thread: call it from a
    /// blocking one).
    pub fn hash(
        &mut self,
        password: &[u8],
        memory_kib: u32,
        iterations: u32,
    ) -> anyhow::Result<String> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let salt_string =
            SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let output = self
            .run(
                Algorithm::Argon2id,
                Version::V0x13,
                &params,
                password,
                &salt,
                Params::DEFAULT_OUTPUT_LEN,
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)
                .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?,
            salt: Some(salt_string.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `phc` (its own parameters; constant-time
    /// comparison). On the calling thread: call it from a blocking one.
    pub fn verify(&mut self, password: &[u8], phc: &str) -> anyhow::Result<bool> {
        let parsed =
            PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            anyhow::bail!("stored password hash has no salt or output");
        };
        let algorithm = Algorithm::try_from(parsed.algorithm)
            .map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?
            .unwrap_or_default();
        let params =
            Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| anyhow::anyhow!("stored password hash: {e}"))?;
        let computed = self
            .run(
                algorithm,
                version,
                &params,
                password,
                salt_bytes,
                expected.len(),
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        // `Output`'s equality is constant-time.
        Ok(computed == expected)
    }

    fn run(
        &mut self,
        algorithm: Algorithm,
        version: Version,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        output_len: usize,
    ) -> password_hash::Result<Output> {
        let blocks = params.block_count();
        if self.memory.len() < blocks {
            self.memory.resize(blocks, Block::default());
        }
        let argon = Argon2::new(algorithm, version, params.clone());
        let memory = &mut self.memory[..];
        Output::init_with(output_len, |out| {
            Ok(argon.hash_password_into_with_memory(password, salt, out, &mut *memory)?)
        })
    }
}

impl HashGate {
    /// `concurrent` hashes at once (0: one per core), `max_waiting` more queued.
    pub fn new(concurrent: usize, max_waiting: usize) -> Self {
        let concurrent = if concurrent == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            concurrent
        };
        HashGate {
            permits: Arc::new(Semaphore::new(concurrent)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            memory: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Waits for a slot, or refuses at once when `max_waiting` are already waiting.
    pub async fn slot(&self) -> Result<HashSlot, Busy> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Busy);
                }
                let acquired = Arc::clone(&self.permits).acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                acquired.map_err(|_| Busy)?
            }
        };
        let running = self.running.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(running, Ordering::AcqRel);
        let memory = self
            .memory
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        Ok(HashSlot {
            _permit: permit,
            running: Arc::clone(&self.running),
            memory,
            pool: Arc::clone(&self.memory),
        })
    }

    /// The most hashes that ran at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            free: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
        }
    }

    #[test]
    fn blocks_grow_after_the_free_attempts_and_are_capped() {
        let t = Throttle::new(policy());
        let start = Instant::now();
        for n in 1..=3 {
            assert_eq!(t.attempt_at("k", start), Ok(n));
        }
        // The fourth goes through but blocks for 1 s; attempts meanwhile are refused.
        assert_eq!(t.attempt_at("k", start), Ok(4));
        assert_eq!(
            t.attempt_at("k", start + Duration::from_millis(400)),
            Err(Blocked(Duration::from_millis(600)))
        );
        let mut at = start + Duration::from_secs(1);
        let mut expected = Duration::from_secs(2);
        for n in 5..=12 {
            assert_eq!(t.attempt_at("k", at), Ok(n));
            assert_eq!(t.attempt_at("k", at), Err(Blocked(expected)), "attempt {n}");
            at += expected;
            expected = (expected * 2).min(Duration::from_secs(60));
        }
        // Other keys are unaffected.
        assert_eq!(t.attempt_at("other", at), Ok(1));
        // A key left alone long enough starts afresh.
        assert_eq!(t.attempt_at("k", at + Duration::from_secs(60 + 600)), Ok(1));
    }

    #[test]
    fn forgive_and_refund() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..4 {
            t.attempt_at("k", now).unwrap();
        }
        assert!(t.attempt_at("k", now).is_err());
        t.refund("k");
        assert_eq!(t.attempt_at("k", now), Ok(4));
        t.forgive("k");
        assert_eq!(t.attempt_at("k", now), Ok(1));
        assert_eq!(Blocked(Duration::from_millis(1001)).retry_after_secs(), 2);
        assert_eq!(Blocked(Duration::from_millis(1)).retry_after_secs(), 1);
    }

    #[test]
    fn addresses_key_by_host_or_ipv6_network() {
        assert_eq!(address_key("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(address_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(
            address_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            address_key("2001:db8:1:2:ffff::1".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn slots_hash_and_verify_like_the_argon2_crate() {
        use argon2::PasswordVerifier;
        let gate = HashGate::new(1, 0);
        let mut slot = gate.slot().await.unwrap();
        let phc = slot.hash(b"correct horse", 1024, 1).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(slot.verify(b"correct horse", &phc).unwrap());
        assert!(!slot.verify(b"wrong horse", &phc).unwrap());
        // Interchangeable with the crate's own hashes, both ways.
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(2048, 2, 1, None).unwrap(),
            ),
            b"pw",
            &salt,
        )
        .unwrap()
        .to_string();
        assert!(slot.verify(b"pw", &theirs).unwrap());
        assert!(!slot.verify(b"pv", &theirs).unwrap());
        drop(slot);
        // The memory went back to the gate for the next slot.
        assert_eq!(gate.slot().await.unwrap().memory.len(), 2048);
    }

    #[tokio::test]
    async fn the_gate_bounds_running_and_waiting_hashes() {
        let gate = HashGate::new(2, 1);
        let a = gate.slot().await.unwrap();
        let _b = gate.slot().await.unwrap();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.slot().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Two running, one waiting: the next is refused.
        assert_eq!(gate.slot().await.err(), Some(Busy));
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(gate.peak(), 2);
    }
}
