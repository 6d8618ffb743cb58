package sessions

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// The resolve cache holds only entries younger than resolveTTL: each insert
// drops the expired ones, so that many one-off targets do not pile up.
func TestResolveCacheDropsExpired(t *testing.T) {
	p := &Pool{resolved: map[string]resolved{}}
	p.resolve = func(ctx context.Context, target string) (*sshconfig.Host, error) { return &sshconfig.Host{}, nil }
	for _, target := range []string{"a", "b", "c"} {
		p.resolved["\x00"+target] = resolved{host: &sshconfig.Host{}, expires: time.Now().Add(-time.Second)}
	}
	if _, err := p.Resolve(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	if len(p.resolved) != 1 {
		t.Errorf("resolve cache holds %d entries after an insert; want 1 (the expired ones dropped)", len(p.resolved))
	}
}

// A resolver in the context (a daemon's client's) resolves instead of the
// Dialer's, and its answers are reused only within its scope: two clients
// whose ssh_config send one alias to different places each get their own.
func TestResolveWithClientResolver(t *testing.T) {
	dir := t.TempDir()
	conf := func(name, port string) *sshconfig.Resolver {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte("Host web\n  HostName 127.0.0.1\n  Port "+port+"\n  User u\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return &sshconfig.Resolver{ConfigFile: f, NoOpenSSH: true}
	}
	p := NewPool(PoolConfig{Dialer: &sshdial.Dialer{Resolver: conf("default", "22")}})
	one, two := conf("one", "2201"), conf("two", "2202")
	ctx := context.Background()
	for _, c := range []struct {
		ctx  context.Context
		want string
	}{
		{ctx, "u@127.0.0.1:22"},
		{WithResolver(ctx, one, "one"), "u@127.0.0.1:2201"},
		{WithResolver(ctx, two, "two"), "u@127.0.0.1:2202"},
		{WithResolver(ctx, one, "one"), "u@127.0.0.1:2201"},
		{ctx, "u@127.0.0.1:22"},
	} {
		h, err := p.Resolve(c.ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if h.Key() != c.want {
			t.Errorf("Resolve = %s, want %s", h.Key(), c.want)
		}
	}
}
