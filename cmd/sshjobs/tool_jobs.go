package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
)

type jobsIn struct {
	Host     string `json:"host,omitempty" jsonschema:"only jobs on this host (as named, or user@host:port)"`
	Session  string `json:"session,omitempty" jsonschema:"only jobs of this session"`
	State    string `json:"state,omitempty" jsonschema:"a state, or active for the unfinished ones"`
	Contains string `json:"contains,omitempty" jsonschema:"substring of the command"`
	Since    string `json:"since,omitempty" jsonschema:"RFC 3339 time, or a duration like 2h"`
	// The description of limit is limitDescription, set in jobsInputSchema:
	// the numbers come from jobs, their only home.
	Limit int `json:"limit,omitempty"`
}

type jobRow struct {
	JobID       string     `json:"job_id"`
	Host        string     `json:"host"`
	Session     string     `json:"session"`
	Command     string     `json:"command"`
	State       jobs.State `json:"state"`
	ExitCode    *int       `json:"exit_code"`
	CreatedAt   string     `json:"created_at"`
	DurationMS  int64      `json:"duration_ms"`
	OutputBytes int64      `json:"output_bytes"`
	Detached    bool       `json:"detached"`
}

type jobsOut struct {
	Jobs []jobRow `json:"jobs"`
}

// filter turns the tool's (and the CLI's) filter arguments into a ListFilter.
func (in jobsIn) filter(now time.Time) (jobs.ListFilter, error) {
	f := jobs.ListFilter{Host: in.Host, Session: in.Session, Contains: in.Contains, Limit: in.Limit}
	if in.Limit < 0 || in.Limit > jobs.MaxListLimit {
		return f, fmt.Errorf("%w: limit must be between 1 and %d", jobs.ErrBadInput, jobs.MaxListLimit)
	}
	f.Limit = f.EffectiveLimit()
	switch s := jobs.State(in.State); {
	case in.State == "":
	case in.State == "active":
		f.States = []jobs.State{jobs.StateQueued, jobs.StateRunning, jobs.StateWaitingInput}
	case s.Valid():
		f.States = []jobs.State{s}
	default:
		return f, fmt.Errorf("%w: state %q: use one of %v or active", jobs.ErrBadInput, in.State, jobs.States)
	}
	if in.Since != "" {
		if d, err := time.ParseDuration(in.Since); err == nil && d > 0 {
			f.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, in.Since); err == nil {
			f.Since = t
		} else {
			return f, fmt.Errorf("%w: since %q: use RFC 3339 (2026-01-02T15:04:05Z) or a duration (2h)", jobs.ErrBadInput, in.Since)
		}
	}
	return f, nil
}

func (a *app) listJobs(ctx context.Context, in jobsIn) (*jobsOut, error) {
	now := time.Now()
	f, err := in.filter(now)
	if err != nil {
		return nil, err
	}
	list, err := a.eng.List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &jobsOut{Jobs: []jobRow{}}
	for _, j := range list {
		out.Jobs = append(out.Jobs, jobRow{
			JobID: j.ID, Host: j.Host, Session: j.Session, Command: clip(j.Command, 200), State: j.State,
			ExitCode: j.ExitCode, CreatedAt: rfc3339(j.CreatedAt),
			DurationMS: durationMS(j, now), OutputBytes: j.OutputBytes, Detached: j.Detached,
		})
	}
	return out, nil
}

// table renders job rows for people and for the model's text content.
func (o *jobsOut) table() string {
	if len(o.Jobs) == 0 {
		return "no jobs\n"
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "JOB_ID\tSTATE\tEXIT\tHOST\tSESSION\tCREATED\tDURATION\tBYTES\tCOMMAND")
	for _, r := range o.Jobs {
		exit := "-"
		if r.ExitCode != nil {
			exit = fmt.Sprint(*r.ExitCode)
		}
		cmd := clip(strings.ReplaceAll(r.Command, "\n", "⏎"), 60)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.JobID, r.State, exit, r.Host, r.Session,
			r.CreatedAt, time.Duration(r.DurationMS)*time.Millisecond, r.OutputBytes, cmd)
	}
	w.Flush()
	return b.String()
}

func addJobsTool(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name:        "ssh_jobs",
		InputSchema: jobsInputSchema(),
		Description: "List jobs, newest first: running ones and the history (kept across restarts).",
		Annotations: &mcp.ToolAnnotations{Title: "List jobs", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in jobsIn) (*mcp.CallToolResult, *jobsOut, error) {
		out, err := a.listJobs(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out.table()}}}, out, nil
	})
}

// limitDescription is the ssh_jobs limit parameter's description.
var limitDescription = fmt.Sprintf("default %d, max %d", jobs.DefaultListLimit, jobs.MaxListLimit)

// jobsInputSchema is the inferred input schema of ssh_jobs, with the
// description of limit built from jobs' constants (a struct tag cannot be).
func jobsInputSchema() *jsonschema.Schema {
	s := inputSchema[jobsIn]()
	s.Properties["limit"].Description = limitDescription
	return s
}

// clip cuts s to at most n bytes (not inside a UTF-8 sequence), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
