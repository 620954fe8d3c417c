#!/usr/bin/env bash
# Instructions per 64-byte append and per read record, counted by valgrind's callgrind.
#
# Runs `examples/instructions.rs` for two record counts N1 < N2, counting only inside one
# function of the example (`--toggle-collect`: no other setup, no background threads):
# `append_loop` (N appends), `read_loop` (N `Reader::next` calls) and `open_reader`
# (`read_from(0)`, which indexes the N records already there). The cost of one record is
# (count(N2) - count(N1)) / (N2 - N1), so fixed costs cancel out. Each figure is then split by
# what the instructions do (every instruction is attributed through its inline call chain,
# from `addr2line -i`), and callgrind's own inclusive list of functions for N2 follows.
#
# Usage: benches/instructions.sh        (N1=200000 N2=400000 TOP=25 to change the defaults;
#                                        CALLGRIND_OUT=DIR keeps the callgrind files there)
#
# Instruction counts are exact and repeatable, but they are not time: a CRC32 instruction and
# an add count the same, cache misses and page faults cost nothing here, and the kernel's work
# is not seen. Under valgrind the coarse clock is read with a real system call (the vDSO is
# not available to the program), so the timestamp's share is smaller than the vDSO read that
# runs natively.
#
# rustix reads the auxiliary vector with `PR_GET_AUXV`, which returns the real process's
# vector, whose vDSO valgrind has unmapped, and so crashes under valgrind
# (https://github.com/bytecodealliance/rustix/issues/1559). The example is therefore built
# with rustix's `use-libc-auxv` feature, which asks libc (valgrind gives it a consistent
# vector, without a vDSO): the clock is then read with the system call. Nothing else on the
# measured paths depends on it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in valgrind callgrind_annotate addr2line; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        case "$tool" in
            addr2line) pkg=binutils ;;
            *) pkg=valgrind ;;
        esac
        echo "instructions.sh: '$tool' is not installed (apt-get install $pkg)" >&2
        exit 1
    fi
done

N1=${N1:-200000}
N2=${N2:-400000}
TOP=${TOP:-25}
if ! [[ "$N1" =~ ^[0-9]+$ && "$N2" =~ ^[0-9]+$ ]] || ((N1 >= N2)); then
    echo "instructions.sh: need integers N1 < N2 (got N1=$N1 N2=$N2)" >&2
    exit 1
fi

if [[ -n "${CALLGRIND_OUT:-}" ]]; then
    out=$CALLGRIND_OUT
    mkdir -p "$out"
else
    out=$(mktemp -d "${TMPDIR:-/tmp}/mmlog-callgrind.XXXXXX")
    trap 'rm -rf "$out"' EXIT
fi

