//! Child object names, one function per object, so deletes and applies agree.

pub fn config_map(svc: &str) -> String {
    format!("{svc}-config")
}
pub fn api_deployment(svc: &str) -> String {
    format!("{svc}-api")
}
/// The API Service is named after the PymService: clients call `http://<name>`.
pub fn api_service(svc: &str) -> String {
    svc.to_string()
}
pub fn worker_deployment(svc: &str) -> String {
    format!("{svc}-worker")
}
pub fn redis(svc: &str) -> String {
    format!("{svc}-redis")
}
pub fn redis_pvc(svc: &str) -> String {
    format!("{svc}-redis-data")
}
/// The task secret the operator generates when `taskSecretRef` is unset.
pub fn task_secret(svc: &str) -> String {
    format!("{svc}-pym-task")
}
