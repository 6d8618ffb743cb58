package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/jobs"
)

const instructions = `sshjobs runs shell commands on SSH hosts in persistent sessions (cwd and environment carry over). Every command is a job stored with its full output; a call that runs out of time returns the job_id, the command goes on, and ssh_job follows it, also after a restart. Hosts are ssh_config aliases or user@host[:port].`

// newMCPServer builds the MCP server over a. It panics if a tool's schema
// cannot be inferred, so a test builds it.
func newMCPServer(a *app) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "sshjobs", Version: appVersion()},
		&mcp.ServerOptions{Instructions: instructions, Capabilities: &mcp.ServerCapabilities{}})
	addRunTool(s, a)
	addJobTool(s, a)
	addCancelTool(s, a)
	addInputTool(s, a)
	addJobsTool(s, a)
	addSessionsTools(s, a)
	addConnectTools(s, a)
	addFileTools(s, a)
	addTransferTools(s, a)
	return s
}

var (
	yes = true
	no  = false
)

// toolError adds what to do next to an error about a job id.
func toolError(err error) error {
	if errors.Is(err, jobs.ErrNotFound) {
		return fmt.Errorf("%v: list jobs with ssh_jobs", err)
	}
	return err
}

// result renders a job view as the tool result: text first, structured too.
func result(v *jobView) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: v.text()}},
		// A job that never started is an error the caller can fix (host,
		// auth, host key): say so to the model.
		IsError: v.State == jobs.StateError,
	}
}

// seconds converts a tool's seconds parameter, checking its range.
func seconds(name string, v *float64, def, max float64) (time.Duration, error) {
	s := def
	if v != nil {
		s = *v
	}
	if s < 0 || s > max {
		return 0, fmt.Errorf("%w: %s must be between 0 and %g (got %g)", jobs.ErrBadInput, name, max, s)
	}
	return time.Duration(s * float64(time.Second)), nil
}

func checkMaxOutput(n int) error {
	if n < 0 || n > 1<<20 {
		return fmt.Errorf("%w: max_output must be between 0 and 1048576 (got %d)", jobs.ErrBadInput, n)
	}
	return nil
}

// progress returns a callback that sends progress notifications while a job
// is waited on, when the client asked for them; at most one a second.
func progress(ctx context.Context, req *mcp.CallToolRequest, a *app) func(*jobs.Job) {
	token := req.Params.GetProgressToken()
	if token == nil {
		return nil
	}
	var last time.Time
	return func(j *jobs.Job) {
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		msg := fmt.Sprintf("%s, %d bytes", j.State, j.OutputBytes)
		if j.OutputBytes > 0 {
			if out, err := a.eng.Read(ctx, j.ID, max(0, j.OutputBytes-200), 200); err == nil {
				lines := strings.Split(strings.TrimRight(string(out.Data), "\n"), "\n")
				msg += ": " + lines[len(lines)-1]
			}
		}
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token, Progress: float64(j.OutputBytes), Message: msg,
		})
	}
}

// addTool is mcp.AddTool with the input schema of inputSchema and no output
// schema: the answer still carries Out as structuredContent (its fields are
// in docs/TOOLS.md), but every tool's output schema in tools/list would cost
// the model's context more than the 12 KB all tools may take together.
//
// The input schema goes in as JSON, encoded here once: the SDK validates the
// arguments with the schema it resolves from it, and tools/list copies it
// instead of encoding every schema again for each client (most of the cost
// of a front's start, which asks for the list).
func addTool[In, Out any](s *mcp.Server, t *mcp.Tool, h mcp.ToolHandlerFor[In, Out]) {
	if t.InputSchema == nil {
		t.InputSchema = inputSchema[In]()
	}
	b, err := json.Marshal(t.InputSchema)
	if err != nil {
		panic(err) // a programming error, caught by the tests that build the server
	}
	t.InputSchema = json.RawMessage(b)
	t.OutputSchema = nil
	mcp.AddTool(s, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		res, out, err := h(ctx, req, in)
		if v := reflect.ValueOf(out); err != nil || !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil() {
			return res, nil, err
		}
		return res, out, nil
	})
}

// inputSchema is In's schema with optional parameters typed plainly:
// jsonschema-go types a pointer field ["null", "number"], and clients that
// convert their arguments by the schema's type (the MCP Inspector's CLI) then
// send a number as a string. An optional parameter is left out, not null.
func inputSchema[In any]() *jsonschema.Schema {
	s, err := jsonschema.For[In](nil)
	if err != nil {
		panic(err) // a programming error, caught by the tests that build the server
	}
	for _, p := range s.Properties {
		if len(p.Types) == 2 && p.Types[0] == "null" {
			p.Type, p.Types = p.Types[1], nil
		}
	}
	return s
}
