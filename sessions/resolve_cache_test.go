package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
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
