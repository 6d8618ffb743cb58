package sessions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// How a job is stopped without losing its shell.
//
// ^C reaches only what reads the terminal's signals, and a job may ignore it
// (`trap "" INT`). Closing the session would kill the job, but also the shell,
// its cwd and environment. Instead a separate exec channel on the same
// connection signals the foreground process group of the shell's terminal:
// with job control (every interactive shell we start has it: bash, zsh, dash,
// busybox ash), each pipeline the shell runs is a process group of its own and
// the terminal's foreground group while it runs; the shell's own group is
// never touched. The shell sees its command end by the signal and prints the
// end marker as usual.
//
// The group is read from /proc/PID/stat (fields pgrp and tpgid), which works
// with any userland (procps or busybox); elsewhere from `ps -o pgid=,tpgid=`
// (BSD and macOS ps know tpgid, busybox ps does not). The foreground group is
// the shell's own between two commands of the job (a loop forking), while it
// runs a builtin such as `read`, or without job control: the script looks
// again every 10 ms, 10 times, so that a loop is caught in one of its
// commands; then it signals the shell's children in its own group.
//
// A loop of short commands (`while :; do /bin/true; done`) stops only when
// one of its commands dies of SIGINT; the shell then breaks the loop. Often
// the foreground group is not such a command:
//   - a fork of the shell that has not exec'd the command yet holds the
//     terminal with the shell's signal mask and handlers: a signal is then
//     caught and lost. The script waits for the exec, watching the fork's
//     blocked, ignored and caught masks (/proc/PID/stat), and signals anyway
//     after 100 reads (a program with its own handler);
//   - the command has exited and waits to be reaped (a zombie, which on a
//     loaded host can be most of the time): a signal stops nothing.
//
// After the signal the script watches the group's leader: a zombie's stat
// holds its exit status (field exit_code), so a command that ended by itself
// before the signal came is a miss, and the script looks again. A leader
// reaped at once by the shell is a hit unless the shell goes on to another
// command: then that command is signalled. The script's answer says which
// (`group N (ended by the signal)`, `(reaped)`, `(still running)` for a
// program that handles the signal or is slow to act on it); it is in the
// log, where a cancel that took long can be read.
//
// A group whose leader exited by itself may still hold a pipeline's later
// commands: it is signalled after the looks if nothing else was
// (`(ended by itself)`).
//
// When nothing could be signalled, the script exits 3 if the shell itself
// held the terminal at every look (a builtin: only ^C interrupts it), and 4
// if some command of the job held it (a forking job caught between two
// commands): typing ^C then could land in the shell's fork of the next
// command, which loses the shell (shell_cancel.go), so the caller runs the
// script again instead.
//
// The script is POSIX sh run by `sh -c`, so that the login shell (bash, zsh,
// fish, csh) only has to pass it on; its arguments are the pid and a signal
// name from a fixed list, never text from a caller. It reads /proc with the
// read builtin: a process per read would make it slow on a loaded host.
const killScript = `p=$1 s=$2
case $s in HUP) n=1 ;; INT) n=2 ;; TERM) n=15 ;; *) n=9 ;; esac
b=$(( 1 << (n - 1) ))
[ $n -eq 9 ] && b=0
m=100
rd() {
	S=
	read -r S 2>/dev/null </proc/$1/stat || return 1
	S=${S##*) }
}
groups() {
	g= f=
	if [ -r /proc/$p/stat ]; then
		rd $p || return
		set -- $S
		g=$3 f=$6
	else
		set -- $(ps -o pgid= -o tpgid= -p $p)
		g=$1 f=$2
	fi
}
alive() { rd $1 && [ "${S%% *}" != Z ]; }
handles() {
	[ $b -ne 0 ] && rd $1 || return 1
	set -- $S
	[ "$1" != Z ] && [ $(( (${30} | ${31} | ${32}) & b )) -ne 0 ]
}
ended() {
	rd $1 || return 1
	set -- $S
	[ "$1" = Z ] || return 1
	k=$(( ${50:-$n} & 127 ))
}
hit() { echo "group $1 ($2)"; exit; }
i=0 z= seen= quick=
while [ $i -lt 10 ]; do
	[ $i -eq 0 ] || [ -n "$quick" ] || sleep 0.01 2>/dev/null
	i=$((i+1)) quick=
	groups
	[ -n "$g" ] || { echo "sshjobs: shell $p is gone" >&2; exit 2; }
	[ -n "$f" ] && [ "$f" -gt 1 ] && [ "$f" != "$g" ] || continue
	seen=1
	w=0
	while [ $w -lt $m ] && handles $f; do w=$((w+1)); done
	ended $f || kill -s $s -- -$f 2>/dev/null || continue
	w=0
	while [ $w -lt $m ] && alive $f; do w=$((w+1)); done
	if ended $f; then
		[ $k -eq $n ] && hit $f "ended by the signal"
		z=$f
	elif [ -n "$S" ]; then
		hit $f "still running"
	else
		w=0 o=$f
		while [ $w -lt $m ]; do
			groups
			[ -n "$f" ] && [ "$f" != "$o" ] && [ "$f" != "$g" ] && break
			w=$((w+1))
		done
		[ $w -lt $m ] || hit $o "reaped"
		quick=1
	fi
done
[ -n "$z" ] && kill -s $s -- -$z 2>/dev/null && { echo "group $z (ended by itself)"; exit; }
c=0
for d in /proc/[0-9]*; do
	rd ${d#/proc/} || continue
	set -- $S
	[ "$2" = "$p" ] && [ "$3" = "$g" ] && kill -s $s ${d#/proc/} && c=$((c+1))
done
[ $c -gt 0 ] && { echo "children $c"; exit; }
[ -n "$seen" ] && { echo "between commands"; exit 4; }
echo "children 0"
exit 3
`

