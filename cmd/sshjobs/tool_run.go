package main

import (
	"cmp"
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
)

type runIn struct {
	Host       string   `json:"host" jsonschema:"ssh_config alias, host, user@host or user@host:port"`
	Command    string   `json:"command" jsonschema:"shell command; may span lines"`
	Session    string   `json:"session,omitempty" jsonschema:"named persistent shell on the host (default \"default\"); use another name to run in parallel with a busy session"`
	TimeoutS   *float64 `json:"timeout_s,omitempty" jsonschema:"seconds this call waits (default 30, max 300); the command is NOT killed then: the job_id comes back and the job goes on"`
	KillAfterS *float64 `json:"kill_after_s,omitempty" jsonschema:"hard limit: cancel the job after this many seconds"`
	Detach     bool     `json:"detach,omitempty" jsonschema:"run detached from the connection (survives a dropped connection and a server restart): for long builds, upgrades, backups; no terminal"`
	Sudo       bool     `json:"sudo,omitempty" jsonschema:"run through sudo; the password comes from the host's stored secret, never the command line"`
	Input      string   `json:"input,omitempty" jsonschema:"text typed into the command's terminal once it starts (escapes decoded)"`
	MaxOutput  int      `json:"max_output,omitempty" jsonschema:"bytes of output returned inline (default 16384); larger output keeps head and tail"`
	Cols       int      `json:"cols,omitempty" jsonschema:"terminal width for a full-screen program (vi, less, top): gives TERM=xterm-256color; see ssh_job screen"`
	Rows       int      `json:"rows,omitempty" jsonschema:"terminal height, as cols"`
}

func addRunTool(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name: "ssh_run",
		Description: "Run a shell command on a host in a persistent session (cwd and environment carry over). " +
			"Returns when the command ends, asks for input (answer with ssh_input), or timeout_s passes; then it goes on as a job: follow it with ssh_job. " +
			"Jobs in one session run one at a time, in order.",
		Annotations: &mcp.ToolAnnotations{Title: "Run command", DestructiveHint: &yes, OpenWorldHint: &yes},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in runIn) (*mcp.CallToolResult, *jobView, error) {
		timeout, err := seconds("timeout_s", in.TimeoutS, 30, 300)
		if err != nil {
			return nil, nil, err
		}
		killAfter, err := seconds("kill_after_s", in.KillAfterS, 0, 30*24*3600)
		if err != nil {
			return nil, nil, err
		}
		if err := checkMaxOutput(in.MaxOutput); err != nil {
			return nil, nil, err
		}
		// A secret no source has (login, passphrase, sudo, a device's
		// enable secret) is asked for
		// before the job exists, when the client can be asked.
		session := cmp.Or(in.Session, jobs.DefaultSession)
		if in.Detach {
			session = "" // not in a device's CLI: refused there
		}
		if ask, err := a.askFirst(ctx, req, in.Host, in.Sudo && !in.Detach, session); err != nil || ask != nil {
			return ask, nil, err
		}
		spec := jobs.Spec{Session: in.Session, Command: in.Command, KillAfter: killAfter, Detached: in.Detach, Sudo: in.Sudo,
			Cols: in.Cols, Rows: in.Rows}
		if in.Input != "" {
			if spec.Input, err = decodeEscapes(in.Input); err != nil {
				return nil, nil, err
			}
		}
		j, err := a.submit(ctx, in.Host, spec)
		if err != nil {
			return nil, nil, toolError(err)
		}
		j, err = a.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: timeout, Offset: -1, Progress: progress(ctx, req, a)})
		if err != nil {
			return nil, nil, err
		}
		v, err := a.view(context.WithoutCancel(ctx), j, slice{offset: -1, maxOutput: in.MaxOutput})
		if err != nil {
			return nil, nil, err
		}
		return result(v), v, nil
	})
}

// submit enqueues the job; the engine resolves the host as ssh would, once,
// with the client's settings (ctx), and stores the destination on the row.
// The job's dials and secrets are the client's too (Spec.Env).
func (a *app) submit(ctx context.Context, target string, s jobs.Spec) (*jobs.Job, error) {
	s.Target = target
	if s.Sudo || s.Detached {
		// Known to be a network device: say so now rather than as the job's
		// error (the executor refuses them too, for a device found later).
		if h, err := a.pool.Resolve(ctx, target); err == nil && a.pool.IsDevice(h) {
			what := "sudo"
			if s.Detached {
				what = "detach"
			}
			return nil, fmt.Errorf("%w: %s is a network device: %s does not apply; its commands run in the session's CLI (enable mode with the host's enable secret)", jobs.ErrBadInput, h.Key(), what)
		}
	}
	if env := a.client(ctx).dial; env != nil {
		s.Env = env
	}
	return a.eng.Enqueue(ctx, s)
}
