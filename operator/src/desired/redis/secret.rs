//! The managed Redis Secret: its password, the in-cluster URL the pods
//! read, and the `redis.conf` (with `requirepass`) the Redis pod mounts.

use super::super::labels::Component;
use super::super::meta::Ctx;
use super::{
    REDIS_SECRET_CONF_KEY, REDIS_SECRET_PASSWORD_KEY, REDIS_SECRET_URL_KEY, managed_redis_url,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

pub(super) fn redis_secret(ctx: &Ctx, name: String, password: &str) -> Secret {
    Secret {
        metadata: ctx.meta(name, Component::Redis),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                REDIS_SECRET_PASSWORD_KEY.to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
            (
                REDIS_SECRET_URL_KEY.to_string(),
                ByteString(managed_redis_url(ctx.name, ctx.ns, password).into_bytes()),
            ),
            // The password is generated alphanumeric: nothing to quote.
            (
                REDIS_SECRET_CONF_KEY.to_string(),
                ByteString(format!("requirepass {password}\n").into_bytes()),
            ),
        ])),
        ..Default::default()
    }
}
