package sessions

import (
	"context"

	"github.com/sshjobs/sshjobs/jobs"
)

// session is what a named session runs jobs in: a POSIX shell driven by
// markers (shell.go), or a network device's CLI driven by its prompt
// (device.go). The kind is chosen when the session starts (conn.startSession).
type session interface {
	// runJob runs one job; the caller guarantees one at a time.
	runJob(ctx context.Context, jr jobRun, t jobs.Task) jobOutcome
	alive() bool
	close()
	closeWith(reason string)
	// where is the session's place after its last job: the shell's cwd, the
	// device's prompt (its mode).
	where() string
}

var (
	_ session = (*shell)(nil)
	_ session = (*device)(nil)
)

func (s *shell) where() string { return s.cwd }
