package sessions

import (
	"context"
	"fmt"
	"strings"
	"time"
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
// (BSD and macOS ps know tpgid, busybox ps does not). When the foreground
// group is the shell's own (job control off, or the job is a builtin such as
// `read` running in the shell itself), the shell's children in its own group
// are signalled instead, and the script exits 3 when there are none: only ^C
// can interrupt a builtin.
//
// The script is POSIX sh run by `sh -c`, so that the login shell (bash, zsh,
// fish, csh) only has to pass it on; its arguments are the pid and a signal
// name from a fixed list, never text from a caller.
const killScript = `p=$1 s=$2
fg() {
	if [ -r /proc/$1/stat ]; then
		st=$(cat /proc/$1/stat) || return 1
		st=${st##*) }
		set -- $st
		echo "$3 $6"
	else
		ps -o pgid= -o tpgid= -p $1
	fi
}
set -- $(fg $p)
g=$1 f=$2
[ -n "$g" ] || { echo "sshjobs: shell $p is gone" >&2; exit 2; }
if [ -n "$f" ] && [ "$f" -gt 1 ] && [ "$f" != "$g" ]; then
	kill -s $s -- -$f && echo "group $f"
	exit
fi
n=0
for d in /proc/[0-9]*; do
	st=$(cat $d/stat 2>/dev/null) || continue
	st=${st##*) }
	set -- $st
	[ "$2" = "$p" ] && [ "$3" = "$g" ] && kill -s $s ${d#/proc/} && n=$((n+1))
done
echo "children $n"
[ $n -gt 0 ] || exit 3
`

// killTimeout bounds the exec channel that signals a job.
const killTimeout = 10 * time.Second

// errShellInForeground: the job is the shell itself (a builtin): nothing but
// ^C can stop it without killing the shell.
var errShellInForeground = fmt.Errorf("the job runs in the shell itself (a builtin): no process to signal")

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
		return "", fmt.Errorf("signal job: open channel: %w", err)
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
		if r.err != nil {
			if strings.HasPrefix(out, "children 0") {
				return out, errShellInForeground
			}
			return out, fmt.Errorf("signal job with %s in shell %d: %w (%s)", sig, s.pid, r.err, out)
		}
		return out, nil
	case <-ctx.Done():
		return "", fmt.Errorf("signal job with %s in shell %d: %w", sig, s.pid, ctx.Err())
	}
}
