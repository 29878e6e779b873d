#!/bin/bash
# The step wrapper without an interpreter start: the same contract as jobwrap.py (read its
# docstring), in shell with coreutils, because a Python start cost ~70 ms on every step of
# every workset.
#
#   bash jobwrap.sh --status FILE --log FILE [--max-bytes N [--head-bytes N]] -- argv...
#
# bash, not any sh, for its job control without a terminal (set -m): each background job gets
# its own process group and, unlike an async command of a plain sh script, does not start with
# SIGINT and SIGQUIT ignored. The command runs directly (no shell) in its own process group,
# output appended to the log; the status file is always left (write, then rename). Signals to
# the wrapper are forwarded to the command's process group. With --max-bytes the output goes
# through a pipe to a pump (this script again, with --pump, in its own process group) that
# keeps the log bounded exactly as jobwrap.BoundedLog does. Exit code: the command's; killed
# by signal N: 128+N; 127: could not start. How the command ended (exit code or signal) is
# read from bash's job table, which keeps them apart where $? does not (exit 137 and SIGKILL
# are both 137 there).

MARKER_ROOM=120  # bytes kept free for the marker line (as in jobwrap.py and steplogs)

now() {  # into $stamp, with no process started (the end of a job may be short of time)
    local t=${EPOCHREALTIME/,/.}  # the locale may use a decimal comma
    TZ=UTC printf -v stamp '%(%Y-%m-%dT%H:%M:%S)T.%s+00:00' "${t%.*}" "${t#*.}"
}

size_of() { wc -c <"$1" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------------------- the pump
# Reads the command's output on stdin; appends to LOG until it holds MAX bytes; at
# MAX, replaces LOG (write, then rename) by its head, a marker line and its newest bytes.
pump() {
    # Signals are the wrapper's to forward (a scancel reaches every process of the job): the
    # pump keeps draining until the wrapper ends it.
    trap '' TERM INT HUP USR1 USR2
    log=$1 max=$2 hb=$3
    [ "$hb" -gt $((max / 2)) ] && hb=$((max / 2))
    keep=$(((max - hb - MARKER_ROOM) / 2))
    [ "$keep" -lt 0 ] && keep=0
    size=$(size_of "$log")
    total=$size
    while :; do
        if [ "$size" -ge "$max" ]; then
            cut=${log%/*}/.${log##*/}.$$.cut
            head_n=$((size < hb ? size : hb))
            tail_n=$((size - head_n < keep ? size - head_n : keep))
            omitted=$((total - head_n - tail_n))
            marker="[daylib: $omitted bytes of this log omitted after the first $head_n bytes]"
            if { head -c "$head_n" "$log" && printf '\n%s\n' "$marker" &&
                 tail -c "$tail_n" "$log"; } >"$cut" 2>/dev/null && mv -f "$cut" "$log"; then
                size=$((head_n + ${#marker} + 2 + tail_n))
            else
                rm -f "$cut"
                echo "jobwrap: cannot write log $log" >&2
                break  # a full disk: discard the rest
            fi
        fi
        room=$((max - size))
        # unbuffered: each read reaches the log as it comes (followers see live output)
        stdbuf -o0 head -c "$room" >>"$log" || break
        new=$(size_of "$log")
        got=$((new - size))
        size=$new total=$((total + got))
        [ "$got" -lt "$room" ] && break  # end of output
    done
    exec cat >/dev/null  # never block the command on a full pipe
}

if [ "$1" = --pump ]; then
    shift
    pump "$@"
fi

# ---------------------------------------------------------------------------- the wrapper
status= log= max= hb=0
while [ $# -gt 0 ]; do
    case $1 in
        --status|--log|--max-bytes|--head-bytes)
            [ $# -ge 2 ] || { echo "jobwrap: $1 needs a value" >&2; exit 2; }
            case $1 in
                --status) status=$2 ;;
                --log) log=$2 ;;
                --max-bytes) max=$2 ;;
                --head-bytes) hb=$2 ;;
            esac
            shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ -n "$status" ] && [ -n "$log" ] || {
    echo "usage: jobwrap.sh --status FILE --log FILE [--max-bytes N] -- argv..." >&2; exit 2; }

json() {  # a JSON string for $1 (control characters other than tab and newline become '?')
    case $1 in
        *[\"\\]*|*[![:print:]]*)
            printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
                -e 's/\t/\\t/g' -e 's/[[:cntrl:]]/?/g' | sed -e ':a' -e 'N' -e '$!ba' \
                -e 's/\n/\\n/g')" ;;
        *) printf '"%s"' "$1" ;;
    esac
}

