#!/bin/bash
# The step wrapper without an interpreter start: the same contract as jobwrap.py (read its
# docstring), in shell with coreutils, because a Python start cost ~70 ms on every step of
# every workset.
#
#   bash jobwrap.sh --status FILE --log FILE [--max-bytes N [--head-bytes N] [--fifo FILE]]
#                   -- argv...
#
# bash, not any sh, for its job control without a terminal (set -m): each background job gets
# its own process group and, unlike an async command of a plain sh script, does not start with
# SIGINT and SIGQUIT ignored. The command runs directly (no shell) in its own process group,
# output appended to the log; the status file is always left (write, then rename). Signals to
# the wrapper are forwarded to the command's process group. With --max-bytes the output goes
# through a pipe to a pump (a subshell in its own process group) that keeps the log bounded
# exactly as jobwrap.BoundedLog does. Between its start and the command's, and between the
# command's end and the status file, the wrapper starts no process it can do without (each
# costs milliseconds on every step: the fifo and the status file's rename are all; a caller
# on the same host makes the fifo itself, a system call, and names it with --fifo). Exit
# code: the command's; killed by signal N: 128+N; 127: could not start. How the command
# ended (exit code or signal) is read from bash's job table, which keeps them apart where $?
# does not (exit 137 and SIGKILL are both 137 there).

MARKER_ROOM=120  # bytes kept free for the marker line (as in jobwrap.py and steplogs)

now() {  # into $stamp, with no process started (the end of a job may be short of time)
    local t=${EPOCHREALTIME/,/.}  # the locale may use a decimal comma
    TZ=UTC printf -v stamp '%(%Y-%m-%dT%H:%M:%S)T.%s+00:00' "${t%.*}" "${t#*.}"
}

size_of() { wc -c <"$1" 2>/dev/null || echo 0; }

appended() {  # into $size: where fd 3 (the log, opened to append) ends, with no process
    local key pos
    { read -r key pos </proc/$BASHPID/fdinfo/3; } 2>/dev/null || return 1
    # an append-mode descriptor's offset is the file's end once written through; still 0
    # if nothing was, since it was opened at $size
    [ "$pos" -gt 0 ] && size=$pos
    return 0
}

# ---------------------------------------------------------------------------- the pump
# Reads the command's output on stdin (the fifo named by its 4th argument); appends to LOG
# until it holds MAX bytes; at MAX, replaces LOG (write, then rename) by its head, a marker
# line and its newest bytes.
pump() {
    # Signals are the wrapper's to forward (a scancel reaches every process of the job): the
    # pump keeps draining until the wrapper ends it.
    trap '' TERM INT HUP USR1 USR2
    set +m  # what it starts stays in its process group (stopped as one)
    log=$1 max=$2 hb=$3
    # Both ends of the fifo are open (this stdin's open waited for the command's): its name
    # is no longer needed, and removing it here keeps that off the step's path.
    rm -f -- "$4"
    [ "$hb" -gt $((max / 2)) ] && hb=$((max / 2))
    keep=$(((max - hb - MARKER_ROOM) / 2))
    [ "$keep" -lt 0 ] && keep=0
    exec 3>>"$log" || exec cat >/dev/null
    size=0
    [ -s "$log" ] && size=$(size_of "$log")  # a step's new log (the rule) costs no process
    total=$size
    while :; do
        if [ "$size" -ge "$max" ]; then
            cut=${log%/*}/.${log##*/}.$BASHPID.cut
            head_n=$((size < hb ? size : hb))
            tail_n=$((size - head_n < keep ? size - head_n : keep))
            omitted=$((total - head_n - tail_n))
            marker="[daylib: $omitted bytes of this log omitted after the first $head_n bytes]"
            if { head -c "$head_n" "$log" && printf '\n%s\n' "$marker" &&
                 tail -c "$tail_n" "$log"; } >"$cut" 2>/dev/null && mv -f "$cut" "$log" &&
                 exec 3>>"$log"; then
                size=$((head_n + ${#marker} + 2 + tail_n))
            else
                rm -f "$cut"
                echo "jobwrap: cannot write log $log" >&2
                break  # a full disk: discard the rest
            fi
        fi
        room=$((max - size))
        # unbuffered: each read reaches the log as it comes (followers see live output)
        stdbuf -o0 head -c "$room" >&3 || break
        old=$size
        appended || size=$(size_of "$log")
        total=$((total + size - old))
        [ $((size - old)) -lt "$room" ] && exit 0  # end of output
    done
    exec cat >/dev/null  # never block the command on a full pipe
}

# ---------------------------------------------------------------------------- the wrapper
status= log= max= hb=0 given=
while [ $# -gt 0 ]; do
    case $1 in
        --status|--log|--max-bytes|--head-bytes|--fifo)
            [ $# -ge 2 ] || { echo "jobwrap: $1 needs a value" >&2; exit 2; }
            case $1 in
                --status) status=$2 ;;
                --log) log=$2 ;;
                --max-bytes) max=$2 ;;
                --head-bytes) hb=$2 ;;
                --fifo) given=$2 ;;
            esac
            shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ -n "$status" ] && [ -n "$log" ] || {
    echo "usage: jobwrap.sh --status FILE --log FILE [--max-bytes N] -- argv..." >&2; exit 2; }

