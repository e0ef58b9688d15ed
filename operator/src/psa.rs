//! Pure: does a pod spec meet the Pod Security Standards `restricted`
//! profile (Kubernetes `latest`), the one Pod Security Admission enforces in a
//! namespace labelled `pod-security.kubernetes.io/enforce=restricted`?
//!
//! Every pod the operator writes must (`desired/` tests check each one).
//! The rules are those of <https://kubernetes.io/docs/concepts/security/pod-security-standards/>
//! over the pod spec: the baseline controls, then the restricted ones. The
//! AppArmor annotations of the pod's metadata are not looked at (the operator
//! sets none).

use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, SecurityContext};

/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];
/// SELinux types the baseline profile allows (besides unset).
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];
/// The one capability `restricted` lets a container add.
const ADDABLE_CAPABILITY: &str = "NET_BIND_SERVICE";

/// One container of any kind (regular, init, ephemeral).
struct C<'a> {
    name: &'a str,
    sc: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

/// What keeps `pod` out of the `restricted` profile, one line per problem
/// (empty: it is admitted).
pub fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut v = Vec::new();
    let psc = pod.security_context.as_ref();
    pod_baseline(&mut v, pod);
    volumes(&mut v, pod);
    let pod_non_root = psc.and_then(|s| s.run_as_non_root) == Some(true);
    let pod_seccomp = psc.and_then(|s| s.seccomp_profile.as_ref()).is_some();
    for c in &containers(pod) {
        let at = format!("container {}", c.name);
        container_baseline(&mut v, &at, c);
        container_restricted(&mut v, &at, c, pod_non_root, pod_seccomp);
    }
    v
}

/// Every container of `pod`: init, regular and ephemeral.
fn containers(pod: &PodSpec) -> Vec<C<'_>> {
    let mut containers: Vec<C> = Vec::new();
    for c in pod.init_containers.iter().flatten().chain(&pod.containers) {
        containers.push(C {
            name: &c.name,
            sc: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    for c in pod.ephemeral_containers.iter().flatten() {
        containers.push(C {
            name: &c.name,
            sc: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    containers
}

/// Pod-level `baseline` rules.
fn pod_baseline(v: &mut Vec<String>, pod: &PodSpec) {
    let psc = pod.security_context.as_ref();
    for (what, on) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if on == Some(true) {
            v.push(format!("{what} must not be true"));
        }
    }
    if psc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        v.push("securityContext.windowsOptions.hostProcess must not be true".into());
    }
    if let Some(p) = psc.and_then(|s| s.seccomp_profile.as_ref())
        && !matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")
    {
        v.push(format!(
            "securityContext.seccompProfile.type must be RuntimeDefault or Localhost, not {}",
            p.type_
        ));
    }
    if let Some(p) = psc.and_then(|s| s.app_armor_profile.as_ref())
        && !matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")
    {
        v.push(format!(
            "securityContext.appArmorProfile.type must be RuntimeDefault or Localhost, not {}",
            p.type_
        ));
    }
    if let Some(se) = psc.and_then(|s| s.se_linux_options.as_ref()) {
        selinux(v, "securityContext", se);
    }
    for s in psc.and_then(|s| s.sysctls.as_ref()).into_iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            v.push(format!("sysctl {} is not in the safe set", s.name));
        }
    }
    if psc.and_then(|s| s.run_as_user) == Some(0) {
        v.push("securityContext.runAsUser must not be 0".into());
    }
}

/// `restricted`: the volume types a pod may use.
fn volumes(v: &mut Vec<String>, pod: &PodSpec) {
    for vol in pod.volumes.iter().flatten() {
        let allowed = vol.config_map.is_some()
            || vol.csi.is_some()
            || vol.downward_api.is_some()
            || vol.empty_dir.is_some()
            || vol.ephemeral.is_some()
            || vol.persistent_volume_claim.is_some()
            || vol.projected.is_some()
            || vol.secret.is_some();
        if !allowed {
            v.push(format!(
                "volume {}: only configMap, csi, downwardAPI, emptyDir, ephemeral, \
                 persistentVolumeClaim, projected and secret volumes are allowed",
                vol.name
            ));
        }
    }
}

/// Container-level `baseline` rules.
fn container_baseline(v: &mut Vec<String>, at: &str, c: &C) {
    let sc = c.sc;
    if sc.and_then(|s| s.privileged) == Some(true) {
        v.push(format!("{at}: privileged must not be true"));
    }
    if sc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        v.push(format!("{at}: windowsOptions.hostProcess must not be true"));
    }
    for p in c.ports {
        if p.host_port.is_some_and(|h| h != 0) {
            v.push(format!("{at}: hostPort must be unset or 0"));
        }
    }
    if let Some(pm) = sc.and_then(|s| s.proc_mount.as_deref())
        && pm != "Default"
    {
        v.push(format!("{at}: procMount must be Default"));
    }
    if let Some(se) = sc.and_then(|s| s.se_linux_options.as_ref()) {
        selinux(v, at, se);
    }
    if let Some(p) = sc.and_then(|s| s.app_armor_profile.as_ref())
        && !matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")
    {
        v.push(format!(
            "{at}: appArmorProfile.type must be RuntimeDefault or Localhost"
        ));
    }
}

