#!/usr/bin/env bash
# Idempotent set-up of a quicreality development / CI machine (Debian 12 bookworm, root).
#
# What it does (each step is skipped quickly when already done):
#   1. apt: deb-src entries (for `apt-get source curl`), one `apt-get update`, the system packages
#      (traffic tools, capture tools, Go + Debian's quic-go 0.29, ngtcp2 0.12, build deps for curl).
#   2. Python: `pip install -e '.[dev,lab]'` (stamp: python + repo path + sha256(pyproject.toml)),
#      then the mypyc build of the hot modules in place (`python -m quicreality.build`; skipped when
#      its stamp matches the sources; 40-44 s wall, 35-41 s CPU on the 2-core CI machine). If the
#      build fails, a warning says so and the checkout stays pure Python (the fallback), unless
#      QR_MYPYC=1 asked for it: then set-up fails.
#   3. curl with HTTP/3: Debian bookworm's curl 7.88.1 source built against GnuTLS + ngtcp2 0.12 +
#      nghttp3 0.8 (environment.md recipe b1) -> $QR_PEERS_DIR/curl-h3/bin/curl.
#   4. Our quic-go peer (interop/quicgo/src/qrgo) built with Debian's Go in GOPATH mode
#      -> $QR_PEERS_DIR/quicgo/bin/qrgo.
#   5. Verification of every peer; fails loudly.
#
# Environment:
#   QR_PEERS_DIR   where built peers go (default /opt/quicreality-peers)
#   PYTHON         python interpreter to install into (default: python3 on PATH; must be >= 3.11)
#   QR_SETUP_SKIP_PIP=1   skip step 2 (for peers-only set-up; the mypyc build too, unless QR_MYPYC=1)
#   QR_MYPYC       unset: build with mypyc, a failure is a warning (pure Python stays);
#                  1: build, a failure fails set-up (CI: .ci/run); 0: do not build (an existing
#                  build is left in place: QR_PURE=1 runs pure, `python -m quicreality.build --clean` removes it)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${QR_PEERS_DIR:-/opt/quicreality-peers}
PYTHON=${PYTHON:-python3}
STAMPS="$PEERS_DIR/stamps"
T0=$SECONDS

log() { printf '[setup +%3ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 0. Preconditions
# ---------------------------------------------------------------------------------------------
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "must run as root (or with sudo available)"
  SUDO=(sudo)
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "python interpreter '$PYTHON' not found"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "$PYTHON is older than 3.11"
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')   # resolve pyenv shims
# Debian's own /usr/bin/python3 refuses pip installs (PEP 668): use a venv made from it instead.
NEED_VENV=0
if "$PYTHON" -c 'import os, sys, sysconfig
m = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(m) else 1)'; then
  NEED_VENV=1
fi
[[ -f /etc/debian_version ]] || die "this script targets Debian 12 (bookworm)"
"${SUDO[@]}" mkdir -p "$PEERS_DIR" "$STAMPS"
[[ -w "$PEERS_DIR" ]] || "${SUDO[@]}" chown "$(id -u):$(id -g)" "$PEERS_DIR" "$STAMPS"
log "repo=$ROOT peers=$PEERS_DIR python=$PYTHON"

# ---------------------------------------------------------------------------------------------
# 1. apt
# ---------------------------------------------------------------------------------------------
APT_PACKAGES=(
  # traffic, capture and netns tooling
  iperf3 tcpdump tshark iputils-ping ethtool iptables nftables iproute2 procps
  # Go + Debian's quic-go 0.29 (GOPATH mode, /usr/share/gocode)
  golang-go golang-github-lucas-clemente-quic-go-dev
  # ngtcp2 0.12 example programs (gtlsclient / gtlsserver) and libraries for curl
  ngtcp2-client ngtcp2-server libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev
  libnghttp2-dev libpsl-dev libgnutls28-dev zlib1g-dev
  # build tooling (apt-get source needs dpkg-dev; xz-utils/patch for the source package)
  build-essential pkg-config dpkg-dev xz-utils patch ca-certificates openssl
  # python packages of the lab that compile against these (netfilterqueue)
  libnetfilter-queue-dev libnfnetlink-dev
  # the camouflage reference client: headless Chromium, and certutil for its NSS trust store
  chromium libnss3-tools
)
# Debian's python3 needs its headers for the mypyc build (step 2); pyenv/python.org builds ship them.
[[ $NEED_VENV -eq 1 ]] && APT_PACKAGES+=(python3-venv python3-dev)
APT_SRC_FILE=/etc/apt/sources.list.d/quicreality-src.sources
APT_UPDATED=0
APT_LOCK=(-o DPkg::Lock::Timeout=600)   # other sessions may be running apt at the same time

