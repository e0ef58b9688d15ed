//! After the applies: the replica counts of each Deployment as of now.

use crate::error::Result;
use crate::status::Counts;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;

/// Replica counts of a Deployment once every apply of the reconcile is done:
/// the apply response when it already shows the Deployment rolled out, else
/// a GET (the apply was skipped as up to date, or its response is stale).
///
/// The response is a snapshot from the moment of the apply, and the applies
/// run concurrently: a new Deployment's pods often become ready while a
/// slower sibling apply is still in flight (a Service waits for its ClusterIP,
/// which the apiserver allocates one Service at a time). Reading again here
/// lets this reconcile report Ready at once; with the snapshot, Ready waited
/// for the next reconcile, queued behind every other PymService's (seconds
/// when many are created together).
pub(super) async fn counts(
    client: &Client,
    ns: &str,
    name: &str,
    seen: Option<Deployment>,
) -> Result<Counts> {
    if let Some(c) = seen.as_ref().map(Counts::of).filter(Counts::done) {
        return Ok(c);
    }
    let dep = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(Counts::of(&dep))
}

/// [`counts`] of a Deployment that may not be wanted (`None`: not applied).
pub(super) async fn counts_if(
    client: &Client,
    ns: &str,
    name: &str,
    applied: Option<Option<Deployment>>,
) -> Result<Option<Counts>> {
    match applied {
        Some(seen) => Ok(Some(counts(client, ns, name, seen).await?)),
        None => Ok(None),
    }
}
