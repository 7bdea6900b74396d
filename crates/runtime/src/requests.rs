//! Requests that share one instance. A WASI 0.3 handler instance may serve many requests, several
//! at once; what belongs to one request (its id and trace context, the label in audit and log
//! lines, its outbound budget) must follow the guest code running for it, not the instance.
//!
//! Wasmtime tells which request is running through the store's task-group hook: every call into
//! the handler starts a task group (the request's task and every subtask it makes), and the hook
//! hears whenever execution enters or leaves a group. [`RequestScopes`] keeps the scope of each
//! group and which group is running; the host interfaces ask it for [`RequestScopes::current`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::{TaskGroupHook, TaskGroupId};

/// What belongs to one request served by a shared instance.
#[derive(Debug)]
pub struct RequestScope {
    /// The trace id outbound requests carry, and the id log lines are tagged with.
    pub trace_id: Arc<str>,
    outbound_limit: u32,
    outbound_left: AtomicU32,
}

impl RequestScope {
    /// A scope for request `id` that may make `outbound_limit` outbound requests.
    pub fn new(id: Arc<str>, outbound_limit: u32) -> Self {
        RequestScope { trace_id: id, outbound_limit, outbound_left: AtomicU32::new(outbound_limit) }
    }

    /// Appended to the component's subject in audit lines (`request ID`); made only when a line
    /// is written, not for every request.
    pub fn label(&self) -> String {
        format!("request {}", self.trace_id)
    }

    /// Takes one outbound request from the budget; false when none is left.
    pub fn take_outbound(&self) -> bool {
        self.outbound_left.try_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
    }

    /// The outbound limit, for messages.
    pub fn outbound_limit(&self) -> u32 {
        self.outbound_limit
    }

    /// Outbound requests made so far.
    pub fn outbound_sent(&self) -> u32 {
        self.outbound_limit - self.outbound_left.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct Groups {
    running: Option<TaskGroupId>,
    scopes: HashMap<TaskGroupId, Arc<RequestScope>>,
}

/// The scopes of the requests one instance is serving, by task group, and which one is running.
/// Shared by the instance's store data (the host interfaces read it) and its task-group hook.
#[derive(Default)]
pub struct RequestScopes {
    groups: Mutex<Groups>,
}

impl std::fmt::Debug for RequestScopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestScopes").field("requests", &self.lock().scopes.len()).finish()
    }
}

impl RequestScopes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `group` is the task group of the request `scope` (before any of its guest
    /// code runs).
    pub fn begin(&self, group: TaskGroupId, scope: Arc<RequestScope>) {
        self.lock().scopes.insert(group, scope);
    }

    /// The request whose code is running now, if any is.
    pub fn current(&self) -> Option<Arc<RequestScope>> {
        let groups = self.lock();
        groups.running.and_then(|g| groups.scopes.get(&g).cloned())
    }

    /// The hook to install on the instance's store (`Store::task_group_hook`).
    pub fn hook(self: &Arc<Self>) -> impl TaskGroupHook {
        ScopeHook(self.clone())
    }
}

struct ScopeHook(Arc<RequestScopes>);

impl TaskGroupHook for ScopeHook {
    fn handle_start(&mut self, _id: TaskGroupId) -> wasmtime::Result<()> {
        Ok(())
    }

    fn handle_enter(&mut self, id: TaskGroupId) -> wasmtime::Result<()> {
        self.0.lock().running = Some(id);
        Ok(())
    }

    fn handle_exit(&mut self, id: TaskGroupId) -> wasmtime::Result<()> {
        let mut groups = self.0.lock();
        if groups.running == Some(id) {
            groups.running = None;
        }
        Ok(())
    }

    fn handle_finish(&mut self, id: TaskGroupId) -> wasmtime::Result<()> {
        // Wasmtime may hand the id out again later: forget it now.
        let mut groups = self.0.lock();
        groups.scopes.remove(&id);
        if groups.running == Some(id) {
            groups.running = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbound_budget_runs_out() {
        let scope = RequestScope::new(Arc::from("abc"), 2);
        assert!(scope.take_outbound());
        assert!(scope.take_outbound());
        assert!(!scope.take_outbound());
        assert_eq!(scope.outbound_sent(), 2);
        assert_eq!(scope.label(), "request abc");
    }
}
