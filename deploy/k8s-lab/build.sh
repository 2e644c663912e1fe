#!/usr/bin/env bash
# Build the Kubernetes binaries the local test cluster runs, from Debian 12's `kubernetes` source package
# (no registry ships a kube-apiserver), and cache them outside the checkout, keyed by the source version:
#   $COVE_K8S_CACHE/bin-<version>/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kube-proxy,kubectl,pause}
# Run as root on Debian 12 (it installs the build dependencies with apt). A cache that is complete is reused.
# Prints the bin folder on its last line.
set -euo pipefail
CACHE=${COVE_K8S_CACHE:-/var/tmp/cove-k8s}
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE"

# Source packages come from deb-src entries; the machine's own list has only binaries, so add a source list
# for the same suite (removed again at the end: the host keeps no change).
SRC_LIST=/etc/apt/sources.list.d/cove-k8s-src.sources
have_src() { apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version:'; }
if ! have_src; then
  cat > "$SRC_LIST" <<'EOS'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
  trap 'rm -f "$SRC_LIST"' EXIT
  apt-get update -qq
fi
VERSION=$(apt-cache showsrc kubernetes | awk '/^Version:/{print $2; exit}')
BIN="$CACHE/bin-$VERSION"

complete() { for b in "${BINS[@]}" kubectl pause; do [ -x "$BIN/$b" ] || return 1; done; }
if complete; then echo "$BIN"; exit 0; fi

# etcd, containerd, the CNI plugins and conntrack/iptables are what the cluster runs on; Go, gcc and Debian's
# reflect2 are what the build needs (the vendored modern-go/reflect2 crashes under Go >= 1.18).
apt-get install -y -qq --no-install-recommends dpkg-dev golang-go golang-github-modern-go-reflect2-dev gcc libc6-dev \
  rsync etcd-server containerd containernetworking-plugins iptables conntrack iproute2 openssl curl >/dev/null

WORK="$CACHE/src-$VERSION"
if [ ! -d "$WORK/tree" ]; then
  rm -rf "$WORK" && mkdir -p "$WORK" && (cd "$WORK" && apt-get source -qq --download-only kubernetes >/dev/null \
    && dpkg-source -x --no-check ./kubernetes_*.dsc tree >/dev/null)
fi
cd "$WORK/tree"
R2=vendor/github.com/modern-go/reflect2
if [ ! -f "$R2/.from-debian" ]; then
  rm -rf "$R2" && mkdir -p "$R2" && cp -r /usr/share/gocode/src/github.com/modern-go/reflect2/. "$R2/" && touch "$R2/.from-debian"
fi
mkdir -p "$BIN"
# As debian/rules does: the tree's own Makefile (GOPATH mode, and the generated files such as the OpenAPI
# definitions, which the source package does not ship). Outputs land in _output/bin.
mkdir -p .go/src/k8s.io && { [ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes; }
rm -rf _output
T0=$(date +%s)
env HOME="$WORK/home" GOPATH="$WORK/tree/.go" CGO_ENABLED=0 GOCACHE="$CACHE/gocache" GOFLAGS= \
  nice -n 19 make WHAT="$(printf 'cmd/%s ' "${BINS[@]}")" >"$WORK/make.log" 2>&1 \
  || { tail -30 "$WORK/make.log" >&2; exit 1; }
for b in "${BINS[@]}"; do cp "_output/bin/$b" "$BIN/$b"; done
echo "built ${BINS[*]} in $(( $(date +%s) - T0 )) s" >&2
# The pause image's binary, from the same tree.
[ -x "$BIN/pause" ] || gcc -Os -static -o "$BIN/pause" build/pause/linux/pause.c
# kubectl of the same version: Debian's kubernetes-client, unpacked (the machine's /usr/bin/kubectl may be another).
if [ ! -x "$BIN/kubectl" ]; then
  D=$(mktemp -d) && (cd "$D" && apt-get download -qq kubernetes-client >/dev/null && dpkg -x kubernetes-client_*.deb x) \
    && cp "$D/x/usr/bin/kubectl" "$BIN/kubectl" && rm -rf "$D"
fi
complete && echo "$BIN"
