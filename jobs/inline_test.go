package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// RunInline records an operation as a job of kind file: running while it
// runs, then its summary as output and the state its result says. It does
// not hold up the session's commands.
func TestRunInline(t *testing.T) {
	h := newHarness(t, "", nil)
	ctx := context.Background()
	ok, err := h.eng.RunInline(ctx, jobs.Spec{Host: "local", Command: `read_file "/etc/x"`}, func(ctx context.Context, j *jobs.Job) (string, error) {
		if got, err := h.eng.Get(ctx, j.ID); err != nil || got.State != jobs.StateRunning || got.Kind != jobs.KindFile {
			t.Errorf("while it runs: %+v %v", got, err)
		}
		return "read 3 bytes\n", nil
	})
	if err != nil || ok.State != jobs.StateSucceeded || ok.Kind != jobs.KindFile || ok.Session != jobs.FileSession || h.output(ok.ID) != "read 3 bytes\n" {
		t.Fatalf("succeeded: %+v %v", ok, err)
	}
	failed, err := h.eng.RunInline(ctx, jobs.Spec{Host: "local", Command: "write_file x"}, func(context.Context, *jobs.Job) (string, error) {
		return "", errors.New("permission denied")
	})
	if err == nil || failed.State != jobs.StateFailed || failed.Error != "permission denied" {
		t.Fatalf("failed: %+v %v", failed, err)
	}
	notRun, _ := h.eng.RunInline(ctx, jobs.Spec{Host: "local", Command: "list_dir x"}, func(context.Context, *jobs.Job) (string, error) {
		return "", fmt.Errorf("%w: connect: refused", jobs.ErrNotStarted)
	})
	if notRun.State != jobs.StateError {
		t.Fatalf("not started: %+v", notRun)
	}
	panicked, err := h.eng.RunInline(ctx, jobs.Spec{Host: "local", Command: "list_dir y"}, func(context.Context, *jobs.Job) (string, error) {
		panic("boom")
	})
	if err == nil || panicked.State != jobs.StateFailed {
		t.Fatalf("panic: %+v %v", panicked, err)
	}

	// Cancel stops it through its context; a command of the session "file"
	// runs meanwhile.
	started := make(chan string)
	done := make(chan *jobs.Job)
	go func() {
		j, _ := h.eng.RunInline(ctx, jobs.Spec{Host: "local", Command: "upload big"}, func(ctx context.Context, j *jobs.Job) (string, error) {
			started <- j.ID
			<-ctx.Done()
			return "", ctx.Err()
		})
		done <- j
	}()
	id := <-started
	cmd := h.enqueue(jobs.FileSession, "echo beside")
	if j := h.final(cmd.ID); j.State != jobs.StateSucceeded {
		t.Errorf("a command in session %q while a file job runs: %s", jobs.FileSession, j.State)
	}
	if _, err := h.eng.Cancel(ctx, id, "INT", time.Second); err != nil {
		t.Fatal(err)
	}
	if j := <-done; j.State != jobs.StateCancelled {
		t.Fatalf("cancelled: %+v", j)
	}
}