apt_update_once() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q "${APT_LOCK[@]}" >/dev/null
    APT_UPDATED=1
  fi
}

have_deb_src() {
  grep -rqsE '^Types:.*deb-src' /etc/apt/sources.list.d/ 2>/dev/null \
    || grep -qsE '^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
}

ensure_deb_src() {
  # deb-src for bookworm main, on the same mirror(s) the machine already uses: derived from the
  # machine's own deb822 file (or sources.list), so no mirror host is hard-coded here.
  have_deb_src && return 0
  local tmp
  tmp=$(mktemp)
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sed -E 's/^Types:[[:space:]]+deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      | grep -vE '^Suites:.*backports' >"$tmp"
  elif grep -qsE '^deb ' /etc/apt/sources.list; then
    grep -E '^deb ' /etc/apt/sources.list | grep -v backports | sed -E 's/^deb /deb-src /' >"$tmp"
    APT_SRC_FILE=/etc/apt/sources.list.d/quicreality-src.list
  else
    rm -f "$tmp"
    die "cannot find the machine's Debian apt sources to derive deb-src entries from"
  fi
  log "adding deb-src entries: $APT_SRC_FILE"
  "${SUDO[@]}" install -m 0644 "$tmp" "$APT_SRC_FILE"
  rm -f "$tmp"
  APT_UPDATED=0
  APT_NEED_UPDATE=1
}

missing_packages() {
  local p st
  for p in "${APT_PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $st == "install ok installed" ]] || printf '%s\n' "$p"
  done
}

