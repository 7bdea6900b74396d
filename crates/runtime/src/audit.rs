//! Audit lines: every denial the host itself decides, naming the token that would have allowed it.

use std::sync::Arc;

use wasmzip_package::Capability;

use crate::requests::RequestScopes;

/// The tracing target audit events are emitted under.
pub const AUDIT_TARGET: &str = "wasmzip::audit";

/// Who is being audited: the function (package or component) a denial belongs to. Cheap to
/// clone: every capability context of an instance holds one.
#[derive(Debug, Clone)]
pub struct Auditor {
    subject: Arc<str>,
    requests: Option<Arc<RequestScopes>>,
}

impl Auditor {
    /// An auditor for `subject` (for example `hello@1.0.0`).
    pub fn new(subject: impl Into<Arc<str>>) -> Self {
        Auditor { subject: subject.into(), requests: None }
    }

    /// The same subject, followed by the label of whichever request of a shared instance is
    /// running when a denial happens.
    pub fn for_requests(self, requests: Arc<RequestScopes>) -> Self {
        Auditor { requests: Some(requests), ..self }
    }

    /// An auditor fixed to what [`Auditor::denied`] would name now: for a denial decided later,
    /// away from the guest code that asked (say, in a host future), when another request of a
    /// shared instance may be running.
    pub fn pinned(&self) -> Auditor {
        Auditor::new(self.subject_now())
    }

    /// The subject, followed by the running request's label when one of a shared instance runs.
    fn subject_now(&self) -> Arc<str> {
        match self.requests.as_ref().and_then(|r| r.current()) {
            Some(request) => Arc::from(format!("{} {}", self.subject, request.label())),
            None => self.subject.clone(),
        }
    }

    /// Records that `action` was denied and which token would have allowed it.
    pub fn denied(&self, action: &str, needed: &str) {
        let subject = self.subject_now();
        tracing::warn!(target: AUDIT_TARGET, subject = %subject, needed = %needed, "denied {action}: no effective capability covers it (needs {needed})");
    }

    /// Like [`Auditor::denied`], with a parsed token.
    pub fn denied_capability(&self, action: &str, needed: &Capability) {
        self.denied(action, &needed.to_string());
    }
}
