package sessions

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"
)

// How a job that starts an interactive shell is ended (`bash`, `exec bash`,
// `su -`, `sudo -i`).
//
// Such a shell takes over the terminal: it reads our later command lines
// itself, never prints the job's end marker, and the job would run until
// cancelled. When a job's output has been quiet for takeoverIdle with an
// unfinished last line that ends like a shell prompt ($, #, %, >), the
// terminal's foreground process is looked at over another channel, as the
// kill script does (shell_kill.go):
//
//   - a foreground process group other than the shell's whose leader is an
//     interactive shell (a shell's name with no script operand and no -c),
//     `su` without a command, `sudo -i`/`-s` or sudo running one of those;
//   - or the shell itself in the foreground, no longer catching signal 40:
//     the init script traps it, and exec resets caught signals, so the
//     process was replaced (`exec bash`).
//
// Either way the shell is closed (which ends the new shell too) and the job
// fails with msgTakeover; the next job gets a new shell and says so. A
// program that prints a prompt-like line is never typed into, and the check
// stays read-only.
const takeoverIdle = time.Second

const msgTakeover = "the command started an interactive shell that took over the terminal (`bash`, `exec`, `su`, `sudo -i`?); it was closed, and the next command gets a new shell (cwd and environment reset): run commands directly, with `sh -c '...'`, or with sudo: true"

// takeoverScript prints "exec" if the shell process was replaced, else the
// arguments of the foreground group's leader, one a line, after "child".
// It has no single quote (it is typed inside them) and reads only /proc.
const takeoverScript = `p=$1
read -r st </proc/$p/stat || exit 2
st=${st##*) }
set -- $st
g=$3 f=$6
if [ "$f" = "$g" ]; then
	while read -r k v; do
		[ "$k" = SigCgt: ] && break
	done </proc/$p/status
	low=${v#${v%????????????}}
	[ $((0x$low & 0x8000000000)) -eq 0 ] && echo exec
	exit 0
fi
[ "$f" -gt 1 ] 2>/dev/null || exit 0
echo child
tr "\000" "\n" </proc/$f/cmdline
`

// promptLike reports whether line ends like a shell's prompt.
func promptLike(line string) bool {
	t := strings.TrimRight(line, " ")
	return t != "" && len(line) <= 200 && strings.ContainsAny(t[len(t)-1:], "$#%>")
}

// takeoverReply is what the check found for the output generation gen.
type takeoverReply struct {
	gen   int
	found bool
}

// checkTakeover looks at the terminal's foreground process in the
// background; the answer comes on r.takeoverC.
func (r *runner) checkTakeover(ctx context.Context) {
	if !promptLike(r.quietLine) || r.cancel.requested || r.failMsg != "" {
		return
	}
	gen := r.outGen
	go func() {
		found, err := r.s.takenOver(ctx)
		if err != nil {
			r.log().Debug("check for an interactive shell", "job", r.jr.ID, "shell", r.s.name, "err", err)
		}
		select {
		case r.takeoverC <- takeoverReply{gen: gen, found: found}:
		case <-r.done:
		}
	}()
}

// takenOver reports whether an interactive shell holds the terminal.
func (s *shell) takenOver(ctx context.Context) (bool, error) {
	if s.pid <= 1 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	sess, err := s.open(ctx)
	if err != nil {
		return false, err
	}
	defer sess.Close()
	done := make(chan []byte, 1)
	go func() {
		out, _ := sess.Output(fmt.Sprintf("sh -c '%s' sshjobs-check %d", takeoverScript, s.pid))
		done <- out
	}()
	select {
	case out := <-done:
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		switch lines[0] {
		case "exec":
			return true, nil
		case "child":
			return interactiveShell(lines[1:]), nil
		}
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

var shellNames = map[string]bool{"sh": true, "bash": true, "zsh": true, "dash": true, "ash": true,
	"ksh": true, "mksh": true, "fish": true, "tcsh": true, "csh": true, "busybox": true}

// interactiveShell reports whether argv runs an interactive shell: a shell
// with options only (no script, no -c), su without a command, or sudo -i/-s
// or sudo running one of those.
func interactiveShell(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	name := strings.TrimPrefix(path.Base(argv[0]), "-")
	args := argv[1:]
	switch {
	case shellNames[name]:
		if name == "busybox" {
			if len(args) == 0 || !shellNames[args[0]] {
				return false
			}
			args = args[1:]
		}
		for _, a := range args {
			// A script operand, or -c (alone or bundled: -lc).
			if a == "" || a[0] != '-' || !strings.HasPrefix(a, "--") && strings.Contains(a, "c") {
				return false
			}
		}
		return true
	case name == "su":
		for _, a := range args {
			if a == "-c" || a == "--command" || strings.HasPrefix(a, "--command=") || a == "-s" || a == "--session-command" {
				return false
			}
		}
		return true
	case name == "sudo":
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "--":
				return interactiveShell(args[i+1:])
			case a == "--login" || a == "--shell":
				return true
			case strings.HasPrefix(a, "--"):
			case strings.HasPrefix(a, "-") && len(a) > 1:
				for j := 1; j < len(a); j++ {
					if a[j] == 'i' || a[j] == 's' {
						return true
					}
					if strings.IndexByte("ugpCDhrtTU", a[j]) >= 0 {
						if j == len(a)-1 {
							i++ // the option's value is the next word
						}
						break
					}
				}
			default:
				return interactiveShell(args[i:])
			}
		}
	}
	return false
}
