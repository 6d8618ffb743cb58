package sessions

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/keys"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// screenJob is a job running in the background for a screen test.
type screenJob struct {
	x    *Executor
	id   string
	task *testTask
	res  chan jobs.Result
}

// startScreenJob starts command as a job with the terminal cols x rows (0:
// the session's) and returns at once.
func startScreenJob(t *testing.T, p *Pool, srv *sshtest.Server, command string, cols, rows int) *screenJob {
	t.Helper()
	x := executor(p)
	j := &jobs.Job{ID: "job-" + strconv.FormatInt(jobSeq.Add(1), 10), Target: srv.Alias, Session: "default",
		Command: command, Cols: cols, Rows: rows}
	d, err := x.ResolveDestination(context.Background(), srv.Alias)
	if err != nil {
		t.Fatal(err)
	}
	j.Host, j.Destination = d.Key, d.Spec
	sj := &screenJob{x: x, id: j.ID, task: newTestTask(), res: make(chan jobs.Result, 1)}
	go func() { sj.res <- x.Run(context.Background(), j, sj.task) }()
	t.Cleanup(func() {
		select {
		case <-sj.res:
		default:
			sj.task.controls <- jobs.Control{Signal: "KILL"}
			<-sj.res
		}
	})
	return sj
}

// waitScreen asks for the screen until ok accepts it.
func (sj *screenJob) waitScreen(t *testing.T, what string, ok func(*jobs.Screen) bool) *jobs.Screen {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last *jobs.Screen
	var lastErr error
	for time.Now().Before(deadline) {
		s, err := sj.x.Screen(context.Background(), sj.id, jobs.ScreenOptions{})
		if err == nil && ok(s) {
			return s
		}
		last, lastErr = s, err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the screen never showed %s; last: %s (err %v); output %q", what, dump(last), lastErr, sj.task.Output())
	return nil
}

// keys types named keys into the job and returns the screen once it settled.
func (sj *screenJob) keys(t *testing.T, k string) *jobs.Screen {
	t.Helper()
	s, err := sj.keysEnd(t, k)
	if err != nil {
		t.Fatalf("screen after %q: %v", k, err)
	}
	return s
}

// keysEnd types keys that may end the job: the screen, or the error of a
// job that ended meanwhile.
func (sj *screenJob) keysEnd(t *testing.T, k string) (*jobs.Screen, error) {
	t.Helper()
	b, err := keys.Parse(k)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	sj.task.controls <- jobs.Control{Input: b, Done: done}
	if err := <-done; err != nil {
		t.Fatalf("keys %q: %v", k, err)
	}
	return sj.x.Screen(context.Background(), sj.id, jobs.ScreenOptions{Settle: 10 * time.Second})
}

func (sj *screenJob) wait(t *testing.T) jobs.Result {
	t.Helper()
	select {
	case r := <-sj.res:
		sj.res <- r
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("job did not end; output %q", sj.task.Output())
	}
	return jobs.Result{}
}

func dump(s *jobs.Screen) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%dx%d cursor %d,%d alternate %v\n%s", s.Cols, s.Rows, s.CursorRow, s.CursorCol, s.Alternate, strings.Join(s.Lines, "\n"))
}

func line(s *jobs.Screen, i int) string {
	if i < len(s.Lines) {
		return s.Lines[i]
	}
	return ""
}

