//! pym-operator: the `PymService` CRD and its reconciler.
//!
//! | module | holds |
//! |---|---|
//! | [`crd`] | spec/status types; the CRD is generated from them (`crdgen`) |
//! | [`desired`] | pure: spec → ConfigMap, Deployments, Services, Secrets, Redis objects |
//! | [`psa`] | pure: does a pod spec meet Pod Security Standards `restricted`? |
//! | [`status`] | pure: observed counts → status and conditions |
//! | [`children`] | metadata caches of child objects; apply that skips no-ops |
//! | [`reconcile`] | apply (SSA), deletes, status writes, events, error policy |
//! | [`controller`] | watches and the kube-rs `Controller` wiring |
//! | [`autoscaler`] | polls queue stats, patches worker `/scale`, status, events; [`autoscaler::scale`] decides |
//! | [`metrics`] | Prometheus metrics of the process |
//! | [`error`] | the crate's one error type |
// The autoscaler's polling future holds the Sentinel-following Redis
// connection's futures; its layout needs more than the default depth.
#![recursion_limit = "256"]

pub mod autoscaler;
pub mod children;
pub mod condition;
pub mod controller;
pub mod crd;
pub mod desired;
pub mod error;
pub mod metrics;
pub mod psa;
pub mod reconcile;
pub mod status;

pub use error::{Error, Result};
