#!/bin/bash
# tests/bench/run-store-bench.sh: the store against fio on the same file
# system, through both I/O engines, as one table.
#
# fio gives the baselines: what this disk does for 4 KiB O_DSYNC random
# writes (a database's commit pattern without group commit) and for 1 MiB
# sequential writes at queue depth 16 (its bandwidth). Each runs before and
# after the store's tests, and the ratios use the mean, because virtual
# disks drift. store-bench measures the store under 16 volumes x 32 writes
# in flight, its map memory and its recovery. Every figure is compared with
# its target and marked PASS or MISS: information, not a verdict; the script
# fails only when a tool does.
#
# Baseline files: the 4 KiB one is laid out (written) first, so fio
# overwrites allocated blocks, its best case; the sequential one is a fresh
# sparse file, like the store's pool file, whose log allocates as it goes
# (store-bench --prealloc measures a zero-filled pool instead).
#
# Usage: run-store-bench.sh [--dir D] [--seconds S] [--warmup S]
#                           [--engines "uring threads"] [--bench PATH]
#                           [-- extra store-bench options]
# The default directory is a fresh one under /var/tmp (real disk; /tmp may
# be tmpfs), removed at the end. About 4 minutes with the defaults; needs
# ~30 GB free at peak (sparse files, each removed after its test).
set -eu

seconds=10
warmup=3
engines="uring threads"
dir=
bench=
extra=()

usage() {
	sed -n '/^# Usage:/,/^# ~30 GB/s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--dir) dir=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--engines) engines=$2; shift 2 ;;
	--bench) bench=$2; shift 2 ;;
	--help|-h) usage 0 ;;
	--) shift; extra=("$@"); break ;;
	*) echo "run-store-bench: unknown option $1" >&2; usage 2 >&2 ;;
	esac
done

# store-bench: --bench, else the build tree's (top_builddir, or next to this
# script in an in-tree build), else the current directory's.
find_bench() {
	local c
	for c in "$bench" "${top_builddir:-}/tests/bench/store-bench" \
	         "$(dirname "$0")/store-bench" ./tests/bench/store-bench; do
		if [ -n "$c" ] && [ -x "$c" ] && [ -f "$c" ]; then
			echo "$c"
			return 0
		fi
	done
	echo "run-store-bench: store-bench not found: build it (make tests/bench/store-bench)" \
	     "and pass --bench PATH" >&2
	return 1
}
bench=$(find_bench)
command -v fio >/dev/null || { echo "run-store-bench: fio is not installed (apt-get install fio)" >&2; exit 1; }

own_dir=
if [ -z "$dir" ]; then
	dir=$(mktemp -d /var/tmp/sluice-bench.XXXXXX)
	own_dir=$dir
