package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// A connection closed after the idle timeout shows in ssh_sessions with its
// time, until the next command reconnects (issue 11).
func TestSessionsShowIdleClose(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	cfg := testConfig(t, srv, t.TempDir())
	cfg.IdleTimeout = time.Second
	c := newMCPClient(t, cfg)
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "true"})
	sessions := func() (sessionsOut, string) {
		res := c.call("ssh_sessions", map[string]any{})
		var out sessionsOut
		b, _ := json.Marshal(res.StructuredContent)
		json.Unmarshal(b, &out)
		return out, text(res)
	}
	var out sessionsOut
	var txt string
	waitFor(t, "the idle close", func() bool {
		out, txt = sessions()
		return len(out.ClosedIdle) == 1
	})
	if out.ClosedIdle[0].Host != v.Host || out.ClosedIdle[0].ClosedIdleAt == "" || len(out.Connections) != 0 ||
		!strings.Contains(txt, "closed after the idle timeout") {
		t.Fatalf("after the idle close: %+v %q", out, txt)
	}
	c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "true"})
	if out, txt = sessions(); len(out.ClosedIdle) != 0 || len(out.Connections) != 1 {
		t.Fatalf("after reconnecting: %+v %q", out, txt)
	}
}
