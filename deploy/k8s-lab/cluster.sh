#!/usr/bin/env bash
# A real single-node Kubernetes (1.20, built by build.sh from Debian's source package) for Cove's chart tests.
#
#   cluster.sh up      build/reuse the binaries, start etcd, apiserver, controller-manager, scheduler, kube-proxy,
#                      containerd and kubelet in $COVE_K8S_LAB, import the images, wait for the node; prints timings
#   cluster.sh down    stop everything by pid, undo every host change, remove $COVE_K8S_LAB
#   cluster.sh env     print KUBECONFIG=... and COVE_K8S_BIN=...
#   cluster.sh images  rebuild Cove's image from this checkout and import it into the running cluster
#   cluster.sh volumes [N]  remove released hostPath volumes (and their data), keep N empty ones Available
#   cluster.sh tag NEW  give the imported Cove image a second tag (an upgrade's "new image" with no registry)
#
# Everything lives under $COVE_K8S_LAB (default /var/tmp/cove-k8s/lab) except what the kernel and kubelet
# insist on: the bridge covek8s0 (10.89.0.1/24, also the node's and the apiserver's address), a route for the
# service range through it, iptables rules tagged "cove-k8s", /var/lib/kubelet, /var/log/pods, /var/lib/cni and
# /run/netns entries; `down` removes them all.
#
# Network safety, in place before kubelet first starts: kubelet runs with AWS_EC2_METADATA_DISABLED=true; packets
# to 169.254.0.0/16 are dropped (host output and anything forwarded), and nothing is forwarded between the bridge
# and any other interface. The cluster talks only over loopback and its own bridge.
# Needs root on Debian 12.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${COVE_K8S_CACHE:-/var/tmp/cove-k8s}
LAB=${COVE_K8S_LAB:-$CACHE/lab}
BR=covek8s0 NODE_IP=10.89.0.1 POD_CIDR=10.89.0.0/24 SVC_CIDR=10.96.0.0/16 NODE=cove-node
TOKEN_FILE=$LAB/run/admin-token
TAG="cove-k8s"
RUN=$LAB/run
CTR() { ctr -a "$LAB/containerd/containerd.sock" -n k8s.io "$@"; }

ts() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(ts)"; }
wait_for() { # seconds, description, command...
  local n=$(( $1 * 5 )) what=$2; shift 2
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out waiting for $what" >&2; return 1
}
bin_dir() { "$HERE/build.sh" | tail -1; }

# ---- host rules, each tagged with a comment so `down` removes exactly these ---------------------------------
rule() { # table chain rule... : insert once
  local t=$1 c=$2; shift 2
  iptables -t "$t" -C "$c" "$@" -m comment --comment "$TAG" 2>/dev/null || iptables -t "$t" -I "$c" "$@" -m comment --comment "$TAG"
}
safety_up() {
  # mangle runs before filter, so kube-proxy's own FORWARD accepts cannot come before these drops.
  rule mangle OUTPUT -d 169.254.0.0/16 -j DROP
  rule mangle FORWARD -d 169.254.0.0/16 -j DROP
  rule mangle FORWARD -i "$BR" ! -o "$BR" -j DROP
  rule mangle FORWARD -o "$BR" ! -i "$BR" -j DROP
}
safety_down() {
  local t
  for t in mangle filter nat; do
    { iptables -t "$t" -S 2>/dev/null | grep -- "--comment $TAG" || true; } | sed 's/^-A /-D /' | while read -r r; do
      eval "iptables -t $t $r" || true
    done
  done
}

# ---- configuration files -------------------------------------------------------------------------------------
write_configs() {
  mkdir -p "$RUN" "$LAB/containerd" "$LAB/cni/net.d" "$LAB/pv" "$LAB/kubelet" "$LAB/kubelet-plugins"
  cat > "$LAB/containerd/config.toml" <<EOF
version = 2
root = "$LAB/containerd/root"
state = "$LAB/containerd/state"
oom_score = 0
[grpc]
  address = "$LAB/containerd/containerd.sock"
[ttrpc]
  address = "$LAB/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/cove-lab/pause:3.4.1"
  enable_selinux = false
  restrict_oom_score_adj = true
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
    conf_dir = "$LAB/cni/net.d"
EOF
  cat > "$LAB/cni/net.d/10-cove.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "cove-k8s", "plugins": [
  {"type": "bridge", "bridge": "$BR", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$LAB/cni/ipam"}},
  {"type": "loopback"}]}