now
started=$stamp
read -r host </proc/sys/kernel/hostname 2>/dev/null || host=$(uname -n)
host=$(json "$host")
argv0=null
[ $# -gt 0 ] && argv0=$(json "$1")
job=null
[ -n "$SLURM_JOB_ID" ] && job=$(json "$SLURM_JOB_ID")
pid=

write_status() {  # exit code or null, signal or null
    now
    dir=${status%/*}
    [ "$dir" = "$status" ] || mkdir -p -- "$dir" 2>/dev/null
    tmp=$status.$$.tmp
    if printf '{"exit_code": %s, "signal": %s, "started_at": "%s", "ended_at": "%s", %s}\n' \
            "$1" "$2" "$started" "$stamp" \
            "\"argv0\": $argv0, \"host\": $host, \"job_id\": $job, \"pid\": ${pid:-null}" \
            >"$tmp" 2>/dev/null && { sync -- "$tmp" 2>/dev/null; mv -f -- "$tmp" "$status" \
            2>/dev/null; }; then
        return 0
    fi
    rm -f -- "$tmp"
    echo "jobwrap: cannot write status $status" >&2
}

cannot_start() {  # why: the command is missing or not executable (exit 127, as jobwrap.py)
    if [ $# -eq 0 ]; then
        echo "no command given"; return 0
    fi
    case $1 in
        */*) path=$1 ;;
        *)
            path=
            saved_ifs=$IFS; IFS=:; set -f
            for d in $PATH; do
                if [ -f "${d:-.}/$1" ] && [ -x "${d:-.}/$1" ]; then path=${d:-.}/$1; break; fi
            done
            IFS=$saved_ifs; set +f
            [ -n "$path" ] || { echo "No such file or directory"; return 0; } ;;
    esac
    if [ ! -e "$path" ]; then echo "No such file or directory"
    elif [ -d "$path" ] || [ ! -x "$path" ]; then echo "Permission denied"
    else return 1
    fi
}

dir=${log%/*}
[ "$dir" = "$log" ] || mkdir -p -- "$dir" 2>/dev/null
if [ -d "$log" ] || ! true 2>/dev/null >>"$log"; then
    echo "jobwrap: cannot open log $log" >&2
    write_status 127 null
    exit 127
fi
if why=$(cannot_start "$@"); then
    printf "jobwrap: cannot start %s: %s\n" "$(if [ $# -gt 0 ]; then printf "'%s'" "$1"; \
        else echo None; fi)" "$why" >>"$log"
    write_status 127 null
    exit 127
fi

exec_command() {
    exec -- "$@"
}

pending= caught=
forward() {
    caught=1
    if [ -n "$pid" ]; then kill -s "$1" -- "-$pid" 2>/dev/null; else pending="$pending $1"; fi
}
for sig in TERM INT HUP CONT USR1 USR2; do
    trap "forward $sig" "$sig"
done

set -m  # job control: the command and the pump each in a process group of their own
jobs_file=${TMPDIR:-/tmp}/jobwrap.$$.jobs
: >"$jobs_file" 2>/dev/null
# The job table says "Exit N" or "Done" for an exit, the signal's name for a kill.
trap 'jobs -l >>"$jobs_file" 2>/dev/null; caught=1' CHLD
pump_pid= fifo=
if [ -n "$max" ]; then
    fifo=${TMPDIR:-/tmp}/jobwrap.$$.fifo
    rm -f -- "$fifo"
    mkfifo -m 600 -- "$fifo" || { write_status 127 null; exit 127; }
    /bin/bash "$0" --pump "$log" "$max" "$hb" <"$fifo" &
    pump_pid=$!
    exec_command "$@" </dev/null >"$fifo" 2>&1 &
else
    exec_command "$@" </dev/null >>"$log" 2>&1 &
fi
pid=$!
for sig in $pending; do
    kill -s "$sig" -- "-$pid" 2>/dev/null
done

while :; do
    caught=
    wait "$pid"
    rc=$?
    [ -n "$caught" ] || break  # a forwarded signal interrupted the wait: wait again
done
# The command is gone: nothing left to forward to. No trap may run from here on (bash can
# abort when one interrupts a command substitution), and the status file must be written.
trap - CHLD CONT
trap '' TERM INT HUP USR1 USR2
# The job table's last word on the command. A signal interrupting `wait` while the job table
# was being listed can leave $? without the status (-1): the table then decides it.
ended=
while IFS= read -r line; do
    case $line in *" $pid "*) ended=${line#*" $pid "} ;; esac
done <"$jobs_file" 2>/dev/null
rm -f -- "$jobs_file"
killed=
case $ended in
    Exit\ *|Done*) ;;
    ?*) [ "$rc" -gt 128 ] && [ "$rc" -le 255 ] && killed=1 ;;
esac
if [ "$rc" -lt 0 ] || [ "$rc" -gt 255 ] || { [ "$rc" -eq 127 ] && [ -n "$ended" ]; }; then
    case $ended in
        Exit\ *) rc=${ended#Exit } rc=${rc%% *} ;;
        Done*) rc=0 ;;
        *) killed=1
           case $ended in
               Hangup*) rc=129 ;; Interrupt*) rc=130 ;; Quit*) rc=131 ;; Killed*) rc=137 ;;
               User\ defined\ signal\ 1*) rc=138 ;; User\ defined\ signal\ 2*) rc=140 ;;
               Aborted*) rc=134 ;; Segmentation*) rc=139 ;; *) rc=143 ;;
           esac ;;
    esac
fi

if [ -n "$pump_pid" ]; then
    # The pump ends at end of output. A grandchild still holding the pipe must not keep the
    # wrapper (and so the status file) waiting: once the log stops growing, stop the pump
    # (after 0.3 s while the command's process group lives on, 2 s once it is empty).
    last=-1 still=0 limit=30
    while kill -0 "$pump_pid" 2>/dev/null && [ "$still" -lt "$limit" ]; do
        kill -0 -- "-$pid" 2>/dev/null && limit=30 || limit=200
        cur=$(size_of "$log")
        if [ "$cur" = "$last" ]; then still=$((still + 1)); else still=0; fi
        last=$cur
        sleep 0.01
    done
    kill -s KILL -- "-$pump_pid" 2>/dev/null
    wait "$pump_pid" 2>/dev/null
    rm -f -- "$fifo"
fi

if [ -n "$killed" ]; then
    write_status null $((rc - 128))
else
    write_status "$rc" null
fi
exit "$rc"
