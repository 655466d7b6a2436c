# Java and Maven: the JVM services (Kafka, S3Proxy) run from jars resolved out of Maven
# Central into a per-version cache dir, so nothing is downloaded twice. Sourced by scripts/stack.

ensure_java() {
  local v
  if command -v java >/dev/null 2>&1; then
    v="$(java -version 2>&1 | awk -F'"' '/version/ { split($2, a, "."); print a[1]; exit }')"
    if [[ "${v:-0}" -ge 17 ]]; then return 0; fi
    warn "java $v found; Kafka 4 and S3Proxy need 17+"
  fi
  apt_install openjdk-17-jre-headless
  # An older java earlier on PATH still wins over the one apt just installed.
  v="$(java -version 2>&1 | awk -F'"' '/version/ { split($2, a, "."); print a[1]; exit }')"
  [[ "${v:-0}" -ge 17 ]] || die "java on PATH ($(command -v java)) is $v after installing openjdk-17; put Java 17+ first on PATH"
}

ensure_maven() {
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

# jars_current <key> <dependencies xml>: whether $TESSERA_CACHE/jars/<key> holds a whole jar set
# resolved from these very dependencies. The key names the versions; the hash kept beside the
# jars covers the rest of the list, so adding or changing a dependency under the same versions
# is not answered from the old set.
jars_current() {
  local dir="$TESSERA_CACHE/jars/$1"
  [[ -f "$dir/.complete" && "$(cat "$dir/.deps-sha256" 2>/dev/null)" == "$(jar_deps_sha "$2")" ]]
}

# jar_deps_sha <dependencies xml>: the hash kept in .deps-sha256 beside a jar set.
jar_deps_sha() { printf '%s' "$1" | sha256sum | cut -c1-16; }

# resolve_jars <key> <dependencies xml>: copies the dependencies and all their runtime
# dependencies into $TESSERA_CACHE/jars/<key>/libs once; later calls return at once.
resolve_jars() {
  local key="$1" deps="$2"
  local dir="$TESSERA_CACHE/jars/$key"
  if jars_current "$key" "$deps"; then
    log "jars $key: cached ($(find "$dir/libs" -name '*.jar' | wc -l) jars in $dir/libs)"
    return 0
  fi
  [[ -f "$dir/.complete" ]] && log "jars $key: resolved from another dependency list (or before the list was recorded); resolving again"
  ensure_java
  ensure_maven
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tessera.stack</groupId>
  <artifactId>$key</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
$deps
  </dependencies>
</project>
POM
  log "jars $key: resolving from Maven Central (first time only; progress every 10s)"
  local mvnlog="$dir/mvn.log" rc=0
  # -U: a download that failed once is otherwise remembered (*.lastUpdated) and not retried for a
  # day; 20 minutes and a 60 s read timeout, so that a stalled download fails instead of using
  # up a CI run.
  (cd "$dir" && timeout 1200 mvn -B -U -Dmaven.repo.local="$TESSERA_CACHE/m2" -Dmaven.wagon.rto=60000 \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$dir/libs" >"$mvnlog" 2>&1) &
  local mvnpid=$! ticks=0
  while kill -0 "$mvnpid" 2>/dev/null; do
    sleep 1
    ticks=$((ticks + 1))
    if ((ticks % 10 == 0)) && kill -0 "$mvnpid" 2>/dev/null; then
      log "jars $key: still resolving, $(grep -c 'Downloaded from' "$mvnlog" || true) files downloaded so far"
    fi
  done
  wait "$mvnpid" || rc=$?
  if [[ "$rc" != 0 ]]; then
    fail_service "jars $key" "mvn dependency:copy-dependencies exited with $rc (124: over 20 minutes)" "$mvnlog"
  fi
  # A missing POM is only a warning to Maven, and its dependencies are then silently left out.
  if grep -qE 'The POM for .* is (missing|invalid)' "$mvnlog"; then
    fail_service "jars $key" "Maven could not read a POM, so the jar set is incomplete (see the WARNING lines)" "$mvnlog"
  fi
  jar_deps_sha "$deps" >"$dir/.deps-sha256"
  touch "$dir/.complete"
  log "jars $key: $(find "$dir/libs" -name '*.jar' | wc -l) jars in $dir/libs"
}
