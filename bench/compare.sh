#!/usr/bin/env bash
# compare.sh ROUNDS [REGEX]: run herald's comparison benchmarks interleaved
# (round 1 runs every contender once, then round 2, ...) and print, per
# contender, the median msgs/s (with the slowest and fastest run), ns/msg
# and allocs/msg over the rounds, and herald's ratio to every other
# contender of the same benchmark.
#
# Interleaving spreads the machine's noise (other work can swing a run by
# 40%) over all contenders alike; medians discard the outliers. REGEX keeps
# only the benchmarks whose name matches, such as 'Mem' or 'AWS|PubSub'.
#
# Raw output, every run's full log (log.txt), the load averages and the herald
# commit measured go to results/<UTC time>/ (git-ignored).
# Benchmarks whose local cloud cannot start are skipped and reported as such.
set -euo pipefail
cd "$(dirname "$0")"

rounds=${1:-5}
filter=${2:-.}

# One benchmark a line, with its -benchtime (every benchmark's b.N is a
# message count). Each benchmark runs all its contenders, one after the
# other, in one process that starts the local cloud once (and warms
# fauxqs up). The counts keep one round of everything near 2 to 3 minutes
# on a loaded 2-core machine: AWS's slowest contenders handle a few
# hundred messages a second on fauxqs, gocloud.dev's Pub/Sub and Service Bus
# subscriptions under a hundred to a few hundred.
benchmarks=$(cat <<'LIST'
BenchmarkMemConsume 100000x
BenchmarkMemEndToEnd 100000x
BenchmarkAWSPublish 5000x
BenchmarkAWSEndToEnd 2000x
BenchmarkPubSubPublish 10000x
BenchmarkPubSubEndToEnd 2000x
BenchmarkServiceBusPublish 10000x
BenchmarkServiceBusEndToEnd 2000x
LIST
)
benchmarks=$(grep -E -- "$filter" <<<"$benchmarks" || true)
if [ -z "$benchmarks" ]; then
	echo "no benchmark matches $filter" >&2
	exit 2
fi

out=results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
go test -c -o "$out/bench.test" . >&2
raw=$out/raw.txt
: >"$raw"

# The bench module builds herald from the work tree (replace => ../):
# record which commit, and whether uncommitted changes were measured too.
changed=$(git status --porcelain --untracked-files=no -- .. | wc -l)
echo "herald at $(git rev-parse --short HEAD), $changed changed files" | tee "$out/load.txt" >&2
echo "load before: $(uptime)" | tee -a "$out/load.txt" >&2
for r in $(seq 1 "$rounds"); do
	while read -r bench benchtime; do
		status=0
		"$out/bench.test" -test.run '^$' -test.bench "^${bench}\$" \
			-test.benchtime "$benchtime" -test.count 1 >"$out/run.log" 2>&1 || status=$?
		sed "s/^/round $r $bench: /" "$out/run.log" >>"$out/log.txt"
		grep -E "^Benchmark|SKIP|FAIL|--- |goleak|panic" "$out/run.log" |
			sed "s/^/round $r: /" >>"$raw" || true
		if [ "$status" != 0 ] || ! grep -q "^Benchmark.*msgs/s" "$out/run.log"; then
			echo "round $r: FAIL $bench: exit status $status (see log.txt)" >>"$raw"
		fi
		echo "round $r: $bench done" >&2
	done <<<"$benchmarks"
	echo "load after round $r: $(uptime)" | tee -a "$out/load.txt" >&2
done
rm -f "$out/bench.test" "$out/run.log"

echo
echo "$rounds rounds; $(head -n 1 "$out/load.txt")"
grep load "$out/load.txt"
echo
# Medians per contender, then herald's ratio (msgs/s) to every other
# contender of the same benchmark.
awk '
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) {
		t = a[j]; a[j] = a[j-1]; a[j-1] = t
	}
	if (n == 0) return ""
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function spread(list,   a, n, i, lo, hi) {
	n = split(list, a, " ")
	lo = hi = a[1] + 0
	for (i = 2; i <= n; i++) {
		if (a[i] + 0 < lo) lo = a[i] + 0
		if (a[i] + 0 > hi) hi = a[i] + 0
	}
	return sprintf("%.0f-%.0f", lo, hi)
}
/SKIP|FAIL|goleak|panic/ { problems = problems "\n  " $0 }
/^round [0-9]+: Benchmark/ {
	name = $3; sub(/-[0-9]+$/, "", name)
	for (i = 5; i < NF; i += 2) {
		if ($(i+1) == "msgs/s") rate[name] = rate[name] " " $i
		if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
		if ($(i+1) == "allocs/op") allocs[name] = allocs[name] " " $i
	}
	if (!(name in runs)) order[++n] = name
	runs[name]++
}
END {
	printf "%-48s %4s %10s %19s %10s %7s\n", "contender", "runs", "msgs/s", "(min-max)",
		"ns/msg", "allocs"
	for (k = 1; k <= n; k++) {
		name = order[k]
		med[name] = median(rate[name])
		printf "%-48s %4d %10.0f %19s %10.0f %7.1f\n", name, runs[name], med[name],
			"(" spread(rate[name]) ")", median(ns[name]), median(allocs[name])
	}
	if (problems != "") print "\nskipped or failed:" problems
	print ""
	print "herald ratios (median msgs/s of herald / median msgs/s of the other):"
	for (k = 1; k <= n; k++) {
		h = order[k]; split(h, hp, "/")
		if (hp[2] !~ /^Herald/ || !(h in med)) continue
		for (j = 1; j <= n; j++) {
			o = order[j]; split(o, op, "/")
			if (op[1] != hp[1] || op[2] ~ /^Herald/ || !(o in med) || med[o] == 0) continue
			printf "  %-48s vs %-22s %8.2fx\n", h, op[2], med[h] / med[o]
		}
	}
}' "$raw" | tee "$out/summary.txt"
