package sshtest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// dial connects with s.ClientConfig, and closes the client when the test ends or
// after a watchdog delay, so that a hung server fails the test instead of hanging it.
func dial(t *testing.T, s *Server) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr(), s.ClientConfig(t))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Kind, err)
	}
	watchdog := time.AfterFunc(20*time.Second, func() { c.Close() })
	t.Cleanup(func() { watchdog.Stop(); c.Close() })
	return c
}

func TestShellEchoOffExitStatus(t *testing.T) {
	Each(t, Options{}, func(t *testing.T, s *Server) {
		sess, err := dial(t, s).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.RequestPty("xterm", 40, 120, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
			t.Fatal(err)
		}
		stdin, _ := sess.StdinPipe()
		stdout, _ := sess.StdoutPipe()
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "echo hi; exit 3\n")
		out, _ := io.ReadAll(stdout)
		err = sess.Wait()
		t.Logf("pty output: %q", out)
		if n := strings.Count(string(out), "hi\r\n"); n != 1 || strings.Contains(string(out), "echo hi") {
			t.Errorf("want one \"hi\" and no echo, got %q", out)
		}
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
			t.Errorf("Wait = %v, want exit status 3", err)
		}
	})
}

// TestBackgroundJobKeepsTTY: a background process that still holds the terminal
// does not keep the session open after the shell exits (sshd does not wait for it).
func TestBackgroundJobKeepsTTY(t *testing.T) {
	Each(t, Options{}, func(t *testing.T, s *Server) {
		sess, _ := dial(t, s).NewSession()
		sess.RequestPty("xterm", 40, 120, ssh.TerminalModes{ssh.ECHO: 0})
		stdin, _ := sess.StdinPipe()
		stdout, _ := sess.StdoutPipe()
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "sleep 30 & echo pid=$!; exit\n")
		start := time.Now()
		out, _ := io.ReadAll(stdout)
		sess.Wait()
		if m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(string(out)); m != nil {
			pid, _ := strconv.Atoi(m[1])
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("session ended %v after exit; output %q", d, out)
		}
	})
}

func TestExec(t *testing.T) {
	Each(t, Options{}, func(t *testing.T, s *Server) {
		c := dial(t, s)
		sess, _ := c.NewSession()
		out, err := sess.Output(`printf 'a\nb'`)
		if err != nil || string(out) != "a\nb" {
			t.Errorf("exec without pty = %q, %v; want \"a\\nb\"", out, err)
		}
		sess, _ = c.NewSession()
		sess.RequestPty("vt100", 40, 120, nil)
		out, err = sess.Output(`stty size; echo $TERM; exit 5`)
		var ee *ssh.ExitError
		if string(out) != "40 120\r\nvt100\r\n" || !errors.As(err, &ee) || ee.ExitStatus() != 5 {
			t.Errorf("exec with pty = %q, %v; want \"40 120\\r\\nvt100\\r\\n\", status 5", out, err)
		}
		sess, _ = c.NewSession()
		var stderr strings.Builder
		sess.Stderr = &stderr
		out, err = sess.Output(`echo out; echo err >&2; kill -TERM $$`)
		if string(out) != "out\n" || stderr.String() != "err\n" || !errors.As(err, &ee) || ee.Signal() != "TERM" {
			t.Errorf("got stdout %q, stderr %q, %v; want out, err, signal TERM", out, stderr.String(), err)
		}
	})
}

func TestOptions(t *testing.T) {
	o := Options{Shell: "/bin/dash", Banner: "Welcome to sshtest\n", Env: []string{"SSHTEST_FOO=bar \"baz\""}}
	Each(t, o, func(t *testing.T, s *Server) {
		cfg := s.ClientConfig(t)
		var banner string
		cfg.BannerCallback = func(m string) error { banner = m; return nil }
		c, err := ssh.Dial("tcp", s.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if banner != o.Banner {
			t.Errorf("pre-auth banner %q, want %q", banner, o.Banner)
		}
		sess, _ := c.NewSession()
		out, err := sess.Output(`echo "$SSHTEST_FOO"; readlink /proc/$$/exe`)
		if err != nil || !strings.HasPrefix(string(out), "bar \"baz\"\n") || !strings.Contains(string(out), "dash") {
			t.Errorf("exec = %q, %v; want the Env value and dash", out, err)
		}
		sess, _ = c.NewSession()
		sess.RequestPty("xterm", 40, 120, ssh.TerminalModes{ssh.ECHO: 0})
		stdin, _ := sess.StdinPipe()
		stdout, _ := sess.StdoutPipe()
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "readlink /proc/$$/exe; exit\n")
		b, _ := io.ReadAll(stdout)
		sess.Wait()
		if !strings.HasPrefix(string(b), "Welcome to sshtest\r\n") || !strings.Contains(string(b), "dash") {
			t.Errorf("pty shell output %q: want the banner first, then dash", b)
		}
	})
}

