package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// TestMCPScreen drives less through the tools: ssh_run with a terminal size,
// ssh_job screen=true shows the first page (text: a fenced block with the
// cursor), ssh_input keys with screen=true the page after <pgdn>, q ends the
// job, and a finished job's screen is a tool error that points to the
// output. Sizes out of range and a detached job with a size are refused.
func TestMCPScreen(t *testing.T) {
	if _, err := exec.LookPath("less"); err != nil {
		t.Skip("less is not installed")
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
		v := c.job("ssh_run", map[string]any{"host": srv.Alias, "timeout_s": 0.5, "cols": 80, "rows": 24,
			"command": "cd \"$(mktemp -d)\" && seq 1 200 > lines && less lines"})
		if v.State.Final() {
			t.Fatalf("less ended at once: %+v", v)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			v = c.job("ssh_job", map[string]any{"job_id": v.JobID, "screen": true})
			if s := v.Screen; s != nil && len(s.Lines) == 24 && s.Lines[22] == "23" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the first page never showed: %+v", v.Screen)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// less waits for a key: the screen stays as it is.
		body := text(c.call("ssh_job", map[string]any{"job_id": v.JobID, "screen": true}))
		s := v.Screen
		if s.Rows != 24 || s.Cols != 80 || s.CursorRow != 23 || s.Lines[0] != "1" || s.Alternate || v.Output != "" {
			t.Fatalf("first page: %+v, output %q", s, v.Output)
		}
		if !strings.Contains(body, "screen 80x24, cursor at row 24 col ") || !strings.Contains(body, "\n```\n1\n2\n3\n") || !strings.HasSuffix(body, "lines\n```") {
			t.Fatalf("the text shows no fenced screen with its cursor:\n%s", body)
		}

		v = c.job("ssh_input", map[string]any{"job_id": v.JobID, "keys": "<pgdn>", "screen": true, "wait_s": 10})
		if s := v.Screen; s == nil || len(s.Lines) < 23 || s.Lines[0] != "24" || s.Lines[22] != "46" {
			t.Fatalf("after <pgdn>: %+v", v.Screen)
		}
		v = c.job("ssh_input", map[string]any{"job_id": v.JobID, "keys": "q", "screen": true, "wait_s": 10})
		if v.State != jobs.StateSucceeded || v.Screen != nil {
			t.Fatalf("after q: %s, screen %+v", v.State, v.Screen)
		}
		res := c.call("ssh_job", map[string]any{"job_id": v.JobID, "screen": true})
		if !res.IsError || !strings.Contains(text(res), "finished job has no screen; read its output") {
			t.Fatalf("the screen of a finished job: %s", text(res))
		}

		for _, args := range []map[string]any{
			{"host": srv.Alias, "command": "true", "cols": 5},
			{"host": srv.Alias, "command": "true", "rows": 1000},
			{"host": srv.Alias, "command": "true", "cols": 80, "detach": true},
		} {
			if res := c.call("ssh_run", args); !res.IsError {
				t.Errorf("%v: accepted: %s", args, text(res))
			}
		}
	})
}
