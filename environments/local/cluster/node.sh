# shellcheck shell=bash
# The real node of the local cluster, sourced by cluster.sh: containerd, runc, the CNI
# bridge plugins, kubelet, kube-proxy and CoreDNS, so that pods really run next to the kwok
# nodes. Everything is built from its published Go module (kubelet and kube-proxy with the
# control plane) and runs as root on this machine: a container runtime needs root to create
# namespaces, cgroups, mounts and the pod network.
#
# The pod network is a bridge that this script creates, with the node's address on it.
# Nothing leaves the machine: no masquerading, and a rule drops every packet that would be
# routed between the bridge and any other interface. The API server, OpenBao, MinIO and
# CoreDNS listen on the node's address, so pods reach them without leaving the machine.
#
# The node is tainted (vardhub.io/real-node=true:NoSchedule): only pods that tolerate the
# taint run for real; the rest keep landing on the kwok nodes, which simulate them.

readonly CONTAINERD_VERSION=v2.4.2
readonly RUNC_VERSION=v1.5.3
readonly CNI_PLUGINS_VERSION=v1.10.0
readonly CRI_TOOLS_VERSION=v1.37.0
readonly COREDNS_VERSION=v1.15.0
# The NetworkPolicy engine: Kubernetes SIG Network's kube-network-policies, run by our
# launcher (toolchain/netpol) with packets handed over by xtables NFQUEUE.
readonly KUBE_NETWORK_POLICIES_VERSION=v0.8.0

readonly NODE_NAME=vardhub-node
readonly NODE_BRIDGE=vardhub0
readonly NODE_IP=10.250.0.1
readonly NODE_POD_CIDR=10.250.0.0/24
readonly NODE_TAINT_KEY=vardhub.io/real-node
readonly KUBELET_PORT=20250
readonly KUBELET_HEALTHZ_PORT=20248
readonly KUBE_PROXY_HEALTHZ_PORT=20256
readonly KUBE_PROXY_METRICS_PORT=20249
readonly COREDNS_HEALTH_PORT=20253
readonly PAUSE_IMAGE=localhost/vardhub/pause:$KUBERNETES_VERSION
# Debian's static busybox alone in an image: the tests' client inside pods (nc, wget, nslookup).
readonly TOOLBOX_IMAGE=localhost/vardhub/toolbox:busybox
readonly FIREWALL_CHAIN=VARDHUB-NODE-FENCE
readonly INPUT_FENCE_CHAIN=VARDHUB-INPUT-FENCE
# Kernel settings the node changes and `down` restores.
readonly NODE_SYSCTLS=(net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet
    kernel.panic kernel.panic_on_oops vm.overcommit_memory kernel.keys.root_maxkeys
    kernel.keys.root_maxbytes)
readonly HOST_FENCE_CHAIN=VARDHUB-HOST-FENCE
# NetworkPolicy: the first packet of each new connection of a pod goes to this netlink queue.
readonly NETPOL_CHAIN=VARDHUB-NETPOL
readonly NETPOL_INPUT_CHAIN=VARDHUB-NETPOL-INPUT
readonly NETPOL_QUEUE=100
readonly NETPOL_METRICS_PORT=20255

readonly NODE_BIN_DIR="$BIN_DIR/node-$CONTAINERD_VERSION-$RUNC_VERSION-$CNI_PLUGINS_VERSION"
readonly COREDNS_DIR="$BIN_DIR/coredns-$COREDNS_VERSION"
readonly NETPOL_DIR="$BIN_DIR/netpol-$KUBE_NETWORK_POLICIES_VERSION"
readonly NODE_DIR="$RUN_DIR/node"
# Unix sockets must stay short, so containerd's state lives under /run.
readonly CONTAINERD_STATE=/run/vardhub-containerd
readonly CONTAINERD_SOCKET=$CONTAINERD_STATE/containerd.sock

