//! The one-drill-per-service lock, in a service tag that has no conditional
//! write: written with a token unique to the invocation, read back, and read
//! again after a settle, with nothing slow between the read that found the
//! service free and the write. Why that is enough is in `docs/drill.md`.

use super::{Driller, LOCK_TAG, STATE_TAG};
use chrono::Utc;
use ecs_control::domain::drill::{Lock, LockState, SavedState, LOCK_GRACE};
use ecs_control::domain::service::ServiceRef;
use ecs_control::ports::{
    AlarmControls, AlarmStates, CheckAttempts, DrillControls, EcsServices, EcsTasks, MetricsSink,
    PortError, TaggedService, TargetGroups,
};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// How long a lock must stay the writer's before it acts: longer than the
/// time between any taker's free-read and its write (which
/// [`Driller::acquire`] refuses to exceed), so a later taker's write shows.
pub const LOCK_SETTLE: Duration = Duration::from_secs(2);

/// A token no other invocation holds: 64 random bits from a fresh SipHash key.
pub fn token() -> String {
    let random = std::collections::hash_map::RandomState::new().hash_one(Utc::now());
    format!("{random:016x}")
}

/// The lock a service's tags hold, as of now.
pub fn lock_of(service: &TaggedService) -> LockState {
    Lock::state(tag(service, LOCK_TAG), Utc::now())
}

/// A tag's value.
pub fn tag<'a>(service: &'a TaggedService, key: &str) -> Option<&'a str> {
    service
        .tags
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Why `wanted` was lost, when another token is on the service.
fn lost(seen: &TaggedService, wanted: &Lock, service: &ServiceRef) -> Option<String> {
    if holder(seen).as_deref() == Some(wanted.holder.as_str()) {
        return None;
    }
    let other = match lock_of(seen) {
        LockState::Held(lock) | LockState::Expired(lock) => lock.drill_id,
        LockState::Free => "none".into(),
    };
    Some(format!(
        "another invocation (drill {other}) took the lock on {service} at the same moment: \
         one drill per service at a time"
    ))
}

fn holder(service: &TaggedService) -> Option<String> {
    match lock_of(service) {
        LockState::Held(lock) | LockState::Expired(lock) => Some(lock.holder),
        LockState::Free => None,
    }
}

impl<E, G, A, H, M> Driller<E, G, A, H, M>
where
    E: EcsServices + EcsTasks + DrillControls,
    G: TargetGroups + Clone,
    A: AlarmStates + AlarmControls,
    H: CheckAttempts,
    M: MetricsSink,
{
    /// Takes `wanted` on `service` when `may_take` accepts the lock found;
    /// the service as read under the lock, or why it was not taken.
    ///
    /// Call it last before acting, after every slow check: its first read and
    /// its write must lie within [`LOCK_SETTLE`] of each other.
    pub(super) async fn acquire(
        &self,
        service: &ServiceRef,
        wanted: &Lock,
        may_take: impl Fn(&LockState) -> bool,
    ) -> Result<Result<TaggedService, String>, PortError> {
        let read_at = Instant::now();
        let found = self.ecs.tagged_service(service).await?;
        let state = lock_of(&found);
        // A drill's saved state outlives a lock a stale writer clobbered: a
        // live one of another drill holds the service as much as its lock.
        let live = tag(&found, STATE_TAG)
            .and_then(SavedState::decode)
            .filter(|s| s.drill_id != wanted.drill_id && Utc::now() < s.deadline + LOCK_GRACE);
        if let Some(other) = live {
            return Ok(Err(format!(
                "drill {} is running on {service} until {}: one drill per service at a time",
                other.drill_id, other.deadline
            )));
        }
        if !may_take(&state) {
            return Ok(Err(match state {
                LockState::Held(lock) | LockState::Expired(lock) => format!(
                    "drill {} holds {service} until {}: one drill per service at a time",
                    lock.drill_id, lock.expires_at
                ),
                LockState::Free => format!("{service} is not locked by the drill"),
            }));
        }
        self.ecs
            .tag_service(&found.arn, &[(LOCK_TAG.to_string(), wanted.encode())])
            .await?;
        if read_at.elapsed() >= self.settle {
            // Too slow to prove no one read the service free meanwhile. Only
            // the lock is taken back: a saved state there is another drill's.
            self.drop_lock_if_holder(service, &wanted.holder).await?;
            return Ok(Err(format!(
                "taking the lock on {service} took longer than {:?}: not acting on it",
                self.settle
            )));
        }
        // Read back at once, then again after the settle: a taker that read the
        // service free before this write has written by then, and shows.
        let back = self.ecs.tagged_service(service).await?;
        if let Some(why) = lost(&back, wanted, service) {
            return Ok(Err(why));
        }
        tokio::time::sleep(self.settle).await;
        let settled = self.ecs.tagged_service(service).await?;
        if let Some(why) = lost(&settled, wanted, service) {
            return Ok(Err(why));
        }
        Ok(Ok(settled))
    }

    /// Removes the lock and the saved state, if `holder` still holds the lock;
    /// whether it did.
    pub(super) async fn release_if_holder(
        &self,
        service: &ServiceRef,
        holder_token: &str,
    ) -> Result<bool, PortError> {
        let found = self.ecs.tagged_service(service).await?;
        if holder(&found).as_deref() != Some(holder_token) {
            return Ok(false);
        }
        self.ecs
            .untag_service(&found.arn, &[LOCK_TAG.to_string(), STATE_TAG.to_string()])
            .await?;
        Ok(true)
    }

    /// Removes the lock alone, if `holder` still holds it.
    async fn drop_lock_if_holder(
        &self,
        service: &ServiceRef,
        holder_token: &str,
    ) -> Result<(), PortError> {
        let found = self.ecs.tagged_service(service).await?;
        if holder(&found).as_deref() == Some(holder_token) {
            self.ecs
                .untag_service(&found.arn, &[LOCK_TAG.to_string()])
                .await?;
        }
        Ok(())
    }

    /// Removes the saved state alone, if it is `drill_id`'s: the drill is over
    /// though another token is on the lock, which is left to its holder.
    pub(super) async fn drop_state_if_drill(
        &self,
        service: &ServiceRef,
        drill_id: &str,
    ) -> Result<(), PortError> {
        let found = self.ecs.tagged_service(service).await?;
        let ours = tag(&found, STATE_TAG)
            .and_then(SavedState::decode)
            .is_some_and(|s| s.drill_id == drill_id);
        if ours {
            self.ecs
                .untag_service(&found.arn, &[STATE_TAG.to_string()])
                .await?;
        }
        Ok(())
    }

    /// Rewrites the holder's lock (to mark it idle on suspending); whether it
    /// still held it.
    pub(super) async fn rewrite_if_holder(
        &self,
        service: &ServiceRef,
        lock: &Lock,
    ) -> Result<bool, PortError> {
        let found = self.ecs.tagged_service(service).await?;
        if holder(&found).as_deref() != Some(lock.holder.as_str()) {
            return Ok(false);
        }
        self.ecs
            .tag_service(&found.arn, &[(LOCK_TAG.to_string(), lock.encode())])
            .await?;
        Ok(true)
    }
}
