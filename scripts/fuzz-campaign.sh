#!/usr/bin/env bash
# Runs the fuzz targets for a while each and prints a table of what they did: executions, coverage
# (libFuzzer's `cov`: edges reached; `ft`: features), corpus size, and whether a crash was found.
#
#   bash scripts/fuzz-campaign.sh [SECONDS] [TARGET...]   # default: 600 s for archive_bytes, 120 for the rest
#
# Each target keeps its grown corpus in fuzz/target/campaign/TARGET/ between runs (the committed seeds
# in fuzz/corpus/ are only read); logs go next to it, crash inputs to fuzz/artifacts/TARGET/.
# Needs a nightly toolchain and cargo-fuzz (`bash .ci/setup` installs both). docs/fuzzing.md keeps the
# latest figures.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed -n 's/\.rs$//p')

cargo +nightly fuzz build >/dev/null
printf '%-20s %8s %12s %9s %7s %7s %8s  %s\n' target seconds executions exec/s cov ft corpus result
status=0
for target in "${targets[@]}"; do
  t=${seconds:-$([ "$target" = archive_bytes ] && echo 600 || echo 120)}
  dir=target/campaign/$target
  mkdir -p "$dir/corpus"
  log=$dir/last.log
  result=clean
  cargo +nightly fuzz run "$target" "$dir/corpus" "corpus/$target" -- \
    -max_total_time="$t" -timeout=30 -detect_leaks=0 -print_final_stats=1 >"$log" 2>&1 || { result="CRASH (see $log)"; status=1; }
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-20s %8s %12s %9s %7s %7s %8s  %s\n' "$target" "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit $status
