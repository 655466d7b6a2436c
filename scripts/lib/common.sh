# Shared helpers for scripts/stack, scripts/test, scripts/demo and .ci/run: paths, ports,
# logging, and small process/port utilities. Sourced, never executed.

TESSERA_ROOT="${TESSERA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
TESSERA_CACHE="${TESSERA_CACHE:-$HOME/.cache/tessera}"
TESSERA_STACK_DIR="${TESSERA_STACK_DIR:-$TESSERA_ROOT/.stack}"

TESSERA_REDIS_PORT="${TESSERA_REDIS_PORT:-6379}"
TESSERA_REDIS_CLUSTER_PORT="${TESSERA_REDIS_CLUSTER_PORT:-7001}"
TESSERA_KAFKA_PORT="${TESSERA_KAFKA_PORT:-9092}"
TESSERA_KAFKA_CONTROLLER_PORT="${TESSERA_KAFKA_CONTROLLER_PORT:-9093}"
TESSERA_S3_PORT="${TESSERA_S3_PORT:-8333}"

# Versions of what the stack runs. Changing one re-resolves its jars into a new cache dir.
KAFKA_VERSION="4.1.1"
LOG4J_VERSION="2.25.3"
S3PROXY_VERSION="2.6.0"

# Credentials S3Proxy is started with; the config module's defaults (shared/config) match them.
S3_ACCESS_KEY_ID="tessera-local"
S3_SECRET_ACCESS_KEY="tessera-local-secret"
S3_BUCKET="tessera-offline"

export TESSERA_ROOT TESSERA_CACHE TESSERA_STACK_DIR

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
warn() { printf '[%s] WARN: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# fail_service <service> <reason> <logfile>: one message naming all three, then the log tail.
fail_service() {
  local service="$1" reason="$2" logfile
  shift 2
  printf '[%s] ERROR: %s failed: %s\n' "$(date +%H:%M:%S)" "$service" "$reason" >&2
  for logfile in "$@"; do
    printf '  log: %s\n' "$logfile" >&2
    if [[ -s "$logfile" ]]; then
      printf '  ---- last 30 lines of %s ----\n' "$logfile" >&2
      tail -n 30 "$logfile" | sed 's/^/  | /' >&2
    fi
  done
  exit 1
}

# Run a command as root (directly, or through sudo when we are not root).
as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $* (install it yourself, or run as root)"
  fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these yourself: $*"
  if [[ "$APT_UPDATED" == 0 ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# port_open <port>: true when something accepts TCP connections on 127.0.0.1:<port>.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# cmdline_has <pid> <text>: the process's command line contains text.
cmdline_has() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }

# pid_alive <pidfile> [mark]: true when the file names a live process that is ours: its command
# line contains <mark> (default: the pid file's directory, which the Java services' command lines
# name). After a reboot or a container restart a left-over pid file can name an unrelated process
# (container pids repeat): that file is stale, and removed, so that nothing signals that process.
pid_alive() {
  local pid mark="${2:-$(dirname "$1")}"
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A process started a moment ago may still be the shell forked for it, before its exec of
  # setsid/nohup/java: its command line is then the caller's. Looked at again after 0.3 s before
  # the pid file is called stale (that race once failed a broker's start as "exited").
  if [[ -r "/proc/$pid/cmdline" ]] && ! cmdline_has "$pid" "$mark" && ! { sleep 0.3 && cmdline_has "$pid" "$mark"; }; then
    kill -0 "$pid" 2>/dev/null || return 1
    warn "stale pid file $1: pid $pid is not this stack's (no \"$mark\" in its command line); ignoring it"
    rm -f "$1"
    return 1
  fi
}

# stop_pid <name> <pidfile> <grace seconds> [mark]: TERM, wait, then KILL that one process (if
# it is ours: pid_alive).
stop_pid() {
  local name="$1" pidfile="$2" grace="$3" mark="${4:-}" pid i
  if ! pid_alive "$pidfile" ${mark:+"$mark"}; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name (pid $pid) did not stop within ${grace}s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
}

sha256_of() { cat "$@" | sha256sum | cut -c1-16; }

# Seconds since the epoch with millis, for phase timings.
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# ensure_node_modules: npm ci when node_modules is missing or older than package-lock.json
# (npm's own hidden lockfile node_modules/.package-lock.json is rewritten on every install).
ensure_node_modules() {
  local hidden="$TESSERA_ROOT/node_modules/.package-lock.json"
  if [[ ! -f "$hidden" || "$TESSERA_ROOT/package-lock.json" -nt "$hidden" ]]; then
    command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 (see README)"
    log "npm ci (node_modules missing or older than package-lock.json)"
    (cd "$TESSERA_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Node 20 is the project's runtime; the AWS SDK warns on every process that newer SDK releases
# will need Node 22. Known (docs/local-stack.md), so keep it out of test and demo output.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
