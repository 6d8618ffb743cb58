package sshtest

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Helpers for tests that write ssh_config and known_hosts files for test
// servers, shared by the sessions packages.

// NoAgent keeps the developer's own ssh-agent out of the tests.
func NoAgent(t *testing.T) {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "")
}

// KnownHostsLine is the line the dialer records for a server.
func KnownHostsLine(s *Server, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, key)
}

// WriteConfig writes an ssh_config entry named alias for s, with extra
// lines appended, into the file at path (appending).
func WriteConfig(t *testing.T, path, alias string, s *Server, knownHosts string, extra ...string) {
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

// AppendKnownHosts appends the known_hosts lines of servers to path.
func AppendKnownHosts(t *testing.T, path string, servers ...*Server) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range servers {
		fmt.Fprintln(f, KnownHostsLine(s, s.HostKey))
	}
}

// HelperNC, called from a test named TestHelperNC, turns the test binary into
// a tiny `nc HOST PORT` when run as a ProxyCommand with SSHJOBS_TEST_NC=1
// (see NCProxyCommand), so that ProxyCommand tests need no netcat.
func HelperNC() {
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

// NCProxyCommand is a ProxyCommand that reaches host:port through the test
// binary's TestHelperNC; the caller sets SSHJOBS_TEST_NC=1 in its environment.
func NCProxyCommand(t testing.TB, host string, port int) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("ProxyCommand %s -test.run=TestHelperNC -- %s %d", exe, host, port)
}

// ResolverPaths returns the two resolution paths to run a test through: `ssh -G`
// (left out where the OpenSSH client is missing) and kevinburke/ssh_config.
func ResolverPaths(t *testing.T) map[string]bool {
	t.Helper()
	m := map[string]bool{"fallback": true}
	if _, err := exec.LookPath("ssh"); err == nil {
		m["openssh"] = false
	} else {
		t.Log("ssh not on PATH: only the fallback path is tested")
	}
	return m
}

// TempHome points $HOME at a temp folder, so ~ expands somewhere harmless.
func TempHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	return home
}

// WriteFile writes text to path, creating its folder.
func WriteFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
