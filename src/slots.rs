//! `max_concurrent_updates` as a bound: permits shared by the update
//! workers and the callers waiting in `wait_for_idle`, who run queued
//! updates themselves (a caller takes a job only when a permit is free, so
//! waiting threads never add updates beyond the bound).

use parking_lot::{Condvar, Mutex};

/// Permits to run an update.
pub(crate) struct UpdateSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A permit, given back when dropped.
pub(crate) struct Slot<'a>(&'a UpdateSlots);

impl UpdateSlots {
    /// `n` permits.
    pub fn new(n: usize) -> UpdateSlots {
        UpdateSlots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// A permit, waiting for one to be given back if none is free.
    pub fn acquire(&self) -> Slot<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.freed.wait(&mut free);
        }
        *free -= 1;
        Slot(self)
    }

    /// A permit if one is free now.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let mut free = self.free.lock();
        (*free > 0).then(|| {
            *free -= 1;
            Slot(self)
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_permits_than_given_and_each_comes_back() {
        let slots = UpdateSlots::new(2);
        let a = slots.acquire();
        let b = slots.try_acquire().expect("a second permit");
        assert!(slots.try_acquire().is_none());
        drop(a);
        let c = slots.try_acquire().expect("given back");
        drop((b, c));
        assert!(slots.try_acquire().is_some());
    }
}