// less on a 200-line file: the first page, <pgdn> the next, q ends it.
func TestScreenLess(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("less"); err != nil {
		t.Skip("less is not installed")
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		f := filepath.Join(t.TempDir(), "lines")
		if _, r := runJob(t, p, srv, "default", "seq 1 200 > "+f); r.State != jobs.StateSucceeded {
			t.Fatalf("seq: %s %s", r.State, r.Error)
		}
		sj := startScreenJob(t, p, srv, "less "+f, 80, 24)
		// less's first prompt is the file's name.
		s := sj.waitScreen(t, "the first page", func(s *jobs.Screen) bool { return line(s, 22) == "23" && line(s, 23) != "" })
		for i := range 23 {
			if line(s, i) != strconv.Itoa(i+1) {
				t.Fatalf("row %d is %q, want %d:\n%s", i, line(s, i), i+1, dump(s))
			}
		}
		if s.Rows != 24 || s.Cols != 80 || s.CursorRow != 23 {
			t.Fatalf("want 80x24 with the cursor on the last row:\n%s", dump(s))
		}
		s = sj.keys(t, "<pgdn>")
		if line(s, 0) != "24" || line(s, 22) != "46" {
			t.Fatalf("after <pgdn>: want lines 24..46:\n%s", dump(s))
		}
		sj.keysEnd(t, "q")
		if r := sj.wait(t); r.State != jobs.StateSucceeded {
			t.Fatalf("less after q: %s %s", r.State, r.Error)
		}
		// The job is over: its screen is gone.
		if _, err := sj.x.Screen(context.Background(), sj.id, jobs.ScreenOptions{}); err == nil {
			t.Fatal("a finished job still has a screen")
		}
	})
}

// vi edits a file: i, text, <esc>, :wq<enter>; the file has the text.
func TestScreenVi(t *testing.T) {
	t.Parallel()
	vi := "busybox vi"
	if _, err := exec.LookPath("busybox"); err != nil {
		if _, err := exec.LookPath("vi"); err != nil {
			t.Skip("neither busybox nor vi is installed")
		}
		vi = "vi"
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		f := filepath.Join(t.TempDir(), "notes.txt")
		sj := startScreenJob(t, p, srv, vi+" "+f, 80, 24)
		sj.waitScreen(t, "vi's empty buffer", func(s *jobs.Screen) bool { return line(s, 1) == "~" })
		sj.keys(t, "i")
		s := sj.keys(t, "hello from the screen")
		if line(s, 0) != "hello from the screen" {
			t.Fatalf("the typed text is not on the first row:\n%s", dump(s))
		}
		if s.CursorRow != 0 || s.CursorCol != len("hello from the screen") {
			t.Fatalf("the cursor is not after the text:\n%s", dump(s))
		}
		// <esc> alone: vi would read it and what follows at once as one
		// escape sequence, as from a function key.
		sj.keys(t, "<esc>")
		sj.keysEnd(t, ":wq<enter>")
		if r := sj.wait(t); r.State != jobs.StateSucceeded {
			t.Fatalf("vi after :wq: %s %s", r.State, r.Error)
		}
		b, err := os.ReadFile(f)
		if err != nil || string(b) != "hello from the screen\n" {
			t.Fatalf("the file holds %q (%v)", b, err)
		}
	})
}

// A progress bar drawn with \r shows its last state, on the session's own
// terminal (no size asked).
func TestScreenProgressBar(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		sj := startScreenJob(t, p, srv, `echo start; for i in 10 50 99; do printf '\r[%-10s] %d%%' "$(printf '%*s' $((i/10)) '' | tr ' ' '#')" $i; done; sleep 60`, 0, 0)
		s := sj.waitScreen(t, "the last state", func(s *jobs.Screen) bool { return strings.Contains(line(s, 1), "99%") })
		if line(s, 0) != "start" || line(s, 1) != "[######### ] 99%" || len(s.Lines) != 2 {
			t.Fatalf("want start and the last state:\n%s", dump(s))
		}
		if s.Cols != ptyCols || s.Rows != ptyRows || s.CursorRow != 1 || s.CursorCol != len("[######### ] 99%") || s.Alternate {
			t.Fatalf("want the session's %dx%d, the cursor after the bar, main screen:\n%s", ptyCols, ptyRows, dump(s))
		}
	})
}

