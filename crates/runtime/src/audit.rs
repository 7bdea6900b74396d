//! Audit lines: every denial the host itself decides, naming the token that would have allowed it.

use std::sync::Arc;

use wasmzip_package::Capability;

/// The tracing target audit events are emitted under.
pub const AUDIT_TARGET: &str = "wasmzip::audit";

/// Who is being audited: the function (package or component) a denial belongs to. Cheap to
/// clone: every capability context of an instance holds one.
#[derive(Debug, Clone)]
pub struct Auditor {
    subject: Arc<str>,
}

impl Auditor {
    /// An auditor for `subject` (for example `hello@1.0.0`).
    pub fn new(subject: impl Into<Arc<str>>) -> Self {
        Auditor { subject: subject.into() }
    }

    /// Records that `action` was denied and which token would have allowed it.
    pub fn denied(&self, action: &str, needed: &str) {
        tracing::warn!(target: AUDIT_TARGET, subject = %self.subject, needed = %needed, "denied {action}: no effective capability covers it (needs {needed})");
    }

    /// Like [`Auditor::denied`], with a parsed token.
    pub fn denied_capability(&self, action: &str, needed: &Capability) {
        self.denied(action, &needed.to_string());
    }
}