json() {  # into $1, a JSON string for $2 (control characters other than tab and newline
    # become '?'); a process is started only for text that needs escaping
    case $2 in
        *[\"\\]*|*[![:print:]]*)
            printf -v "$1" '"%s"' "$(printf '%s' "$2" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
                -e 's/\t/\\t/g' -e 's/[[:cntrl:]]/?/g' | sed -e ':a' -e 'N' -e '$!ba' \
                -e 's/\n/\\n/g')" ;;
        *) printf -v "$1" '"%s"' "$2" ;;
    esac
}

now
started=$stamp
read -r host </proc/sys/kernel/hostname 2>/dev/null || host=$(uname -n)
json host "$host"
argv0=null
[ $# -gt 0 ] && json argv0 "$1"
job=null
[ -n "$SLURM_JOB_ID" ] && json job "$SLURM_JOB_ID"
pid=

write_status() {  # exit code or null, signal or null
    # Write, then rename: a reader sees the whole file or none (NFS flushes it on close).
    # Not synced: after a crash of the host a lost or empty file reads as no status at all,
    # which the executors already judge as a step that never ended (LOST), never as an
    # outcome; syncing would only cost every step a journal commit.
    now
    tmp=$jobs_file  # read already: written over, renamed, so nothing is left to remove
    if printf '{"exit_code": %s, "signal": %s, "started_at": "%s", "ended_at": "%s", %s}\n' \
            "$1" "$2" "$started" "$stamp" \
            "\"argv0\": $argv0, \"host\": $host, \"job_id\": $job, \"pid\": ${pid:-null}" \
            >"$tmp" 2>/dev/null && mv -f -- "$tmp" "$status" 2>/dev/null; then
        return 0
    fi
    rm -f -- "$tmp"
    echo "jobwrap: cannot write status $status" >&2
}

cannot_start() {  # into $why: the command is missing or not executable (127, as jobwrap.py)
    if [ $# -eq 0 ]; then
        why="no command given"; return 0
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
            [ -n "$path" ] || { why="No such file or directory"; return 0; } ;;
    esac
    if [ ! -e "$path" ]; then why="No such file or directory"
    elif [ -d "$path" ] || [ ! -x "$path" ]; then why="Permission denied"
    else return 1
    fi
}

for path in "$status" "$log"; do
    dir=${path%/*}
    [ "$dir" = "$path" ] || [ -d "$dir" ] || mkdir -p -- "$dir" 2>/dev/null
done
# The job table's lines (the CHLD trap's), later the status file's first version: next to
# the status file, so the rename that publishes the status also removes it.
jobs_file=$status.$$.tmp
if [ -d "$log" ] || ! true 2>/dev/null >>"$log"; then
    echo "jobwrap: cannot open log $log" >&2
    write_status 127 null
    exit 127
fi
if cannot_start "$@"; then
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

set -m  # job control: the command in a process group of its own
pump_pid= fifo= pump_end=
if [ -n "$max" ]; then
    if [ -n "$given" ] && [ -p "$given" ] && [ -O "$given" ] && [ ! -L "$given" ]; then
        fifo=$given  # the caller's (removed by the pump as our own would be)
    else
        fifo=${TMPDIR:-/tmp}/jobwrap.$$.fifo
        if [ -e "$fifo" ] || [ -L "$fifo" ]; then rm -f -- "$fifo"; fi  # a dead namesake's
        mkfifo -m 600 -- "$fifo" || { write_status 127 null; exit 127; }
    fi
    # The pump is not the wrapper's child: a subshell starts it (in a process group of its
    # own) and exits. So the command stays the only child while the CHLD trap below is set:
    # bash 5.2 can crash (a double free, a NULL trap string) when a second child ends just
    # as the trap runs or is removed, and the pump ends with the command's output. The pump
    # holds the write end of $pump_end, whose end of file tells the wrapper the log is whole.
    exec {pump_end}< <(set -m; pump "$log" "$max" "$hb" "$fifo" <"$fifo" & echo "$!")
    starter=$!
    read -r -u "$pump_end" pump_pid
    wait "$starter"
fi
: >"$jobs_file" 2>/dev/null
# The job table says "Exit N" or "Done" for an exit, the signal's name for a kill.
trap 'jobs -l >>"$jobs_file" 2>/dev/null; caught=1' CHLD
if [ -n "$max" ]; then
    exec_command "$@" </dev/null >"$fifo" 2>&1 {pump_end}<&- &
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
    # The pump ends at the end of output (end of file on $pump_end, at once as a rule). A
    # grandchild still holding the pipe must not keep the wrapper (and so the status file)
    # waiting: once the log stops growing, stop the pump (after 0.3 s while the command's
    # process group lives on, 2 s once it is empty).
    last=-1 still=0
    while :; do
        read -r -t 0.05 -u "$pump_end" _
        [ $? -gt 128 ] || break  # not a timeout: the pump is gone
        kill -0 -- "-$pid" 2>/dev/null && limit=6 || limit=40
        cur=$(size_of "$log")
        if [ "$cur" = "$last" ]; then still=$((still + 1)); else still=0; fi
        last=$cur
        if [ "$still" -ge "$limit" ]; then
            kill -s KILL -- "-$pump_pid" 2>/dev/null
            break
        fi
    done
    exec {pump_end}<&-
fi

if [ -n "$killed" ]; then
    write_status null $((rc - 128))
else
    write_status "$rc" null
fi
exit "$rc"
