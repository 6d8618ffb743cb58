package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// engine is sshjobs' engine wired as cmd/sshjobs wires it (openApp), in
// this process, so that its goroutines and fds can be counted.
type engine struct {
	*jobs.Engine
	db   *sqlstore.DB
	pool *sessions.Pool
	exec *sessions.Executor
}

func newEngine(t *testing.T, sshConfig, db string) *engine {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := sqlstore.Open(ctx, db, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	resolver := &sshconfig.Resolver{ConfigFile: sshConfig, Env: os.Getenv}
	pool := sessions.NewPool(sessions.PoolConfig{
		Dialer: &sshdial.Dialer{Resolver: resolver, Secrets: sshdial.EnvSecrets{Getenv: os.Getenv}, Logger: log},
		Logger: log,
	})
	exec := sessions.NewExecutor(pool, sessions.ExecutorConfig{})
	eng, err := jobs.New(jobs.Config{Store: store, Executor: exec, Logger: log, Lease: 5 * time.Second, Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &engine{Engine: eng, db: store, pool: pool, exec: exec}
}

func (e *engine) close() error {
	err := e.Engine.Close()
	e.pool.Close()
	return errors.Join(err, e.db.Close())
}

func jobState(j *jobs.Job, err error) string {
	if err != nil {
		return err.Error()
	}
	return string(j.State)
}

// usage is what the process holds.
type usage struct {
	goroutines, fds int
	rssKiB          int64
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, RSS %d MiB", u.goroutines, u.fds, u.rssKiB/1024)
}

func measure() usage {
	runtime.GC()
	fds, _ := os.ReadDir("/proc/self/fd")
	var rss int64
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				rss, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return usage{goroutines: runtime.NumGoroutine(), fds: len(fds), rssKiB: rss}
}

// TestLoadMixed drives 50 sessions with mixed traffic (runs, waits,
// cancels, inputs, detached jobs, file reads) through the engine for 30 s
// (10 minutes with SSHJOBS_FAULTS_LONG=1, or SSHJOBS_FAULTS_LOAD=DURATION). At the end no job is left
// non-final, and once the connections are closed the goroutines and open
// fds are back near where they started and the RSS has not kept growing
// (the numbers are printed).
//
// Under heavy load (load average 15-30 on 2 cores) it once showed jobs
// "stuck": its waits for a job's end returned at the job's first byte
// (WaitOptions.Offset 0), and a queued job cancelled as it was claimed was
// recorded cancelled while it ran on, holding its session
// (TestCancelQueuedJobClaimedMeanwhile in jobs).
func TestLoadMixed(t *testing.T) {
	d := 30 * time.Second
	if long() {
		d = 10 * time.Minute
	}
	if v := os.Getenv("SSHJOBS_FAULTS_LOAD"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	srv := sshtest.StartOpenSSH(t, sshtest.Options{MaxSessions: 200})
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte(strings.Repeat("x", 100<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, srv.SSHConfig, filepath.Join(dir, "sshjobs.db"))
	closed := false
	t.Cleanup(func() {
		if !closed {
			e.close()
		}
	})
	base := measure()
	t.Logf("start: %v", base)

	ctx := context.Background()
	var ops [8]atomic.Int64 // run, wait, cancel, input, detach, read, error, warmup
	var mu sync.Mutex
	var ids []string
	var mid usage
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	var dumpOnce sync.Once
	for s := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Sessions join over 5 s rather than in one burst.
			time.Sleep(time.Duration(s) * 100 * time.Millisecond)
			r := rand.New(rand.NewPCG(uint64(s), uint64(time.Now().UnixNano())))
			session := fmt.Sprintf("s%02d", s)
			for time.Now().Before(end) {
				spec := jobs.Spec{Target: srv.Alias, Session: session}
				op := r.IntN(6)
				switch op {
				case 0: // a run waited for to its end
					spec.Command = fmt.Sprintf("seq 1 %d", 1+r.IntN(5000))
				case 1: // a job waited on for a while, then left running
					spec.Command = "sleep 0.5; echo done"
				case 2: // cancelled
					spec.Command = "sleep 30"
				case 3: // answered on its terminal
					spec.Command = `printf 'name? '; read -r x; echo "got $x"`
				case 4: // detached
					spec.Command, spec.Detached = "seq 1 2000", true
				case 5: // a file read
					_, err := e.RunInline(ctx, jobs.Spec{Target: srv.Alias, Command: "read " + file}, func(ctx context.Context, j *jobs.Job) (string, error) {
						return "", e.exec.WithFiles(ctx, j, func(f *sessions.Files) error {
							_, err := f.Read(ctx, file, int64(r.IntN(1000)), 4096)
							return err
						})
					})
					if err != nil {
						ops[6].Add(1)
						t.Errorf("file read: %v", err)
					}
					ops[5].Add(1)
					continue
				}
				j, err := e.Enqueue(ctx, spec)
				if err != nil {
					ops[6].Add(1)
					t.Errorf("enqueue: %v", err)
					continue
				}
				mu.Lock()
				ids = append(ids, j.ID)
				mu.Unlock()
				switch op {
				case 1:
					e.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 200 * time.Millisecond, Offset: -1, UntilFinal: true})
				case 2:
					e.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 300 * time.Millisecond, Offset: 0})
					if _, err := e.Cancel(ctx, j.ID, "INT", time.Second); err != nil {
						t.Errorf("cancel %s: %v", j.ID, err)
					}
				case 3:
					w, err := e.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 30 * time.Second, Offset: -1})
					if err != nil || w.State != jobs.StateWaitingInput {
						t.Errorf("job %s (%q): %v, want waiting_input", j.ID, spec.Command, jobState(w, err))
					} else if err := e.Input(ctx, j.ID, []byte("hello\n"), false); err != nil {
						t.Errorf("input %s: %v", j.ID, err)
					}
				}
				w, err := e.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 60 * time.Second, Offset: -1, UntilFinal: true})
				switch {
				case err != nil:
					t.Errorf("wait %s: %v", j.ID, err)
				case !w.State.Final():
					dumpOnce.Do(func() {
						if f, err := os.Create("/tmp/faults-stall.txt"); err == nil {
							pprof.Lookup("goroutine").WriteTo(f, 2)
							f.Close()
						}
					})
					t.Errorf("job %s (%q) still %s after 60s: started %v, %d bytes",
						j.ID, spec.Command, w.State, w.StartedAt.Format(time.TimeOnly), w.OutputBytes)
				case w.State == jobs.StateError || w.State == jobs.StateLost:
					ops[6].Add(1)
					t.Errorf("job %s (%q): %s: %s", j.ID, spec.Command, w.State, w.Error)
				case op == 0 && w.OutputBytes == 0, op == 3 && w.State == jobs.StateSucceeded && w.OutputBytes == 0:
					t.Errorf("job %s (%q): %s with no output", j.ID, spec.Command, w.State)
				}
				ops[op].Add(1)
				if s == 0 && time.Until(end) < d/2 && mid.goroutines == 0 {
					mu.Lock()
					mid = measure()
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("ops in %v: %d runs, %d waits, %d cancels, %d inputs, %d detached, %d file reads, %d errors",
		d, ops[0].Load(), ops[1].Load(), ops[2].Load(), ops[3].Load(), ops[4].Load(), ops[5].Load(), ops[6].Load())
	active := 0
	for _, id := range ids {
		j, err := e.Get(ctx, id)
		if err != nil {
			t.Errorf("job %s: %v", id, err)
		} else if !j.State.Final() {
			active++
			t.Errorf("job %s still %s at the end, owner %s", id, j.State, j.Owner)
		}
	}
	busy := measure()
	t.Logf("middle: %v; end, 50 sessions open: %v; %d jobs, %d not final", mid, busy, len(ids), active)
	e.pool.Close()
	// The shells' goroutines wind down; fds are compared once the engine is
	// closed too: the store keeps the reader connections the run opened
	// (a few fds each) until then.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if u := measure(); u.goroutines <= base.goroutines+5 {
			break
		}
	}
	closed = true
	if err := e.close(); err != nil {
		t.Error(err)
	}
	after := measure()
	t.Logf("end, engine closed: %v (start %v)", after, base)
	if after.goroutines > base.goroutines+5 || after.fds > base.fds+3 {
		t.Errorf("leak: %v at the end, %v at the start", after, base)
	}
	if mid.rssKiB > 0 && busy.rssKiB > 2*mid.rssKiB+64<<10 {
		t.Errorf("RSS grew from %d MiB at half time to %d MiB at the end", mid.rssKiB/1024, busy.rssKiB/1024)
	}
}

// TestBurstOfNewShells starts the first job of 50 sessions at once, on one
// connection, and expects each to end, succeeded.
func TestBurstOfNewShells(t *testing.T) {
	srv := sshtest.StartOpenSSH(t, sshtest.Options{MaxSessions: 200})
	e := newEngine(t, srv.SSHConfig, filepath.Join(t.TempDir(), "sshjobs.db"))
	t.Cleanup(func() { e.close() })
	ctx := context.Background()
	var ids []string
	for s := range 50 {
		j, err := e.Enqueue(ctx, jobs.Spec{Target: srv.Alias, Session: fmt.Sprintf("b%02d", s), Command: "seq 1 2000"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		if j, err := e.Wait(ctx, id, jobs.WaitOptions{Timeout: 2 * time.Minute, Offset: -1, UntilFinal: true}); err != nil || j.State != jobs.StateSucceeded {
			t.Errorf("job %s: %v %v", id, jobState(j, err), err)
		}
	}
}
