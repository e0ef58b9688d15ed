# shellcheck shell=bash
# e2e/lib/node.sh - the real node of the e2e ground, sourced by e2e/cluster.
#
# Beside the kwok nodes, `e2e/cluster up` runs one real Kubernetes node,
# "pym-node-0", on this machine:
#
#   containerd + runc   Debian packages, run as processes with their own root, state
#                       and socket under $RUN/node (no systemd, no /etc changes)
#   CNI                 Debian's containernetworking-plugins: one bridge "pym0"
#                       ($NODE_IP/24, the node's address and the pods' gateway) with
#                       host-local IPAM over $NODE_POD_CIDR; loopback
#   kubelet             built from k8s.io/kubernetes/cmd/kubelet at KUBERNETES_VERSION,
#                       identity system:node:pym-node-0 (Node authorizer, NodeRestriction),
#                       serving TLS signed by the cluster CA, webhook authn/authz
#   kube-proxy          same module, iptables mode, identity system:kube-proxy
#   CoreDNS             built from github.com/coredns/coredns, run as a real pod
#                       (Deployment + Service kube-dns 10.96.0.10 in kube-system)
#   pause               the pod sandbox: a 20-line static C program, in an image of its own
#
# The node is tainted pym.dev/real-node=true:NoSchedule, so workloads land on
# kwok nodes unless they tolerate it; tests that want real pods tolerate the
# taint and select the node (label pym.dev/node=real).
#
# Egress guard: pods reach each other, Services and this machine, never
# beyond: a FORWARD rule drops what would leave the bridge for another
# interface, and CoreDNS answers only cluster.local (no upstream forwarding).
#
# What this machine kind needs (measured, see the header of each function):
# cgroup v1 hybrid -> kubelet failCgroupV1: false + cgroupfs; the VM refuses
# negative oom_score_adj -> containerd restrict_oom_score_adj; RLIMIT_NOFILE
# hard 20000 -> nothing may raise it; no registry -> every image is local.

NODE_NAME=pym-node-0
NODE_BRIDGE=pym0
NODE_POD_CIDR=10.250.0.0/24 # real pods; disjoint from kwok's 10.244.0.0/16 and Services
NODE_IP=10.250.0.1          # the bridge's address: node InternalIP, apiserver address for pods
CLUSTER_DNS=10.96.0.10      # kube-dns Service
NODE_TAINT=pym.dev/real-node
NODE_DIR=$RUN/node
NODE_SOCK=$NODE_DIR/containerd.sock
NODE_COMPONENTS=(containerd kubelet kube-proxy) # start order, after the control plane
NODE_BIN=$CACHE/bin/kubernetes-node-$KUBERNETES_VERSION
COREDNS_BIN=$CACHE/bin/coredns-$COREDNS_VERSION
CRICTL_BIN=$CACHE/bin/cri-tools-$CRI_TOOLS_VERSION
PAUSE_IMAGE=docker.io/pym/pause:dev
COREDNS_IMAGE=docker.io/pym/coredns:$COREDNS_VERSION
# A comment on every iptables rule this script adds itself, so `down` finds them.
RULE_TAG=pym-e2e-node

