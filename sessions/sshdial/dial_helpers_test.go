package sshdial

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

// dialLogger sends the dialer's log to the test log.
func dialLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(dialLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type dialLogWriter struct{ t *testing.T }

func (w dialLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// serverHost resolves the server's own ssh_config entry (so the test also
// covers resolution), without an agent.
func serverHost(t *testing.T, s *sshtest.Server) *sshconfig.Host {
	t.Helper()
	h, err := (&sshconfig.Resolver{ConfigFile: s.SSHConfig}).Resolve(context.Background(), s.Alias)
	if err != nil {
		t.Fatal(err)
	}
	h.IdentityAgent = "none"
	h.ConnectTimeout = 10 * time.Second
	return h
}

// runCmd runs a command over c and returns the last line of its output (the
// machine's shell start-up files may print noise before it).
func runCmd(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