# Debian packages the real node and the image need: iptables, ipset and conntrack for
# kube-proxy and the fence; libseccomp-dev and pkg-config for runc; musl-tools for the
# static pause binary and the vardhub image; busybox-static for the toolbox image;
# openssh-client for the tests' real sftp client.
readonly NODE_DEBIAN_PACKAGES=(iptables ipset conntrack libseccomp-dev pkg-config musl-tools busybox-static openssh-client)

ensure_debian_packages() {
    local missing=() p
    for p in "${NODE_DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) -eq 0 ]] || die "the real node needs Debian packages ${missing[*]}: sudo apt-get install ${missing[*]}"
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

build_node() {
    local out=$1 src
    GOBIN="$out" go install -trimpath -buildvcs=false -tags "no_btrfs no_devmapper no_zfs" \
        -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
        "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
    CGO_ENABLED=1 GOBIN="$out" go install -trimpath -buildvcs=false -tags seccomp \
        -ldflags "-X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
    mkdir -p "$out/cni"
    GOBIN="$out/cni" go install -trimpath -buildvcs=false -ldflags "-s -w" \
        "github.com/containernetworking/plugins/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
        "github.com/containernetworking/plugins/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
        "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" \
        "github.com/containernetworking/plugins/plugins/meta/portmap@$CNI_PLUGINS_VERSION"
    GOBIN="$out" go install -trimpath -buildvcs=false -ldflags "-s -w" \
        "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
    # The pod sandbox's process: Kubernetes' own pause.c, from the module the node is built
    # from, linked statically and put alone in an image.
    src=$(cd "$TOOLCHAIN_DIR/kubernetes" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -f "$src/build/pause/linux/pause.c" ]] || { echo "pause.c not found in the kubernetes module" >&2; return 1; }
    musl-gcc -static -Os -Wall -Werror -DVERSION="$KUBERNETES_VERSION" -o "$out/pause" "$src/build/pause/linux/pause.c"
    strip "$out/pause"
    mkdir -p "$out/pause-image"
    python3 "$SCRIPT_DIR/../../../operator/image/oci.py" --out "$out/pause-image" --name "$PAUSE_IMAGE" \
        --created 0 --user 65535:65535 --file "$out/pause=/pause:0755" --entrypoint /pause \
        --label "org.opencontainers.image.title=pause $KUBERNETES_VERSION (build/pause/linux/pause.c)" >/dev/null
    mkdir -p "$out/toolbox-image"
    python3 "$SCRIPT_DIR/../../../operator/image/oci.py" --out "$out/toolbox-image" --name "$TOOLBOX_IMAGE" \
        --created 0 --user 65532:65532 --file "/bin/busybox=/bin/busybox:0755" --entrypoint /bin/busybox \
        --label "org.opencontainers.image.title=busybox $(dpkg-query -W -f='${Version}' busybox-static) (Debian)" >/dev/null
}

