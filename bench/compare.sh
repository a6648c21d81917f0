#!/usr/bin/env bash
# compare.sh ROUNDS [REGEX]: run herald's comparison benchmarks interleaved
# (round 1 runs every contender once, then round 2, ...) and print, per
# contender, the median msgs/s, ns/msg and allocs/msg over the rounds, and
# herald's ratio to every other contender of the same benchmark.
#
# Interleaving spreads the machine's noise (other work can swing a run by
# 40%) over all contenders alike; medians discard the outliers. REGEX keeps
# only contenders whose name matches, such as 'Mem' or 'AWS|PubSub'.
#
# Raw output and the load averages go to results/<UTC time>/ (git-ignored).
# Benchmarks whose local cloud cannot start are skipped and reported as such.
set -euo pipefail
cd "$(dirname "$0")"

rounds=${1:-5}
filter=${2:-.}

# One contender a line: Benchmark/Sub and its -benchtime (messages per run:
# every benchmark's b.N is a message count). Each run stays well under 20 s
# on a loaded 2-core machine, so a round of everything stays near 2 minutes.
contenders=$(cat <<'LIST'
BenchmarkMemConsume/Channel 100000x
BenchmarkMemConsume/GoCloud 100000x
BenchmarkMemConsume/Watermill 100000x
BenchmarkMemConsume/WatermillRetryDedup 100000x
BenchmarkMemConsume/HeraldMemoryStore 100000x
BenchmarkMemConsume/HeraldNoStore 100000x
BenchmarkMemEndToEnd/GoCloud 100000x
BenchmarkMemEndToEnd/HeraldMemoryStore 100000x
BenchmarkMemEndToEnd/HeraldMemoryStoreBatch1000 100000x
LIST
)
contenders=$(grep -E -- "$filter" <<<"$contenders" || true)
if [ -z "$contenders" ]; then
	echo "no contender matches $filter" >&2
	exit 2
fi

out=results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
go test -c -o "$out/bench.test" . >&2
raw=$out/raw.txt
: >"$raw"

echo "load before: $(uptime)" | tee "$out/load.txt" >&2
for r in $(seq 1 "$rounds"); do
	while read -r name benchtime; do
		bench=${name%%/*}
		sub=${name#*/}
		"$out/bench.test" -test.run '^$' -test.bench "^${bench}\$/^${sub}\$" \
			-test.benchtime "$benchtime" -test.count 1 2>&1 |
			grep -E "^Benchmark|SKIP|FAIL|--- " | sed "s/^/round $r: /" >>"$raw" || true
		echo "round $r: $name done" >&2
	done <<<"$contenders"
	echo "load after round $r: $(uptime)" | tee -a "$out/load.txt" >&2
done
rm -f "$out/bench.test"

echo
echo "$rounds rounds; $(tail -n 1 "$out/load.txt")"
echo
# Medians per contender, then herald's ratio (msgs/s) to every other
# contender of the same benchmark.
awk -v want="$contenders" '
function median(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) {
		t = a[j]; a[j] = a[j-1]; a[j-1] = t
	}
	if (n == 0) return ""
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/^round [0-9]+: Benchmark/ {
	name = $3; sub(/-[0-9]+$/, "", name)
	for (i = 5; i < NF; i += 2) {
		if ($(i+1) == "msgs/s") rate[name] = rate[name] " " $i
		if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
		if ($(i+1) == "allocs/op") allocs[name] = allocs[name] " " $i
	}
	runs[name]++
}
END {
	n = split(want, lines, "\n")
	printf "%-50s %6s %14s %12s %10s\n", "contender", "runs", "msgs/s", "ns/msg", "allocs/msg"
	for (k = 1; k <= n; k++) {
		split(lines[k], f, " "); name = f[1]; order[k] = name
		if (!(name in runs)) { printf "%-50s %6s %14s\n", name, 0, "skipped"; continue }
		med[name] = median(rate[name])
		printf "%-50s %6d %14.0f %12.0f %10.1f\n", name, runs[name], med[name],
			median(ns[name]), median(allocs[name])
	}
	print ""
	print "herald ratios (median msgs/s of herald / median msgs/s of the other):"
	for (k = 1; k <= n; k++) {
		h = order[k]; split(h, hp, "/")
		if (hp[2] !~ /^Herald/ || !(h in med)) continue
		for (j = 1; j <= n; j++) {
			o = order[j]; split(o, op, "/")
			if (op[1] != hp[1] || op[2] ~ /^Herald/ || !(o in med) || med[o] == 0) continue
			printf "  %-50s vs %-20s %8.2fx\n", h, op[2], med[h] / med[o]
		}
	}
}' "$raw" | tee "$out/summary.txt"
