package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// The terminal a shell gets. TERM=dumb keeps colours, cursor-drawn progress
// bars and full-screen programs mostly away from the stored output; a job
// that asks for a size gets a real terminal type (screen_term.go). 200
// columns keep ps, systemctl and friends from cutting most lines (nothing
// wraps a PTY's output: wrapping is a terminal emulator's doing), while a
// job's screen (screen.go), sized like the PTY, stays small.
const (
	ptyTerm = "dumb"
	ptyCols = 200
	ptyRows = 50
)

// shellStartTimeout bounds a shell's start: rc files and the MOTD, up to the
// ready marker.
const shellStartTimeout = 20 * time.Second

// initRetype is how long a starting shell may take to print its ready
// marker before its init script is typed again (see waitReady).
const initRetype = 3 * time.Second

// errShellClosed is returned for writes to a shell that was closed.
var errShellClosed = errors.New("shell closed")

// shell is one persistent login shell on a PTY, in one SSH session channel,
// driven by the marker protocol (see marker.go and marker_frame.go). It runs
// one job at a time.
type shell struct {
	name string
	// open opens a session channel to the shell's host: a job is signalled
	// over a channel of its own.
	open   openSession
	sess   *ssh.Session
	stdin  io.WriteCloser
	logger *slog.Logger

	// chunks carries what the shell prints while a job runs; closed at EOF.
	// Between jobs (idle set) the reader drops what it reads: it is prompts
	// and the noise of background jobs, and a blocked reader could not see
	// the shell die.
	chunks chan []byte
	idle   atomic.Bool
	eof    chan struct{} // closed when the shell's output ended

	writes chan writeReq

	waited  chan struct{} // closed when sess.Wait returned
	waitErr error

	closeOnce   sync.Once
	closed      chan struct{}
	closeReason string // why we closed it, if we did (read after closed)

	// pid is the shell's process id on the remote host ($$), from the ready
	// marker: a job is stopped by signalling the foreground process group of
	// the shell's terminal, never the shell (shell_kill.go).
	pid int

	// mask holds every secret typed into the shell (secret input, the sudo
	// password): a secret a job did not read may come back in any later
	// job's output (a file it was saved to, a program that prints its
	// input), so it is masked for the shell's whole life.
	mask masker

	// Owned by the job running on the shell (one at a time).
	defined   [256]bool // byte variables defined in the shell (marker_frame.go)
	cwd       string
	startedAt time.Time
}

type writeReq struct {
	p    []byte
	done func(error)
}

// openSession opens a session channel to a host.
type openSession func(context.Context) (*ssh.Session, error)

// spawner runs each function in a goroutine its owner waits for, or none
// (false) when the owner is closing: Pool.spawn.
type spawner func(fns ...func()) bool

// startShell opens a session, starts the login shell on a PTY, and runs the
// init script up to its ready marker; everything printed before it (banner,
// MOTD, rc file noise, prompts) is dropped.
func startShell(ctx context.Context, open openSession, spawn spawner, name string, logger *slog.Logger) (*shell, error) {
	sess, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	s := &shell{
		name:      name,
		open:      open,
		sess:      sess,
		logger:    logger,
		chunks:    make(chan []byte, 16),
		eof:       make(chan struct{}),
		writes:    make(chan writeReq, 16),
		waited:    make(chan struct{}),
		closed:    make(chan struct{}),
		startedAt: time.Now(),
	}
	if err := s.start(ctx, spawn); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *shell) start(ctx context.Context, spawn spawner) error {
	if err := s.startPTY(spawn, ptyTerm, ptyRows, ptyCols); err != nil {
		return err
	}

	nonce := newNonce()
	s.defined[rs], s.defined['\n'] = true, true
	s.idle.Store(false)
	script := initScript(nonce)
	if err := s.write(script); err != nil {
		return fmt.Errorf("write init script: %w", err)
	}
	if err := s.waitReady(ctx, readyPrefix(nonce), script); err != nil {
		return err
	}
	s.idle.Store(true)
	return nil
}

// startPTY asks for a PTY of term and size with echo off, starts the login
// shell in it, and the goroutines that read, write and wait for it.
func (s *shell) startPTY(spawn spawner, term string, rows, cols int) error {
	modes := ssh.TerminalModes{
		ssh.ECHO:          0, // also `stty -echo` in the init script
		ssh.TTY_OP_ISPEED: 38400,
		ssh.TTY_OP_OSPEED: 38400,
	}
	if err := s.sess.RequestPty(term, rows, cols, modes); err != nil {
		return fmt.Errorf("request pty: %w", err)
	}
	stdin, err := s.sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	s.stdin = stdin
	stdout, err := s.sess.StdoutPipe()
	if err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	// With a PTY everything comes on stdout; a server that still sends
	// extended data gets it read and dropped so that it cannot stall the
	// channel.
	s.sess.Stderr = io.Discard
	if err := s.sess.Shell(); err != nil {
		return fmt.Errorf("start shell: %w", err)
	}
	if !spawn(func() { s.readLoop(stdout) }, s.writeLoop, func() { s.waitErr = s.sess.Wait(); close(s.waited) }) {
		return ErrPoolClosed
	}
	return nil
}

