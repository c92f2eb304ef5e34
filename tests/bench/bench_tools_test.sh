#!/usr/bin/env bash
# The benchmark references stay what the docs say they are: rocksdb_scan reads every entry of a
# ledger (as many events and stream entries as make_ledger appended) and writes them into SST
# files, and rocksdb_sync_put's batched loop writes without failures.
# usage: bench_tools_test.sh BENCH_DIR
set -euo pipefail
bench=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-tools-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "bench_tools_test: $*" >&2; exit 1; }

events=3000
"$bench/make_ledger" --data-dir "$work/ledger" --events "$events" >/dev/null
mkdir "$work/sst"
out=$("$bench/rocksdb_scan" --dir "$work/ledger" --write-to "$work/sst")
echo "$out"
grep -q "^events: $events entries," <<<"$out" || fail "rocksdb_scan did not read $events events"
grep -q "^streams: $events entries," <<<"$out" || fail "rocksdb_scan did not read $events stream entries"
grep -q "^token_list_index[^:]*: [1-9][0-9]* entries," <<<"$out" || fail "no list index entries read"
grep -q "^all: .* written [0-9.]* s CPU$" <<<"$out" || fail "no writing figure"
[ -n "$(find "$work/sst" -name '*.sst' -size +0)" ] || fail "rocksdb_scan wrote no SST file"
# Read-only: the ledger is the same afterwards, and one thread reads as many entries as two.
one=$("$bench/rocksdb_scan" --dir "$work/ledger" --threads 1 | awk '/^all:/ {print $2}')
two=$(awk '/^all:/ {print $2}' <<<"$out")
[ "$one" = "$two" ] || fail "one thread read $one entries, two read $two"

loop=$("$bench/rocksdb_sync_put" --dir "$work/loop" --threads 4 --seconds 1 --keys 24 --value-bytes 1270)
echo "$loop"
grep -q " failures 0$" <<<"$loop" || fail "the batched loop failed writes"
awk '{exit !($1 > 0)}' <<<"$loop" || fail "the batched loop wrote nothing"
"$bench/rocksdb_scan" --dir "$work/loop" | grep -q "^default: " || fail "the loop's keys are not in its database"
echo "bench_tools_test: ok"
