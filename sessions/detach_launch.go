package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// launchTimeout bounds a detached job's launch in its session's shell: the
// launcher only creates the spool and waits (up to ~10 s) for the detached
// process to report its pid.
const launchTimeout = 30 * time.Second

// launched is what a successful launch learned.
type launched struct {
	att      attachInfo
	newShell bool
}

// launchDetached starts j detached from its session's shell on h, retrying
// once on a fresh connection when the pooled one turned out dead before the
// launch began (as Run does). A zero launched.att.PID comes with the result
// that ends the job.
func (e *Executor) launchDetached(ctx context.Context, h *sshconfig.Host, j *jobs.Job) (launched, jobs.Result) {
	l, res, retry := e.launchOn(ctx, h, j)
	if retry {
		l, res, _ = e.launchOn(ctx, h, j)
	}
	return l, res
}

// launchOn runs the launcher in the session's shell. It holds the session
// only for that: the hold ends when it returns, before the caller reports
// the job started (the engine starts the session's next job as soon as it
// does, and that job takes the slot).
func (e *Executor) launchOn(ctx context.Context, h *sshconfig.Host, j *jobs.Job) (l launched, res jobs.Result, retry bool) {
	hold, res, retry := e.pool.holdSession(ctx, h, j)
	if hold == nil {
		return l, res, retry
	}
	c := hold.c
	sh, ok := hold.sh.(*shell)
	if !ok {
		hold.done(false)
		return l, errorResult(fmt.Errorf("job %s: %s is a network device: %s", j.ID, c.key, msgDeviceDetach)), false
	}

	nonce := newNonce()
	lt := &launchTask{}
	lctx, cancel := context.WithTimeout(ctx, launchTimeout)
	out := sh.run(lctx, launcherScript(nonce, e.cfg.SpoolDir, j.ID, j.Command), lt)
	cancel()
	hold.done(out.shellGone)

	att, err := parseLaunch(nonce, lt.String())
	switch {
	case err == nil:
		att.LaunchedAt = time.Now().UTC().Truncate(time.Millisecond)
		return launched{att: att, newShell: hold.newShell}, jobs.Result{}, false
	case out.State == jobs.StateLost && ctx.Err() != nil:
		return l, jobs.Result{State: jobs.StateLost, Error: msgShutdown}, false
	case out.State == jobs.StateLost:
		// The launcher may have started the process before the shell died:
		// whether it runs is unknown, so the job did not end in error.
		return l, jobs.Result{State: jobs.StateLost, Error: fmt.Sprintf(
			"job %s: the session's shell on %s died while launching the detached job (%s); it may have started: look for its spool folder", j.ID, c.key, out.Error)}, false
	}
	var le *launchError
	if errors.As(err, &le) && le.kind == "nospool" {
		return l, errorResult(fmt.Errorf("job %s: cannot create the spool folder %s on %s: %s; choose a writable folder on that host with --spool-dir",
			j.ID, le.dir, c.key, le.detail)), false
	}
	return l, errorResult(fmt.Errorf("job %s: launch on %s: %w", j.ID, c.key, err)), false
}

// launcherScript is typed into the session's shell (framed and eval'd like
// any job, so it runs in the session's cwd with its exported environment).
// It runs at the shell's top level rather than in a subshell, at the cost of
// a few __sj_ variables that it unsets, because of how the detached process
// must be started:
//
//   - `cmd &` in a shell without job control starts cmd with SIGINT and
//     SIGQUIT ignored, and an ignored signal cannot be un-ignored by a
//     non-interactive shell: ssh_cancel's INT would never reach the command.
//   - So the launcher starts `setsid` as a foreground command: `setsid -f`
//     (util-linux) always forks; a plain setsid forks when it leads a process
//     group, which every foreground command of an interactive shell with job
//     control does (busybox). Either way the launcher goes on at once, and
//     the detached process has the default signal dispositions.
//   - Without job control, busybox's setsid would run the job in the
//     foreground; it is then started with `&` (INT ignored: a cancel
//     escalates to KILL after the grace period). Without setsid at all, it
//     is started with `&` and SIGHUP ignored (nohup's way); with job control
//     it still leads a process group of its own.
//
// The detached process writes its own pid file (pid.tmp, mv to pid), since a
// forking setsid makes $! useless; the launcher waits for it (polling every
// 10 ms at first, since it usually appears within a few, then every 50 ms,
// about 10 s in all) and prints
// NONCE ok DIR and NONCE pid PID PGID START, or NONCE nospool DIR, or NONCE
// nostart DIR. The command runs under the session's shell kind (bash, zsh,
// else sh) so that it means what it would mean typed in the session.
func launcherScript(nonce, spoolDir, jobID, command string) string {
	start := `setsid sh -c "$__sj_w" sj "$__sj_d" "$__sj_s" "$__sj_c" setsid < /dev/null > /dev/null 2>&1`
	noSetsid := `sh -c "$__sj_w" sj "$__sj_d" "$__sj_s" "$__sj_c" hup < /dev/null > /dev/null 2>&1 &`
	lines := []string{
		`__sj_d=` + spoolBaseExpr(spoolDir) + `/` + shQuote(jobID),
		`__sj_w=` + shQuote(wrapperScript),
		`__sj_c=` + shQuote(command),
		`__sj_s=sh; [ -n "${BASH_VERSION-}" ] && __sj_s=bash; [ -n "${ZSH_VERSION-}" ] && __sj_s=zsh`,
		`if mkdir -p -- "$__sj_d" && chmod 700 "$__sj_d" && : > "$__sj_d/out" && __sj_d=$(cd -- "$__sj_d" && pwd -P); then`,
		`  if setsid -f true < /dev/null > /dev/null 2>&1; then ` + strings.Replace(start, "setsid", "setsid -f", 1),
		`  elif command -v setsid > /dev/null 2>&1; then`,
		`    case $- in *m*) ` + start + ` ;; *) ` + start + ` & ;; esac`,
		`  else ` + noSetsid,
		`  fi`,
		`  __sj_i=0; until [ -f "$__sj_d/pid" ] || [ "$__sj_i" -ge 210 ]; do if [ "$__sj_i" -lt 10 ]; then sleep 0.01; else sleep 0.05; fi 2> /dev/null || sleep 1; __sj_i=$((__sj_i+1)); done`,
		`  if [ -f "$__sj_d/pid" ] && read -r __sj_i < "$__sj_d/pid"; then echo "` + nonce + ` ok $__sj_d"; echo "` + nonce + ` pid $__sj_i"; else echo "` + nonce + ` nostart $__sj_d"; fi`,
		`else echo "` + nonce + ` nospool $__sj_d"; fi`,
		`unset __sj_d __sj_w __sj_c __sj_s __sj_i`,
	}
	return strings.Join(lines, "\n")
}

