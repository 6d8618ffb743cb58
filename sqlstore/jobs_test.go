package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

func TestInsertGetRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	code := 3
	want := &jobs.Job{
		ID: "0190a000-0000-7000-8000-000000000001", Host: "u@h:22", Target: "h", Session: "s",
		Command: "make -j8 'all'\n", Detached: true, Sudo: true, KillAfter: 90 * time.Second,
		State: jobs.StateRunning, ExitCode: &code, Signal: "TERM", Error: "e",
		Prompt: &jobs.Prompt{Text: "Password:", Kind: jobs.PromptPassword}, Cwd: "/tmp",
		NewShell: true, Owner: "o", LeaseUntil: base.Add(time.Minute), CancelRequested: true,
		Attach: `{"pid":1}`, CreatedAt: base, StartedAt: base.Add(time.Second),
	}
	insert(t, db, want)
	got := get(t, db, want.ID)
	if !sameJob(got, want) {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}

	// Defaults: id, state, creation time.
	j := &jobs.Job{Host: "h", Session: "s", Command: "true"}
	insert(t, db, j)
	if j.ID == "" || j.State != jobs.StateQueued || j.CreatedAt.IsZero() {
		t.Fatalf("defaults not applied: %+v", j)
	}
	if got := get(t, db, j.ID); got.ExitCode != nil || got.Prompt != nil || !got.StartedAt.IsZero() || !got.LeaseUntil.IsZero() {
		t.Fatalf("zero fields not stored as NULL: %+v", got)
	}

	for _, bad := range []*jobs.Job{
		{Host: "h", Session: "s", State: "done"},
		{Host: "", Session: "s"},
		{Host: "h", Session: "s", OutputBytes: 5},
	} {
		if err := db.Insert(ctx, bad); !errors.Is(err, jobs.ErrBadInput) {
			t.Errorf("Insert(%+v) = %v, want ErrBadInput", bad, err)
		}
	}
	if err := db.Insert(ctx, want); err == nil {
		t.Error("Insert of a duplicate id succeeded")
	}
	if _, err := db.Get(ctx, "nope"); !errors.Is(err, jobs.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Get(unknown) = %v, want ErrNotFound naming the id", err)
	}
}

