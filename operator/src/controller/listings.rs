//! Datasets report what the S3 server lists under their addresses, and many datasets can
//! share one address (several datasets described over one landing zone; at the country's
//! scale, a hundred per region). [`Listings`] keeps each address's last look for
//! [`FRESH`], so that datasets reconciled together share one listing (and the reads of the
//! Parquet metadata behind it) instead of asking the S3 server the same question a hundred
//! times. Datasets reconciling at once wait for the one listing in flight. A listing that
//! fails is not kept: the next dataset asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::catalog::locate::Look;

/// How long a look at an address is shared. Short beside the datasets' own period
/// ([`super::dataset::FIGURES_PERIOD`]), so the figures are never older than they would be
/// without it by more than this.
pub const FRESH: Duration = Duration::from_secs(10);

type Slot = Arc<OnceCell<(Instant, Arc<Look>)>>;

/// The recent look at each `(bucket, prefix)`.
#[derive(Default)]
pub struct Listings(Mutex<HashMap<(String, String), Slot>>);

impl Listings {
    /// The look at `bucket`/`prefix`: the one taken less than [`FRESH`] ago, the one in
    /// flight, or a new one by `look`.
    pub async fn get<F, Fut, E>(&self, bucket: &str, prefix: &str, look: F) -> Result<Arc<Look>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Look, E>>,
    {
        let slot = self.slot(bucket, prefix, Instant::now());
        let (_, found) = slot
            .get_or_try_init(|| async { Ok((Instant::now(), Arc::new(look().await?))) })
            .await?;
        Ok(found.clone())
    }

    /// The slot of an address: kept while fresh (or still empty, a look in flight), else a
    /// new one. Stale slots of other addresses are dropped on the way.
    fn slot(&self, bucket: &str, prefix: &str, now: Instant) -> Slot {
        let fresh = |slot: &Slot| {
            slot.get()
                .is_none_or(|(at, _)| now.saturating_duration_since(*at) < FRESH)
        };
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (bucket.to_owned(), prefix.to_owned());
        if let Some(slot) = held.get(&key).filter(|s| fresh(s)) {
            return slot.clone();
        }
        held.retain(|_, s| fresh(s));
        held.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn look(objects: usize) -> Look {
        let objects = (0..objects)
            .map(|i| (format!("part-{i}.parquet"), 10, None))
            .collect();
        (objects, Some(1))
    }

    #[tokio::test]
    async fn datasets_at_one_address_share_one_listing() {
        let listings = Arc::new(Listings::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        // Ten datasets at once: the first lists (held until released), the others wait for it.
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let (listings, calls, mut released) =
                    (listings.clone(), calls.clone(), released.clone());
                tokio::spawn(async move {
                    listings
                        .get("landing", "waiting-times/", || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            Ok::<_, String>(look(2))
                        })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send_replace(true);
        for w in waiting {
            assert_eq!(
                w.await.ok().and_then(Result::ok).map(|l| l.0.len()),
                Some(2)
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Another address is a listing of its own.
        let other = listings
            .get("landing", "hospital-beds/", || async {
                Ok::<_, String>(look(0))
            })
            .await;
        assert_eq!(other.map(|l| l.0.len()), Ok(0));
    }

    #[tokio::test]
    async fn a_failed_listing_is_not_kept() {
        let listings = Listings::default();
        let failed = listings
            .get("landing", "", || async { Err::<Look, _>("NoSuchBucket") })
            .await;
        assert_eq!(failed.err(), Some("NoSuchBucket"));
        let next = listings
            .get("landing", "", || async { Ok::<_, &str>(look(1)) })
            .await;
        assert_eq!(next.map(|l| l.0.len()), Ok(1));
    }

    #[test]
    fn a_look_older_than_fresh_is_taken_again_and_stale_ones_are_dropped() {
        let listings = Listings::default();
        let start = Instant::now();
        let first = listings.slot("a", "", start);
        assert!(first.set((start, Arc::new(look(1)))).is_ok());
        let stale = listings.slot("b", "", start);
        assert!(stale.set((start, Arc::new(look(1)))).is_ok());
        assert!(Arc::ptr_eq(
            &first,
            &listings.slot("a", "", start + FRESH / 2)
        ));
        let later = start + FRESH;
        let again = listings.slot("a", "", later);
        assert!(!Arc::ptr_eq(&first, &again) && again.get().is_none());
        assert!(
            listings.0.lock().map(|h| h.len()).unwrap_or_default() == 1,
            "the stale look at b is dropped"
        );
    }
}