echo "building examples/instructions.rs (release)..." >&2
bin=$(cargo build --release --example instructions --features rustix/use-libc-auxv \
    --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "instructions.sh: could not find the built example" >&2
    exit 1
fi

# One run under callgrind, counting only inside the example's function $fn: $out/<tag>.<n>.
run() {
    local tag=$1 workload=$2 fn=$3 n=$4
    local file="$out/$tag.$n"
    if ! valgrind --tool=callgrind --toggle-collect="instructions::${fn}*" \
        --dump-instr=yes --compress-pos=no --compress-strings=no \
        --callgrind-out-file="$file" "$bin" "$workload" "$n" \
        >"$file.stdout" 2>"$file.stderr"; then
        echo "instructions.sh: the $workload $n run failed:" >&2
        cat "$file.stderr" >&2
        exit 1
    fi
}

total() {
    awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# Every collected instruction of the measured function $2 and of what it calls, as "address
# cost callee" lines of addresses in the example binary: an instruction's own cost, and at
# each call into another object (libc's memcpy, ...) the inclusive cost of that call, charged
# to the call site (so that it is attributed by the caller's inline chain). The callers of $2
# (main, ...) are left out: they are in the file with the inclusive cost of their calls.
binary_costs() {
    awk -v bin="$bin" -v root="$2" '
        FNR == NR {
            if ($0 ~ /^fn=/) f = substr($0, 4)
            else if ($0 ~ /^cfn=/) edges[f] = edges[f] "\n" substr($0, 5)
            next
        }
        FNR == 1 {
            # The functions reachable from the measured one.
            under[root] = 1; todo[1] = root; nt = 1
            for (i = 1; i <= nt; i++) {
                m = split(edges[todo[i]], c, "\n")
                for (j = 1; j <= m; j++)
                    if (c[j] != "" && !(c[j] in under)) { under[c[j]] = 1; todo[++nt] = c[j] }
            }
        }
        /^ob=/ { ob = substr($0, 4); next }
        /^fn=/ { mine = (ob == bin && (substr($0, 4) in under)); next }
        /^cob=/ { cob = substr($0, 5); next }
        /^cfn=/ { callee = substr($0, 5); next }
        /^calls=/ { call = 1; if (cob == "") cob = ob; next }
        /^0x/ {
            if (mine && (!call || cob != bin)) {
                cost[$1] += $3
                if (call) name[$1] = callee
            }
            if (call) { call = 0; cob = "" }
        }
        END { for (a in cost) print a, cost[a], (a in name ? name[a] : "-") }
    ' "$1" "$1"
}

# Category rules, tried on each address's inline chain from the innermost frame out (the
# callee first, for a call site): the first frame that matches a pattern (an awk regular
# expression) gives the category.
append_rules='crc_fast|format::crc|record_crc = CRC (crc-fast)
Mapping::write = copy (seq+timestamp, payload)
Tail::reserve|Shared::reserve|Shared::active|Segment::completion|prefault|Prefault = reservation (tail fetch_add, active segment)
now_ns|rustix::|clock_gettime = timestamp (clock read)
publish_commit_word|publish_record|commit_word|len_kind|MapSlot::writer|writer_map = publish (commit word store, mapping pointer)
check_writable|frame_len|payload_len_max|after_publish|durability = checks (state, length, durability)
Log::append = other (append glue)
append_loop = example loop (payload index, black_box)'
read_rules='crc_fast|format::crc|checksum = CRC (crc-fast)
Reader::word|decode_word|Reader::step|Reader::unwritten = commit word (load, decode)
check_body|Reader::check = frame checks (bounds, len_kind, seq, header)
Reader::skips = skip test
Reader::next = other (Reader::next)
read_loop = example loop (count, black_box)'
open_rules='crc_fast|format::crc|checksum = CRC (crc-fast)
timestamp_at = index: timestamp read
word_at|decode_word = index: commit word (load, decode)
Segment::extend_index = index: extend_index loop
Mapping:: = mapping bounds checks'

# Prints "cost<TAB>category" lines for one callgrind file.
categories() {
    local file=$1 fn=$2 rules=$3
    local costs="$out/costs.tmp" chains="$out/chains.tmp"
    binary_costs "$file" "$fn" >"$costs"
    cut -d' ' -f1 "$costs" | addr2line -a -f -i -C -e "$bin" >"$chains"
    awk -v rules="$rules" '
        function norm(a) { sub(/^0x0*/, "", a); return a }
        BEGIN {
            n = split(rules, lines, "\n")
            for (i = 1; i <= n; i++) {
                split(lines[i], kv, " = ")
                pat[i] = kv[1]; cat[i] = kv[2]
            }
            nrules = n
        }
        FNR == NR {
            # addr2line: the address, then function / file:line pairs, innermost first.
            if ($0 ~ /^0x[0-9a-f]+$/) { addr = norm($0); k = 0; next }
            if (k % 2 == 0) chain[addr] = chain[addr] "\n" $0
            k++
            next
        }
        {
            a = norm($1); c = $2; callee = $3
            frames = (callee != "-" ? callee : "") chain[a]
            m = split(frames, f, "\n")
            found = ""
            for (j = 1; j <= m && found == ""; j++) {
                if (f[j] == "") continue
                for (i = 1; i <= nrules; i++) {
                    if (f[j] ~ pat[i]) { found = cat[i]; break }
                }
            }
            if (found == "") {
                for (j = 1; j <= m && f[j] == ""; j++) {}
                found = "other: " f[j]
            }
            sum[found] += c
        }
        END { for (k in sum) print sum[k] "\t" k }
    ' "$chains" "$costs"
}

report() {
    local tag=$1 fn=$2 unit=$3 rules=$4
    local f1="$out/$tag.$N1" f2="$out/$tag.$N2"
    local c1 c2
    c1=$(total "$f1")
    c2=$(total "$f2")
    echo
    echo "== $tag: $c1 instructions for N=$N1, $c2 for N=$N2"
    awk -v c1="$c1" -v c2="$c2" -v n1="$N1" -v n2="$N2" -v unit="$unit" \
        'BEGIN { printf "   %.1f instructions per %s\n", (c2 - c1) / (n2 - n1), unit }'
    echo
    echo "   by what the instructions do, per record (the N2 - N1 difference):"
    categories "$f1" "instructions::$fn" "$rules" >"$out/cat1.tmp"
    categories "$f2" "instructions::$fn" "$rules" >"$out/cat2.tmp"
    awk -F'\t' -v n1="$N1" -v n2="$N2" '
        FNR == NR { a[$2] = $1; next }
        { b[$2] = $1 }
        END {
            for (k in b) { d[k] = (b[k] - a[k]) / (n2 - n1); t += d[k] }
            for (k in a) if (!(k in b)) { d[k] = -a[k] / (n2 - n1); t += d[k] }
            for (k in d) if (d[k] >= 0.05 || d[k] <= -0.05)
                printf "   %8.1f  %5.1f%%  %s\n", d[k], (t ? 100 * d[k] / t : 0), k
        }
    ' "$out/cat1.tmp" "$out/cat2.tmp" | sort -k1,1 -rn
    echo
    echo "   callgrind_annotate --inclusive=yes, N=$N2 (functions, and inlined code by file):"
    # Shortened paths; the ancestors of the measured function (100%) left out. awk reads to
    # the end, so that no writer gets SIGPIPE.
    callgrind_annotate --inclusive=yes --auto=no "$f2" |
        awk -v top="$TOP" -v root="$PWD" '/^-+$/ { dash++; next }
            dash >= 4 && NF && $0 !~ /100\.0%/ && shown < top {
                gsub(/[^ ]*\/registry\/src\/[^\/]*\/|\/rustc\/[0-9a-f]*\/library\//, "")
                gsub(root "/", "")
                gsub(/ \[[^]]*\]$/, "")
                print "   " $0; shown++
            }'
}

start=$SECONDS
for n in "$N1" "$N2"; do
    echo "callgrind: append, open_reader, read, N=$n..." >&2
    run append append append_loop "$n"
    run open read open_reader "$n"
    run read read read_loop "$n"
done

report append append_loop "64-byte append" "$append_rules"
report read read_loop "record read by Reader::next (64-byte payload)" "$read_rules"
report open open_reader "record already in the log, for read_from(0) (it indexes them)" "$open_rules"
echo
echo "valgrind runs: $((SECONDS - start)) s; binary: $bin"
if [[ -n "${CALLGRIND_OUT:-}" ]]; then
    echo "callgrind files: $out/{append,open,read}.{$N1,$N2}"
fi