// spoolBaseExpr is the shell expression of the folder that holds the spools:
// $XDG_CACHE_HOME/sshjobs (default ~/.cache/sshjobs), or dir with ~ meaning
// the remote home; a relative dir is taken from the home too (the session's
// cwd changes, the spool's place must not).
func spoolBaseExpr(dir string) string {
	switch {
	case dir == "":
		return `"${XDG_CACHE_HOME:-$HOME/.cache}/sshjobs"`
	case dir == "~":
		return `"$HOME"`
	case strings.HasPrefix(dir, "~/"):
		return `"$HOME"/` + shQuote(dir[2:])
	case strings.HasPrefix(dir, "/"):
		return shQuote(dir)
	}
	return `"$HOME"/` + shQuote(dir)
}

// launchError is a launcher's report of a failure.
type launchError struct {
	kind   string // nospool, nostart, garbled
	dir    string
	detail string // what else the launcher printed (mkdir's message, ...)
}

func (e *launchError) Error() string {
	switch e.kind {
	case "nospool":
		return fmt.Sprintf("cannot create the spool folder %s: %s", e.dir, e.detail)
	case "nostart":
		return fmt.Sprintf("the detached process did not start within 10s (no %s/pid): %s", e.dir, e.detail)
	}
	return "the launcher printed no result: " + e.detail
}

// parseLaunch reads the launcher's output.
func parseLaunch(nonce, out string) (attachInfo, error) {
	var att attachInfo
	var kind, dir string
	var other []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, nonce+" ")
		if !ok {
			if strings.TrimSpace(line) != "" {
				other = append(other, strings.TrimSpace(line))
			}
			continue
		}
		word, arg, _ := strings.Cut(rest, " ")
		switch word {
		case "ok", "nospool", "nostart":
			kind, dir = word, arg
		case "pid":
			f := strings.SplitN(arg, " ", 3)
			if len(f) == 3 {
				att.PID, _ = strconv.Atoi(f[0])
				att.PGID, _ = strconv.Atoi(f[1])
				att.Start = f[2]
			}
		}
	}
	detail := strings.Join(other, "; ")
	if detail == "" {
		detail = "no message"
	}
	if len(detail) > 500 {
		detail = detail[:500] + "..."
	}
	switch {
	case kind == "ok" && att.PID > 1 && strings.HasPrefix(dir, "/"):
		att.Spool = dir
		return att, nil
	case kind == "nospool" || kind == "nostart":
		return att, &launchError{kind: kind, dir: dir, detail: detail}
	}
	return att, &launchError{kind: "garbled", detail: fmt.Sprintf("%q", out)}
}

// launchTask collects the launcher's output, which is not the job's output.
type launchTask struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *launchTask) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf.Len() < 64<<10 {
		t.buf.Write(p)
	}
	return len(p), nil
}
func (t *launchTask) Prompt(*jobs.Prompt)           {}
func (t *launchTask) Started(jobs.Start)            {}
func (t *launchTask) Controls() <-chan jobs.Control { return nil }
func (t *launchTask) Flush(context.Context) error   { return nil }
func (t *launchTask) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
