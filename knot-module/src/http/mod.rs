//! The Prometheus side: `metrics` (the text exposition of a snapshot) and
//! `endpoint` (the process-wide HTTP listener that survives knotd's
//! load-new-then-unload-old reload).

pub(crate) mod endpoint;
pub(crate) mod metrics;
