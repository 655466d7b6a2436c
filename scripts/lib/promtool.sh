# promtool, Prometheus' checker for rule files, rule unit tests and scrape configs: the alert rules
# (deploy/prometheus) and the Grafana dashboard's queries are checked with it
# (test/integration/promtool.test.ts). No Prometheus release binary can be downloaded here, so it is
# built from the Go module proxy, once, into $TESSERA_CACHE.
#
# The build tags leave out every service-discovery plugin but Kubernetes' and DNS' (what our
# scrape configs use): with all of them the cold build took 819 s on a 2-core machine, with these
# 116 s.

PROMTOOL_MODULE_VERSION="v0.316.0" # the Go module version of Prometheus 3.x's tree
PROMTOOL_TAGS="remove_all_sd,enable_kubernetes_sd,enable_dns_sd"
PROMTOOL_BIN="$TESSERA_CACHE/promtool-$PROMTOOL_MODULE_VERSION/promtool"

# promtool_current: the cached binary runs and was built with these tags (kept beside it), so a
# change of PROMTOOL_TAGS under the same version builds it again.
promtool_current() {
  [[ -x "$PROMTOOL_BIN" && "$(cat "$(dirname "$PROMTOOL_BIN")/.tags" 2>/dev/null)" == "$PROMTOOL_TAGS" ]]
}

promtool_go() {
  if [[ -n "${TESSERA_GO:-}" ]]; then
    echo "$TESSERA_GO"
  elif command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    return 1
  fi
}

promtool_install() {
  if promtool_current && "$PROMTOOL_BIN" --version >/dev/null 2>&1; then
    log "promtool: cached at $PROMTOOL_BIN"
    return 0
  fi
  local go t0 rc
  go="$(promtool_go)" || die "promtool: no Go toolchain (go on the PATH, /usr/local/go/bin/go or TESSERA_GO); Go >= 1.24 builds it"
  t0="$(now_s)"
  log "promtool: building github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_MODULE_VERSION with $("$go" version | awk '{print $3}') (first time: module download, then ~2 min of compiling; a line per 100 packages)"
  mkdir -p "$(dirname "$PROMTOOL_BIN")" "$TESSERA_CACHE/go"
  rc=0
  # -v names each package as it is compiled: counted, so a long build shows it is moving.
  GOBIN="$(dirname "$PROMTOOL_BIN")" GOPATH="$TESSERA_CACHE/go" GOCACHE="$TESSERA_CACHE/go/build-cache" \
    GOFLAGS=-modcacherw \
    "$go" install -v -tags "$PROMTOOL_TAGS" "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_MODULE_VERSION" \
    >"$TESSERA_CACHE/go/promtool-build.log" 2>&1 &
  local pid=$! n=0 last=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    n="$(wc -l <"$TESSERA_CACHE/go/promtool-build.log")"
    if ((n / 100 > last / 100)); then
      log "  promtool: $n lines of go output ($(elapsed "$t0")s)"
      last=$n
    fi
  done
  wait "$pid" || rc=$?
  if [[ "$rc" != 0 ]] || ! "$PROMTOOL_BIN" --version >/dev/null 2>&1; then
    tail -20 "$TESSERA_CACHE/go/promtool-build.log" >&2
    die "promtool: go install failed (exit $rc) after $(elapsed "$t0")s; whole log: $TESSERA_CACHE/go/promtool-build.log"
  fi
  printf '%s\n' "$PROMTOOL_TAGS" >"$(dirname "$PROMTOOL_BIN")/.tags"
  log "promtool: built in $(elapsed "$t0")s: $PROMTOOL_BIN"
}
