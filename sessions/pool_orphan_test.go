package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// A session closed (ssh_close) while its shell starts, with no job holding
// it (ssh_connect warming a session), does not leave that shell running
// outside the pool: Close used to wait for its write loop forever (seen as
// TestToolArgsFuzzed hanging in its cleanup under load).
func TestPoolSessionClosedWhileStarting(t *testing.T) {
	t.Parallel()
	// Slow output keeps the shell starting for a while.
	srv := sshtest.StartInProcess(t, sshtest.Options{SlowOutput: 20 * time.Millisecond})
	p := newTestPool(t, srv, PoolConfig{})
	h := mustResolve(t, p, srv)
	c, err := p.acquire(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	s := c.slot("warm")
	started := make(chan error, 1)
	go func() {
		_, _, err := c.shellFor(context.Background(), s)
		started <- err
	}()
	// Close the session while its shell starts.
	deadline := time.Now().Add(10 * time.Second)
	for !c.closeSession("warm", "closed by the test") {
		if time.Now().After(deadline) {
			t.Fatal("the session never existed")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-started:
		t.Logf("shell start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the shell did not start")
	}
	p.release(c)
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Pool.Close still waits 20 s after the session was closed while its shell started")
	}
}