// initScript quiets the shell and makes it predictable: no line editor (no
// completion on tabs, no bracketed paste, no own echo), no echo, no prompts
// or prompt hooks, no pagers, no history. Each risky step is a line of its
// own: in dash and ash a failing special builtin abandons the rest of its
// line. It ends by printing the ready marker, which carries the shell's pid.
//
// History is off so that no command line (and no input a job left unread,
// though frameCommand discards that) is kept in memory or in a file: bash
// with `set +o history`; zsh with HISTSIZE=0, which keeps only the line
// being run; busybox ash records nothing once echo is off (its line editor
// steps aside; the init lines before are kept, and hold nothing secret);
// dash has none. stty comes after zsh's line: zsh restores its own saved
// terminal modes around commands while zle is on.
//
// Signal 40 (a real-time signal on Linux, which no shell catches on its own;
// bash catches even SIGUSR2) is caught, doing nothing, so that a shell that
// replaced ours by exec can be told apart from ours: exec resets caught
// signals (shell_takeover.go).
//
// bash's exit and logout print "logout" (a login shell) or "exit" on
// stderr, the job's terminal: a job that ends the shell would end with that
// line. Functions of those names keep the builtins' own words out.
//
// zsh's notify is off: it would report a background job's end the moment it
// comes, inside whatever job runs then; without it zsh reports before its
// next prompt, which comes between jobs, where output is dropped. HISTFILE is unset so that
// no exit writes one.
func initScript(nonce string) string {
	lines := []string{
		`set +o emacs +o vi 2>/dev/null`,
		`[ -n "$ZSH_VERSION" ] && eval 'unsetopt zle prompt_sp prompt_cr; precmd_functions=(); preexec_functions=(); unfunction precmd preexec; HISTSIZE=0 SAVEHIST=0; unsetopt notify' 2>/dev/null`,
		`[ -n "$BASH_VERSION" ] && { set +o history; trap - DEBUG; bind 'set enable-bracketed-paste off'; } 2>/dev/null`,
		`[ -n "$BASH_VERSION" ] && eval 'exit() { builtin exit "$@" 2>/dev/null; }; logout() { builtin logout "$@" 2>/dev/null; }'`,
		`stty -echo 2>/dev/null`,
		`unset PROMPT_COMMAND PS0 RPROMPT RPS1 RPS2 HISTFILE MAILCHECK 2>/dev/null`,
		`unset TMOUT 2>/dev/null`,
		`trap : 40 2>/dev/null`,
		`PS1= ; PS2= ; PS3= ; PS4='+ '`,
		`export PAGER=cat GIT_PAGER=cat SYSTEMD_PAGER=cat LESS=FRX TERM=dumb`,
		strings.TrimSpace(byteVarDef(rs)),
		strings.TrimSpace(byteVarDef('\n')),
		fmt.Sprintf(`printf '\036R_%%s_%%s\036' %s "$$"`, nonce),
	}
	return " " + strings.Join(lines, "\n ") + "\n"
}

