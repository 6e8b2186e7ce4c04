//! Rate limits: failed sign-ins per account and per client address, uploads and evaluation
//! starts per API token. Events live in the database (`storage::limits`), so every replica sees
//! the same counts, and each check counts and records in one locked transaction: a request is
//! recorded before its work is done (a password verified, an upload spooled), so concurrent
//! requests cannot all pass a limit that each checked alone.
//!
//! Sign-in limits are built so that one attacker cannot turn them into a lock-out of everyone
//! else: a failed attempt on a name that is no account counts against the address only; an
//! account that reached its limit still takes an attempt from an address with a clean history
//! (no attempt in the window), so its owner can sign in while someone else guesses.

use std::time::Duration;

use crate::error::StoreError;
use crate::storage::limits::now_ms;
use crate::storage::Store;

/// At most `limit` events per `window` per key, for one kind of event.
pub struct Window {
    store: Store,
    kind: &'static str,
    limit: u32,
    window: Duration,
}

impl Window {
    pub fn new(store: Store, kind: &'static str, limit: u32, window: Duration) -> Window {
        Window {
            store,
            kind,
            limit,
            window,
        }
    }

    fn bucket(&self, key: &str) -> String {
        format!("{} {key}", self.kind)
    }

    /// Records `n` events for `key` if they fit in the window; `Ok(Err(wait))` when they do not
    /// (nothing is recorded then).
    pub async fn hit_n(&self, key: &str, n: u32) -> Result<Result<(), Duration>, StoreError> {
        let bucket = self.bucket(key);
        let mut tx = self.store.rate_tx(&[&bucket]).await?;
        let since = now_ms() - self.window.as_millis() as i64;
        let (count, oldest) = tx.window(&bucket, since).await?;
        if count + u64::from(n) > u64::from(self.limit) {
            return Ok(Err(wait_from(oldest, self.window)));
        }
        tx.add(&bucket, n).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}

/// How long until the oldest event of a full window leaves it.
fn wait_from(oldest_ms: Option<i64>, window: Duration) -> Duration {
    let Some(oldest) = oldest_ms else {
        return window;
    };
    let ends = oldest + window.as_millis() as i64;
    Duration::from_millis((ends - now_ms()).max(1000) as u64)
}

/// One sign-in attempt, recorded before the password is verified. A success takes it back; a
/// failure leaves it counted.
pub struct SignInAttempt {
    store: Store,
    ids: Vec<i64>,
}

impl SignInAttempt {
    /// The password was right: the attempt does not count as a failure.
    pub async fn succeeded(self) {
        if let Err(e) = self.store.delete_rate_events(&self.ids).await {
            tracing::warn!(error = %e, "could not take back a successful sign-in attempt");
        }
    }
}

/// The server's limits.
pub struct Limits {
    store: Store,
    /// Sign-in attempts per account (failures, and attempts in flight): 5 per 15 minutes.
    pub sign_in_account: u32,
    /// Sign-in attempts per client address: 20 per 15 minutes.
    pub sign_in_address: u32,
    pub sign_in_window: Duration,
    /// Uploads per token: 120 per hour.
    pub uploads: Window,
    /// Evaluations queued per token: 60 per hour.
    pub eval_starts: Window,
}

impl Limits {
    pub fn new(store: Store) -> Limits {
        let hour = Duration::from_secs(3600);
        Limits {
            sign_in_account: 5,
            sign_in_address: 20,
            sign_in_window: Duration::from_secs(15 * 60),
            uploads: Window::new(store.clone(), "uploads", 120, hour),
            eval_starts: Window::new(store.clone(), "eval-starts", 60, hour),
            store,
        }
    }

    /// Records a sign-in attempt from `address` on `account` (`None`: the name is no account)
    /// before it is verified. `Ok(Err(wait))` when the attempt is refused without verifying:
    /// the address made too many attempts, or the account did and this address is not clean.
    pub async fn begin_sign_in(
        &self,
        address: Option<&str>,
        account: Option<i64>,
    ) -> Result<Result<SignInAttempt, Duration>, StoreError> {
        let address_bucket = format!("sign-in address {}", address.unwrap_or("unknown"));
        let account_bucket = account.map(|id| format!("sign-in account {id}"));
        let mut buckets = vec![address_bucket.as_str()];
        buckets.extend(account_bucket.as_deref());
        let mut tx = self.store.rate_tx(&buckets).await?;
        let since = now_ms() - self.sign_in_window.as_millis() as i64;
        let (by_address, address_oldest) = tx.window(&address_bucket, since).await?;
        if by_address >= u64::from(self.sign_in_address) {
            return Ok(Err(wait_from(address_oldest, self.sign_in_window)));
        }
        let mut ids = tx.add(&address_bucket, 1).await?;
        if let Some(bucket) = &account_bucket {
            let (by_account, account_oldest) = tx.window(bucket, since).await?;
            // A locked account still hears an address that has tried nothing lately: its owner.
            let clean = by_address == 0;
            if by_account >= u64::from(self.sign_in_account) && !clean {
                return Ok(Err(wait_from(account_oldest, self.sign_in_window)));
            }
            ids.extend(tx.add(bucket, 1).await?);
        }
        tx.commit().await?;
        Ok(Ok(SignInAttempt {
            store: self.store.clone(),
            ids,
        }))
    }
}

/// "try again in 14 minutes".
pub fn wait_text(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    if minutes == 1 {
        "try again in a minute".into()
    } else {
        format!("try again in {minutes} minutes")
    }
}