fi
mkdir -p "$dir"
cleanup() {
	rm -f "$dir"/fio-*.dat "$dir"/*.pool
	[ -z "$own_dir" ] || rm -rf "$own_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commands=()
out=''
# run VAR CMD...: records the command line for the summary and stores its
# stdout in VAR (in this shell, so the record survives; a failure exits).
run() {
	local var=$1 cmd o
	shift
	printf -v cmd '%q ' "$@"
	commands+=("$cmd")
	o=$("$@") || { echo "run-store-bench: failed: $cmd" >&2; exit 1; }
	printf -v "$var" '%s' "$o"
}

fs_line=$(df -hT "$dir" | awk 'NR == 2 { print $2 " on " $1 ", " $5 " free" }')
echo "sluice store benchmark: $dir ($fs_line), ${seconds} s per figure after ${warmup} s warm-up"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
# other work on the machine skews every figure: say how busy it was
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

# ---- fio baselines ------------------------------------------------------
fio_common=(--direct=1 --ioengine=io_uring --minimal
            --runtime="$seconds" --ramp_time="$warmup" --time_based)
fio_rand=() fio_seq=()

# terse v3: field 48 is write bandwidth in KiB/s, field 49 write IOPS
fio_field() { awk -F';' -v f="$1" '{ print $f }'; }

fio_baselines() {
	local f=$dir/fio-rand.dat r
	echo "fio: 4 KiB O_DSYNC random writes (2 GiB file, laid out first)..."
	run r fio --name=layout --filename="$f" --size=2G --rw=write --bs=1M --direct=1 \
		--ioengine=io_uring --iodepth=16 --minimal
	run r fio --name=randwrite --filename="$f" --size=2G --rw=randwrite --bs=4k \
		--sync=dsync --iodepth=32 "${fio_common[@]}"
	fio_rand+=("$(echo "$r" | fio_field 49)")
	echo "  ${fio_rand[-1]} IOPS"
	rm -f "$f"
	f=$dir/fio-seq.dat
	echo "fio: 1 MiB sequential writes, queue depth 16 (fresh sparse file)..."
	run r fio --name=seqwrite --filename="$f" --size=32G --fallocate=none --rw=write \
		--bs=1M --iodepth=16 "${fio_common[@]}"
	fio_seq+=("$(echo "$r" | fio_field 48 | awk '{ printf "%.1f", $1 / 1024 }')")
	echo "  ${fio_seq[-1]} MiB/s"
	rm -f "$f"
}

fio_baselines

# ---- store-bench ----------------------------------------------------------
declare -A res
sb_common=(--dir "$dir" --seconds "$seconds" --warmup "$warmup" "${extra[@]}")

for e in $engines; do
	for t in randwrite4k randwrite64k mapmem recovery; do
		echo "store-bench: $t, engine $e..."
		run out "$bench" --test "$t" --engine "$e" "${sb_common[@]}"
		# shellcheck disable=SC2001
		echo "$out" | sed 's/^/  /'
		if [ "$t" = mapmem ]; then
			for f in sequential streams random; do
				res[$e.map.$f]=$(echo "$out" | grep "fill=$f ")
			done
		else
			res[$e.$t]=$out
		fi
	done
done

fio_baselines

# ---- the table -------------------------------------------------------------
# get LINE KEY: the value of KEY=value in a store-bench line
get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# mean A B, and a / b with p decimals
mean() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a + b) / 2 }'; }
div() { awk -v a="$1" -v b="$2" -v p="${3:-2}" 'BEGIN { printf "%.*f", p, (b > 0 ? a / b : 0) }'; }

# row FIGURE VALUE SHOWN TARGET CONDITION: CONDITION is awk on v (the value);
# an empty one makes the row information only. $eng is the engine column.
row() {
	local verdict=info
	[ -z "$5" ] || verdict=$(awk -v v="$2" "BEGIN { print (($5) ? \"PASS\" : \"MISS\") }")
	printf '%-36s %-9s %-44s %-11s %s\n' "$1" "$eng" "$3" "$4" "$verdict"
}

rand_iops=$(mean "${fio_rand[0]}" "${fio_rand[1]}")
seq_mib=$(mean "${fio_seq[0]}" "${fio_seq[1]}")

throughput_rows() {
	local r4=$1 r64=$2 x mib pct kib fpw
	x=$(div "$(get "$r4" iops)" "$rand_iops" 1)
	row "4K randwrite IOPS / fio dsync QD32" "$x" "$(get "$r4" iops) / $rand_iops = ${x}x" ">= 5x" "v >= 5"
	mib=$(get "$r64" mib_s)
	pct=$(div "$mib" "$seq_mib" 4 | awk '{ printf "%.0f", 100 * $1 }')
	row "64K randwrite MiB/s / fio seq 1M" "$pct" "$mib / $seq_mib MiB/s = ${pct}%" ">= 70%" "v >= 70"
	kib=$(get "$r4" avg_dev_write_kib)
	row "4K load: avg device write" "$kib" "$kib KiB" ">= 128 KiB" "v >= 128"
	fpw=$(get "$r4" flushes_per_write)
	row "4K load: flushes per acked write" "$fpw" "$fpw (1/$(get "$r4" writes_per_flush))" "<= 1/16" "v <= 1/16"
}

map_rows() {
	local f line bpe gpt kib
	for f in sequential streams random; do
		line=${res[$eng_key.map.$f]}
		bpe=$(get "$line" bytes_per_extent); gpt=$(get "$line" map_gib_per_tib)
		kib=$(get "$line" write_kib)
		row "map bytes/extent, $f ${kib}K" "$bpe" \
		    "$bpe B ($(get "$line" extents) extents, $(get "$line" mapped_gib) GiB)" "<= 24" "v <= 24"
		if [ "$f" = random ]; then
			row "map RAM per TiB, $f ${kib}K" "$gpt" "$gpt GiB" "-" ""
		else
			row "map RAM per TiB, $f ${kib}K" "$gpt" "$gpt GiB" "<= 0.5 GiB" "v <= 0.5"
		fi
	done
}

recovery_rows() {
	local rc=$1 sg rs
	sg=$(get "$rc" replay_s_per_gib)
	row "replay per GiB of log" "$sg" \
	    "$sg s ($(get "$rc" replayed_gib) GiB in $(get "$rc" replay_open_s) s, cpu $(get "$rc" replay_cpu_s) s)" \
	    "<= 0.2 s" "v <= 0.2"
	rs=$(get "$rc" restart_s)
	row "restart (close + open)" "$rs" \
	    "$rs s ($(get "$rc" used_gib) GiB used, $(get "$rc" extents) extents)" "<= 10 s" "v <= 10"
}

echo
echo "== results (fio baselines, before / after: ${fio_rand[0]} / ${fio_rand[1]} IOPS 4K dsync;" \
     "${fio_seq[0]} / ${fio_seq[1]} MiB/s seq) =="
printf '%-36s %-9s %-44s %-11s %s\n' figure engine measured target result
for eng_key in $engines; do
	eng=$(get "${res[$eng_key.randwrite4k]}" engine)
	throughput_rows "${res[$eng_key.randwrite4k]}" "${res[$eng_key.randwrite64k]}"
	map_rows
	recovery_rows "${res[$eng_key.recovery]}"
done

echo "load average (1, 5, 15 min) at the start: $load_start; at the end: $(loadavg)"
echo
echo "commands run:"
for c in "${commands[@]}"; do
	echo "  $c"
done