// waitReady drops output until the ready marker (prefix, then the shell's
// pid and RS), and records the pid. If the marker has not come after
// initRetype, the init script is typed once more: what is typed before a login is
// ready can be lost (a login script that reads the terminal, a shell that
// flushes its input when it sets up the terminal). If the first copy was
// only slow, the second runs after it and changes nothing; its marker is
// dropped with the idle shell's output.
func (s *shell) waitReady(ctx context.Context, prefix []byte, script string) error {
	timer := time.NewTimer(shellStartTimeout)
	defer timer.Stop()
	retype := time.NewTimer(initRetype)
	defer retype.Stop()
	var tail []byte
	var last lastBytes // what the login printed, for the error
	det := deviceDetector{echoFree: echoFreeLines(script)}
	quiet := stoppedTimer()
	defer quiet.Stop()
	for {
		select {
		case p, ok := <-s.chunks:
			if !ok {
				return fmt.Errorf("the shell ended before it was ready (%s)%s", s.exitDetail(), last.suffix())
			}
			last.add(p)
			det.add(p)
			quiet.Reset(deviceQuiet)
			buf := append(tail, p...)
			if i := bytes.Index(buf, prefix); i >= 0 {
				rest := buf[i+len(prefix):]
				if j := bytes.IndexByte(rest, rs); j >= 0 {
					pid, err := strconv.Atoi(string(rest[:j]))
					if err != nil || pid <= 1 {
						return fmt.Errorf("the shell's ready marker has no pid (%q)", rest[:j])
					}
					s.pid = pid
					return nil
				}
				if len(rest) > 32 {
					return fmt.Errorf("the shell's ready marker has no pid (%q...)", rest[:32])
				}
				tail = append([]byte(nil), buf[i:]...)
				continue
			}
			tail = append([]byte(nil), buf[len(buf)-partialSuffix(buf, prefix):]...)
		case <-quiet.C:
			// A network device's CLI answers the init script with its own
			// prompt and errors, never the marker (device_detect.go).
			if p, ok := det.device(); ok {
				return &notPOSIXError{prompt: p, after: time.Since(s.startedAt)}
			}
		case <-retype.C:
			s.logger.Info("shell not ready: typing the init script again", "shell", s.name)
			s.writeAsync([]byte(script), nil)
		case <-timer.C:
			return fmt.Errorf("the shell was not ready after %v (a login script waiting for input? not a POSIX shell?)%s", shellStartTimeout, last.suffix())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *shell) readLoop(r io.Reader) {
	defer close(s.eof)
	defer close(s.chunks)
	for {
		buf := make([]byte, 32<<10)
		n, err := r.Read(buf)
		if n > 0 && !s.idle.Load() {
			select {
			case s.chunks <- buf[:n]:
			case <-s.closed:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *shell) writeLoop() {
	for {
		select {
		case req := <-s.writes:
			_, err := s.stdin.Write(req.p)
			if req.done != nil {
				req.done(err)
			}
		case <-s.closed:
			return
		}
	}
}

// writeAsync queues p for the shell's stdin; done (if not nil) gets the
// result. Writes happen in order, without blocking the caller.
func (s *shell) writeAsync(p []byte, done func(error)) {
	select {
	case s.writes <- writeReq{p: p, done: done}:
	case <-s.closed:
		if done != nil {
			done(errShellClosed)
		}
	}
}

// write queues text and waits until it is written.
func (s *shell) write(text string) error {
	errc := make(chan error, 1)
	s.writeAsync([]byte(text), func(err error) { errc <- err })
	select {
	case err := <-errc:
		return err
	case <-s.closed:
		return errShellClosed
	}
}

// alive reports whether the shell is open and still printing.
func (s *shell) alive() bool {
	select {
	case <-s.closed:
		return false
	case <-s.eof:
		return false
	default:
		return true
	}
}

// close ends the session; the server hangs up the PTY (SIGHUP to the shell
// and its foreground job).
func (s *shell) close() { s.closeWith("") }

// closeWith closes the shell, recording why for a job running in it.
func (s *shell) closeWith(reason string) {
	s.closeOnce.Do(func() {
		s.closeReason = reason
		close(s.closed)
		s.sess.Close()
	})
}

// closedBy returns the reason the shell was closed with, or "".
func (s *shell) closedBy() string {
	select {
	case <-s.closed:
		return s.closeReason
	default:
		return ""
	}
}

// exitStatus waits briefly for the session's exit status after its output
// ended: a shell that exited (`exit 3`, TMOUT) reports one, a session cut by
// a dead connection does not. ok is false without a status; code is -1 when
// the shell was killed by a signal.
func (s *shell) exitStatus(wait time.Duration) (code int, ok bool) {
	select {
	case <-s.waited:
	case <-time.After(wait):
		return 0, false
	}
	var ee *ssh.ExitError
	switch {
	case s.waitErr == nil:
		return 0, true
	case errors.As(s.waitErr, &ee) && ee.Signal() == "":
		return ee.ExitStatus(), true
	case errors.As(s.waitErr, &ee):
		return -1, true
	}
	return 0, false
}

func (s *shell) exitDetail() string {
	select {
	case <-s.waited:
		if s.waitErr == nil {
			return "exit status 0"
		}
		return s.waitErr.Error()
	case <-time.After(time.Second):
		return "no exit status"
	}
}

// lastBytes keeps the end of what a starting shell printed.
type lastBytes struct{ b []byte }

const lastBytesMax = 200

func (l *lastBytes) add(p []byte) {
	l.b = append(l.b, p...)
	if len(l.b) > lastBytesMax {
		l.b = append(l.b[:0], l.b[len(l.b)-lastBytesMax:]...)
	}
}

// suffix is ": it printed last: ..." for an error, or "" if it printed nothing.
func (l *lastBytes) suffix() string {
	if len(l.b) == 0 {
		return "; it printed nothing"
	}
	return fmt.Sprintf("; it printed last: %q", l.b)
}