build_coredns() {
    local out=$1
    GOBIN="$out" go install -trimpath -buildvcs=false -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

build_netpol() {
    local out=$1
    (
        cd "$TOOLCHAIN_DIR/netpol"
        go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/vardhub-netpol" .
    )
}

node_built() {
    local f
    for f in "$NODE_BIN_DIR"/{containerd,containerd-shim-runc-v2,ctr,runc,crictl,pause-image/image.tar,toolbox-image/image.tar} \
        "$NODE_BIN_DIR"/cni/{bridge,loopback,host-local,portmap} "$COREDNS_DIR/coredns" \
        "$K8S_DIR/kubelet" "$K8S_DIR/kube-proxy" "$NETPOL_DIR/vardhub-netpol"; do
        [[ -e "$f" ]] || return 1
    done
}

build_node_components() {
    ensure_debian_packages
    ensure_component node "$CONTAINERD_VERSION" "$NODE_BIN_DIR" build_node \
        containerd containerd-shim-runc-v2 ctr runc crictl pause-image/image.tar toolbox-image/image.tar \
        cni/bridge cni/loopback cni/host-local cni/portmap
    ensure_component coredns "$COREDNS_VERSION" "$COREDNS_DIR" build_coredns coredns
    ensure_component netpol "$KUBE_NETWORK_POLICIES_VERSION" "$NETPOL_DIR" build_netpol vardhub-netpol
}

ctr_() { "$NODE_BIN_DIR/ctr" --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }
crictl_() { "$NODE_BIN_DIR/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCKET" --timeout 10s "$@"; }

# ---------------------------------------------------------------------------
# The pod network: a bridge with the node's address, and the fence around it
# ---------------------------------------------------------------------------
setup_node_network() {
    need ip iptables sysctl
    log "creating the pod bridge $NODE_BRIDGE ($NODE_IP, pods in $NODE_POD_CIDR)"
    ip link add "$NODE_BRIDGE" type bridge 2>/dev/null || true
    ip addr replace "$NODE_IP/24" dev "$NODE_BRIDGE"
    ip link set "$NODE_BRIDGE" up
    # The kernel settings this node changes (here, and the kubelet's and kube-proxy's own),
    # recorded once so that `down` puts them back.
    if [[ ! -f "$NODE_DIR/sysctl.before" ]]; then
        local key
        for key in "${NODE_SYSCTLS[@]}"; do
            printf '%s=%s\n' "$key" "$(sysctl -n "$key" 2>/dev/null)"
        done >"$NODE_DIR/sysctl.before"
    fi
    # Pods reach Services through kube-proxy's rules, which bridged traffic only meets with
    # br_netfilter; and a Service's pod on the same bridge is reached by routing, which is
    # switched on for the bridge alone (the machine does not become a router).
    sysctl -qw "net.ipv4.conf.$NODE_BRIDGE.forwarding=1"
    sysctl -qw net.bridge.bridge-nf-call-iptables=1
    # The fence: nothing is routed from the bridge to another interface or back, so pods
    # reach each other and this machine's own addresses and nothing beyond it.
    iptables -w -N "$FIREWALL_CHAIN" 2>/dev/null || iptables -w -F "$FIREWALL_CHAIN"
    iptables -w -A "$FIREWALL_CHAIN" -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j DROP \
        -m comment --comment "vardhub: pods never reach beyond this machine"
    iptables -w -A "$FIREWALL_CHAIN" -o "$NODE_BRIDGE" ! -i "$NODE_BRIDGE" -j DROP \
        -m comment --comment "vardhub: nothing outside this machine reaches pods"
    iptables -w -C FORWARD -j "$FIREWALL_CHAIN" 2>/dev/null || iptables -w -I FORWARD 1 -j "$FIREWALL_CHAIN"
    # This machine's own processes never send to the kwok pods' simulated addresses, nor to a
    # Service address that kube-proxy did not translate to a real endpoint.
    iptables -w -N "$HOST_FENCE_CHAIN" 2>/dev/null || iptables -w -F "$HOST_FENCE_CHAIN"
    iptables -w -A "$HOST_FENCE_CHAIN" -d "$KWOK_POD_CIDR" -j REJECT \
        -m comment --comment "vardhub: kwok pods are simulated"
    iptables -w -A "$HOST_FENCE_CHAIN" -d "$SERVICE_CIDR" -j REJECT \
        -m comment --comment "vardhub: a Service without a real endpoint"
    iptables -w -C OUTPUT -j "$HOST_FENCE_CHAIN" 2>/dev/null || iptables -w -I OUTPUT 1 -j "$HOST_FENCE_CHAIN"
    # The servers on the node's address answer this machine and its pods, nobody else.
    iptables -w -N "$INPUT_FENCE_CHAIN" 2>/dev/null || iptables -w -F "$INPUT_FENCE_CHAIN"
    iptables -w -A "$INPUT_FENCE_CHAIN" -i lo -j RETURN
    iptables -w -A "$INPUT_FENCE_CHAIN" -i "$NODE_BRIDGE" -j RETURN
    iptables -w -A "$INPUT_FENCE_CHAIN" -d "$NODE_IP" -j DROP \
        -m comment --comment "vardhub: nothing from outside reaches the node address"
    iptables -w -C INPUT -j "$INPUT_FENCE_CHAIN" 2>/dev/null || iptables -w -I INPUT 1 -j "$INPUT_FENCE_CHAIN"
}

# NetworkPolicy enforcement: the first packet of every new connection from or to a pod goes
# to the engine's queue, after Service addresses are translated (mangle POSTROUTING sees
# routed, bridged and local traffic; mangle INPUT sees pods' connections to this machine's
# own servers). This machine's root processes (the kubelet's probes, the control plane) are
# not policed, as upstream does. With no engine listening the kernel drops queued packets:
# enforcement fails closed.
setup_netpol_rules() {
    local chain
    for chain in "$NETPOL_CHAIN" "$NETPOL_INPUT_CHAIN"; do
        iptables -w -t mangle -N "$chain" 2>/dev/null || iptables -w -t mangle -F "$chain"
        iptables -w -t mangle -A "$chain" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
    done
    iptables -w -t mangle -A "$NETPOL_CHAIN" -m owner --uid-owner 0 -j RETURN
    iptables -w -t mangle -A "$NETPOL_CHAIN" -s "$NODE_POD_CIDR" -j NFQUEUE --queue-num "$NETPOL_QUEUE" \
        -m comment --comment "vardhub: NetworkPolicy egress of pods"
    iptables -w -t mangle -A "$NETPOL_CHAIN" -d "$NODE_POD_CIDR" -j NFQUEUE --queue-num "$NETPOL_QUEUE" \
        -m comment --comment "vardhub: NetworkPolicy ingress of pods"
    iptables -w -t mangle -A "$NETPOL_INPUT_CHAIN" -i "$NODE_BRIDGE" -s "$NODE_POD_CIDR" -j NFQUEUE \
        --queue-num "$NETPOL_QUEUE" -m comment --comment "vardhub: NetworkPolicy egress of pods to this machine"
    iptables -w -t mangle -C POSTROUTING -j "$NETPOL_CHAIN" 2>/dev/null ||
        iptables -w -t mangle -A POSTROUTING -j "$NETPOL_CHAIN"
    iptables -w -t mangle -C INPUT -j "$NETPOL_INPUT_CHAIN" 2>/dev/null ||
        iptables -w -t mangle -A INPUT -j "$NETPOL_INPUT_CHAIN"
}

teardown_netpol_rules() {
    command -v iptables >/dev/null 2>&1 || return 0
    while iptables -w -t mangle -D POSTROUTING -j "$NETPOL_CHAIN" 2>/dev/null; do :; done
    while iptables -w -t mangle -D INPUT -j "$NETPOL_INPUT_CHAIN" 2>/dev/null; do :; done
    local chain
    for chain in "$NETPOL_CHAIN" "$NETPOL_INPUT_CHAIN"; do
        iptables -w -t mangle -F "$chain" 2>/dev/null || true
        iptables -w -t mangle -X "$chain" 2>/dev/null || true
    done
}

netpol_listening() {
    awk -v q="$NETPOL_QUEUE" '$1 == q {found = 1} END {exit !found}' /proc/net/netfilter/nfnetlink_queue 2>/dev/null
}

teardown_node_network() {
    local ns
    teardown_netpol_rules
    if command -v iptables >/dev/null 2>&1; then
        while iptables -w -D FORWARD -j "$FIREWALL_CHAIN" 2>/dev/null; do :; done
        while iptables -w -D OUTPUT -j "$HOST_FENCE_CHAIN" 2>/dev/null; do :; done
        while iptables -w -D INPUT -j "$INPUT_FENCE_CHAIN" 2>/dev/null; do :; done
        iptables -w -F "$INPUT_FENCE_CHAIN" 2>/dev/null || true
        iptables -w -X "$INPUT_FENCE_CHAIN" 2>/dev/null || true
        iptables -w -F "$FIREWALL_CHAIN" 2>/dev/null || true
        iptables -w -X "$FIREWALL_CHAIN" 2>/dev/null || true
        iptables -w -F "$HOST_FENCE_CHAIN" 2>/dev/null || true
        iptables -w -X "$HOST_FENCE_CHAIN" 2>/dev/null || true
    fi
    [[ -x "$K8S_DIR/kube-proxy" ]] && "$K8S_DIR/kube-proxy" --cleanup >/dev/null 2>&1 || true
    remove_kube_chains
    # Network namespaces the CNI plugins made for pods that were not torn down.
    for ns in /run/netns/cni-*; do
        [[ -e "$ns" ]] || continue
        ip netns delete "$(basename "$ns")" 2>/dev/null || true
    done
    ip link delete "$NODE_BRIDGE" 2>/dev/null || true
    local setting
    if [[ -f "$NODE_DIR/sysctl.before" ]]; then
        while read -r setting; do
            [[ "$setting" == *=?* ]] && sysctl -qw "$setting" 2>/dev/null || true
        done <"$NODE_DIR/sysctl.before"
    fi
}

# The chains the kubelet and kube-proxy made (KUBE-*), with every rule that jumps to them,
# in each table of iptables and ip6tables.
remove_kube_chains() {
    local tool table chain rule
    for tool in iptables ip6tables; do
        command -v "$tool" >/dev/null 2>&1 || continue
        for table in filter nat mangle; do
            for chain in $("$tool" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
                "$tool" -w -t "$table" -S 2>/dev/null | grep -E -- "-j $chain( |$)" | grep -E '^-A ' |
                    while read -r rule; do
                        # The rule as iptables printed it, quotes and all.
                        eval "\"\$tool\" -w -t \"\$table\" -D ${rule#-A }" 2>/dev/null || true
                    done || true
                "$tool" -w -t "$table" -F "$chain" 2>/dev/null || true
            done
            for chain in $("$tool" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
                "$tool" -w -t "$table" -X "$chain" 2>/dev/null || true
            done
        done
    done
}

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
write_node_configs() {
    local cfg="$NODE_DIR/config"
    mkdir -p "$cfg" "$NODE_DIR/cni" "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs" "$CONTAINERD_STATE"
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
    sign kube-proxy "/CN=system:kube-proxy" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    sign coredns "/CN=vardhub-coredns" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    sign netpol "/CN=vardhub-netpol" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    write_kubeconfig "$cfg/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
    write_kubeconfig "$cfg/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
    write_kubeconfig "$cfg/coredns.kubeconfig" coredns vardhub-coredns
    write_kubeconfig "$cfg/netpol.kubeconfig" netpol vardhub-netpol

    cat >"$cfg/containerd.toml" <<EOF
version = 3
root = "$NODE_DIR/containerd"
state = "$CONTAINERD_STATE"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCKET"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"

[plugins."io.containerd.cri.v1.runtime"]
  # Without CAP_SYS_RESOURCE (as on these machines) runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$NODE_BIN_DIR/cni"]
    conf_dir = "$NODE_DIR/cni"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$NODE_BIN_DIR/runc"
        Root = "$CONTAINERD_STATE/runc"
        SystemdCgroup = false
EOF

    cat >"$NODE_DIR/cni/10-vardhub.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vardhub",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "rangeStart": "10.250.0.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE_DIR/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

    # Pods resolve cluster names only; nothing is forwarded to outside resolvers.
    printf 'nameserver %s\n' "$NODE_IP" >"$cfg/resolv.conf"
    cat >"$cfg/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These machines run cgroup v1 without systemd as init.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS:
- $NODE_IP
resolvConf: $cfg/resolv.conf
podLogsDir: $NODE_DIR/pod-logs
registerWithTaints:
- key: $NODE_TAINT_KEY
  value: "true"
  effect: NoSchedule
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
localStorageCapacityIsolation: false
EOF

    cat >"$cfg/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $cfg/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $NODE_POD_CIDR
bindAddress: $NODE_IP
# NodePorts open on the node's address only, never on the machine's other interfaces.
nodePortAddresses: [$NODE_IP/32]
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
conntrack:
  # Leave the machine's conntrack table size and timeouts alone.
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF

    cat >"$cfg/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$((COREDNS_HEALTH_PORT + 1))
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $cfg/coredns.kubeconfig vardhub-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# CoreDNS reads Services, EndpointSlices, Pods and Namespaces, as its own ClusterRole does.
authorise_coredns() {
    kubectl_ apply --server-side --field-manager=vardhub-cluster -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: vardhub-coredns
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
metadata:
  name: vardhub-coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: vardhub-coredns
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: vardhub-coredns
EOF
}

# The NetworkPolicy engine reads policies, pods and namespaces, nothing else.
authorise_netpol() {
    kubectl_ apply --server-side --field-manager=vardhub-cluster -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: vardhub-netpol
rules:
- apiGroups: [""]
  resources: [pods, namespaces]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: vardhub-netpol
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: vardhub-netpol
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: vardhub-netpol
EOF
}

# The kube-dns Service, so that pods' DNS policy ClusterFirst and NetworkPolicies that name
# kube-system's DNS find it. Its endpoint is CoreDNS on the node's address.
create_dns_service() {
    kubectl_ apply --server-side --field-manager=vardhub-cluster -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: vardhub-cluster
addressType: IPv4
endpoints:
- addresses: ["$NODE_IP"]
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

# ---------------------------------------------------------------------------
# Start and stop
# ---------------------------------------------------------------------------
node_ready() {
    [[ $(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

start_containerd() {
    # containerd finds its shim on PATH; its own must come first.
    PATH="$NODE_BIN_DIR:$PATH" start_component containerd "$NODE_BIN_DIR/containerd" \
        --config "$NODE_DIR/config/containerd.toml" --log-level warn
    wait_until containerd 60 ctr_ version
}

# import_image FILE: an OCI image tarball into the node's containerd, as the kubelet sees it.
# Besides the name, each image gets its reference by digest (repository@sha256:...), which
# CRI resolves only when such a record exists (a pull makes one; an import does not).
import_image() {
    local out name pinned
    out=$(ctr_ images import --all-platforms "$1" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
    tar -xOf "$1" index.json | python3 -c '
import json, sys
for m in json.load(sys.stdin)["manifests"]:
    name = m.get("annotations", {}).get("io.containerd.image.name")
    if name:
        repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        print(name, repository + "@" + m["digest"])
' | while read -r name pinned; do
        out=$(ctr_ images tag --force "$name" "$pinned" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
    done
}

start_node() {
    local cfg="$NODE_DIR/config"
    write_node_configs
    start_containerd
    import_image "$NODE_BIN_DIR/pause-image/image.tar"
    import_image "$NODE_BIN_DIR/toolbox-image/image.tar"
    authorise_coredns
    start_component coredns "$COREDNS_DIR/coredns" -conf "$cfg/Corefile"
    wait_until coredns 60 curl -fsS --max-time 2 "http://127.0.0.1:$((COREDNS_HEALTH_PORT + 1))/ready"
    create_dns_service
    authorise_netpol
    start_component netpol "$NETPOL_DIR/vardhub-netpol" \
        --kubeconfig="$cfg/netpol.kubeconfig" --node-name="$NODE_NAME" \
        --nfqueue-id="$NETPOL_QUEUE" --metrics-address="127.0.0.1:$NETPOL_METRICS_PORT" --v=1
    wait_until netpol 60 netpol_listening
    setup_netpol_rules
    start_component kubelet "$K8S_DIR/kubelet" \
        --config="$cfg/kubelet.yaml" \
        --kubeconfig="$cfg/kubelet.kubeconfig" \
        --root-dir="$NODE_DIR/kubelet" \
        --cert-dir="$NODE_DIR/kubelet/pki" \
        --hostname-override="$NODE_NAME" \
        --node-ip="$NODE_IP" \
        --node-labels="vardhub.io/runtime=containerd" \
        --v=1
    start_component kube-proxy "$K8S_DIR/kube-proxy" --config="$cfg/kube-proxy.yaml" --v=1
    wait_until kubelet 120 node_ready
    log "real node $NODE_NAME is Ready (containerd $CONTAINERD_VERSION, runc $RUNC_VERSION)"
}

# Stops every pod sandbox through CRI, so that the CNI plugin releases its addresses and
# network namespaces; then the kubelet and kube-proxy are stopped by stop_all.
stop_node_pods() {
    component_pid containerd >/dev/null || return 0
    local pid
    if pid=$(component_pid kubelet); then
        log "stopping kubelet (pid $pid) before its pods"
        stop_pids "kubelet:$pid"
        rm -f "$PID_DIR/kubelet.pid"
        STOPPED+=(kubelet)
    fi
    local pods
    pods=$(crictl_ pods -q 2>/dev/null) || true
    if [[ -n "$pods" ]]; then
        log "stopping $(wc -w <<<"$pods") pod sandbox(es) on $NODE_NAME"
        # shellcheck disable=SC2086
        crictl_ stopp $pods >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        crictl_ rmp -f $pods >/dev/null 2>&1 || true
    fi
}

# Whatever the node mounted below the run dir or containerd's state (pod volumes, container
# root filesystems, sandbox shm), deepest first.
unmount_node() {
    local m mounts
    # Any container process still alive (its shim gone) is in a cgroup of the kubelet's.
    local procs
    procs=$(find /sys/fs/cgroup/*/kubepods* -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u) || true
    if [[ -n "$procs" ]]; then
        log "killing $(wc -w <<<"$procs") container process(es) left behind"
        # shellcheck disable=SC2086
        kill -KILL $procs 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            [[ -z "$(find /sys/fs/cgroup/*/kubepods* -name cgroup.procs -exec cat {} + 2>/dev/null)" ]] && break
            sleep 0.1
        done
    fi
    mounts=$(awk '{print $5}' /proc/self/mountinfo |
        grep -E "^($NODE_DIR|$CONTAINERD_STATE)(/|$)" | sort -r) || true
    for m in $mounts; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$CONTAINERD_STATE" 2>/dev/null || true
    # The cgroups the kubelet made for pods (cgroup v1: one tree per controller).
    for m in /sys/fs/cgroup/*/kubepods*; do
        [[ -d "$m" ]] || continue
        find "$m" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

node_leftovers() {
    local left=()
    ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && left+=("bridge $NODE_BRIDGE")
    compgen -G "/run/netns/cni-*" >/dev/null && left+=("network namespaces /run/netns/cni-*")
    grep -qE " ($NODE_DIR|$CONTAINERD_STATE)(/| )" /proc/self/mountinfo && left+=("mounts below $NODE_DIR")
    iptables -w -n -L "$FIREWALL_CHAIN" >/dev/null 2>&1 && left+=("iptables chain $FIREWALL_CHAIN")
    iptables -w -n -L "$INPUT_FENCE_CHAIN" >/dev/null 2>&1 && left+=("iptables chain $INPUT_FENCE_CHAIN")
    iptables -w -t mangle -n -L "$NETPOL_CHAIN" >/dev/null 2>&1 && left+=("iptables chain $NETPOL_CHAIN")
    compgen -G "/sys/fs/cgroup/*/kubepods*" >/dev/null && left+=("the kubelet's cgroups")
    iptables -w -S 2>/dev/null | grep -q '^-N KUBE-' && left+=("iptables chains KUBE-*")
    printf '%s' "${left[*]:-}"
}

node_versions() {
    printf 'containerd=%s\nrunc=%s\ncni-plugins=%s\ncoredns=%s\nkube-network-policies=%s\n' "$CONTAINERD_VERSION" \
        "$("$NODE_BIN_DIR/runc" --version 2>/dev/null | awk 'NR==1 {print $3}')" "$CNI_PLUGINS_VERSION" "$COREDNS_VERSION" \
        "$KUBE_NETWORK_POLICIES_VERSION"
}
