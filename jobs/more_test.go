package jobs_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// A job run by one process is cancelled from another sharing the database;
// the owner carries it out at its next heartbeat.
func TestCancelFromAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	owner := newHarness(t, path, func(c *jobs.Config) { c.Heartbeat = 50 * time.Millisecond })
	other := newHarness(t, path, nil)
	j := owner.enqueue("", "echo $$ > pid; sleep 600")
	waitForFile(t, filepath.Join(owner.dir, "pid"))
	got, err := other.eng.Cancel(context.Background(), j.ID, "INT", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateCancelled || !strings.Contains(got.Error, "another") {
		t.Fatalf("cancel from another process: %s %q", got.State, got.Error)
	}
}

// Past the cap, the head and the most recent output are kept and the gap is
// recorded; the job goes on and its total is counted.
func TestOutputCapKeepsHeadAndTail(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.MaxJobOutput = 64 << 10 })
	j := h.final(h.enqueue("", "seq 1 200000").ID)
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		want.WriteString(strconv.Itoa(i) + "\n")
	}
	if j.State != jobs.StateSucceeded || j.OutputBytes != int64(want.Len()) {
		t.Fatalf("%s, %d bytes of %d", j.State, j.OutputBytes, want.Len())
	}
	if j.GapStart <= 0 || j.GapEnd <= j.GapStart || j.GapEnd >= j.OutputBytes {
		t.Fatalf("gap [%d, %d) of %d", j.GapStart, j.GapEnd, j.OutputBytes)
	}
	stored := j.GapStart + (j.OutputBytes - j.GapEnd)
	if stored > 64<<10+256<<10 { // the cap, give or take a chunk
		t.Fatalf("stored %d bytes with a 64 KiB cap", stored)
	}
	ctx := context.Background()
	head, _ := h.eng.Read(ctx, j.ID, 0, j.GapStart)
	if string(head.Data) != want.String()[:j.GapStart] {
		t.Fatal("head differs")
	}
	tail, _ := h.eng.Read(ctx, j.ID, j.GapEnd, 1<<30)
	if string(tail.Data) != want.String()[j.GapEnd:] {
		t.Fatal("tail differs")
	}
	in, _ := h.eng.Read(ctx, j.ID, j.GapStart+10, 10)
	if in.Offset != j.GapEnd || in.Skipped != j.GapEnd-j.GapStart-10 || string(in.Data) != want.String()[j.GapEnd:j.GapEnd+10] {
		t.Fatalf("read inside the gap: offset %d skipped %d %q", in.Offset, in.Skipped, in.Data)
	}
}

// promptExecutor prints a prompt, reports it, and answers what it is sent.
type promptExecutor struct{}

func (promptExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	t.Write([]byte("Password: "))
	t.Prompt(&jobs.Prompt{Text: "Password:", Kind: jobs.PromptPassword})
	select {
	case c := <-t.Controls():
		if c.Done != nil {
			c.Done <- nil
		}
		if c.Signal != "" {
			time.Sleep(100 * time.Millisecond) // it takes a moment to stop
			return jobs.Result{State: jobs.StateCancelled, Signal: c.Signal}
		}
		// Output resumes (the engine leaves waiting_input), then a while
		// later the job ends.
		t.Write([]byte("\nthanks, " + string(c.Input)))
		t.Prompt(nil)
		time.Sleep(200 * time.Millisecond)
		code := 0
		return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code}
	case <-ctx.Done():
		return jobs.Result{State: jobs.StateLost}
	}
}

// A waiter returns at once when the job waits for input, with the prompt and
// its text readable; input resumes the job.
func TestWaitingInput(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.Executor = promptExecutor{} })
	j := h.enqueue("", "ask")
	got, err := h.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: 10 * time.Second, Offset: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateWaitingInput || got.Prompt == nil || got.Prompt.Kind != jobs.PromptPassword || h.output(j.ID) != "Password: " {
		t.Fatalf("%s %+v %q", got.State, got.Prompt, h.output(j.ID))
	}
	if err := h.eng.Input(context.Background(), j.ID, []byte("x"), true); err != nil {
		t.Fatal(err)
	}
	// Waiting after input ignores the prompt being answered.
	got, err = h.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: 10 * time.Second, Offset: -1, PromptAfter: got.OutputBytes})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateSucceeded || got.Prompt != nil || h.output(j.ID) != "Password: \nthanks, x" {
		t.Fatalf("%s %+v %q", got.State, got.Prompt, h.output(j.ID))
	}
}

// Cancelling a job that waits for input returns once it has ended.
func TestCancelWaitingInput(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.Executor = promptExecutor{} })
	j := h.enqueue("", "ask")
	waitState(t, h, j.ID, jobs.StateWaitingInput)
	got, err := h.eng.Cancel(context.Background(), j.ID, "INT", time.Second)
	if err != nil || got.State != jobs.StateCancelled || got.Prompt != nil {
		t.Fatalf("cancel at a prompt: %v %v", got, err)
	}
}