/// Container-level `restricted` rules (`pod_*`: what the pod sets for all).
fn container_restricted(
    v: &mut Vec<String>,
    at: &str,
    c: &C,
    pod_non_root: bool,
    pod_seccomp: bool,
) {
    let sc = c.sc;
    if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
        v.push(format!("{at}: allowPrivilegeEscalation must be false"));
    }
    match sc.and_then(|s| s.run_as_non_root) {
        Some(false) => v.push(format!("{at}: runAsNonRoot must not be false")),
        None if !pod_non_root => v.push(format!(
            "{at}: runAsNonRoot must be true (on the container or the pod)"
        )),
        _ => {}
    }
    if sc.and_then(|s| s.run_as_user) == Some(0) {
        v.push(format!("{at}: runAsUser must not be 0"));
    }
    match sc.and_then(|s| s.seccomp_profile.as_ref()) {
        Some(p) if !matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost") => v.push(format!(
            "{at}: seccompProfile.type must be RuntimeDefault or Localhost"
        )),
        None if !pod_seccomp => v.push(format!(
            "{at}: seccompProfile.type must be set (on the container or the pod)"
        )),
        _ => {}
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    if !caps
        .and_then(|c| c.drop.as_ref())
        .is_some_and(|d| d.iter().any(|x| x == "ALL"))
    {
        v.push(format!("{at}: capabilities.drop must include ALL"));
    }
    for a in caps.and_then(|c| c.add.as_ref()).into_iter().flatten() {
        if a != ADDABLE_CAPABILITY {
            v.push(format!(
                "{at}: capabilities.add may only hold {ADDABLE_CAPABILITY}, not {a}"
            ));
        }
    }
}

