package sessions

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// startPair starts two servers of one kind.
func startPair(t *testing.T, kind sshtest.Kind) (a, b *sshtest.Server) {
	t.Helper()
	start := sshtest.StartInProcess
	if kind == sshtest.KindOpenSSH {
		start = sshtest.StartOpenSSH
	}
	return start(t, sshtest.Options{}), start(t, sshtest.Options{})
}

// serverPort is the server port of a job's $SSH_CONNECTION: which sshd it
// really ran on.
func serverPort(t *testing.T, task *testTask, res jobs.Result) int {
	t.Helper()
	if res.State != jobs.StateSucceeded {
		t.Fatalf("echo $SSH_CONNECTION: %+v, output %q", res, task.Output())
	}
	f := strings.Fields(task.Output())
	if len(f) != 4 {
		t.Fatalf("SSH_CONNECTION = %q", task.Output())
	}
	p, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Two aliases with the same user@HostName:Port that land on different servers
// (one through a ProxyCommand to another sshd, with its own HostKeyAlias) must
// not share a connection or a shell: each command runs where its alias leads
// (issue 9, item 1).
func TestPoolDestinationsSameAddress(t *testing.T) {
	sshtest.NoAgent(t)
	t.Setenv("SSHJOBS_TEST_NC", "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []sshtest.Kind{sshtest.KindOpenSSH, sshtest.KindInProcess} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == sshtest.KindOpenSSH && !sshtest.HaveOpenSSH() {
				sshtest.StartOpenSSH(t, sshtest.Options{}) // skips, or fails when sshd is required
			}
			a, b := startPair(t, kind)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config")
			khA, khB := filepath.Join(dir, "known_hosts_a"), filepath.Join(dir, "known_hosts_b")
			sshtest.AppendKnownHosts(t, khA, a)
			if err := os.WriteFile(khB, []byte(knownhosts.Line([]string{"s2key"}, b.HostKey)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			sshtest.WriteConfig(t, cfg, "s1", a, khA)
			// s2 names a's address, but its ProxyCommand reaches b.
			sshtest.WriteConfig(t, cfg, "s2", a, khB, "IdentityFile "+b.KeyFile,
				fmt.Sprintf("ProxyCommand %s -test.run=TestHelperNC -- 127.0.0.1 %d", exe, b.Port),
				"HostKeyAlias s2key")
			p := NewPool(PoolConfig{Dialer: &sshdial.Dialer{Resolver: &sshconfig.Resolver{ConfigFile: cfg}}})
			t.Cleanup(p.CloseAll)

			for _, step := range []struct {
				target string
				want   int
			}{{"s2", b.Port}, {"s1", a.Port}, {"s2", b.Port}} {
				task := newTestTask()
				res := runTarget(p, step.target, "default", "echo $SSH_CONNECTION", task)
				if got := serverPort(t, task, res); got != step.want {
					t.Errorf("%s ran on the server at port %d, want %d", step.target, got, step.want)
				}
			}
			if n := len(p.Snapshot()); n != 2 {
				t.Errorf("%d connections, want 2 (one per destination): %+v", n, p.Snapshot())
			}
			h1, _ := p.Resolve(context.Background(), "s1")
			h2, _ := p.Resolve(context.Background(), "s2")
			if h1.Key() == h2.Key() {
				t.Errorf("s1 and s2 share the key %s", h1.Key())
			}
			if !strings.HasPrefix(h2.Key(), h1.User+"@127.0.0.1:"+strconv.Itoa(a.Port)+"#") {
				t.Errorf("s2's key %q does not start with user@host:port#", h2.Key())
			}
			if r := h2.Route(); !strings.Contains(r, "proxy command") || !strings.Contains(r, "host key alias s2key") {
				t.Errorf("s2's route %q does not name its proxy command and host key alias", r)
			}
		})
	}
}

// A job runs on the destination stored on its row, even in a process whose
// ssh_config now sends its alias elsewhere; a row with no stored destination
// whose target now resolves elsewhere ends error, and runs nowhere (issue 9,
// item 2).
func TestPoolRunsStoredDestination(t *testing.T) {
	sshtest.NoAgent(t)
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, a *sshtest.Server) {
		b := sshtest.StartInProcess(t, sshtest.Options{})
		dir := t.TempDir()
		kh := filepath.Join(dir, "known_hosts")
		sshtest.AppendKnownHosts(t, kh, a, b)
		cfgA, cfgB := filepath.Join(dir, "config_a"), filepath.Join(dir, "config_b")
		sshtest.WriteConfig(t, cfgA, "web", a, kh)
		sshtest.WriteConfig(t, cfgB, "web", b, kh) // the adopting process's config
		accepting := NewPool(PoolConfig{Dialer: &sshdial.Dialer{Resolver: &sshconfig.Resolver{ConfigFile: cfgA}}})
		adopting := NewPool(PoolConfig{Dialer: &sshdial.Dialer{Resolver: &sshconfig.Resolver{ConfigFile: cfgB}}})
		t.Cleanup(accepting.CloseAll)
		t.Cleanup(adopting.CloseAll)

		d, err := executor(accepting).ResolveDestination(context.Background(), "web")
		if err != nil {
			t.Fatal(err)
		}
		j := &jobs.Job{ID: "stored-1", Target: "web", Host: d.Key, Destination: d.Spec, Session: "default", Command: "echo $SSH_CONNECTION"}
		task := newTestTask()
		if got := serverPort(t, task, executor(adopting).Run(context.Background(), j, task)); got != a.Port {
			t.Errorf("ran on the server at port %d, want %d (the stored destination)", got, a.Port)
		}

		legacy := &jobs.Job{ID: "legacy-1", Target: "web", Host: d.Key, Session: "default", Command: "echo ran"}
		task = newTestTask()
		res := executor(adopting).Run(context.Background(), legacy, task)
		if res.State != jobs.StateError || !strings.Contains(res.Error, "was accepted for "+d.Key) || task.Output() != "" {
			t.Errorf("legacy row resolved elsewhere: %+v, output %q; want error naming %s and no output", res, task.Output(), d.Key)
		}
	})
}
