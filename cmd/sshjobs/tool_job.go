package main

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
)

type jobIn struct {
	JobID     string   `json:"job_id" jsonschema:"from ssh_run or ssh_jobs"`
	WaitS     *float64 `json:"wait_s,omitempty" jsonschema:"seconds to wait for the job to end, ask for input, or (with offset) print past offset; default 0, max 300; keep it at 50 or less unless your client shows progress"`
	Offset    *int64   `json:"offset,omitempty" jsonschema:"byte offset to read from (use next_offset of the previous call); default: the tail that fits max_output"`
	MaxOutput int      `json:"max_output,omitempty" jsonschema:"bytes of output returned (default 16384)"`
	Grep      string   `json:"grep,omitempty" jsonschema:"regular expression (RE2): return only matching lines, with line numbers"`
	Screen    bool     `json:"screen,omitempty" jsonschema:"return the running job's terminal screen (lines, cursor) instead of output"`
}

func addJobTool(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name: "ssh_job",
		Description: "Read a job's state and output, optionally waiting for it (wait_s). Page through large output with offset/next_offset; " +
			"search it with grep. Works for any job id, also after a server restart.",
		Annotations: &mcp.ToolAnnotations{Title: "Read job", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in jobIn) (*mcp.CallToolResult, *jobView, error) {
		wait, err := seconds("wait_s", in.WaitS, 0, 300)
		if err != nil {
			return nil, nil, err
		}
		if err := checkMaxOutput(in.MaxOutput); err != nil {
			return nil, nil, err
		}
		sl := slice{offset: -1, tail: true, maxOutput: in.MaxOutput}
		if in.Offset != nil {
			if *in.Offset < 0 {
				return nil, nil, fmt.Errorf("%w: offset must not be negative (got %d)", jobs.ErrBadInput, *in.Offset)
			}
			sl = slice{offset: *in.Offset, maxOutput: in.MaxOutput}
		}
		j, err := a.eng.Wait(ctx, in.JobID, jobs.WaitOptions{Timeout: wait, Offset: sl.offset, Progress: progress(ctx, req, a)})
		if err != nil {
			return nil, nil, toolError(err)
		}
		if in.Grep != "" {
			// The request's context: a client that gives up stops the search.
			return a.grep(ctx, j, in.Grep, in.MaxOutput)
		}
		if in.Screen {
			return a.screen(ctx, j, jobs.ScreenOptions{})
		}
		ctx = context.WithoutCancel(ctx)
		v, err := a.view(ctx, j, sl)
		if err != nil {
			return nil, nil, toolError(err)
		}
		return result(v), v, nil
	})
}

// screen answers with the job's screen instead of its output.
func (a *app) screen(ctx context.Context, j *jobs.Job, opts jobs.ScreenOptions) (*mcp.CallToolResult, *jobView, error) {
	sc, err := a.eng.Screen(ctx, j.ID, opts)
	if err != nil {
		return nil, nil, err
	}
	if j, err = a.eng.Get(ctx, j.ID); err != nil {
		return nil, nil, toolError(err)
	}
	v := newJobView(j)
	v.Screen = newScreenView(sc)
	v.Offset, v.NextOffset = j.OutputBytes, j.OutputBytes
	return result(v), v, nil
}

// grep answers ssh_job with grep: matching lines instead of output.
func (a *app) grep(ctx context.Context, j *jobs.Job, pattern string, maxOutput int) (*mcp.CallToolResult, *jobView, error) {
	if maxOutput <= 0 {
		maxOutput = defaultMaxOutput
	}
	g, err := a.eng.Grep(ctx, j.ID, pattern, 1000)
	if err != nil {
		return nil, nil, toolError(err)
	}
	matches, more := g.Matches, g.More
	// Keep the matches within max_output.
	size := 0
	for i, m := range matches {
		size += len(m.Text) + 8
		if size > maxOutput {
			matches, more = matches[:i], true
			break
		}
	}
	v := newJobView(j)
	v.Matches, v.Truncated, v.NextOffset = matches, more || g.Incomplete, j.OutputBytes
	switch {
	case g.Incomplete:
		v.Output = fmt.Sprintf("[search stopped at byte %d of %d (time limit %s): the pattern is too costly for this much output; simplify it (nested repetition like (.{0,100}){10} is slow), or read with offset]\n",
			g.SearchedTo, j.OutputBytes, jobs.GrepTimeout)
	case more:
		v.Output = "[more lines match: narrow the pattern, or page with offset]\n"
	case len(matches) == 0:
		v.Output = "[no line matches]\n"
	}
	return result(v), v, nil
}

type cancelIn struct {
	JobID  string   `json:"job_id" jsonschema:"from ssh_run or ssh_jobs"`
	Signal string   `json:"signal,omitempty" jsonschema:"INT (default, like Ctrl-C), TERM or KILL"`
	GraceS *float64 `json:"grace_s,omitempty" jsonschema:"seconds before the job is killed if the signal did not stop it (default 3; 0: at once)"`
}

func addCancelTool(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name:        "ssh_cancel",
		Description: "Stop a job: a queued one never starts; a running one gets the signal, then is killed after grace_s. The session stays usable.",
		Annotations: &mcp.ToolAnnotations{Title: "Cancel job", DestructiveHint: &yes, IdempotentHint: true, OpenWorldHint: &yes},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in cancelIn) (*mcp.CallToolResult, *jobView, error) {
		grace, err := seconds("grace_s", in.GraceS, jobs.DefaultCancelGrace.Seconds(), 60)
		if err != nil {
			return nil, nil, err
		}
		j, err := a.eng.Cancel(ctx, in.JobID, in.Signal, grace)
		if err != nil {
			return nil, nil, toolError(err)
		}
		v, err := a.view(context.WithoutCancel(ctx), j, slice{offset: -1, tail: true})
		if err != nil {
			return nil, nil, err
		}
		return result(v), v, nil
	})
}
