//! Rate limits: which actions are limited, their quotas (contract note 17), and the generic cell
//! rate algorithm (GCRA) that every limiter adapter runs, in process or as a Redis script.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next action. A
//! quota of `count` per `period` lets `count` actions through at once and then one every
//! `period / count`, with no window edges to burst across.

use std::net::IpAddr;
use std::time::Duration;

/// How many actions one key may take per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
}

impl Quota {
    pub const fn per_minute(count: u32) -> Self {
        Quota { count, period: Duration::from_secs(60) }
    }

    /// Time between two actions at the sustained rate, in milliseconds.
    pub fn interval_ms(self) -> i64 {
        (self.period_ms() / i64::from(self.count.max(1))).max(1)
    }

    pub fn period_ms(self) -> i64 {
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX)
    }
}

/// What a limiter is asked to do with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Take one action from the allowance when there is room.
    Take,
    /// Only ask whether one more would be allowed (failed sign-ins are counted after the fact,
    /// but checked before the password is hashed).
    Peek,
}

/// A limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    RetryAfter(Duration),
}

/// One GCRA step at `now_ms` for a key whose stored TAT is `tat_ms` (none when unknown or
/// lapsed). Returns the answer and the TAT to store (none when nothing changes).
pub fn gcra(tat_ms: Option<i64>, now_ms: i64, quota: Quota, acquire: Acquire) -> (Admission, Option<i64>) {
    let tat = tat_ms.map_or(now_ms, |tat| tat.max(now_ms));
    let next_tat = tat + quota.interval_ms();
    let allowed_from = next_tat - quota.period_ms();
    if allowed_from > now_ms {
        let wait = u64::try_from(allowed_from - now_ms).unwrap_or(0);
        return (Admission::RetryAfter(Duration::from_millis(wait)), None);
    }
    match acquire {
        Acquire::Take => (Admission::Allowed, Some(next_tat)),
        Acquire::Peek => (Admission::Allowed, None),
    }
}

/// The limited actions of contract note 17; each names what its key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedAction {
    /// `signIn` and `signUp`, per client address.
    SignInAttempt,
    /// Failed `signIn`s, per account (the normalised email).
    FailedSignIn,
    /// `startGuestSession`, per client address.
    GuestSession,
    /// Cart and checkout mutations, per caller (user or guest session).
    ShopperWrite,
}

impl LimitedAction {
    /// The key prefix in the limiter's store.
    pub fn key(self, subject: &str) -> String {
        let prefix = match self {
            LimitedAction::SignInAttempt => "sign-in",
            LimitedAction::FailedSignIn => "failed-sign-in",
            LimitedAction::GuestSession => "guest-session",
            LimitedAction::ShopperWrite => "shopper-write",
        };
        format!("{prefix}:{subject}")
    }
}

/// The subject of a per-address limit. An IPv6 client commonly holds a whole /64, so that
/// prefix counts as one address.
pub fn address_subject(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

/// The quotas in force, or none at all (`SHOP_RATE_LIMITS=off`, for load tests from one address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub enabled: bool,
    pub sign_in_attempts: Quota,
    pub failed_sign_ins: Quota,
    pub guest_sessions: Quota,
    pub shopper_writes: Quota,
}

impl RateLimits {
    pub fn quota(&self, action: LimitedAction) -> Option<Quota> {
        let quota = match action {
            LimitedAction::SignInAttempt => self.sign_in_attempts,
            LimitedAction::FailedSignIn => self.failed_sign_ins,
            LimitedAction::GuestSession => self.guest_sessions,
            LimitedAction::ShopperWrite => self.shopper_writes,
        };
        self.enabled.then_some(quota)
    }

    /// The longest period any quota spans: how long a limiter must remember a key.
    pub fn longest_period(&self) -> Duration {
        [self.sign_in_attempts, self.failed_sign_ins, self.guest_sessions, self.shopper_writes]
            .iter()
            .map(|quota| quota.period)
            .max()
            .unwrap_or_default()
    }
}

/// Refused for now; the caller may try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; try again in {} s", retry_after_seconds(*.retry_after))]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// Whole seconds, rounded up and at least one, as `Retry-After` and `retryAfterSeconds` say it.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_A_MINUTE: Quota = Quota::per_minute(5);

    /// Runs `attempts` takes at the given instants and returns which were allowed.
    fn run(instants: &[i64]) -> Vec<bool> {
        let mut tat = None;
        instants
            .iter()
            .map(|&now| {
                let (admission, stored) = gcra(tat, now, FIVE_A_MINUTE, Acquire::Take);
                tat = stored.or(tat);
                admission == Admission::Allowed
            })
            .collect()
    }

    #[test]
    fn a_burst_of_the_whole_quota_passes_and_the_next_is_refused() {
        assert_eq!(run(&[0, 0, 0, 0, 0, 0]), [true, true, true, true, true, false]);
    }

    #[test]
    fn after_a_burst_one_more_is_allowed_every_interval() {
        // Five a minute: one every 12 s once the burst is spent.
        assert_eq!(run(&[0, 0, 0, 0, 0, 11_999, 12_000, 12_001]), [true, true, true, true, true, false, true, false]);
    }

    #[test]
    fn a_refusal_says_how_long_to_wait() {
        let (_, tat) = gcra(None, 0, Quota::per_minute(1), Acquire::Take);
        let (admission, stored) = gcra(tat, 20_000, Quota::per_minute(1), Acquire::Take);
        assert_eq!(admission, Admission::RetryAfter(Duration::from_secs(40)));
        assert_eq!(stored, None, "a refusal changes nothing");
    }

    #[test]
    fn a_peek_answers_without_taking() {
        let quota = Quota::per_minute(1);
        assert_eq!(gcra(None, 0, quota, Acquire::Peek), (Admission::Allowed, None));
        let (_, tat) = gcra(None, 0, quota, Acquire::Take);
        assert!(matches!(gcra(tat, 1, quota, Acquire::Peek), (Admission::RetryAfter(_), None)));
    }

    #[test]
    fn a_lapsed_key_starts_afresh() {
        assert_eq!(run(&[0, 0, 0, 0, 0, 60_000, 60_000, 60_000, 60_000, 60_000]), [true; 10]);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(2_001)), 3);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_prefix() {
        let subject = |a: &str| address_subject(a.parse().expect("address"));
        assert_eq!(subject("2001:db8:1:2:aaaa::1"), subject("2001:db8:1:2:bbbb::2"));
        assert_ne!(subject("2001:db8:1:2::1"), subject("2001:db8:1:3::1"));
        assert_eq!(subject("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(subject("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn switched_off_limits_have_no_quota() {
        let limits = RateLimits {
            enabled: false,
            sign_in_attempts: FIVE_A_MINUTE,
            failed_sign_ins: FIVE_A_MINUTE,
            guest_sessions: FIVE_A_MINUTE,
            shopper_writes: FIVE_A_MINUTE,
        };
        assert_eq!(limits.quota(LimitedAction::ShopperWrite), None);
        assert_eq!(RateLimits { enabled: true, ..limits }.quota(LimitedAction::ShopperWrite), Some(FIVE_A_MINUTE));
    }
}