func TestDropConnections(t *testing.T) {
	Each(t, Options{}, func(t *testing.T, s *Server) {
		c := dial(t, s)
		sess, _ := c.NewSession()
		// With a PTY, so that the dropped connection hangs up the command on both
		// servers (without one, sshd leaves it running until it writes or ends).
		sess.RequestPty("xterm", 40, 120, nil)
		if err := sess.Start("sleep 30"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "1 connection", func() bool { return s.Connections() == 1 })
		s.DropConnections()
		waited := make(chan error, 1)
		go func() { waited <- c.Wait() }()
		select {
		case err := <-waited:
			if err == nil {
				t.Error("client Wait returned nil after DropConnections")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("client still connected 5s after DropConnections")
		}
		waitFor(t, "0 connections", func() bool { return s.Connections() == 0 })
		dial(t, s) // the server still accepts new connections
	})
}

func TestSilent(t *testing.T) {
	Each(t, Options{}, func(t *testing.T, s *Server) {
		c := dial(t, s)
		if ok, _, err := c.SendRequest("keepalive@openssh.com", true, nil); ok || err != nil {
			t.Fatalf("keepalive = %v, %v; want false (refused), nil", ok, err)
		}
		s.SetSilent(true)
		replied := make(chan error, 1)
		go func() { _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); replied <- err }()
		select {
		case <-replied:
			t.Fatal("keepalive answered while silent")
		case <-time.After(500 * time.Millisecond):
		}
		s.SetSilent(false)
		select {
		case err := <-replied:
			if err != nil {
				t.Errorf("keepalive after unsilence: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("keepalive not answered after SetSilent(false)")
		}
	})
}

func TestProxyJump(t *testing.T) {
	jump := StartInProcess(t, Options{})
	jc := dial(t, jump)
	if _, err := jc.Dial("tcp", "192.0.2.1:22"); err == nil {
		t.Error("forwarding to a non-loopback address was allowed")
	}
	Each(t, Options{}, func(t *testing.T, target *Server) {
		nc, err := jc.Dial("tcp", target.Addr())
		if err != nil {
			t.Fatal(err)
		}
		cc, chans, reqs, err := ssh.NewClientConn(nc, target.Addr(), target.ClientConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		c := ssh.NewClient(cc, chans, reqs)
		defer c.Close()
		sess, _ := c.NewSession()
		if out, err := sess.Output("echo via jump"); err != nil || string(out) != "via jump\n" {
			t.Errorf("through the jump host: %q, %v", out, err)
		}
	})
}

func TestPasswordAuth(t *testing.T) {
	s := StartInProcess(t, Options{KeyboardInteractive: true})
	for name, auth := range map[string]ssh.AuthMethod{
		"password": ssh.Password(s.Password),
		"keyboard-interactive": ssh.KeyboardInteractive(func(_, _ string, q []string, _ []bool) ([]string, error) {
			return []string{s.Password}, nil
		}),
	} {
		cfg := s.ClientConfig(t)
		cfg.Auth = []ssh.AuthMethod{auth}
		c, err := ssh.Dial("tcp", s.Addr(), cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		c.Close()
	}
	cfg := s.ClientConfig(t)
	cfg.Auth = []ssh.AuthMethod{ssh.Password("wrong")}
	if c, err := ssh.Dial("tcp", s.Addr(), cfg); err == nil {
		c.Close()
		t.Error("a wrong password was accepted")
	}
}

func TestSlowOutput(t *testing.T) {
	s := StartInProcess(t, Options{SlowOutput: 50 * time.Millisecond})
	sess, _ := dial(t, s).NewSession()
	start := time.Now()
	if out, err := sess.Output("echo slow"); err != nil || string(out) != "slow\n" {
		t.Errorf("got %q, %v", out, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("output took %v, want at least 50ms", d)
	}
	// A PTY command that exits long before its slowed output is through: all
	// of it must still arrive before the exit status.
	sess, _ = dial(t, s).NewSession()
	sess.RequestPty("xterm", 40, 120, nil)
	out, err := sess.Output("seq 1 20000")
	if n := strings.Count(string(out), "\r\n"); err != nil || n != 20000 {
		t.Errorf("got %d lines, %v; want 20000", n, err)
	}
}

// TestOpenSSHClient checks that the ssh_config works for the OpenSSH client,
// which the benchmarks compare against.
func TestOpenSSHClient(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	Each(t, Options{}, func(t *testing.T, s *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ssh", "-F", s.SSHConfig, s.Alias, "echo ok").CombinedOutput()
		if err != nil || string(out) != "ok\n" {
			t.Errorf("ssh -F %s %s: %q, %v", s.SSHConfig, s.Alias, out, err)
		}
		if _, err := exec.LookPath("sftp"); err != nil || !HaveOpenSSH() {
			return // the in-process server serves sftp with OpenSSH's sftp-server
		}
		cmd := exec.CommandContext(ctx, "sftp", "-F", s.SSHConfig, "-b", "-", s.Alias)
		cmd.Stdin = strings.NewReader("ls " + s.Dir + "\n")
		out, err = cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), s.SSHConfig) {
			t.Errorf("sftp: %q, %v", out, err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// SFTP works on both servers and starts in the sessions' HOME; in-process,
// also without OpenSSH's sftp-server (pkg/sftp's server then).
func TestSFTP(t *testing.T) {
	check := func(t *testing.T, s *Server) {
		c, err := sftp.NewClient(dial(t, s))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wd, err := c.Getwd()
		if err != nil || wd != s.Home {
			t.Fatalf("sftp starts in %q (%v), want %q", wd, err, s.Home)
		}
		f, err := c.Create("hello")
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("hi\n"))
		f.Close()
		if b, err := os.ReadFile(filepath.Join(s.Home, "hello")); err != nil || string(b) != "hi\n" {
			t.Fatalf("written over sftp: %q %v", b, err)
		}
	}
	Each(t, Options{}, check)
	t.Run("pkg-sftp", func(t *testing.T) {
		old := sftpServer
		sftpServer = "/nonexistent/sftp-server"
		defer func() { sftpServer = old }()
		check(t, StartInProcess(t, Options{}))
	})
}