EOF
  [ -f "$RUN/sa.key" ] || { openssl genrsa -out "$RUN/sa.key" 2048 && openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub"; } 2>/dev/null
  [ -f "$TOKEN_FILE" ] || python3 -c 'import secrets; print(secrets.token_hex(24))' > "$TOKEN_FILE"
  echo "$(cat "$TOKEN_FILE"),admin,admin,system:masters" > "$RUN/tokens.csv"
  chmod 600 "$TOKEN_FILE" "$RUN/tokens.csv" "$RUN/sa.key"
  cat > "$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cove-lab
  cluster: {server: "https://$NODE_IP:16443", certificate-authority: "$RUN/certs/apiserver.crt"}
users:
- name: admin
  user: {token: $(cat "$TOKEN_FILE")}
contexts:
- name: cove-lab
  context: {cluster: cove-lab, user: admin, namespace: default}
current-context: cove-lab
EOF
  chmod 600 "$RUN/kubeconfig"
}

start() { # name, command... : background, log and pid under $RUN
  local name=$1; shift
  if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then return 0; fi
  "$@" > "$RUN/$name.log" 2>&1 &
  echo $! > "$RUN/$name.pid"
}

TAG_COVE=${COVE_IMAGE_TAG:-0.1.0}
build_images() { # Cove's image always (from this checkout; the Debian base layer is cached), PostgreSQL's once
  if [ -f "$CACHE/cove-postgres-15.oci.tar" ]; then
    nice -n 10 python3 "$REPO/deploy/image/build.py" --out "$CACHE" --tag "$TAG_COVE" --only cove >/dev/null
  else
    nice -n 10 python3 "$REPO/deploy/image/build.py" --out "$CACHE" --tag "$TAG_COVE" >/dev/null
  fi
}
import_images() {
  local img
  for img in "$CACHE/pause-3.4.1.oci.tar" "$CACHE/cove-$TAG_COVE.oci.tar" "$CACHE/cove-postgres-15.oci.tar"; do
    CTR images import --no-unpack "$img" >/dev/null
  done
}