real_node_enabled() { [[ ${PYM_E2E_REAL_NODE:-1} != 0 ]]; }

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
build_node() {
  [[ -x $NODE_BIN/kubelet && -x $NODE_BIN/kube-proxy ]] && return 0
  kubernetes_module
  go_build kubernetes "$NODE_BIN" "$(kubernetes_ldflags)" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

build_coredns() {
  [[ -x $COREDNS_BIN/coredns ]] && return 0
  pin_module coredns github.com/coredns/coredns "$COREDNS_VERSION"
  go_build coredns "$COREDNS_BIN" \
    "-s -w -X github.com/coredns/coredns/coremain.GitCommit=gomod-$COREDNS_VERSION" github.com/coredns/coredns
}

build_crictl() {
  [[ -x $CRICTL_BIN/crictl ]] && return 0
  pin_module cri-tools sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION"
  go_build cri-tools "$CRICTL_BIN" \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
}

# The sandbox ("pause") program: holds the pod's namespaces, reaps nothing,
# exits 0 on SIGTERM/SIGINT. Static, so its image needs no libc.
build_pause() {
  local out=$CACHE/bin/pause-1
  [[ -x $out/pause ]] && return 0
  command -v cc >/dev/null || die "a C compiler is needed for the pod sandbox (apt-get install gcc libc6-dev)"
  mkdir -p "$out.tmp"
  cat >"$out.tmp/pause.c" <<'EOF'
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
static void bye(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGTERM, bye);
  signal(SIGINT, bye);
  for (;;) pause();
}
EOF
  cc -static -O2 -o "$out.tmp/pause" "$out.tmp/pause.c" || die "cc -static pause.c failed (is libc6-dev installed?)"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# ---------------------------------------------------------------------------
# Packages and machine state
# ---------------------------------------------------------------------------
NODE_PACKAGES=(containerd runc containernetworking-plugins podman iptables conntrack gcc libc6-dev)
node_packages() {
  local missing=() p
  for p in "${NODE_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing Debian packages for the real node: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

# Sysctls the node needs; their previous values are saved and restored by `down`.
NODE_SYSCTLS=(net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1)
node_network_up() {
  local kv key
  mkdir -p "$NODE_DIR"
  if [[ ! -f $NODE_DIR/sysctl.saved ]]; then
    for kv in "${NODE_SYSCTLS[@]}"; do
      key=${kv%%=*}
      echo "$key=$(sysctl -n "$key")"
    done >"$NODE_DIR/sysctl.saved"
  fi
  for kv in "${NODE_SYSCTLS[@]}"; do sysctl -qw "$kv" || die "sysctl -w $kv failed"; done
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
    ip addr add "$NODE_IP/${NODE_POD_CIDR#*/}" dev "$NODE_BRIDGE"
  fi
  ip link set "$NODE_BRIDGE" up
  # Pods may talk to pods, Services and this machine; nothing they send is
  # routed out of another interface.
  iptables -C FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment "$RULE_TAG" -j DROP 2>/dev/null ||
    iptables -I FORWARD 1 -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment "$RULE_TAG" -j DROP
}

# ---------------------------------------------------------------------------
# containerd
# ---------------------------------------------------------------------------
write_containerd_config() {
  mkdir -p "$NODE_DIR/containerd" "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  # restrict_oom_score_adj: this VM refuses a negative oom_score_adj, and
  # kubelet asks -998 for every sandbox (runc then fails with "can't get final
  # child's PID from pipe"). SystemdCgroup = false: no systemd, cgroupfs.
  cat >"$NODE_DIR/containerd/config.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$NODE_SOCK"
[ttrpc]
  address = "$NODE_SOCK.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
    max_conf_num = 1
EOF
  # One bridge network; host-local keeps its leases under the run dir.
  cat >"$NODE_DIR/cni/net.d/10-pym.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "pym",
  "plugins": [{
    "type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$NODE_DIR/cni/ipam",
      "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF
}

ctr_node() { ctr --address "$NODE_SOCK" -n k8s.io "$@"; }
# Through the links in $RUN/bin, so `down` and `status` work whatever PYM_E2E_CACHE says.
crictl_node() { "$RUN/bin/crictl" --config "$NODE_DIR/crictl.yaml" "$@"; }

start_containerd() {
  write_containerd_config
  (cd /var/run/netns 2>/dev/null && ls -1) >"$NODE_DIR/netns.before" || true
  # crictl reads this (`crictl --config e2e/.run/node/crictl.yaml ps`, or the
  # `crictl` of e2e/.run/bin with CRI_CONFIG_FILE set by `e2e/cluster env`).
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 20\n' "$NODE_SOCK" "$NODE_SOCK" >"$NODE_DIR/crictl.yaml"
  start containerd "$(command -v containerd)" --config "$NODE_DIR/containerd/config.toml"
  wait_for containerd "its socket" ctr --address "$NODE_SOCK" version
}

# import_rootfs <dir> <image> <entrypoint json>: a one-layer image from a
# directory, into the node's containerd (namespace k8s.io, where the CRI looks).
import_rootfs() {
  local dir=$1 image=$2 entrypoint=$3 tmp
  tmp=$(mktemp -d)
  tar -C "$dir" -cf "$tmp/rootfs.tar" .
  podman import --quiet --change "ENTRYPOINT $entrypoint" --change "USER 65532:65532" \
    "$tmp/rootfs.tar" "$image" >/dev/null
  podman save --quiet --format oci-archive -o "$tmp/image.tar" "$image"
  podman rmi --force "$image" >/dev/null 2>&1 || true # containerd keeps it; podman needs no copy
  ctr_node images import "$tmp/image.tar" >/dev/null
  local listed
  listed=$(ctr_node images ls -q)
  grep -qx "$image" <<<"$listed" || die "importing $image into containerd failed"
  rm -rf "$tmp"
}

# The node's own images: the pod sandbox and CoreDNS, both a static binary alone.
node_images() {
  local root
  root=$(mktemp -d)
  install -D -m 0555 "$CACHE/bin/pause-1/pause" "$root/pause"
  import_rootfs "$root" "$PAUSE_IMAGE" '["/pause"]'
  rm -rf "$root" && root=$(mktemp -d)
  install -D -m 0555 "$COREDNS_BIN/coredns" "$root/coredns"
  import_rootfs "$root" "$COREDNS_IMAGE" '["/coredns"]'
  rm -rf "$root"
}

# ---------------------------------------------------------------------------
# kube-proxy and kubelet
# ---------------------------------------------------------------------------
node_pki() {
  new_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$CLIENT_EXT"
  new_cert kubelet-serving "/CN=$NODE_NAME" "$SERVER_EXT
subjectAltName=DNS:$NODE_NAME,IP:$NODE_IP"
  new_cert kube-proxy "/CN=system:kube-proxy" "$CLIENT_EXT" # bound by the built-in system:node-proxier
  # The apiserver's identity towards kubelets (logs, exec, port-forward).
  new_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$CLIENT_EXT"
}

start_kube_proxy() {
  free_port && local health=$PORT
  free_port && local metrics=$PORT
  write_kubeconfig "$RUN/kube-proxy.kubeconfig" kube-proxy
  # conntrack sizes at 0: kube-proxy leaves the machine's conntrack sysctls alone.
  # localhostNodePorts false: no route_localnet; nodePortAddresses: the node only.
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $RUN/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_POD_CIDR
healthzBindAddress: $HOST:$health
metricsBindAddress: $HOST:$metrics
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$NODE_BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml"
  wait_for kube-proxy "/healthz" curl -sf --max-time 2 "http://$HOST:$health/healthz"
}

start_kubelet() {
  free_port && KUBELET_PORT=$PORT
  free_port && local health=$PORT
  write_kubeconfig "$RUN/kubelet.kubeconfig" kubelet
  # failCgroupV1: false  this machine boots cgroup v1 hybrid (KEP-5573)
  # evictionHard {} and image GC at 99/100 %: a small shared disk must not evict pods
  # serializeImagePulls false: every image is local (imagePullPolicy Never/IfNotPresent)
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$NODE_SOCK
failSwapOn: false
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: $HOST
healthzPort: $health
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
registerWithTaints: [{key: $NODE_TAINT, value: "true", effect: NoSchedule}]
podCIDR: $NODE_POD_CIDR
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
resolvConf: $NODE_DIR/resolv.conf
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
serializeImagePulls: false
podLogsDir: $NODE_DIR/pod-logs
maxPods: 50
nodeStatusReportFrequency: 10s
EOF
  # Pods with dnsPolicy Default (CoreDNS itself) get no upstream: nothing
  # outside this machine is ever asked.
  : >"$NODE_DIR/resolv.conf"
  start kubelet "$NODE_BIN/kubelet" --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$RUN/kubelet.kubeconfig" --root-dir="$NODE_DIR/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --node-labels="pym.dev/node=real"
  wait_for kubelet "/healthz" curl -sf --max-time 2 "http://$HOST:$health/healthz"
  echo "KUBELET_PORT=$KUBELET_PORT" >>"$RUN/ports.env"
}

node_ready() {
  [[ $(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

# ---------------------------------------------------------------------------
# CoreDNS, as a real pod on the real node
# ---------------------------------------------------------------------------
start_coredns() {
  kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      nodeSelector: {pym.dev/node: real}
      tolerations: [{key: $NODE_TAINT, operator: Exists, effect: NoSchedule}]
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $CLUSTER_DNS
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

coredns_ready() {
  [[ $(kubectl_admin -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}') == 1 ]]
}

# ---------------------------------------------------------------------------
# up / down / status
# ---------------------------------------------------------------------------
node_up() {
  start_containerd
  node_images
  start_kubelet
  wait_for kubelet "node $NODE_NAME registered" kubectl_admin get node "$NODE_NAME"
  start_kube_proxy # reads its node IP from the Node object
  wait_for kubelet "node $NODE_NAME Ready" node_ready
  start_coredns
  wait_for kubelet "CoreDNS Ready on $NODE_NAME" coredns_ready
}

# Tears down what node_up made, in reverse: kubelet, pods (through the CRI, so
# CNI releases addresses and removes namespaces), kube-proxy and its rules,
# containerd and its shims, mounts, cgroups; then node_network_down: our
# iptables rule, the bridge and the sysctls. Safe when nothing or only part is up.
node_stop() {
  stop_component kubelet
  if alive containerd && [[ -x $RUN/bin/crictl ]]; then
    crictl_node rmp --all --force >/dev/null 2>&1 || log "crictl rmp failed; removing the rest by hand"
  fi
  stop_component kube-proxy
  if [[ -x $RUN/bin/kube-proxy ]]; then "$RUN/bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  stop_component containerd
  local pid
  for pid in $(pgrep -f "containerd-shim.* -address $NODE_SOCK" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  # Mounts left under the run dir (container rootfs, shm, volumes), deepest first.
  awk -v d="$NODE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # Network namespaces the CRI made and no pod teardown removed: those that
  # were not there before containerd started (netns.before); their processes
  # are gone with the shims. Never `ip netns` here: it bind-mounts /run/netns
  # onto itself, which hides the CRI's namespace mounts under it.
  local ns
  for ns in /var/run/netns/cni-*; do
    [[ -e $ns ]] || continue
    grep -qx "${ns##*/}" "$NODE_DIR/netns.before" 2>/dev/null && continue
    umount "$ns" 2>/dev/null || true
    rm -f "$ns" 2>/dev/null || log "cannot remove $ns (still mounted?)"
  done
  # Container processes whose shim is gone (a crash, or a failed rmp) are
  # still in kubelet's pod cgroups (cgroupfs driver): kill them, then remove
  # the cgroups, deepest first.
  local c pids
  pids=$(for c in /sys/fs/cgroup/*/kubepods; do
    if [[ -d $c ]]; then find "$c" -name cgroup.procs -exec cat {} +; fi
  done | sort -u)
  if [[ -n $pids ]]; then
    log "killing $(wc -w <<<"$pids") container process(es) left in kubepods cgroups"
    # shellcheck disable=SC2086 # a list of PIDs
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  fi
  for c in /sys/fs/cgroup/*/kubepods; do
    if [[ -d $c ]]; then find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  kubelet_iptables_cleanup
}

# kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT)
# and the jumps to them; kube-proxy --cleanup removes only kube-proxy's.
kubelet_iptables_cleanup() {
  local tool table chain rule
  for tool in iptables ip6tables; do
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$tool" -t "$table" -n -L "$chain" >/dev/null 2>&1 || continue
        local rules
        rules=$("$tool-save" -t "$table" | sed -n "s/^-A \(.* -j $chain\)\$/-D \1/p")
        while read -r rule; do
          # shellcheck disable=SC2086 # a rule as iptables-save prints it
          [[ -z $rule ]] || eval "$tool -t $table $rule" 2>/dev/null || true
        done <<<"$rules"
        "$tool" -t "$table" -F "$chain" 2>/dev/null || true
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

# After the apiserver (bound to the bridge address) has stopped.
node_network_down() {
  while iptables -D FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -m comment --comment "$RULE_TAG" -j DROP 2>/dev/null; do :; done
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link delete "$NODE_BRIDGE"; fi
  if [[ -f $NODE_DIR/sysctl.saved ]]; then
    while read -r kv; do sysctl -qw "$kv" || true; done <"$NODE_DIR/sysctl.saved"
    rm -f "$NODE_DIR/sysctl.saved"
  fi
}

node_status() {
  [[ -n ${API_PORT:-} ]] && alive kube-apiserver || return 0
  echo
  kubectl_admin get node "$NODE_NAME" -o wide || echo "node $NODE_NAME: not registered"
  if alive containerd; then
    echo
    echo "containerd $(ctr --address "$NODE_SOCK" version 2>/dev/null | awk '/Version:/ {print $2; exit}') on $NODE_SOCK; images:"
    ctr_node images ls -q | grep -v '^sha256:' | sed 's/^/  /'
    if [[ -x $CRICTL_BIN/crictl ]]; then
      echo
      crictl_node pods 2>/dev/null || true
    fi
  fi
}