// sameJob compares jobs with times compared as instants.
func sameJob(a, b *jobs.Job) bool {
	x, y := *a, *b
	for _, p := range []*[2]time.Time{{x.LeaseUntil, y.LeaseUntil}, {x.CreatedAt, y.CreatedAt}, {x.StartedAt, y.StartedAt}, {x.EndedAt, y.EndedAt}} {
		if !p[0].Equal(p[1]) {
			return false
		}
	}
	x.LeaseUntil, y.LeaseUntil, x.CreatedAt, y.CreatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	x.StartedAt, y.StartedAt, x.EndedAt, y.EndedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// TestTransitions tries every move between every pair of states: the store
// must allow exactly jobs.CanTransition, and a refused move changes nothing.
func TestTransitions(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	for _, from := range jobs.States {
		for _, to := range jobs.States {
			j := insert(t, db, newJob("h", "s", "o", from))
			code := 0
			got, err := db.Transition(ctx, j.ID, to, jobs.Update{ExitCode: &code, Cwd: ptr("/x")})
			if jobs.CanTransition(from, to) {
				if err != nil {
					t.Errorf("%s -> %s: %v", from, to, err)
					continue
				}
				if got.State != to || got.ExitCode == nil || *got.ExitCode != 0 || got.Cwd != "/x" {
					t.Errorf("%s -> %s: returned %+v", from, to, got)
				}
				continue
			}
			if !errors.Is(err, jobs.ErrTransition) {
				t.Errorf("%s -> %s: err = %v, want ErrTransition", from, to, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, j.ID) || !strings.Contains(msg, "job is "+string(from)) {
				t.Errorf("%s -> %s: error %q does not name the job and its state", from, to, msg)
			}
			if now := get(t, db, j.ID); now.State != from || now.ExitCode != nil || now.Cwd != "" {
				t.Errorf("%s -> %s refused but the job changed: %+v", from, to, now)
			}
		}
	}

	// A final state never changes again, whatever the path to it.
	j := insert(t, db, newJob("h", "s", "o", jobs.StateQueued))
	for _, to := range []jobs.State{jobs.StateRunning, jobs.StateWaitingInput, jobs.StateRunning, jobs.StateSucceeded} {
		if _, err := db.Transition(ctx, j.ID, to, jobs.Update{}); err != nil {
			t.Fatalf("-> %s: %v", to, err)
		}
	}
	for _, to := range jobs.States {
		if _, err := db.Transition(ctx, j.ID, to, jobs.Update{}); !errors.Is(err, jobs.ErrTransition) {
			t.Errorf("succeeded -> %s: err = %v, want ErrTransition", to, err)
		}
	}
	if _, err := db.Transition(ctx, "missing", jobs.StateRunning, jobs.Update{}); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("unknown job: err = %v, want ErrNotFound", err)
	}
	if _, err := db.Transition(ctx, j.ID, "bogus", jobs.Update{}); !errors.Is(err, jobs.ErrBadInput) {
		t.Errorf("unknown state: err = %v, want ErrBadInput", err)
	}
}

func TestUpdateFields(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	j := insert(t, db, newJob("h", "s", "o", jobs.StateRunning))

	p := &jobs.Prompt{Text: "[Y/n]", Kind: jobs.PromptConfirm}
	got, err := db.Transition(ctx, j.ID, jobs.StateWaitingInput, jobs.Update{Prompt: p})
	if err != nil || got.Prompt == nil || *got.Prompt != *p {
		t.Fatalf("prompt not set: %+v, %v", got, err)
	}
	// Nil fields leave the prompt alone.
	got, err = db.Transition(ctx, j.ID, jobs.StateRunning, jobs.Update{})
	if err != nil || got.Prompt == nil {
		t.Fatalf("prompt changed by an empty update: %+v, %v", got, err)
	}
	got, err = db.Transition(ctx, j.ID, jobs.StateWaitingInput, jobs.Update{ClearPrompt: true})
	if err != nil || got.Prompt != nil {
		t.Fatalf("prompt not cleared: %+v, %v", got, err)
	}

	lease, started := base.Add(time.Hour), base.Add(time.Second)
	u := jobs.Update{Signal: ptr("KILL"), Error: ptr("boom"), Cwd: ptr("/srv"), NewShell: ptr(true),
		Attach: ptr("spool"), Owner: ptr("o2"), LeaseUntil: &lease, StartedAt: &started}
	if err := db.Set(ctx, j.ID, u); err != nil {
		t.Fatal(err)
	}
	got = get(t, db, j.ID)
	if got.Signal != "KILL" || got.Error != "boom" || got.Cwd != "/srv" || !got.NewShell || got.Attach != "spool" ||
		got.Owner != "o2" || !got.LeaseUntil.Equal(lease) || !got.StartedAt.Equal(started) || got.State != jobs.StateWaitingInput {
		t.Fatalf("Set not applied: %+v", got)
	}

	ended := base.Add(2 * time.Second)
	if _, err := db.Transition(ctx, j.ID, jobs.StateFailed, jobs.Update{ExitCode: ptr(2), EndedAt: &ended}); err != nil {
		t.Fatal(err)
	}
	if err := db.Set(ctx, j.ID, jobs.Update{Cwd: ptr("/")}); !errors.Is(err, jobs.ErrTransition) {
		t.Errorf("Set on a final job: %v, want ErrTransition", err)
	}
	if err := db.Set(ctx, j.ID, jobs.Update{}); !errors.Is(err, jobs.ErrTransition) {
		t.Errorf("empty Set on a final job: %v, want ErrTransition", err)
	}
	if err := db.Set(ctx, "missing", jobs.Update{Cwd: ptr("/")}); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Set on an unknown job: %v, want ErrNotFound", err)
	}
	if got := get(t, db, j.ID); got.Cwd != "/srv" || *got.ExitCode != 2 || !got.EndedAt.Equal(ended) {
		t.Errorf("final job: %+v", got)
	}
}

