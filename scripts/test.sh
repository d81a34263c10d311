#!/usr/bin/env bash
# The whole test suite: two pytest processes side by side, because half the wall time is spent
# waiting on real servers and worker processes (Temporal, conformance, end-to-end), not on CPU.
#   scripts/test.sh              both shards; exits non-zero if either fails
#   scripts/test.sh ARGS...      one plain pytest run with ARGS (a file, -k, -x, ...)
set -uo pipefail
cd "$(dirname "$0")/.."
pytest=(.venv/bin/python -m pytest -p no:cacheprovider)

if [[ $# -gt 0 ]]; then
    exec "${pytest[@]}" "$@"
fi

# The shard of real processes (Temporal servers, workers, HTTP servers); the other shard is
# everything else. Measured on 2 busy cores: 11 min against 19 min before tests/server moved.
processes=(tests/temporal tests/conformance tests/e2e tests/server)
ignores=()
for path in "${processes[@]}"; do
    ignores+=("--ignore=$path")
done

# Each line is tagged with its shard; `sed -u` keeps the two streams interleaving by line.
run_shard() {
    local tag=$1
    shift
    "${pytest[@]}" "$@" 2>&1 | sed -u "s/^/[$tag] /"
    return "${PIPESTATUS[0]}"
}

started=$SECONDS
run_shard processes "${processes[@]}" &
processes_pid=$!
run_shard core "${ignores[@]}" &
core_pid=$!
wait "$processes_pid"
processes_rc=$?
wait "$core_pid"
core_rc=$?

echo "test shards: processes exit $processes_rc, core exit $core_rc, $((SECONDS - started)) s in all"
if [[ $processes_rc -ne 0 || $core_rc -ne 0 ]]; then
    exit 1
fi
