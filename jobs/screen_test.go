package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
)

// termExecutor runs jobs locally and records the terminal each one was given.
type termExecutor struct {
	*jobstest.LocalExecutor
	got chan [2]int
}

func (x termExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	x.got <- [2]int{j.Cols, j.Rows}
	return x.LocalExecutor.Run(ctx, j, t)
}

// A job's terminal size reaches the executor (kept in memory, as input is);
// sizes out of range, and a size for a detached job, are refused; a screen
// is refused with the reason for a finished job, a queued one, one another
// process runs, and by an executor that keeps none.
func TestScreenAndTerm(t *testing.T) {
	x := termExecutor{got: make(chan [2]int, 4)}
	h := newHarness(t, "", func(c *jobs.Config) {
		x.LocalExecutor = &jobstest.LocalExecutor{Dir: t.TempDir()}
		c.Executor = x
	})
	ctx := context.Background()
	j, err := h.eng.Enqueue(ctx, jobs.Spec{Host: "local", Command: "sleep 30", Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-x.got; got != [2]int{100, 30} {
		t.Fatalf("the executor got %v, want 100x30", got)
	}
	queued := h.enqueue("", "true")
	if _, err := h.eng.Screen(ctx, queued.ID, jobs.ScreenOptions{}); !errors.Is(err, jobs.ErrNoScreen) || !strings.Contains(err.Error(), "queued") {
		t.Errorf("queued job's screen: %v", err)
	}
	if _, err := h.eng.Screen(ctx, j.ID, jobs.ScreenOptions{}); !errors.Is(err, jobs.ErrNoScreen) || !strings.Contains(err.Error(), "keeps no screens") {
		t.Errorf("screen from an executor without screens: %v", err)
	}
	// Another process on the same database: the terminal is not its own.
	other := newHarness(t, h.path, nil)
	if _, err := other.eng.Screen(ctx, j.ID, jobs.ScreenOptions{}); !errors.Is(err, jobs.ErrNoScreen) || !strings.Contains(err.Error(), "runs in another sshjobs process ("+h.eng.Owner()+")") {
		t.Errorf("screen asked of another process: %v", err)
	}
	if _, err := h.eng.Cancel(ctx, j.ID, "KILL", 0); err != nil {
		t.Fatal(err)
	}
	h.final(queued.ID)
	if _, err := h.eng.Screen(ctx, j.ID, jobs.ScreenOptions{}); !errors.Is(err, jobs.ErrNoScreen) || !strings.Contains(err.Error(), "finished job has no screen; read its output") {
		t.Errorf("finished job's screen: %v", err)
	}
	for _, s := range []jobs.Spec{
		{Host: "local", Command: "true", Cols: jobs.MinCols - 1},
		{Host: "local", Command: "true", Cols: jobs.MaxCols + 1},
		{Host: "local", Command: "true", Rows: jobs.MaxRows + 1},
		{Host: "local", Command: "true", Rows: 80, Detached: true},
	} {
		if _, err := h.eng.Enqueue(ctx, s); !errors.Is(err, jobs.ErrBadInput) {
			t.Errorf("%+v: %v, want invalid input", s, err)
		}
	}
}
