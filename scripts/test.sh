#!/usr/bin/env bash
# The project's test command (README; CI runs it through .ci/run).
#
#   scripts/test.sh [extra pytest args...]
#
# 1. scripts/setup.sh (idempotent; ~1 s when everything is installed; QR_SKIP_SETUP=1 skips it).
#    It compiles the hot modules with mypyc unless QR_MYPYC=0 (docs/performance.md).
# 2. lint: `ruff check quicreality tests` and `mypy quicreality` (findings fail; QR_SKIP_LINT=1 skips)
# 3. pytest in phases, each only on the dirs that exist:
#      unit+sim (compiled)  tests/unit tests/sim tests/fuzz (fast, no sockets), the mypyc build
#      unit+sim (pure)      QR_PURE=1, the pure-Python fallback, over the tests that exercise the
#                           compiled modules (PURE_SUBSET below; docs/performance.md "Tests, both
#                           ways"), not all of unit+sim: the whole phase twice does not fit CI's
#                           40 minutes. QR_PURE_PASS=full runs all of unit+sim pure as well.
#      aio                  tests/aio                    (asyncio on loopback)
#      interop+lab          tests/interop tests/lab      (real peers, netns; needs root)
#    The compiled passes run with QR_MYPYC_STRICT=1 (a stale build is an ImportError, not a silent
#    fallback). aio and interop+lab run once, in the installed default: compiled when the checkout
#    holds an up-to-date build, else pure. Without one (QR_MYPYC=0, or the build failed), the
#    compiled unit+sim pass is reported as skipped and the pure one runs all of unit+sim. Each pass checks
#    `python -m quicreality.build --status` first and fails if the mode is not the one it names.
#    A phase whose dirs hold no test files yet is reported as "no tests yet" and passes; a phase
#    with test files where pytest collects nothing (exit 5) fails.
# Every phase runs even if an earlier one failed; the exit status is non-zero if any failed.
# The last line is a summary "summary: N passed, N failed, N skipped".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PEERS_DIR=${QR_PEERS_DIR:-/opt/quicreality-peers}
PYTHON_SET=${PYTHON:+1}
PYTHON=${PYTHON:-python3}
T0=$SECONDS

RAN_SETUP=0
if [[ ${QR_SKIP_SETUP:-0} != 1 ]]; then
  RAN_SETUP=1
  echo "== setup: scripts/setup.sh"
  if ! PYTHON="$PYTHON" bash "$ROOT/scripts/setup.sh"; then
    echo "test.sh: setup failed" >&2
    echo "summary: 0 passed, 1 failed"
    exit 1
  fi
fi
# the interpreter setup.sh installed into (a venv when python3 is Debian's externally managed one)
if [[ ( $RAN_SETUP == 1 || -z $PYTHON_SET ) && -s $PEERS_DIR/python ]]; then
  PYTHON=$(cat "$PEERS_DIR/python")
fi
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)') || { echo "no python: $PYTHON" >&2; exit 1; }

TOTAL_PASSED=0 TOTAL_FAILED=0 TOTAL_SKIPPED=0
STATUS=0
REPORT=()
LOG=$(mktemp /tmp/qr-test-log.XXXXXX)
trap 'rm -f "$LOG"' EXIT

count() { # pattern in the last pytest summary line -> number
  local line n
  line=$(grep -E '(passed|failed|errors?|skipped|no tests ran|deselected).* in [0-9.]+s( \([0-9:]+\))?( =+)?$' "$LOG" | tail -n1)
  n=$(printf '%s' "$line" | grep -oE "[0-9]+ $1" | head -n1 | cut -d' ' -f1)
  echo "${n:-0}"
}

