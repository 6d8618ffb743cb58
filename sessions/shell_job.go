package sessions

import (
	"context"
	"log/slog"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// jobRun is what a shell needs to run one job besides its Task.
type jobRun struct {
	ID      string
	Command string
	Sudo    bool // run Command through sudo (sudo.go)
	// SudoNoPass is the error of a sudo job for which no password is known
	// (sudoNoPassMessage).
	SudoNoPass string
	// EnableSources names where a device's enable secret comes from, for
	// the message of a job whose secret the device refused.
	EnableSources string
	// secret looks up a secret for the job's host, only when a prompt asks
	// for it: a source may ask a person (MCP elicitation). Nil: none known.
	secret func(ctx context.Context, kind sshdial.SecretKind) (string, bool, error)
	logger *slog.Logger
	// Cols and Rows: the terminal the job asked for (jobs.Job.Cols); zero:
	// the session's.
	Cols, Rows int
	// screens is where the job's screen is reached (nil: nowhere).
	screens *screenBoard
}

// jobRun returns what a shell on h needs to run j, with the pool's secrets.
func (e *Executor) jobRun(h *sshconfig.Host, j *jobs.Job) jobRun {
	jr := jobRun{ID: j.ID, Command: j.Command, Sudo: j.Sudo, SudoNoPass: sudoNoPassMessage(h), EnableSources: enableSources(h), logger: e.log,
		Cols: j.Cols, Rows: j.Rows, screens: &e.pool.screens}
	// The secrets of the job's submitter (sshdial.WithEnv in the ctx of the
	// job's run), else the pool's.
	base := e.pool.cfg.Dialer.Secrets
	jr.secret = func(ctx context.Context, kind sshdial.SecretKind) (string, bool, error) {
		sec := sshdial.SecretsIn(ctx, base)
		if sec == nil {
			return "", false, nil
		}
		return sec.Secret(ctx, h, kind)
	}
	return jr
}

// sudoPassword returns the password to answer sudo with: the host's sudo
// secret, else its login password (the usual case: the same account).
func (jr jobRun) sudoPassword(ctx context.Context) (string, bool, error) {
	if jr.secret == nil {
		return "", false, nil
	}
	for _, kind := range []sshdial.SecretKind{sshdial.SecretSudo, sshdial.SecretPassword} {
		v, ok, err := jr.secret(ctx, kind)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return "", false, nil
}