// killTimeout bounds the exec channel that signals a job.
const killTimeout = 10 * time.Second

// errShellInForeground: the job is the shell itself (a builtin): nothing but
// ^C can stop it without killing the shell.
var errShellInForeground = errors.New("the job runs in the shell itself (a builtin): no process to signal")

// errJobBetweenCommands: the job forks commands, and none of them could be
// signalled this time; ^C would risk the shell.
var errJobBetweenCommands = errors.New("the job was between two of its commands: nothing to signal this time")

// errNoSignalChannel: the kill script could not be run at all (no exec
// channel, or it ended without an exit status).
var errNoSignalChannel = errors.New("no channel to signal the job")

// signalJob sends sig (INT, TERM, KILL) to the job running in the shell: the
// foreground process group of its terminal, never the shell itself.
func (s *shell) signalJob(ctx context.Context, sig string) (string, error) {
	switch sig {
	case "INT", "TERM", "KILL", "HUP":
	default:
		return "", fmt.Errorf("signal job: unsupported signal %q", sig)
	}
	if s.pid <= 1 {
		return "", fmt.Errorf("signal job: the shell's pid is unknown")
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	sess, err := s.open(ctx)
	if err != nil {
		return "", fmt.Errorf("signal job: %w: %w", errNoSignalChannel, err)
	}
	defer sess.Close()
	cmd := fmt.Sprintf("sh -c '%s' sshjobs-kill %d %s", killScript, s.pid, sig)
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := sess.CombinedOutput(cmd)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		out := strings.TrimSpace(string(r.out))
		var exit *ssh.ExitError
		switch {
		case r.err == nil:
		case !errors.As(r.err, &exit):
			return out, fmt.Errorf("signal job with %s in shell %d: %w: %w", sig, s.pid, errNoSignalChannel, r.err)
		case strings.HasPrefix(out, "children 0"):
			return out, errShellInForeground
		case strings.HasPrefix(out, "between commands"):
			return out, errJobBetweenCommands
		default:
			return out, fmt.Errorf("signal job with %s in shell %d: %w (%s)", sig, s.pid, r.err, out)
		}
		return out, nil
	case <-ctx.Done():
		return "", fmt.Errorf("signal job with %s in shell %d: %w", sig, s.pid, ctx.Err())
	}
}