fn selinux(v: &mut Vec<String>, at: &str, se: &k8s_openapi::api::core::v1::SELinuxOptions) {
    if let Some(t) = se.type_.as_deref()
        && !t.is_empty()
        && !SELINUX_TYPES.contains(&t)
    {
        v.push(format!("{at}: seLinuxOptions.type {t} is not allowed"));
    }
    if se.user.as_deref().is_some_and(|u| !u.is_empty())
        || se.role.as_deref().is_some_and(|r| !r.is_empty())
    {
        v.push(format!("{at}: seLinuxOptions.user and role must be unset"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, Container, EphemeralContainer, HostPathVolumeSource, PodSecurityContext,
        SELinuxOptions, SeccompProfile, Sysctl, Volume,
    };

    fn good_container() -> Container {
        Container {
            name: "app".into(),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn good() -> PodSpec {
        PodSpec {
            containers: vec![good_container()],
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn csc(p: &mut PodSpec) -> &mut SecurityContext {
        p.containers[0]
            .security_context
            .get_or_insert_with(Default::default)
    }
    fn psc(p: &mut PodSpec) -> &mut PodSecurityContext {
        p.security_context.get_or_insert_with(Default::default)
    }

    #[test]
    fn the_minimal_restricted_pod_is_admitted() {
        assert_eq!(restricted_violations(&good()), Vec::<String>::new());
    }

    #[test]
    fn per_container_settings_can_replace_the_pod_level_ones() {
        let mut p = good();
        p.security_context = None;
        let sc = csc(&mut p);
        sc.run_as_non_root = Some(true);
        sc.seccomp_profile = Some(SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some("p.json".into()),
        });
        assert_eq!(restricted_violations(&p), Vec::<String>::new());
    }

    #[test]
    fn each_rule_is_enforced() {
        type Edit = fn(&mut PodSpec);
        let cases: &[(&str, Edit, &str)] = &[
            (
                "hostNetwork",
                |p| p.host_network = Some(true),
                "hostNetwork",
            ),
            ("hostPID", |p| p.host_pid = Some(true), "hostPID"),
            ("hostIPC", |p| p.host_ipc = Some(true), "hostIPC"),
            (
                "privileged",
                |p| csc(p).privileged = Some(true),
                "privileged",
            ),
            (
                "privilege escalation allowed",
                |p| csc(p).allow_privilege_escalation = Some(true),
                "allowPrivilegeEscalation",
            ),
            (
                "privilege escalation unset",
                |p| csc(p).allow_privilege_escalation = None,
                "allowPrivilegeEscalation",
            ),
            (
                "no runAsNonRoot anywhere",
                |p| psc(p).run_as_non_root = None,
                "runAsNonRoot must be true",
            ),
            (
                "container runAsNonRoot false",
                |p| csc(p).run_as_non_root = Some(false),
                "runAsNonRoot must not be false",
            ),
            (
                "pod root uid",
                |p| psc(p).run_as_user = Some(0),
                "runAsUser must not be 0",
            ),
            (
                "container root uid",
                |p| csc(p).run_as_user = Some(0),
                "runAsUser must not be 0",
            ),
            (
                "no seccomp anywhere",
                |p| psc(p).seccomp_profile = None,
                "seccompProfile.type must be set",
            ),
            (
                "pod seccomp Unconfined",
                |p| psc(p).seccomp_profile.as_mut().unwrap().type_ = "Unconfined".into(),
                "seccompProfile.type must be RuntimeDefault or Localhost",
            ),
            (
                "container seccomp Unconfined",
                |p| {
                    csc(p).seccomp_profile = Some(SeccompProfile {
                        type_: "Unconfined".into(),
                        ..Default::default()
                    })
                },
                "seccompProfile.type must be RuntimeDefault or Localhost",
            ),
            (
                "capabilities not dropped",
                |p| csc(p).capabilities = None,
                "capabilities.drop must include ALL",
            ),
            (
                "capability added",
                |p| csc(p).capabilities.as_mut().unwrap().add = Some(vec!["NET_ADMIN".into()]),
                "capabilities.add may only hold NET_BIND_SERVICE",
            ),
            (
                "hostPath volume",
                |p| {
                    p.volumes = Some(vec![Volume {
                        name: "h".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }])
                },
                "volume h",
            ),
            (
                "hostPort",
                |p| {
                    p.containers[0].ports = Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(80),
                        ..Default::default()
                    }])
                },
                "hostPort",
            ),
            (
                "procMount",
                |p| csc(p).proc_mount = Some("Unmasked".into()),
                "procMount",
            ),
            (
                "unsafe sysctl",
                |p| {
                    psc(p).sysctls = Some(vec![Sysctl {
                        name: "kernel.msgmax".into(),
                        value: "1".into(),
                    }])
                },
                "sysctl kernel.msgmax",
            ),
            (
                "SELinux user",
                |p| {
                    csc(p).se_linux_options = Some(SELinuxOptions {
                        user: Some("root".into()),
                        ..Default::default()
                    })
                },
                "seLinuxOptions.user",
            ),
            (
                "SELinux type",
                |p| {
                    psc(p).se_linux_options = Some(SELinuxOptions {
                        type_: Some("spc_t".into()),
                        ..Default::default()
                    })
                },
                "seLinuxOptions.type spc_t",
            ),
            (
                "init container checked too",
                |p| {
                    let mut c = good_container();
                    c.name = "init".into();
                    c.security_context = None;
                    p.init_containers = Some(vec![c]);
                },
                "container init: allowPrivilegeEscalation",
            ),
            (
                "ephemeral container checked too",
                |p| {
                    p.ephemeral_containers = Some(vec![EphemeralContainer {
                        name: "debug".into(),
                        ..Default::default()
                    }])
                },
                "container debug: allowPrivilegeEscalation",
            ),
        ];
        for (what, edit, want) in cases {
            let mut p = good();
            edit(&mut p);
            let v = restricted_violations(&p);
            assert!(
                v.iter().any(|m| m.contains(want)),
                "{what}: want a violation containing {want:?}, got {v:?}"
            );
        }
    }

    #[test]
    fn allowed_exceptions() {
        let mut p = good();
        csc(&mut p).capabilities.as_mut().unwrap().add = Some(vec!["NET_BIND_SERVICE".into()]);
        psc(&mut p).sysctls = Some(vec![Sysctl {
            name: "net.ipv4.ip_unprivileged_port_start".into(),
            value: "0".into(),
        }]);
        psc(&mut p).se_linux_options = Some(SELinuxOptions {
            type_: Some("container_t".into()),
            level: Some("s0:c1,c2".into()),
            ..Default::default()
        });
        p.containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(0),
            ..Default::default()
        }]);
        assert_eq!(restricted_violations(&p), Vec::<String>::new());
    }
}
