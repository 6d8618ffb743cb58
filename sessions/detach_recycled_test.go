package sessions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// detachTask is the engine's side of a job, for calling Reattach directly.
type detachTask struct {
	mu       sync.Mutex
	out      bytes.Buffer
	controls chan jobs.Control
}

func (t *detachTask) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.Write(p)
}
func (t *detachTask) Prompt(*jobs.Prompt)           {}
func (t *detachTask) Started(jobs.Start)            {}
func (t *detachTask) Controls() <-chan jobs.Control { return t.controls }
func (t *detachTask) Flush(context.Context) error   { return nil }
func (t *detachTask) Output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

// startTicks is field 22 of /proc/PID/stat.
func startTicks(t testing.TB, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	return f[19]
}

// TestDetachedRecycledPid re-attaches a job whose recorded pid now belongs to
// another process (a sleep of ours, leading its own process group) and
// cancels it: the sleep must survive, and the job ends lost saying why. The
// same cancel with the sleep's real start time kills it, so it is the start
// check that spared it.
func TestDetachedRecycledPid(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		spool := t.TempDir()
		pool := newDetachPool(t, srv.SSHConfig, spool)
		for i, recycled := range []bool{true, false} {
			sleep := exec.Command("sleep", "60")
			sleep.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := sleep.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { sleep.Wait(); close(exited) }()
			t.Cleanup(func() { sleep.Process.Kill() })
			pid := sleep.Process.Pid
			start := "proc:" + startTicks(t, pid)
			if recycled {
				start = "proc:1" // the job's process started at boot: not this sleep
			}

			id := fmt.Sprintf("0190aaaa-bbbb-7ccc-8ddd-%012d", i)
			dir := filepath.Join(spool, id)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "out"), []byte("before\nafter\n"), 0o600)
			att, _ := json.Marshal(map[string]any{"spool": dir, "pid": pid, "pgid": pid, "start": start})
			j := &jobs.Job{ID: id, Target: srv.Alias, Session: "default", Detached: true, Attach: string(att), OutputBytes: int64(len("before\n"))}
			done := make(chan error, 1)
			task := &detachTask{controls: make(chan jobs.Control, 1)}
			task.controls <- jobs.Control{Signal: "INT", Grace: time.Second, Done: done}

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res := pool.Reattach(ctx, j, task)
			cancel()
			var cancelErr error
			select {
			case cancelErr = <-done:
			default:
			}
			if task.Output() != "after\n" {
				t.Errorf("recycled=%v: output from the stored offset: %q", recycled, task.Output())
			}
			if recycled {
				select {
				case <-exited:
					t.Fatalf("the sleep that took the job's pid was killed")
				case <-time.After(300 * time.Millisecond):
				}
				if res.State != jobs.StateLost || !strings.Contains(res.Error, "another process") {
					t.Errorf("recycled pid: %s %q", res.State, res.Error)
				}
				if cancelErr == nil || !strings.Contains(cancelErr.Error(), "nothing") {
					t.Errorf("recycled pid: cancel reply %v", cancelErr)
				}
				continue
			}
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				t.Fatalf("our own process survived the cancel")
			}
			if res.State != jobs.StateCancelled || res.Signal != "INT" || cancelErr != nil {
				t.Errorf("own pid: %s %q (%s), cancel reply %v", res.State, res.Signal, res.Error, cancelErr)
			}
		}
	})
}
