//! The admin API (`/_pym/admin/`) and the dashboard (`/_pym/`), served by
//! `serve` and `up` when `admin: {enabled: true}`.
//!
//! The API is described by its own OpenAPI document (`openapi.yaml`,
//! served at `/_pym/admin/openapi.yaml`), whose operations are bound and
//! validated like a user's spec: on the API port through
//! [`pym_http::ServiceBuilder::document`], or alone on `admin.port`.
//! One file per resource: `queues`, `workers`, `schedules`, `tasks` (the
//! delayed and in-flight lists), `records` (one tracked task), `dead`; a new
//! resource is a new file, its operations in `openapi.yaml` and a line in
//! [`bind`]. `access` holds the roles, `rates` the throughput history,
//! `dashboard` the embedded page.

mod access;
mod dashboard;
mod dead;
mod queues;
mod rates;
mod records;
mod schedules;
mod tasks;
mod workers;

use crate::config::Config;
use pym_broker::{Broker, keys, shards};
use pym_http::{ApiError, Service, ServiceBuilder, ServiceError};
use std::sync::Arc;

/// The admin API's OpenAPI document.
pub(crate) const DOCUMENT: &str = include_str!("openapi.yaml");
/// Its name in errors.
pub(crate) const DOCUMENT_NAME: &str = "<pym admin openapi.yaml>";

/// What the admin handlers share: the broker and the rates' history.
#[derive(Clone)]
pub(crate) struct Admin {
    broker: Broker,
    rates: Arc<rates::Recorder>,
}

impl Admin {
    /// The admin state on `broker`; starts sampling the queues' totals
    /// (for the rates) until the last clone is dropped.
    pub(crate) fn new(broker: Broker) -> Self {
        let rates = Arc::new(rates::Recorder::default());
        rates::spawn_sampler(broker.clone(), Arc::downgrade(&rates));
        Admin { broker, rates }
    }

    /// The shards of `queue` (`[queue]` when it is not sharded).
    async fn shards(&self, queue: &str) -> Result<Vec<String>, ApiError> {
        let n = shards::recorded_of(&mut self.broker.conn(), queue)
            .await
            .map_err(broker_error)?;
        Ok(keys::shards(queue, n))
    }
}

/// The admin API beside the service's own operations.
pub(crate) fn on_api_port(builder: ServiceBuilder, broker: Broker) -> ServiceBuilder {
    bind(
        builder.document(DOCUMENT_NAME, DOCUMENT),
        Admin::new(broker),
    )
}

/// The admin API alone, for `admin.port`.
pub(crate) fn on_own_port(config: &Config, broker: Broker) -> Result<Service, ServiceError> {
    let builder = Service::builder(config).spec_str(DOCUMENT_NAME, DOCUMENT);
    bind(builder, Admin::new(broker)).build()
}

/// Bind every admin operation on `builder` (whose spec or documents hold
/// [`DOCUMENT`]), with `admin` for the handlers.
fn bind(builder: ServiceBuilder, admin: Admin) -> ServiceBuilder {
    let b = builder
        .extension(admin)
        .handler("pym_admin_openapi", dashboard::openapi)
        .handler("pym_dashboard", dashboard::page)
        .handler("pym_dashboard_asset", dashboard::asset)
        .handler("pym_admin_me", access::me);
    let b = queues::bind(b);
    let b = workers::bind(b);
    let b = schedules::bind(b);
    let b = tasks::bind(b);
    let b = records::bind(b);
    dead::bind(b)
}

/// A broker failure, as a 503 the caller may retry.
fn broker_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::service_unavailable(format!("the broker did not answer: {e}"))
}