APT_NEED_UPDATE=0
ensure_deb_src
mapfile -t MISSING < <(missing_packages)
if [[ ${#MISSING[@]} -gt 0 ]]; then
  log "apt: installing ${#MISSING[@]} missing package(s): ${MISSING[*]}"
  apt_update_once
  # tshark asks whether non-root users may capture; iperf3 whether to start a daemon.
  printf '%s\n' \
    'wireshark-common wireshark-common/install-setuid boolean false' \
    'iperf3 iperf3/start_daemon boolean false' | "${SUDO[@]}" debconf-set-selections
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${APT_LOCK[@]}" \
    "${MISSING[@]}" >/dev/null
  mapfile -t STILL < <(missing_packages)
  [[ ${#STILL[@]} -eq 0 ]] || die "apt could not install: ${STILL[*]}"
  log "apt: done"
else
  log "apt: all ${#APT_PACKAGES[@]} packages present (skipped)"
fi

# ---------------------------------------------------------------------------------------------
# 2. Python
# ---------------------------------------------------------------------------------------------
if [[ $NEED_VENV -eq 1 ]]; then
  VENV="$PEERS_DIR/venv"
  if [[ ! -x $VENV/bin/python ]]; then
    log "python: $PYTHON is externally managed (PEP 668): creating venv $VENV"
    "$PYTHON" -m venv "$VENV" || die "cannot create $VENV"
  fi
  PYTHON="$VENV/bin/python"
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$PYTHON is older than 3.11"
fi
# scripts/test.sh runs pytest with the interpreter recorded here (unless PYTHON is set)
printf '%s\n' "$PYTHON" >"$PEERS_DIR/python"

if grep -qE '^[[:space:]]*"qlog([<>=!~ ;"\[]|$)' "$ROOT/pyproject.toml"; then
  die "pyproject.toml lists the PyPI package 'qlog' (unrelated project): remove it"
fi
PY_KEY=$( { echo "$PYTHON"; echo "$ROOT"; sha256sum "$ROOT/pyproject.toml"; } | sha256sum | cut -c1-16)
PY_STAMP="$STAMPS/pip-$PY_KEY"
py_ok() {
  # quicreality must import from *this* checkout (CI uses a fresh clone elsewhere), aioquic pinned.
  # Run from / so that a checkout in the current directory cannot satisfy the import by itself.
  (cd / && QR_ROOT="$ROOT" "$PYTHON" - <<'EOF' >/dev/null 2>&1
import os, sys, pathlib
import quicreality, aioquic, cryptography, pytest  # noqa: F401
root = pathlib.Path(os.environ["QR_ROOT"]).resolve()
here = pathlib.Path(quicreality.__file__).resolve()
sys.exit(0 if root in here.parents and aioquic.__version__ == "1.7.2" else 1)
EOF
  )
}
if [[ ${QR_SETUP_SKIP_PIP:-0} == 1 ]]; then
  log "pip: skipped (QR_SETUP_SKIP_PIP=1)"
elif [[ -f $PY_STAMP ]] && py_ok; then
  log "pip: '.[dev,lab]' already installed for this pyproject.toml (skipped)"
else
  log "pip: installing -e '.[dev,lab]' into $PYTHON"
  PIP_LOG=$(mktemp /tmp/qr-pip.XXXXXX)
  if ! (cd "$ROOT" && PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install -q \
      --root-user-action=ignore -e '.[dev,lab]') >"$PIP_LOG" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$PIP_LOG" | tail -n 40 >&2
    rm -f "$PIP_LOG"
    die "pip install -e '.[dev,lab]' failed"
  fi
  rm -f "$PIP_LOG"
  py_ok || die "pip install finished but quicreality/aioquic 1.7.2 do not import from $ROOT"
  touch "$PY_STAMP"
  log "pip: done"
fi
# The mypyc build of the hot modules, in place (docs/performance.md "mypyc, built at install").
MYPYC=${QR_MYPYC:-}
if [[ $MYPYC == 0 ]]; then
  log "mypyc: skipped (QR_MYPYC=0); $(cd "$ROOT" && "$PYTHON" -m quicreality.build --check 2>/dev/null \
    || true)"
elif [[ ${QR_SETUP_SKIP_PIP:-0} == 1 && $MYPYC != 1 ]]; then
  log "mypyc: skipped with pip (QR_SETUP_SKIP_PIP=1)"
elif (cd "$ROOT" && "$PYTHON" -m quicreality.build --check >/dev/null 2>&1); then
  log "mypyc: build up to date (skipped)"
else
  log "mypyc: compiling the hot modules (python -m quicreality.build)"
  if (cd "$ROOT" && "$PYTHON" -m quicreality.build); then
    log "mypyc: done"
  elif [[ $MYPYC == 1 ]]; then
    die "mypyc build failed (QR_MYPYC=1 asked for it): python -m quicreality.build"
  else
    printf '[setup] WARNING: the mypyc build failed (output above); this checkout stays pure Python, %s\n' \
      "the fallback. QR_MYPYC=1 makes this fatal, QR_MYPYC=0 skips the build." >&2
  fi
fi

# ---------------------------------------------------------------------------------------------
# 3. curl with HTTP/3 (recipe b1)
# ---------------------------------------------------------------------------------------------
CURL_PREFIX="$PEERS_DIR/curl-h3"
CURL_CONFIGURE=(--with-gnutls --without-openssl --with-ngtcp2 --with-nghttp3 --with-nghttp2
  --disable-static --disable-ldap --disable-manual --without-libssh2 --without-librtmp
  --without-zstd --without-brotli)
CURL_RECIPE="b1 curl/bookworm gnutls+ngtcp2+nghttp3 prefix=$CURL_PREFIX ${CURL_CONFIGURE[*]}"
CURL_STAMP="$STAMPS/curl-h3"
curl_ok() {
  [[ -x $CURL_PREFIX/bin/curl && -f $CURL_STAMP ]] && [[ $(cat "$CURL_STAMP") == "$CURL_RECIPE" ]] \
    && "$CURL_PREFIX/bin/curl" -V 2>/dev/null | grep -q '^Features:.* HTTP3'
}
if curl_ok; then
  log "curl-h3: $CURL_PREFIX/bin/curl up to date (skipped)"
else
  log "curl-h3: building from Debian bookworm source (GnuTLS + ngtcp2 + nghttp3)"
  if [[ $APT_NEED_UPDATE -eq 1 ]] || ! compgen -G '/var/lib/apt/lists/*_Sources*' >/dev/null; then
    apt_update_once
  fi
  CURL_BUILD=$(mktemp -d /tmp/qr-curl-build.XXXXXX)
  trap 'rm -rf "$CURL_BUILD"' EXIT
  chmod 0755 "$CURL_BUILD"   # lets apt's _apt user write the download (no "unsandboxed" warning)
  (
    cd "$CURL_BUILD"
    if ! apt-get source -q curl/bookworm >source.log 2>&1; then
      # the deb-src index may be stale or absent: refresh once and retry
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q "${APT_LOCK[@]}" >/dev/null
      apt-get source -q curl/bookworm >source.log 2>&1 || { cat source.log >&2; exit 1; }
    fi
    src=$(find . -maxdepth 1 -type d -name 'curl-*' | head -n1)
    [[ -n $src ]] || { cat source.log >&2; echo "no curl source dir" >&2; exit 1; }
    cd "$src"
    echo "[setup] curl-h3: source $(basename "$src"), configure..."
    ./configure -q --prefix="$CURL_PREFIX" "${CURL_CONFIGURE[@]}" >../configure.log 2>&1 \
      || { tail -n 40 ../configure.log >&2; exit 1; }
    grep -q 'HTTP3:.*enabled' ../configure.log || { grep -i http3 ../configure.log >&2 || true; }
    echo "[setup] curl-h3: make -j$(nproc)..."
    make -j"$(nproc)" >../make.log 2>&1 || { tail -n 40 ../make.log >&2; exit 1; }
    rm -rf "$CURL_PREFIX"
    make install >../install.log 2>&1 || { tail -n 40 ../install.log >&2; exit 1; }
  ) || die "curl-h3 build failed (build dir $CURL_BUILD is removed; re-run to retry)"
  rm -rf "$CURL_BUILD"
  trap - EXIT
  printf '%s\n' "$CURL_RECIPE" >"$CURL_STAMP"
  curl_ok || die "built curl does not report HTTP3: $("$CURL_PREFIX/bin/curl" -V 2>&1 | tail -n 2)"
  log "curl-h3: done"
fi

# ---------------------------------------------------------------------------------------------
# 4. quic-go peer (Debian quic-go 0.29, Debian Go, GOPATH mode, offline)
# ---------------------------------------------------------------------------------------------
QRGO_SRC="$ROOT/interop/quicgo/src/qrgo"
QRGO_BIN="$PEERS_DIR/quicgo/bin/qrgo"
[[ -f $QRGO_SRC/main.go ]] || die "missing $QRGO_SRC/main.go"
GO_VERSION=$(go version 2>/dev/null || die "go not found after apt step")
QRGO_RECIPE=$( { echo "$GO_VERSION"; dpkg-query -W -f='${Version}\n' golang-github-lucas-clemente-quic-go-dev;
                 cat "$QRGO_SRC"/*.go; } | sha256sum | cut -c1-32)
QRGO_STAMP="$STAMPS/qrgo"
if [[ -x $QRGO_BIN && -f $QRGO_STAMP && $(cat "$QRGO_STAMP") == "$QRGO_RECIPE" ]]; then
  log "qrgo: $QRGO_BIN up to date (skipped)"
else
  log "qrgo: go build ($GO_VERSION, GO111MODULE=off)"
  GO_BUILD=$(mktemp -d /tmp/qr-go-build.XXXXXX)
  trap 'rm -rf "$GO_BUILD"' EXIT
  mkdir -p "$GO_BUILD/src/qrgo" "$PEERS_DIR/quicgo/bin" "$PEERS_DIR/cache/go"
  cp "$QRGO_SRC"/*.go "$GO_BUILD/src/qrgo/"
  (cd "$GO_BUILD/src/qrgo" && GO111MODULE=off GOFLAGS= GOPATH="$GO_BUILD:/usr/share/gocode" \
      GOCACHE="$PEERS_DIR/cache/go" go build -o "$QRGO_BIN.tmp" .) || die "qrgo build failed"
  mv -f "$QRGO_BIN.tmp" "$QRGO_BIN"
  rm -rf "$GO_BUILD"
  trap - EXIT
  printf '%s\n' "$QRGO_RECIPE" >"$QRGO_STAMP"
  log "qrgo: done"
fi

# ---------------------------------------------------------------------------------------------
# 5. Verify
# ---------------------------------------------------------------------------------------------
log "verify"
FAIL=()
check() { # name, command...
  local name=$1; shift
  if out=$("$@" 2>&1); then
    printf '  ok    %-12s %s\n' "$name" "$(printf '%s' "$out" | head -n1 | cut -c1-110)"
  else
    printf '  FAIL  %-12s %s\n' "$name" "$(printf '%s' "$out" | tail -n3 | tr '\n' ' ' | cut -c1-200)"
    FAIL+=("$name")
  fi
}
check curl-h3 bash -c '"$1" -V | grep -q "^Features:.* HTTP3" && "$1" -V | head -n1' _ "$CURL_PREFIX/bin/curl"
check gtlsclient bash -c '[[ -x /usr/bin/gtlsclient ]] && echo /usr/bin/gtlsclient'
check gtlsserver bash -c '[[ -x /usr/sbin/gtlsserver ]] && echo /usr/sbin/gtlsserver'
check qrgo "$QRGO_BIN" -h
check iperf3 iperf3 --version
check tcpdump tcpdump --version
check tshark bash -c 'tshark --version 2>/dev/null | grep -m1 TShark'
check editcap editcap --version
check chromium bash -c '/usr/lib/chromium/chromium --version 2>/dev/null | grep -m1 Chromium && command -v certutil >/dev/null'
if [[ ${QR_SETUP_SKIP_PIP:-0} != 1 ]]; then
  check aioquic "$PYTHON" -c 'import aioquic, sys; assert aioquic.__version__ == "1.7.2", aioquic.__version__; print("aioquic", aioquic.__version__, sys.executable)'
  check aio-peers "$PYTHON" "$ROOT/interop/aioquic/h3client.py" --help
  check qh3 env QR_PEER_IMPL=qh3 "$PYTHON" "$ROOT/interop/aioquic/h3client.py" --help
fi
[[ ${#FAIL[@]} -eq 0 ]] || die "verification failed: ${FAIL[*]}"
log "all peers ready in $PEERS_DIR"