func TestClaim(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	lease := base.Add(time.Minute)
	claim := func(owner, host, session string) *jobs.Job {
		t.Helper()
		j, err := db.Claim(ctx, owner, host, session, base, lease)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return j
	}
	wantClaim := func(owner, host, session string, want *jobs.Job) {
		t.Helper()
		got := claim(owner, host, session)
		switch {
		case want == nil && got != nil:
			t.Fatalf("Claim(%s/%s) = %s, want none", host, session, got.ID)
		case want != nil && got == nil:
			t.Fatalf("Claim(%s/%s) = none, want %s", host, session, want.ID)
		case want != nil && (got.ID != want.ID || got.State != jobs.StateRunning || got.Owner != owner ||
			!got.LeaseUntil.Equal(lease) || !got.StartedAt.Equal(base)):
			t.Fatalf("Claim(%s/%s) = %+v, want %s running", host, session, got, want.ID)
		}
	}
	finish := func(j *jobs.Job) {
		t.Helper()
		if _, err := db.Transition(ctx, j.ID, jobs.StateSucceeded, jobs.Update{}); err != nil {
			t.Fatal(err)
		}
	}

	wantClaim("a", "h", "s", nil)
	q1 := insert(t, db, newJob("h", "s", "a", jobs.StateQueued))
	q2 := insert(t, db, newJob("h", "s", "a", jobs.StateQueued))
	q3 := insert(t, db, newJob("h", "s", "a", jobs.StateQueued))
	other := insert(t, db, newJob("h", "s2", "a", jobs.StateQueued))
	foreign := insert(t, db, newJob("h", "s3", "b", jobs.StateQueued))

	// FIFO, one at a time.
	wantClaim("a", "h", "s", q1)
	wantClaim("a", "h", "s", nil)
	// Another session of the same host is independent.
	wantClaim("a", "h", "s2", other)
	// Another owner's queue is not ours.
	wantClaim("a", "h", "s3", nil)
	wantClaim("b", "h", "s3", foreign)
	// Another owner's shell of the same name is another shell.
	mine := insert(t, db, newJob("h", "s3", "a", jobs.StateQueued))
	wantClaim("a", "h", "s3", mine)

	finish(q1)
	wantClaim("a", "h", "s", q2)
	// Waiting for input still holds the shell.
	if _, err := db.Transition(ctx, q2.ID, jobs.StateWaitingInput, jobs.Update{}); err != nil {
		t.Fatal(err)
	}
	wantClaim("a", "h", "s", nil)
	finish(q2)

	// A running detached job does not hold the shell; a detached job is also
	// taken in its turn.
	d := newJob("h", "s", "a", jobs.StateQueued)
	d.Detached = true
	// q3 is older than d, so it comes first.
	wantClaim("a", "h", "s", q3)
	finish(q3)
	insert(t, db, d)
	q4 := insert(t, db, newJob("h", "s", "a", jobs.StateQueued))
	wantClaim("a", "h", "s", d)
	wantClaim("a", "h", "s", q4)
	wantClaim("a", "h", "s", nil)
}