phase() { # name, needs_root(0|1), mode(compiled|pure|default), dirs...
  local name=$1 needs_root=$2 mode=$3
  shift 3
  local dirs=() d
  for d in "$@"; do [[ -e $d ]] && dirs+=("$d"); done
  local ntests=0
  if [[ ${#dirs[@]} -gt 0 ]]; then
    ntests=$(find "${dirs[@]}" -name '__pycache__' -prune -o -type f \
      \( -name 'test_*.py' -o -name '*_test.py' \) -print | wc -l)
  fi
  if [[ $ntests -eq 0 ]]; then
    echo "== $name: no test files yet in $* (ok)"
    REPORT+=("$name: no tests yet")
    return
  fi
  if [[ $needs_root == 1 && $(id -u) -ne 0 ]]; then
    echo "== $name: needs root (network namespaces, tcpdump): FAILED" >&2
    REPORT+=("$name: FAILED (not root)")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    STATUS=1
    return
  fi
  local penv=() active
  case $mode in
    compiled) penv=(QR_MYPYC_STRICT=1) ;;
    pure) penv=(QR_PURE=1) ;;
    default) [[ $MYPYC_BUILT == 1 ]] && penv=(QR_MYPYC_STRICT=1) ;;
  esac
  active=$(env "${penv[@]}" "$PYTHON" -m quicreality.build --status 2>&1)
  active=${active%%$'\n'*}
  if [[ $mode != default && $active != "mode: $mode "* ]]; then
    echo "== $name: wanted $mode, but ${active:-no status}: FAILED" >&2
    REPORT+=("$name: FAILED (not $mode: $active)")
    TOTAL_FAILED=$((TOTAL_FAILED + 1)); STATUS=1
    return
  fi
  echo "== $name: ${penv[*]:+${penv[*]} }$PYTHON -m pytest ${dirs[*]} ($ntests test files; $active)"
  local t=$SECONDS rc
  env "${penv[@]}" "$PYTHON" -m pytest -q -rfEs "${dirs[@]}" "${EXTRA[@]}" 2>&1 | tee "$LOG"
  rc=${PIPESTATUS[0]}
  local p f e s
  p=$(count passed) f=$(count failed) e=$(count error) s=$(count skipped)
  TOTAL_PASSED=$((TOTAL_PASSED + p))
  TOTAL_FAILED=$((TOTAL_FAILED + f + e))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + s))
  case $rc in
    0) REPORT+=("$name: ok ($p passed, $s skipped, $((SECONDS - t))s)") ;;
    5) REPORT+=("$name: FAILED (pytest collected no tests from $ntests test files)")
       TOTAL_FAILED=$((TOTAL_FAILED + 1)); STATUS=1 ;;
    *) REPORT+=("$name: FAILED (pytest exit $rc: $p passed, $f failed, $e errors, $((SECONDS - t))s)")
       [[ $((f + e)) -eq 0 ]] && TOTAL_FAILED=$((TOTAL_FAILED + 1))
       STATUS=1 ;;
  esac
}

lint() { # ruff (the rule set in pyproject.toml) and mypy over the package; findings fail the run
  local t=$SECONDS ok=1
  echo "== lint: ruff check quicreality tests; mypy quicreality"
  "$PYTHON" -m ruff check quicreality tests || ok=0
  "$PYTHON" -m mypy quicreality || ok=0
  if [[ $ok == 1 ]]; then
    REPORT+=("lint: ok (ruff, mypy, $((SECONDS - t))s)")
  else
    REPORT+=("lint: FAILED (ruff or mypy findings above)")
    TOTAL_FAILED=$((TOTAL_FAILED + 1)); STATUS=1
  fi
}

EXTRA=("$@")
[[ ${QR_SKIP_LINT:-0} == 1 ]] || lint
UNIT_SIM=(tests/unit tests/sim tests/fuzz)
# 1368 of the 1998 unit+sim tests (2026-12-07): those that import the compiled modules (quic, wire, tls,
# reality, h3, relay, recovery, qlog; the sim pairs; the fuzz targets). Left out: analysis (pandas,
# tshark; 161 of the 279 s of the whole pure pass, 2026-12-07), arch (static), the other scenarios
# and interop unit tests.
PURE_SUBSET=(tests/unit/quic tests/unit/recovery tests/unit/h3 tests/unit/relay tests/unit/reality
  tests/unit/tls tests/unit/qlog tests/unit/bench tests/unit/test_fuzz_regressions.py
  tests/unit/test_build.py tests/unit/test_status_page.py tests/unit/scenarios/test_censor_initial.py
  tests/unit/scenarios/test_censor_policies.py tests/unit/scenarios/test_reality_workload_args.py
  tests/sim tests/fuzz)
[[ ${QR_PURE_PASS:-subset} == full ]] && PURE_SUBSET=("${UNIT_SIM[@]}")
MYPYC_BUILT=0
"$PYTHON" -m quicreality.build --check >/dev/null 2>&1 && MYPYC_BUILT=1
if [[ $MYPYC_BUILT == 1 ]]; then
  phase "unit+sim (compiled)" 0 compiled "${UNIT_SIM[@]}"
else
  echo "== unit+sim (compiled): skipped: no up-to-date mypyc build (QR_MYPYC=0, or the build failed: see setup)"
  REPORT+=("unit+sim (compiled): skipped (no up-to-date mypyc build)")
  PURE_SUBSET=("${UNIT_SIM[@]}")   # the only unit+sim pass: all of it
fi
phase "unit+sim (pure)" 0 pure "${PURE_SUBSET[@]}"
phase "aio" 0 default tests/aio
phase "interop+lab" 1 default tests/interop tests/lab

echo
echo "== test.sh report ($((SECONDS - T0))s)"
for line in "${REPORT[@]}"; do echo "   $line"; done
echo "summary: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
exit $STATUS
