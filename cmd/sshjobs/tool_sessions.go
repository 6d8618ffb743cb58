package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

type sessionRow struct {
	Name      string `json:"name"`
	Cwd       string `json:"cwd,omitempty"`
	BusyJobID string `json:"busy_job_id,omitempty"`
	Queued    int    `json:"queued"`
}

type connectionRow struct {
	Host        string       `json:"host"`
	Route       string       `json:"route,omitempty"`
	ConnectedAt string       `json:"connected_at"`
	IdleS       int64        `json:"idle_s"`
	ClosesInS   int64        `json:"closes_in_s"`
	Device      string       `json:"device,omitempty"`
	Sessions    []sessionRow `json:"sessions"`
}

type sessionsOut struct {
	Connections []connectionRow `json:"connections"`
	// ClosedIdle are connections closed after the idle timeout since their
	// last use: the next command reconnects with a new shell.
	ClosedIdle []closedIdleRow `json:"closed_idle,omitempty"`
}

type closedIdleRow struct {
	Host         string `json:"host"`
	ClosedIdleAt string `json:"closed_idle_at"`
}

type closeIn struct {
	Host    string `json:"host,omitempty" jsonschema:"host whose connection (or session) to close"`
	Session string `json:"session,omitempty" jsonschema:"close only this session's shell"`
	All     bool   `json:"all,omitempty" jsonschema:"close every connection"`
}

type closeOut struct {
	Closed string `json:"closed"`
}

func addSessionsTools(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name:        "ssh_sessions",
		Description: "List open connections and their sessions: cwd, running job, queued jobs, idle time.",
		Annotations: &mcp.ToolAnnotations{Title: "List sessions", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &no},
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, *sessionsOut, error) {
		out, err := a.sessions(ctx)
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out.text()}}}, out, nil
	})
	addTool(s, &mcp.Tool{
		Name: "ssh_close",
		Description: "Close a session's shell, a host's connection, or all connections (all=true). " +
			"A job running there ends lost; history is kept. The next command reconnects with a new shell.",
		Annotations: &mcp.ToolAnnotations{Title: "Close connection", DestructiveHint: &yes, IdempotentHint: true, OpenWorldHint: &no},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in closeIn) (*mcp.CallToolResult, *closeOut, error) {
		closed, err := a.close(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "closed " + closed}}}, &closeOut{Closed: closed}, nil
	})
}

func (a *app) sessions(ctx context.Context) (*sessionsOut, error) {
	queued, err := a.eng.List(ctx, jobs.ListFilter{States: []jobs.State{jobs.StateQueued}, Limit: jobs.MaxListLimit})
	if err != nil {
		return nil, err
	}
	count := map[[2]string]int{}
	for _, j := range queued {
		count[[2]string{j.Host, j.Session}]++
	}
	out := &sessionsOut{Connections: []connectionRow{}}
	for _, c := range a.pool.Snapshot() {
		row := connectionRow{Host: c.Host, Route: c.Route, ConnectedAt: rfc3339(c.ConnectedAt),
			IdleS: int64(c.Idle.Seconds()), ClosesInS: int64(c.ClosesIn.Seconds()), Device: c.Device, Sessions: []sessionRow{}}
		for _, s := range c.Sessions {
			row.Sessions = append(row.Sessions, sessionRow{Name: s.Name, Cwd: s.Cwd, BusyJobID: s.BusyJobID,
				Queued: count[[2]string{c.Host, s.Name}]})
		}
		out.Connections = append(out.Connections, row)
	}
	for _, c := range a.pool.ClosedIdle() {
		out.ClosedIdle = append(out.ClosedIdle, closedIdleRow{Host: c.Host, ClosedIdleAt: rfc3339(c.At)})
	}
	return out, nil
}

func (o *sessionsOut) text() string {
	var b strings.Builder
	for _, c := range o.ClosedIdle {
		fmt.Fprintf(&b, "%s closed after the idle timeout at %s (the next command reconnects, with a new shell)\n", c.Host, c.ClosedIdleAt)
	}
	if len(o.Connections) == 0 {
		return b.String() + "no open connections (the next ssh_run connects)"
	}
	for _, c := range o.Connections {
		fmt.Fprintf(&b, "%s connected %s, idle %ds, closes in %ds\n", c.Host, c.ConnectedAt, c.IdleS, c.ClosesInS)
		if c.Route != "" {
			fmt.Fprintf(&b, "  route: %s\n", c.Route)
		}
		if c.Device != "" {
			fmt.Fprintf(&b, "  %s (cwd is its prompt)\n", c.Device)
		}
		for _, s := range c.Sessions {
			fmt.Fprintf(&b, "  %s cwd=%s", s.Name, s.Cwd)
			if s.BusyJobID != "" {
				fmt.Fprintf(&b, " running=%s", s.BusyJobID)
			}
			if s.Queued > 0 {
				fmt.Fprintf(&b, " queued=%d", s.Queued)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func (a *app) close(ctx context.Context, in closeIn) (string, error) {
	switch {
	case in.All:
		a.pool.CloseAll()
		return "all connections", nil
	case in.Host == "":
		return "", fmt.Errorf("%w: give host (and optionally session), or all=true", jobs.ErrBadInput)
	}
	h, err := a.resolve(ctx, in.Host)
	if err != nil {
		return "", err
	}
	if err := a.pool.Disconnect(h.Key(), in.Session); err != nil {
		if errors.Is(err, sessions.ErrNotConnected) {
			return "", fmt.Errorf("%w: nothing to close: %v", jobs.ErrBadInput, err)
		}
		return "", err
	}
	if in.Session != "" {
		return fmt.Sprintf("session %q on %s", in.Session, h.Key()), nil
	}
	return "connection to " + h.Key(), nil
}

// resolve resolves target as ssh would, within 10s so that a stuck
// `ssh -G` cannot hang a call; a target that does not resolve is bad input.
func (a *app) resolve(ctx context.Context, target string) (*sshconfig.Host, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h, err := a.pool.Resolve(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("%w: host %q: %w", jobs.ErrBadInput, target, err)
	}
	return h, nil
}
