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
// (`trap ” INT`). Closing the session would kill the job, but also the shell,
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
// again every 10 ms for 100 ms, so that a loop is caught in one of its
// commands; then it signals the shell's children in its own group.
//
// A loop of short commands (`while :; do /bin/true; done`) stops only when
// one of its commands dies of SIGINT, and the terminal's foreground group is
// often not such a command:
//   - a fork of the shell that has not exec'd the command yet already holds
//     the terminal, but still has the shell's handlers (or blocks the
//     signal): a signal then is swallowed, and the loop goes on. The script
//     waits for the exec (reading /proc/PID/stat, fields blocked, sigignore
//     and sigcatch, in a loop without forking) before it signals, and
//     signals anyway if that does not come (a program with its own handler);
//   - a command that exited but is not reaped yet (a zombie, which on a
//     loaded host can be most of the time): the signal succeeds and stops
//     nothing. It is passed over while looking; after the looks it is
//     signalled after all: a pipeline whose first command ended runs on in
//     it.
//
// When nothing could be signalled, the script exits 3 if the shell itself
// held the terminal at every look (a builtin: only ^C interrupts it), and 4
// if some command of the job held it (a forking job caught between two
// commands): typing ^C then could land in the shell's fork of the next
// command, which loses the shell (shell_cancel.go), so the caller tries again
// later instead. Without these, 4 of 6 processes running
// TestShellInterruptForkingLoop 3 times beside two busy loops failed.
//
// The script is POSIX sh run by `sh -c`, so that the login shell (bash, zsh,
// fish, csh) only has to pass it on; its arguments are the pid and a signal
// name from a fixed list, never text from a caller. It reads /proc with the
// read builtin: a process per read would make a scan of /proc slow.
const killScript = `p=$1 s=$2
case $s in HUP) b=1 ;; INT) b=2 ;; TERM) b=16384 ;; *) b=0 ;; esac
groups() {
	g= f=
	if [ -r /proc/$p/stat ]; then
		read -r st 2>/dev/null </proc/$p/stat || return
		st=${st##*) }
		set -- $st
		g=$3 f=$6
	else
		set -- $(ps -o pgid= -o tpgid= -p $p)
		g=$1 f=$2
	fi
}
dead() {
	read -r d 2>/dev/null </proc/$1/stat || return 1
	d=${d##*) }
	[ "${d%% *}" = Z ]
}
handles() {
	[ $b -ne 0 ] || return 1
	read -r d 2>/dev/null </proc/$1/stat || return 1
	d=${d##*) }
	set -- $d
	[ "$1" != Z ] && [ $(( (${29} | ${30} | ${31}) & b )) -ne 0 ]
}
i=0 z= seen=
while :; do
	groups
	[ -n "$g" ] || { echo "sshjobs: shell $p is gone" >&2; exit 2; }
	if [ -n "$f" ] && [ "$f" -gt 1 ] && [ "$f" != "$g" ]; then
		seen=1
		n=0
		while [ $n -lt 100 ] && handles $f; do n=$((n+1)); done
		if dead $f; then
			z=$f
		else
			kill -s $s -- -$f 2>/dev/null && { echo "group $f"; exit; }
		fi
	fi
	i=$((i+1))
	[ $i -lt 10 ] && sleep 0.01 2>/dev/null || break
done
[ -n "$z" ] && kill -s $s -- -$z 2>/dev/null && { echo "group $z"; exit; }
n=0
for d in /proc/[0-9]*; do
	read -r st 2>/dev/null <$d/stat || continue
	st=${st##*) }
	set -- $st
	[ "$2" = "$p" ] && [ "$3" = "$g" ] && kill -s $s ${d#/proc/} && n=$((n+1))
done
[ $n -gt 0 ] && { echo "children $n"; exit; }
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