up() {
  local T0 B KC
  T0=$(ts)
  B=$(bin_dir)
  echo "binaries: $B ($(since "$T0") s)"
  # What the cluster runs on (build.sh installs these too, but only when it builds).
  if ! command -v etcd containerd runc ctr iptables >/dev/null || [ ! -x /usr/lib/cni/bridge ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server containerd runc \
      containernetworking-plugins iptables conntrack iproute2 openssl >/dev/null
  fi
  # The images: pause (from the same source tree) and Cove's own (deploy/image/build.py), built once and cached.
  local t; t=$(ts)
  [ -f "$CACHE/pause-3.4.1.oci.tar" ] || python3 "$REPO/deploy/image/ociimage.py" "$CACHE/pause-3.4.1.oci.tar" \
    cove-lab/pause:3.4.1 --file "$B/pause:/pause" --entrypoint '["/pause"]' >/dev/null
  build_images
  echo "images ready: $(since "$t") s"
  write_configs
  KC="--kubeconfig=$RUN/kubeconfig"

  # 1. The bridge (node address, apiserver address, pods' gateway) and the safety rules: before anything runs.
  ip link show "$BR" >/dev/null 2>&1 || { ip link add "$BR" type bridge && ip addr add "$NODE_IP/24" dev "$BR"; }
  ip link set "$BR" up
  # Service IPs go to the bridge too (kube-proxy rewrites them to pod IPs); never out of the default route.
  ip route replace "$SVC_CIDR" dev "$BR" src "$NODE_IP"
  safety_up

  # 2. containerd with its own root, state and socket; images imported.
  t=$(ts)
  start containerd containerd --config "$LAB/containerd/config.toml"
  wait_for 20 containerd CTR version
  import_images
  echo "containerd up, images imported: $(since "$t") s"

  # 3. etcd and the apiserver (bridge address only: reachable from the host and the pods, nowhere else).
  t=$(ts)
  start etcd etcd --data-dir "$LAB/etcd" --listen-client-urls http://127.0.0.1:23791 \
    --advertise-client-urls http://127.0.0.1:23791 --listen-peer-urls http://127.0.0.1:23801 \
    --initial-advertise-peer-urls http://127.0.0.1:23801 --initial-cluster default=http://127.0.0.1:23801
  start apiserver "$B/kube-apiserver" --etcd-servers=http://127.0.0.1:23791 --bind-address="$NODE_IP" \
    --advertise-address="$NODE_IP" --secure-port=16443 --cert-dir="$RUN/certs" \
    --service-cluster-ip-range="$SVC_CIDR" --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$RUN/sa.pub" --service-account-signing-key-file="$RUN/sa.key" \
    --token-auth-file="$RUN/tokens.csv" --authorization-mode=Node,RBAC --allow-privileged=true \
    --kubelet-preferred-address-types=InternalIP --insecure-port=0 --profiling=false
  wait_for 60 "the apiserver" "$B/kubectl" "$KC" get --raw /readyz
  echo "etcd + apiserver ready: $(since "$t") s"

  # 4. controller-manager, scheduler, kube-proxy; then kubelet (safety rules are already in place).
  t=$(ts)
  start kcm "$B/kube-controller-manager" "$KC" --authentication-kubeconfig="$RUN/kubeconfig" \
    --authorization-kubeconfig="$RUN/kubeconfig" --bind-address=127.0.0.1 --secure-port=10257 --port=0 \
    --leader-elect=false --service-account-private-key-file="$RUN/sa.key" --root-ca-file="$RUN/certs/apiserver.crt" \
    --use-service-account-credentials=false --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false --controllers='*'
  start scheduler "$B/kube-scheduler" "$KC" --authentication-kubeconfig="$RUN/kubeconfig" \
    --authorization-kubeconfig="$RUN/kubeconfig" --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false
  # --masquerade-all: a pod reaching a Service whose endpoint is on the same bridge gets its reply back through
  # the host (no br_netfilter needed); conntrack limits left as the host has them.
  start kube-proxy "$B/kube-proxy" "$KC" --proxy-mode=iptables --hostname-override="$NODE" \
    --bind-address="$NODE_IP" --cluster-cidr="$POD_CIDR" --masquerade-all --conntrack-max-per-core=0 \
    --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249
  start kubelet env AWS_EC2_METADATA_DISABLED=true "$B/kubelet" "$KC" --root-dir="$LAB/kubelet" \
    --cert-dir="$LAB/kubelet/pki" --container-runtime=remote \
    --container-runtime-endpoint="unix://$LAB/containerd/containerd.sock" \
    --image-service-endpoint="unix://$LAB/containerd/containerd.sock" --runtime-request-timeout=5m \
    --cgroup-driver=cgroupfs --fail-swap-on=false --cgroups-per-qos=false --enforce-node-allocatable="" \
    --pod-infra-container-image=docker.io/cove-lab/pause:3.4.1 --register-node=true --hostname-override="$NODE" \
    --node-ip="$NODE_IP" --address="$NODE_IP" --port=10250 --read-only-port=0 \
    --healthz-bind-address=127.0.0.1 --healthz-port=10248 --oom-score-adj=0 \
    --volume-plugin-dir="$LAB/kubelet-plugins" --resolv-conf=/etc/resolv.conf \
    --anonymous-auth=true --authorization-mode=AlwaysAllow \
    --image-gc-high-threshold=100 --eviction-hard='' --v=1
  node_ready() { [ "$("$B/kubectl" "$KC" get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
  wait_for 120 "node Ready" node_ready
  wait_for 60 "the default ServiceAccount" "$B/kubectl" "$KC" get serviceaccount default
  # Storage: claims (the bundled database's, the reservoir's) bind to hostPath volumes inside the lab folder.
  volumes 2
  echo "controller-manager, scheduler, kube-proxy, kubelet: node Ready: $(since "$t") s"
  echo "cluster up: $(since "$T0") s"
  env_lines
}

volumes() { # N: released volumes are removed with their data; then N empty ones are Available
  local B KC="--kubeconfig=$RUN/kubeconfig" pv have
  B=$(ls -d "$CACHE"/bin-* | head -1)
  for pv in $("$B/kubectl" "$KC" get pv -l cove.dev/lab=true \
      -o 'jsonpath={range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}' | awk '$2=="Released"||$2=="Failed"{print $1}'); do
    "$B/kubectl" "$KC" delete pv "$pv" --wait=false >/dev/null && rm -rf "${LAB:?}/pv/$pv"
  done
  have=$("$B/kubectl" "$KC" get pv -l cove.dev/lab=true -o 'jsonpath={range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Available$' || true)
  while [ "$have" -lt "$1" ]; do
    pv=cove-lab-$(python3 -c 'import secrets; print(secrets.token_hex(3))')
    # uid 999 owns it: the trial database runs as 999 and hostPath volumes get no fsGroup.
    mkdir -p "$LAB/pv/$pv" && chown 999:999 "$LAB/pv/$pv" && chmod 770 "$LAB/pv/$pv"
    "$B/kubectl" "$KC" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: $pv, labels: {cove.dev/lab: "true"}}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$LAB/pv/$pv", type: Directory}
EOF
    have=$((have + 1))
  done
}

env_lines() {
  echo "KUBECONFIG=$RUN/kubeconfig"
  echo "COVE_K8S_BIN=$(ls -d "$CACHE"/bin-* | head -1)"
}

stop_pid() {
  local f=$RUN/$1.pid p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$f"
}

down() {
  local B KC="--kubeconfig=$RUN/kubeconfig" sock="$LAB/containerd/containerd.sock"
  B=$(ls -d "$CACHE"/bin-* 2>/dev/null | head -1)
  # 1. Let kubelet tear the pods down (CNI DEL, volume unmounts, network namespaces).
  if [ -f "$RUN/kubelet.pid" ] && kill -0 "$(cat "$RUN/kubelet.pid")" 2>/dev/null && [ -n "$B" ]; then
    "$B/kubectl" "$KC" delete namespaces -l cove.dev/lab-test=true --wait=false >/dev/null 2>&1 || true
    for ns in $("$B/kubectl" "$KC" get ns -o name 2>/dev/null | sed 's|namespace/||' | grep -vE '^kube-|^default$'); do
      "$B/kubectl" "$KC" delete ns "$ns" --wait=false >/dev/null 2>&1 || true
    done
    "$B/kubectl" "$KC" delete all --all -n default --grace-period=1 --timeout=60s >/dev/null 2>&1 || true
    "$B/kubectl" "$KC" delete pods --all -A --grace-period=1 --timeout=60s >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do [ -z "$(CTR tasks ls -q 2>/dev/null)" ] && break; sleep 1; done
  fi
  stop_pid kubelet
  stop_pid kube-proxy
  # 2. Anything left in our containerd, then containerd and the shims it started (found by our socket).
  if [ -f "$LAB/containerd/containerd.pid" ] || [ -f "$RUN/containerd.pid" ]; then
    for t in $(CTR tasks ls -q 2>/dev/null); do CTR tasks kill -s KILL "$t" 2>/dev/null; sleep 0.3; CTR tasks delete "$t" 2>/dev/null || true; done
    for c in $(CTR containers ls -q 2>/dev/null); do CTR containers delete "$c" 2>/dev/null || true; done
  fi
  stop_pid containerd
  local p
  for p in /proc/[0-9]*; do
    if grep -qa -- "$sock" "$p/cmdline" 2>/dev/null; then kill "${p#/proc/}" 2>/dev/null || true; fi
  done
  stop_pid kcm; stop_pid scheduler; stop_pid apiserver; stop_pid etcd
  # 3. Mounts under the lab and the pods' network namespaces, deepest first.
  local m
  for m in $(awk '{print $2}' /proc/mounts | grep -E "^$LAB/|^/var/lib/kubelet/|^/run/netns/cni-|^/run/containerd/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  for m in /run/netns/cni-*; do [ -e "$m" ] && rm -f "$m"; done
  # 4. Network: kube-proxy's chains, our rules, the service route, the bridge.
  if [ -n "$B" ] && [ -x "$B/kube-proxy" ]; then "$B/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  local t ch
  for t in filter nat mangle; do
    for ch in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do iptables -t "$t" -F "$ch" 2>/dev/null || true; done
    { iptables -t "$t" -S 2>/dev/null | grep -E '^-A .* -j KUBE-' || true; } | sed 's/^-A /-D /' | while read -r r; do eval "iptables -t $t $r" 2>/dev/null || true; done
    for ch in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do iptables -t "$t" -X "$ch" 2>/dev/null || true; done
  done
  safety_down
  ip route del "$SVC_CIDR" dev "$BR" 2>/dev/null || true
  ip link del "$BR" 2>/dev/null || true
  # 5. What kubelet, containerd and CNI hard-code outside the lab folder (the lab is their only user here).
  rm -rf /var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd/io.containerd.runtime.v2.task/k8s.io
  rmdir /run/containerd/io.containerd.runtime.v2.task /run/containerd/runc/k8s.io /run/containerd/runc \
    /run/containerd/s /run/containerd /run/netns 2>/dev/null || true  # each only when empty
  rm -rf "$LAB"
  echo "cluster down; mounts left: $(grep -cE "$LAB|/run/netns/cni-" /proc/mounts || true)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  volumes) volumes "${2:-2}" ;;
  images) build_images && import_images ;;
  tag) CTR images tag --force "docker.io/library/cove:$TAG_COVE" "docker.io/library/cove:${2:?a tag}" >/dev/null ;;
  *) echo "usage: $0 up|down|env|images|volumes [N]|tag NEW" >&2; exit 2 ;;
esac
