//! Per-store limits: memory through a resource limiter that counts every linear memory together, and
//! named caps on what a guest can make the host allocate.

use std::time::Duration;

/// Most entries any one table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Most core instances one store may hold.
pub const MAX_INSTANCES: usize = 1_000;
/// Most tables one store may hold.
pub const MAX_TABLES: usize = 1_000;
/// Most linear memories one store may hold.
pub const MAX_MEMORIES: usize = 100;
/// Most handles (files, streams, sockets, pollables, futures, ...) a guest may hold at once, counted
/// as the guest holds them: Wasmtime's count of live component-model handles in the store.
pub const MAX_RESOURCE_HANDLES: usize = 16_384;
/// Most entries the host's resource tables may hold for one instance. Behind one guest handle the
/// host may keep another entry of its own (a clock pollable is a deadline plus the pollable over
/// it), so this is a backstop above [`MAX_RESOURCE_HANDLES`], never what a guest meets first.
pub const MAX_HOST_TABLE_ENTRIES: usize = 4 * MAX_RESOURCE_HANDLES;
/// Most bytes one `wasi:random` call may ask the host to produce.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// Linear memory a guest gets when neither the manifest nor the operator says otherwise.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// The limits one run executes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestLimits {
    /// Most linear memory, all memories together; `None` means [`DEFAULT_MEMORY_LIMIT`].
    pub memory_bytes: Option<u64>,
    /// Wall-clock limit of the whole run.
    pub timeout: Option<Duration>,
}

impl GuestLimits {
    /// These limits, each lowered to the operator's where the operator's is smaller. The operator can
    /// only tighten what a manifest asks for, never widen it.
    pub fn lowered_by(self, operator: GuestLimits) -> GuestLimits {
        fn min<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        GuestLimits { memory_bytes: min(self.memory_bytes, operator.memory_bytes), timeout: min(self.timeout, operator.timeout) }
    }

    /// The memory limit in force.
    pub fn memory_limit(&self) -> u64 {
        self.memory_bytes.unwrap_or(DEFAULT_MEMORY_LIMIT)
    }
}

/// A store's resource limiter: refuses growth past the limits and remembers that it did, so a trap that
/// follows can be reported as the memory limit it is.
#[derive(Debug)]
pub struct GuestLimiter {
    memory_limit: usize,
    memory_used: usize,
    memory_refused: bool,
}

impl GuestLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &GuestLimits) -> Self {
        GuestLimiter { memory_limit: usize::try_from(limits.memory_limit()).unwrap_or(usize::MAX), memory_used: 0, memory_refused: false }
    }

    /// Whether a memory growth was refused for going past the limit.
    pub fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    /// Counts the memory `earlier` let its store grow (for a store whose data replaces a state
    /// that was in force while the instance was made).
    pub fn carry_from(&mut self, earlier: &GuestLimiter) {
        self.memory_used = self.memory_used.saturating_add(earlier.memory_used);
        self.memory_refused |= earlier.memory_refused;
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_add(desired.saturating_sub(current));
        if total > self.memory_limit {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn operator_only_lowers() {
        let manifest = GuestLimits { memory_bytes: Some(64 << 20), timeout: Some(Duration::from_secs(5)) };
        let operator = GuestLimits { memory_bytes: Some(128 << 20), timeout: Some(Duration::from_secs(1)) };
        let l = manifest.lowered_by(operator);
        assert_eq!(l.memory_bytes, Some(64 << 20));
        assert_eq!(l.timeout, Some(Duration::from_secs(1)));
        assert_eq!(GuestLimits::default().lowered_by(operator), operator);
    }

    #[test]
    fn counts_all_memories_together() {
        let mut l = GuestLimiter::new(&GuestLimits { memory_bytes: Some(100), timeout: None });
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(!l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_refused());
        assert!(l.memory_growing(0, 40, None).unwrap());
    }

    #[test]
    fn a_replacing_limiter_counts_what_the_earlier_one_allowed() {
        let limits = GuestLimits { memory_bytes: Some(100), timeout: None };
        let mut earlier = GuestLimiter::new(&limits);
        assert!(earlier.memory_growing(0, 70, None).unwrap());
        let mut later = GuestLimiter::new(&limits);
        later.carry_from(&earlier);
        assert!(!later.memory_growing(70, 110, None).unwrap(), "70 + 40 is over the limit of 100");
        assert!(later.memory_refused());
        assert!(later.memory_growing(70, 100, None).unwrap());
    }
}
