package sshserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T) (*Server, *ssh.ClientConfig) {
	t.Helper()
	host, client := newKey(t), newKey(t)
	home := t.TempDir()
	s, err := Start(Config{HostKey: host, ClientKey: client.PublicKey(), User: "demo", Shell: "/bin/sh", Home: home, Env: []string{"SSHSERVER_TEST=" + home}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &ssh.ClientConfig{
		User: "demo", Auth: []ssh.AuthMethod{ssh.PublicKeys(client)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()), Timeout: 5 * time.Second,
	}
}

func TestExecAndPTY(t *testing.T) {
	s, cc := start(t)
	c, err := ssh.Dial("tcp", s.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	sess, _ := c.NewSession()
	sess.Setenv("GREETING", "hi")
	out, err := sess.CombinedOutput(`echo "$GREETING"; exit 3`)
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 || string(out) != "hi\n" {
		t.Fatalf("exec: %v, %q", err, out)
	}

	// A PTY with echo off, as sshjobs asks for it: the typed line is not echoed.
	sess, _ = c.NewSession()
	if err := sess.RequestPty("dumb", 40, 120, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	if err := sess.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	out, err = sess.CombinedOutput("stty -a; tty")
	if err != nil || !strings.Contains(string(out), "-echo ") || !strings.Contains(string(out), "columns 132") || !strings.Contains(string(out), "/dev/pts/") {
		t.Fatalf("pty: %v, %q", err, out)
	}
}

func TestOnlyTheClientKey(t *testing.T) {
	s, cc := start(t)
	cc.Auth = []ssh.AuthMethod{ssh.PublicKeys(newKey(t))}
	if c, err := ssh.Dial("tcp", s.Addr().String(), cc); err == nil {
		c.Close()
		t.Fatal("another key was accepted")
	}
	cc.User = "root2"
	if c, err := ssh.Dial("tcp", s.Addr().String(), cc); err == nil {
		c.Close()
		t.Fatal("another user was accepted")
	}
}

// TestCloseEndsSessions: Close hangs up a running shell and returns.
func TestCloseEndsSessions(t *testing.T) {
	s, cc := start(t)
	c, err := ssh.Dial("tcp", s.Addr().String(), cc)
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := c.NewSession()
	sess.RequestPty("dumb", 40, 80, ssh.TerminalModes{})
	if err := sess.Start("sleep 60"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	// The session's processes (they carry the marker in their environment)
	// are gone: the shell was waited for, and its child got the terminal's
	// hangup too (allow it a moment to die).
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := ""
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
			if strings.Contains(string(b), "SSHSERVER_TEST="+s.cfg.Home+"\x00") {
				st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
				left += string(st) + "\n"
			}
		}
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left:\n%s", left)
		}
	}
}
