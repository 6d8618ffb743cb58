package sshdial

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// waitConnections waits until s has n client connections.
func waitConnections(t *testing.T, s *sshtest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Connections() != n {
		if time.Now().After(deadline) {
			t.Fatalf("server has %d connections, want %d", s.Connections(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A two-hop ProxyJump chain: target through jump, then mid. Closing the
// final client closes the hops.
func TestDialProxyJump(t *testing.T) {
	sshtest.NoAgent(t)
	jump := sshtest.StartInProcess(t, sshtest.Options{})
	mid := sshtest.StartInProcess(t, sshtest.Options{})
	target := sshtest.StartInProcess(t, sshtest.Options{})
	dir := t.TempDir()
	kh, cfg := filepath.Join(dir, "known_hosts"), filepath.Join(dir, "config")
	sshtest.AppendKnownHosts(t, kh, jump, mid, target)
	sshtest.WriteConfig(t, cfg, "jump", jump, kh)
	sshtest.WriteConfig(t, cfg, "mid", mid, kh)
	sshtest.WriteConfig(t, cfg, "target", target, kh, "ProxyJump jump,mid")
	sshtest.WriteConfig(t, cfg, "direct", target, kh, "ProxyJump jump")

	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			r := &sshconfig.Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH}
			d := &Dialer{Resolver: r, Logger: dialLogger(t)}
			for _, alias := range []string{"target", "direct"} {
				h, err := r.Resolve(context.Background(), alias)
				if err != nil {
					t.Fatal(err)
				}
				c, info, err := d.Dial(context.Background(), h)
				if err != nil {
					t.Fatal(err)
				}
				if info.HostKeyStatus != HostKeyKnown || info.HostKeyFingerprint != ssh.FingerprintSHA256(target.HostKey) {
					t.Errorf("%s: info = %+v, want the target's key, known", alias, info)
				}
				if out := runCmd(t, c, "echo through"); out != "through" {
					t.Errorf("%s: echo: %q", alias, out)
				}
				waitConnections(t, jump, 1)
				c.Close()
				waitConnections(t, jump, 0)
				waitConnections(t, mid, 0)
				waitConnections(t, target, 0)
			}
		})
	}

	// A failing hop fails the dial, naming the hop, and leaves nothing open.
	r := &sshconfig.Resolver{ConfigFile: cfg}
	h, _ := r.Resolve(context.Background(), "target")
	h.ProxyJump, h.JumpHosts = []string{"jump", "nosuchalias.invalid"}, nil // hops resolved at dial time
	_, _, err := (&Dialer{Resolver: r}).Dial(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "nosuchalias.invalid") {
		t.Errorf("bad hop: err = %v", err)
	}
	waitConnections(t, jump, 0)
}

// ProxyCommand through a tiny nc (the test binary itself, see TestHelperNC).
func TestDialProxyCommand(t *testing.T) {
	sshtest.NoAgent(t)
	t.Setenv("SSHJOBS_TEST_NC", "1")
	s := sshtest.StartInProcess(t, sshtest.Options{})
	dir := t.TempDir()
	kh, cfg := filepath.Join(dir, "known_hosts"), filepath.Join(dir, "config")
	sshtest.AppendKnownHosts(t, kh, s)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sshtest.WriteConfig(t, cfg, "viacmd", s, kh, "ProxyCommand "+exe+" -test.run=TestHelperNC -- %h %p")
	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			r := &sshconfig.Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH}
			h, err := r.Resolve(context.Background(), "viacmd")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(h.ProxyCommand, "-- 127.0.0.1 "+strconv.Itoa(s.Port)) {
				t.Errorf("ProxyCommand = %q", h.ProxyCommand)
			}
			c, info, err := (&Dialer{Resolver: r, Logger: dialLogger(t)}).Dial(context.Background(), h)
			if err != nil {
				t.Fatal(err)
			}
			if info.HostKeyStatus != HostKeyKnown {
				t.Errorf("info = %+v", info)
			}
			if out := runCmd(t, c, "echo piped"); out != "piped" {
				t.Errorf("echo: %q", out)
			}
			c.Close()
			waitConnections(t, s, 0)
		})
	}
}

// A peer that accepts TCP but never speaks SSH must not hang Dial past
// ConnectTimeout, nor past ctx.
func TestDialHandshakeTimeout(t *testing.T) {
	sshtest.NoAgent(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, silent
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	h := &sshconfig.Host{User: "u", HostName: "127.0.0.1", Port: port, ConnectTimeout: 300 * time.Millisecond,
		IdentityAgent: "none", UserKnownHostsFiles: []string{filepath.Join(t.TempDir(), "kh")}}

	start := time.Now()
	_, _, err = (&Dialer{}).Dial(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 3*time.Second {
		t.Errorf("err = %v after %v, want a timeout after ~300ms", err, time.Since(start))
	}

	h.ConnectTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, _, err = (&Dialer{}).Dial(ctx, h)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("err = %v after %v, want context.DeadlineExceeded after ~300ms", err, time.Since(start))
	}
}

// startAgent serves an in-memory agent holding keys on a unix socket.
func startAgent(t *testing.T, keys ...any) string {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(kr, c) }()
		}
	}()
	return sock
}

func TestAuthAgent(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	b, err := os.ReadFile(s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	sock := startAgent(t, key)
	h := serverHost(t, s)
	h.IdentityAgent = sock
	h.IdentitiesOnly = false
	h.IdentityFiles = nil
	c, info, err := (&Dialer{}).Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.AuthMethod != AuthAgent {
		t.Errorf("AuthMethod = %q, want agent", info.AuthMethod)
	}

	// IdentitiesOnly with an IdentityFile whose .pub matches: the agent signs
	// (the private file may be unreadable, as with a hardware key).
	dir := t.TempDir()
	priv := filepath.Join(dir, "id_hw")
	sshtest.WriteFile(t, priv, "not a key: lives in the agent")
	pub, _ := os.ReadFile(s.KeyFile + ".pub")
	sshtest.WriteFile(t, priv+".pub", string(pub))
	h.IdentitiesOnly = true
	h.IdentityFiles = []string{priv}
	c, info, err = (&Dialer{}).Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.AuthMethod != AuthAgent {
		t.Errorf("IdentitiesOnly, matching: AuthMethod = %q, want agent", info.AuthMethod)
	}

	// IdentitiesOnly with an unrelated IdentityFile: the agent's key is not
	// offered.
	h.IdentityFiles = []string{filepath.Join(dir, "missing")}
	_, _, err = (&Dialer{}).Dial(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "no usable key") {
		t.Errorf("IdentitiesOnly, unrelated: err = %v, want no key offered", err)
	}
}
