# Python venv for the pandas/pyarrow/Feast compatibility checks. Cached under
# $TESSERA_CACHE/venv/<python version>-<hash of scripts/python-{requirements,constraints}.txt>, so
# editing either builds a new venv and unchanged files reuse the old one.

PY_REQUIREMENTS="$TESSERA_ROOT/scripts/python-requirements.txt"
PY_CONSTRAINTS="$TESSERA_ROOT/scripts/python-constraints.txt"

python_bin() {
  local py
  for py in python3.11 python3.12 python3; do
    if command -v "$py" >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

python_venv_dir() {
  local py ver
  py="$(python_bin)" || return 1
  ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  echo "$TESSERA_CACHE/venv/py$ver-$(sha256_of "$PY_REQUIREMENTS" "$PY_CONSTRAINTS")"
}

python_install() {
  local py venv
  if ! py="$(python_bin)" || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
    py="$(python_bin)" || die "python3 still missing after apt-get install"
  fi
  # The pinned numpy and pyarrow (scripts/python-constraints.txt) need 3.11; on 3.10 pip would fail
  # minutes later with "No matching distribution".
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
    die "python: $py is $("$py" --version 2>&1); the pinned numpy and pyarrow need Python 3.11+"
  venv="$(python_venv_dir)"
  if [[ -f "$venv/.complete" ]]; then
    log "python: venv cached at $venv"
    return 0
  fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  log "python: creating venv $venv with $("$py" --version 2>&1)"
  "$py" -m venv "$venv"
  log "python: pip install -r scripts/python-requirements.txt (feast pulls ~70 packages; first time takes minutes)"
  local piplog="$venv/pip-install.log" rc
  # pip prints one 'Collecting'/'Installing' line per package without a TTY: show those.
  { "$venv/bin/pip" install --disable-pip-version-check --progress-bar off -r "$PY_REQUIREMENTS" -c "$PY_CONSTRAINTS" 2>&1 &&
    echo 0 >"$venv/.pip-rc" || echo $? >"$venv/.pip-rc"; } |
    tee "$piplog" | grep --line-buffered -E '^(Collecting|Installing|Successfully)' | sed -u 's/^/  pip: /' || true
  rc="$(cat "$venv/.pip-rc" 2>/dev/null || echo 1)"
  [[ "$rc" == 0 ]] || fail_service python "pip install exited with $rc" "$piplog"
  "$venv/bin/python" -c 'import numpy, pandas, pyarrow, feast' >>"$piplog" 2>&1 ||
    fail_service python "installed, but 'import numpy, pandas, pyarrow, feast' failed" "$piplog"
  touch "$venv/.complete"
  log "python: venv ready: $("$venv/bin/python" -c 'import numpy, pandas, pyarrow, feast; print("numpy", numpy.__version__, "pandas", pandas.__version__, "pyarrow", pyarrow.__version__, "feast", feast.__version__)' 2>/dev/null)"
}