// A 300-column line wraps at the terminal's width, as a terminal shows it.
func TestScreenWrap(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		sj := startScreenJob(t, p, srv, `printf '%0300d\n' 0 | tr 0 x; echo end; sleep 60`, 120, 40)
		s := sj.waitScreen(t, "the wrapped line", func(s *jobs.Screen) bool { return line(s, 3) == "end" })
		x := strings.Repeat("x", 120)
		if line(s, 0) != x || line(s, 1) != x || line(s, 2) != strings.Repeat("x", 60) || s.CursorRow != 4 || s.CursorCol != 0 {
			t.Fatalf("want 120+120+60 columns of x, then end:\n%s", dump(s))
		}
	})
}

// top -b prints on the main screen; an interactive top clears the screen
// and draws its header at the top. A program that switches to the
// alternate screen (less without -X) is reported so.
func TestScreenAlternate(t *testing.T) {
	t.Parallel()
	for _, prog := range []string{"top", "less"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s is not installed", prog)
		}
	}
	srv := sshtest.StartOpenSSH(t, sshtest.Options{})
	p := newTestPool(t, srv, PoolConfig{})

	batch := startScreenJob(t, p, srv, "top -b -n 1 | head -5; sleep 60", 100, 30)
	s := batch.waitScreen(t, "top's batch header", func(s *jobs.Screen) bool { return len(s.Lines) >= 5 })
	if !strings.HasPrefix(line(s, 0), "top - ") || s.Alternate {
		t.Fatalf("top -b: want its header on the main screen:\n%s", dump(s))
	}
	batch.task.controls <- jobs.Control{Signal: "KILL"}
	batch.wait(t)

	top := startScreenJob(t, p, srv, "top -d 1", 100, 30)
	s = top.waitScreen(t, "top's header", func(s *jobs.Screen) bool {
		return strings.HasPrefix(line(s, 0), "top - ") && strings.HasPrefix(line(s, 1), "Tasks:")
	})
	if !strings.Contains(strings.Join(s.Lines, "\n"), "PID") {
		t.Fatalf("top: no process table:\n%s", dump(s))
	}
	top.keysEnd(t, "q")
	if r := top.wait(t); r.State != jobs.StateSucceeded {
		t.Fatalf("top after q: %s %s", r.State, r.Error)
	}

	f := filepath.Join(t.TempDir(), "lines")
	os.WriteFile(f, []byte(strings.Repeat("some line\n", 100)), 0o644)
	less := startScreenJob(t, p, srv, "LESS= less "+f, 80, 24)
	s = less.waitScreen(t, "less on the alternate screen", func(s *jobs.Screen) bool { return line(s, 0) == "some line" })
	if !s.Alternate {
		t.Fatalf("less without -X: want the alternate screen:\n%s", dump(s))
	}
	less.keysEnd(t, "q")
	less.wait(t)
}

// A job that asks for a size runs on a terminal of that size with a real
// TERM; the session's next job is back on its own terminal. Ordinary
// output of such a job is stored clean: colours, \r progress and ls's
// columns as text.
func TestScreenTerminalSize(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		dir := t.TempDir()
		for _, n := range []string{"a", "b", "c"} {
			os.WriteFile(filepath.Join(dir, n), nil, 0o644)
		}
		sized := `stty size; echo "$TERM"; printf 'x\033[31mred\033[0m\n'; printf '10%%\r50%%\r100%%\n'; ls --color=auto ` + dir + `; echo 'a match' | grep --color=auto match`
		sj := startScreenJob(t, p, srv, sized, 100, 30)
		if r := sj.wait(t); r.State != jobs.StateSucceeded {
			t.Fatalf("sized job: %s %s", r.State, r.Error)
		}
		if want := "30 100\nxterm-256color\nxred\n100%\na  b  c\na match\n"; sj.task.Output() != want {
			t.Fatalf("sized job output %q, want %q", sj.task.Output(), want)
		}
		task, r := runJob(t, p, srv, "default", "stty size; echo $TERM")
		if want := fmt.Sprintf("%d %d\n%s\n", ptyRows, ptyCols, ptyTerm); task.Output() != want || r.State != jobs.StateSucceeded {
			t.Fatalf("the next job: %q %s, want %q", task.Output(), r.State, want)
		}
	})
}
