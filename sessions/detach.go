package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// Detached jobs (docs/DESIGN.md, "Detached jobs"). A detached job is launched from
// its session's shell (so it gets the session's cwd and exported environment)
// under setsid, with stdin from /dev/null and its output into a spool folder on
// the remote host; the session is free again as soon as it started. The job is
// then followed over an exec channel of its own, from the byte offset already
// stored, until its exit code is written; a dropped connection is redialled
// and the follow resumes, a restarted server re-attaches it (Reattach) from
// the offset in the database. The spool is removed once the job is final and
// all its output went to the engine.
//
// The spool's bytes are stored as they are, without the terminal cleaner that
// shell jobs go through: a stored offset must be a spool offset, or a resume
// after a restart could not know where to continue. Without a terminal there
// is no echo, no CRLF from the tty and no prompt to strip; programs rarely
// colour output that is not a terminal.

// attachInfo is a detached job's Job.Attach, as JSON: what a later process
// needs to follow and signal it.
type attachInfo struct {
	// Spool is the job's spool folder, absolute, on the job's host: out (the
	// output), pid, and code once it ended.
	Spool string `json:"spool"`
	// PID is the detached process (a sh that runs the command and then
	// writes code); PGID its process group: equal to PID when it leads its
	// group (setsid, or job control), which is then signalled as a whole;
	// otherwise (no setsid and no job control, or unknown: 0) only PID is
	// signalled.
	PID  int `json:"pid"`
	PGID int `json:"pgid"`
	// Start tells the process from a later one with the same pid:
	// "proc:TICKS" (field 22 of /proc/PID/stat), "ps:LSTART" (ps -o lstart=)
	// or "unknown".
	Start      string    `json:"start"`
	LaunchedAt time.Time `json:"launched_at"`
}

func (a attachInfo) String() string {
	b, _ := json.Marshal(a)
	return string(b)
}

func parseAttach(j *jobs.Job) (attachInfo, error) {
	var a attachInfo
	if j.Attach == "" {
		return a, fmt.Errorf("job %s has no attach data (it was never launched)", j.ID)
	}
	if err := json.Unmarshal([]byte(j.Attach), &a); err != nil {
		return a, fmt.Errorf("job %s: attach data %q: %w", j.ID, j.Attach, err)
	}
	if err := a.check(j.ID); err != nil {
		return a, fmt.Errorf("job %s: attach data %q: %w", j.ID, j.Attach, err)
	}
	return a, nil
}

// check guards what the scripts get: an absolute spool folder named after
// the job (it is removed with rm -rf) and a real pid.
func (a attachInfo) check(jobID string) error {
	switch {
	case !strings.HasPrefix(a.Spool, "/") || path.Base(a.Spool) != jobID || path.Clean(a.Spool) != a.Spool:
		return fmt.Errorf("spool folder %q is not an absolute folder named after the job", a.Spool)
	case a.PID <= 1:
		return fmt.Errorf("bad pid %d", a.PID)
	case a.Start == "":
		return fmt.Errorf("no start identity")
	}
	return nil
}

// validJobID reports whether id can name a spool folder as is.
func validJobID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// runDetached launches j detached and follows it (Pool.Run for j.Detached).
func (e *Executor) runDetached(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	if !validJobID(j.ID) {
		return errorResult(fmt.Errorf("job %q: the id cannot name a spool folder", j.ID))
	}
	if j.Sudo {
		return errorResult(fmt.Errorf("job %s: sudo is not supported for detached jobs yet; run `sudo -n` in the command, or drop detach", j.ID))
	}
	h, err := e.destination(ctx, j)
	if err != nil {
		return errorResult(err)
	}
	l, res := e.launchDetached(ctx, h, j)
	if l.att.PID == 0 {
		return res
	}
	// The session's slot is free now: reporting the start lets the engine run
	// the session's next job.
	t.Started(jobs.Start{NewShell: l.newShell, Attach: l.att.String()})
	e.log.Info("detached job launched", "job", j.ID, "host", h.Key(), "pid", l.att.PID, "spool", l.att.Spool)
	return newFollower(e, h, j, t, l.att).follow(ctx)
}

// Reattach resumes following a detached job whose connection or server died
// (jobs.Reattacher), from the output offset the job has stored.
func (e *Executor) Reattach(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	ctx = jobEnv(ctx, j)
	h, err := e.destination(ctx, j)
	if err != nil {
		return jobs.Result{State: jobs.StateLost, Error: "cannot re-attach: " + err.Error()}
	}
	var att attachInfo
	if j.Attach == "" && validJobID(j.ID) {
		// The process that launched it died before recording the launch:
		// the launcher may have started it all the same, and its spool
		// folder, named after the job, says so.
		att, err = e.findLaunched(ctx, h, j)
		if errors.Is(err, errNeverStarted) {
			// Nothing of it ran: it is launched now, as an adopted queued
			// job would be (on a new shell).
			e.log.Info("detached job never started; launching it", "job", j.ID, "host", h.Key())
			return e.runDetached(ctx, j, t)
		}
		if err != nil {
			return jobs.Result{State: jobs.StateLost, Error: "cannot re-attach: " + err.Error()}
		}
		t.Started(jobs.Start{Attach: att.String()})
	} else if att, err = parseAttach(j); err != nil {
		return jobs.Result{State: jobs.StateLost, Error: "cannot re-attach: " + err.Error()}
	}
	e.log.Info("re-attaching detached job", "job", j.ID, "host", h.Key(), "pid", att.PID, "offset", j.OutputBytes)
	return newFollower(e, h, j, t, att).follow(ctx)
}

// errNeverStarted: a detached job's launch was cut off before its command
// started (no spool folder, or one without a pid file, now removed), so it
// can be launched again.
var errNeverStarted = errors.New("the detached command never started")

// findLaunched looks on h for the spool folder of detached job j, which has
// no attach data, and returns what its launcher would have reported: the
// folder and the pid file of the process (waiting for it as the launcher
// does, in case the launcher was cut off just before it appeared).
func (e *Executor) findLaunched(ctx context.Context, h *sshconfig.Host, j *jobs.Job) (attachInfo, error) {
	c, err := e.pool.acquire(ctx, h)
	if err != nil {
		return attachInfo{}, fmt.Errorf("job %s has no attach data, and its spool folder cannot be looked for: connect %s: %w", j.ID, h.Key(), err)
	}
	defer e.pool.release(c)
	lines, err := execReportWithin(ctx, c, launchTimeout, findSpoolScript, e.cfg.SpoolDir, j.ID)
	if err != nil {
		return attachInfo{}, fmt.Errorf("job %s has no attach data: looking for its spool folder: %w", j.ID, err)
	}
	// Back into the launcher's report form.
	var b strings.Builder
	for _, l := range lines {
		switch l[0] {
		case "none":
			// Cut off before the launcher made its folder: the launcher
			// runs in the dead process's shell, which its connection's end
			// hung up long before this adopter looks.
			return attachInfo{}, fmt.Errorf("job %s on %s: no spool folder: %w", j.ID, h.Key(), errNeverStarted)
		case "unstarted":
			return attachInfo{}, fmt.Errorf("job %s on %s: %w", j.ID, h.Key(), errNeverStarted)
		}
		fmt.Fprintf(&b, "n %s\n", strings.Join(l, " "))
	}
	att, err := parseLaunch("n", b.String())
	if err == nil {
		err = att.check(j.ID)
	}
	if err != nil {
		return attachInfo{}, fmt.Errorf("job %s has no attach data, and its spool folder on %s: %w", j.ID, h.Key(), err)
	}
	return att, nil
}