// TestClaimRace has two processes' stores on one file claim from many
// goroutines: every job is claimed exactly once, and no session ever runs two
// shell jobs at once.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "race.db")
	dbs := []*DB{openAt(t, path), openAt(t, path)}
	const sessions, perSession, workers = 8, 25, 6
	var all []string
	for i := range perSession {
		for s := range sessions {
			j := newJob("h", fmt.Sprintf("s%d", s), "o", jobs.StateQueued)
			insert(t, dbs[i%2], j)
			all = append(all, j.ID)
		}
	}

	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		busy    [sessions]atomic.Int32
		done    atomic.Int32
		wg      sync.WaitGroup
		errs    = make(chan error, 2*workers)
	)
	for _, db := range dbs {
		for w := range workers {
			wg.Go(func() {
				for s := w % sessions; done.Load() < int32(len(all)); s = (s + 1) % sessions {
					j, err := db.Claim(ctx, "o", "h", fmt.Sprintf("s%d", s), time.Now(), time.Now().Add(time.Minute))
					if err != nil {
						errs <- err
						return
					}
					if j == nil {
						continue
					}
					if busy[s].Add(1) != 1 {
						errs <- fmt.Errorf("session s%d runs two jobs at once", s)
					}
					mu.Lock()
					claimed[j.ID]++
					mu.Unlock()
					busy[s].Add(-1)
					if _, err := db.Transition(ctx, j.ID, jobs.StateSucceeded, jobs.Update{}); err != nil {
						errs <- err
						return
					}
					done.Add(1)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range all {
		if claimed[id] != 1 {
			t.Errorf("job %s claimed %d times", id, claimed[id])
		}
	}
	if len(claimed) != len(all) {
		t.Errorf("%d jobs claimed, want %d", len(claimed), len(all))
	}
}

func TestHeartbeatAndCancel(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	run := insert(t, db, newJob("h", "s", "a", jobs.StateRunning))
	queued := insert(t, db, newJob("h", "s", "a", jobs.StateQueued))
	done := insert(t, db, newJob("h", "s", "a", jobs.StateSucceeded))
	others := insert(t, db, newJob("h", "s", "b", jobs.StateRunning))

	got, err := db.RequestCancel(ctx, run.ID)
	if err != nil || !got.CancelRequested {
		t.Fatalf("RequestCancel = %+v, %v", got, err)
	}
	if _, err := db.RequestCancel(ctx, others.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RequestCancel(ctx, done.ID); !errors.Is(err, jobs.ErrTransition) {
		t.Errorf("RequestCancel of a final job: %v, want ErrTransition", err)
	}
	if _, err := db.RequestCancel(ctx, "missing"); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("RequestCancel of an unknown job: %v, want ErrNotFound", err)
	}

	lease := base.Add(time.Hour)
	beat, err := db.Heartbeat(ctx, jobs.OwnerInfo{ID: "a", Hostname: "h", PID: 7, Heartbeat: base}, lease)
	active := []string{run.ID, queued.ID}
	slices.Sort(active)
	if err != nil || !slices.Equal(beat.Cancel, []string{run.ID}) || !slices.Equal(beat.Active, active) {
		t.Fatalf("Heartbeat = %+v, %v; want cancel [%s], active %v", beat, err, run.ID, active)
	}
	for _, c := range []struct {
		j     *jobs.Job
		lease bool
	}{{run, true}, {queued, true}, {done, false}, {others, false}} {
		if got := get(t, db, c.j.ID); got.LeaseUntil.Equal(lease) != c.lease {
			t.Errorf("job %s (%s, owner %s): lease %v", got.ID, got.State, got.Owner, got.LeaseUntil)
		}
	}
}

// TestAdopt simulates a process that died: its jobs' leases run out, and the
// next process adopts its queued jobs, and its running ones once it is known
// to be gone.
func TestAdopt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "adopt.db")
	short := time.Now().Add(50 * time.Millisecond)

	a, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	judged := jobs.OwnerInfo{ID: "A", Hostname: "h", PID: 1, StartedAt: time.Now(), Heartbeat: time.Now()}
	if err := a.RegisterOwner(ctx, judged); err != nil {
		t.Fatal(err)
	}
	run := newJob("h", "s", "A", jobs.StateRunning)
	run.LeaseUntil = short
	detached := newJob("h", "s3", "A", jobs.StateRunning)
	detached.Detached, detached.LeaseUntil = true, short
	queued := newJob("h", "s", "A", jobs.StateQueued)
	queued.LeaseUntil = short
	final := newJob("h", "s", "A", jobs.StateFailed)
	final.LeaseUntil = short
	alive := newJob("h", "s2", "C", jobs.StateRunning)
	alive.LeaseUntil = time.Now().Add(time.Hour)
	// Inserted out of order: Adopt sorts by creation.
	for _, j := range []*jobs.Job{queued, detached, run, final, alive} {
		insert(t, a, j)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := openAt(t, path)
	lease := time.Now().Add(time.Minute)
	opts := func(gone ...jobs.OwnerInfo) jobs.AdoptOptions {
		return jobs.AdoptOptions{Now: time.Now(), LeaseUntil: lease, Gone: gone, Reattach: true}
	}
	early := opts(judged)
	early.Now = time.Now().Add(-time.Second)
	if got, orphans, err := b.Adopt(ctx, "B", early); err != nil || len(got)+len(orphans) != 0 {
		t.Fatalf("Adopt before expiry = %v %v, %v", got, orphans, err)
	}
	time.Sleep(60 * time.Millisecond)
	if owners, err := b.ExpiredOwners(ctx, time.Now()); err != nil || len(owners) != 1 || owners[0].ID != "A" || owners[0].Hostname != "h" || owners[0].PID != 1 {
		t.Fatalf("ExpiredOwners = %+v, %v", owners, err)
	}
	// A is not known to be gone: only its queued job is taken.
	got, orphans, err := b.Adopt(ctx, "B", opts())
	if err != nil || len(orphans) != 0 || len(got) != 1 || got[0].ID != queued.ID || got[0].Owner != "B" || got[0].LeaseUntil.UnixMilli() != lease.UnixMilli() {
		t.Fatalf("Adopt of a live owner's jobs = %+v %+v, %v; want only the queued job", got, orphans, err)
	}
	// Judged gone, but it beat since (it woke up): nothing.
	woke := judged
	woke.Heartbeat = judged.Heartbeat.Add(time.Second)
	if err := b.RegisterOwner(ctx, woke); err != nil {
		t.Fatal(err)
	}
	if got, orphans, err := b.Adopt(ctx, "B", opts(judged)); err != nil || len(got)+len(orphans) != 0 {
		t.Fatalf("Adopt of an owner that beat since it was judged = %v %v, %v", got, orphans, err)
	}
	// Likewise for an owner judged without a row whose row appeared.
	if got, orphans, err := b.Adopt(ctx, "B", opts(jobs.OwnerInfo{ID: "A"})); err != nil || len(got)+len(orphans) != 0 {
		t.Fatalf("Adopt of an owner whose row appeared = %v %v, %v", got, orphans, err)
	}
	// Gone: the detached job is taken, the shell job is an orphan that keeps
	// its owner.
	got, orphans, err = b.Adopt(ctx, "B", opts(woke))
	if err != nil || len(got) != 1 || got[0].ID != detached.ID || got[0].Owner != "B" {
		t.Fatalf("Adopt of a gone owner's jobs = %+v, %v; want the detached job", got, err)
	}
	if len(orphans) != 1 || orphans[0].ID != run.ID || orphans[0].Owner != "A" {
		t.Fatalf("orphans %+v; want the shell job, still A's", orphans)
	}
	if j := get(t, b, run.ID); j.Owner != "A" || j.State != jobs.StateRunning {
		t.Fatalf("orphan after Adopt: %s %s", j.Owner, j.State)
	}
	if again, _, err := b.Adopt(ctx, "B2", opts(woke)); err != nil || len(again) != 0 {
		t.Fatalf("second Adopt = %v, %v", again, err)
	}
	if s, err := b.QueuedSessions(ctx, "B"); err != nil || !reflect.DeepEqual(s, [][2]string{{"h", "s"}}) {
		t.Fatalf("QueuedSessions = %v, %v", s, err)
	}
	// The orphan runs in A's shell, not in B's: it does not hold B's session.
	if j, err := b.Claim(ctx, "B", "h", "s", time.Now(), lease); err != nil || j == nil || j.ID != queued.ID {
		t.Fatalf("Claim of the adopted queued job = %v, %v", j, err)
	}
	// Without Reattach a gone owner's detached job is an orphan too.
	d2 := newJob("h", "s4", "A", jobs.StateRunning)
	d2.Detached, d2.LeaseUntil = true, time.Now().Add(-time.Second)
	insert(t, b, d2)
	noReattach := opts(woke)
	noReattach.Reattach = false
	if got, orphans, err := b.Adopt(ctx, "B", noReattach); err != nil || len(got) != 0 || len(orphans) != 2 {
		t.Fatalf("Adopt without Reattach = %v %v, %v; want two orphans", got, orphans, err)
	}
	// An owner without a row (it stopped cleanly) is gone as judged.
	if err := b.RemoveOwner(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if got, orphans, err := b.Adopt(ctx, "B", opts(jobs.OwnerInfo{ID: "A"})); err != nil || len(got) != 1 || got[0].ID != d2.ID || len(orphans) != 1 {
		t.Fatalf("Adopt of an owner without a row = %v %v, %v; want its detached job and one orphan", got, orphans, err)
	}
}

// An owner ended lost by another process that took it for gone records its
// real end; nobody else can, and a job another process owns refuses it.
func TestEndByOwner(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	run := insert(t, db, newJob("h", "s", "A", jobs.StateRunning))
	reason := "the sshjobs process running it (A) stopped"
	if _, err := db.Transition(ctx, run.ID, jobs.StateLost, jobs.Update{Error: &reason, EndedAt: ptr(time.Now())}); err != nil {
		t.Fatal(err)
	}
	empty := ""
	if _, err := db.End(ctx, run.ID, "B", jobs.StateSucceeded, jobs.Update{ExitCode: ptr(0), Error: &empty}); !errors.Is(err, jobs.ErrNotOwner) {
		t.Fatalf("End by another process: %v, want ErrNotOwner", err)
	}
	if _, err := db.End(ctx, run.ID, "A", jobs.StateLost, jobs.Update{Error: &empty}); !errors.Is(err, jobs.ErrTransition) {
		t.Fatalf("End lost over lost: %v, want ErrTransition", err)
	}
	j, err := db.End(ctx, run.ID, "A", jobs.StateFailed, jobs.Update{ExitCode: ptr(3), Error: &empty})
	if err != nil || j.State != jobs.StateFailed || *j.ExitCode != 3 || j.Error != "" {
		t.Fatalf("End by the owner over lost = %+v, %v", j, err)
	}
	if _, err := db.End(ctx, run.ID, "A", jobs.StateSucceeded, jobs.Update{}); !errors.Is(err, jobs.ErrTransition) {
		t.Fatalf("End of a final job: %v, want ErrTransition", err)
	}
	taken := insert(t, db, newJob("h", "s", "B", jobs.StateRunning))
	if _, err := db.End(ctx, taken.ID, "A", jobs.StateSucceeded, jobs.Update{}); !errors.Is(err, jobs.ErrNotOwner) {
		t.Fatalf("End of a job another process owns: %v, want ErrNotOwner", err)
	}
	if _, err := db.End(ctx, "missing", "A", jobs.StateSucceeded, jobs.Update{}); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("End of an unknown job: %v, want ErrNotFound", err)
	}
}

// Owner rows: registered, refreshed by the heartbeat (recreated if removed),
// removed, and pruned once stale and without jobs.
func TestOwners(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	old := time.Now().Add(-time.Hour)
	for _, o := range []jobs.OwnerInfo{
		{ID: "busy", Hostname: "h", PID: 1, ProcStart: "boot/1", StartedAt: old, Heartbeat: old},
		{ID: "idle", Hostname: "h", PID: 2, StartedAt: old, Heartbeat: old},
		{ID: "fresh", Hostname: "h", PID: 3, StartedAt: old, Heartbeat: time.Now()},
	} {
		if err := db.RegisterOwner(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	j := newJob("h", "s", "busy", jobs.StateRunning)
	j.LeaseUntil = old
	insert(t, db, j)
	if n, err := db.PruneOwners(ctx, time.Now().Add(-time.Minute)); err != nil || n != 1 {
		t.Fatalf("PruneOwners = %d, %v; want 1 (idle)", n, err)
	}
	owners, err := db.ExpiredOwners(ctx, time.Now())
	if err != nil || len(owners) != 1 || owners[0].ProcStart != "boot/1" || !owners[0].Heartbeat.Equal(time.UnixMilli(old.UnixMilli())) {
		t.Fatalf("ExpiredOwners = %+v, %v", owners, err)
	}
	if err := db.RemoveOwner(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	owners, err = db.ExpiredOwners(ctx, time.Now())
	if err != nil || len(owners) != 1 || owners[0].ID != "busy" || owners[0].Hostname != "" || !owners[0].Heartbeat.IsZero() {
		t.Fatalf("ExpiredOwners of an owner without a row = %+v, %v", owners, err)
	}
	now := time.Now()
	if _, err := db.Heartbeat(ctx, jobs.OwnerInfo{ID: "busy", Hostname: "h", PID: 1, StartedAt: old, Heartbeat: now}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var beat int64
	if err := db.r.QueryRowContext(ctx, `SELECT heartbeat_ms FROM owners WHERE id = 'busy'`).Scan(&beat); err != nil || beat != now.UnixMilli() {
		t.Fatalf("owner row after a heartbeat: %d, %v", beat, err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	var all []*jobs.Job
	for i := range 30 {
		j := newJob(fmt.Sprintf("h%d", i%3), fmt.Sprintf("s%d", i%2), "o", jobs.States[i%len(jobs.States)])
		j.Command = fmt.Sprintf("cmd %d %s", i, strings.Repeat("x", i%4))
		all = append(all, insert(t, db, j))
	}
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)
	ids := func(js []*jobs.Job) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	filter := func(keep func(*jobs.Job) bool) []string {
		var out []*jobs.Job
		for _, j := range newestFirst {
			if keep(j) {
				out = append(out, j)
			}
		}
		return ids(out)
	}
	for _, c := range []struct {
		name string
		f    jobs.ListFilter
		want []string
	}{
		{"default limit", jobs.ListFilter{}, ids(newestFirst[:20])},
		{"limit", jobs.ListFilter{Limit: 3}, ids(newestFirst[:3])},
		{"max limit", jobs.ListFilter{Limit: 1000}, ids(newestFirst)},
		{"host", jobs.ListFilter{Host: "h1"}, filter(func(j *jobs.Job) bool { return j.Host == "h1" })},
		{"target", jobs.ListFilter{Host: "alias-h2"}, filter(func(j *jobs.Job) bool { return j.Host == "h2" })},
		{"session", jobs.ListFilter{Session: "s1", Host: "h0"}, filter(func(j *jobs.Job) bool { return j.Session == "s1" && j.Host == "h0" })},
		{"states", jobs.ListFilter{States: []jobs.State{jobs.StateQueued, jobs.StateLost}},
			filter(func(j *jobs.Job) bool { return j.State == jobs.StateQueued || j.State == jobs.StateLost })},
		{"contains", jobs.ListFilter{Contains: "xxx", Limit: 200}, filter(func(j *jobs.Job) bool { return strings.Contains(j.Command, "xxx") })},
		{"contains is literal", jobs.ListFilter{Contains: "%"}, nil},
		{"since", jobs.ListFilter{Since: all[25].CreatedAt}, ids(newestFirst[:5])},
	} {
		got, err := db.List(ctx, c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(ids(got), c.want) {
			t.Errorf("%s: got %v, want %v", c.name, ids(got), c.want)
		}
	}
	if _, err := db.List(ctx, jobs.ListFilter{States: []jobs.State{"done"}}); !errors.Is(err, jobs.ErrBadInput) {
		t.Errorf("unknown state: %v, want ErrBadInput", err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	cut := base.Add(time.Hour)
	var old, keep []*jobs.Job
	for i := range 2*pruneBatch + 5 {
		j := newJob("h", "s", "o", jobs.StateSucceeded)
		j.EndedAt = cut.Add(-time.Minute)
		old = append(old, insert(t, db, j))
		if err := db.AppendOutput(ctx, []jobs.Chunk{{JobID: j.ID, Data: []byte(fmt.Sprint("out ", i))}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	recent := newJob("h", "s", "o", jobs.StateFailed)
	recent.EndedAt = cut.Add(time.Minute)
	running := newJob("h", "s", "o", jobs.StateRunning)
	keep = append(keep, insert(t, db, recent), insert(t, db, running))
	// A final job without an end time counts from its creation.
	noEnd := newJob("h", "s", "o", jobs.StateError)
	old = append(old, insert(t, db, noEnd))

	n, err := db.Prune(ctx, cut)
	if err != nil || n != int64(len(old)) {
		t.Fatalf("Prune = %d, %v; want %d", n, err, len(old))
	}
	for _, j := range old {
		if _, err := db.Get(ctx, j.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("pruned job %s: %v", j.ID, err)
		}
	}
	for _, j := range keep {
		get(t, db, j.ID)
	}
	var chunks int
	if err := db.r.QueryRow("SELECT count(*) FROM output_chunks").Scan(&chunks); err != nil || chunks != 0 {
		t.Errorf("%d chunks left after pruning (%v)", chunks, err)
	}
}
