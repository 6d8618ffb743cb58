package sessions

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// noAgent keeps the developer's own ssh-agent out of the tests.
func noAgent(t *testing.T) {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "")
}

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
func serverHost(t *testing.T, s *sshtest.Server) *Host {
	t.Helper()
	h, err := (&Resolver{ConfigFile: s.SSHConfig}).Resolve(context.Background(), s.Alias)
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

// knownHostsLine is the line the dialer records for a server.
func knownHostsLine(s *sshtest.Server, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, key)
}

// writeConfigFor writes an ssh_config entry named alias for s, with extra
// lines appended, into the file at path (appending).
func writeConfigFor(t *testing.T, path, alias string, s *sshtest.Server, knownHosts string, extra ...string) {
	t.Helper()
	text := fmt.Sprintf("Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n",
		alias, s.Host, s.Port, s.User, s.KeyFile, knownHosts)
	for _, e := range extra {
		text += "  " + e + "\n"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// appendKnownHosts appends the known_hosts lines of servers to path.
func appendKnownHosts(t *testing.T, path string, servers ...*sshtest.Server) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range servers {
		fmt.Fprintln(f, knownHostsLine(s, s.HostKey))
	}
}

// TestHelperNC is not a test: run as a ProxyCommand (with
// SSHJOBS_TEST_NC=1), it is a tiny `nc HOST PORT`, so that the ProxyCommand
// test needs no netcat on the machine.
func TestHelperNC(t *testing.T) {
	if os.Getenv("SSHJOBS_TEST_NC") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	c, err := net.Dial("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper nc:", err)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "helper nc: connected to", c.RemoteAddr())
	go func() { io.Copy(c, os.Stdin); c.(*net.TCPConn).CloseWrite() }()
	io.Copy(os.Stdout, c)
	os.Exit(0)
}
