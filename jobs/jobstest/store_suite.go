package jobstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// ExerciseStore runs the contract of jobs.Store, as jobs/job.go writes it in
// prose, against a store driver, as subtests of t: a second driver has the
// same contract to pass as sqlstore.
//
// open returns a new, empty store for one subtest; closing it is open's
// business (t.Cleanup). The subtests run in parallel, each on a store of its
// own.
//
// The suite controls every time it hands the store (CreatedAt, leases, now),
// in whole milliseconds: a store must keep times to the millisecond at
// least. Its job ids are UUID-shaped and sort by creation, as the engine's
// UUIDv7 ids do.
func ExerciseStore(t *testing.T, open func(t *testing.T) jobs.Store) {
	for _, g := range []struct {
		name string
		f    func(*testing.T, *storeFixture)
	}{
		{"insert and get", testInsertGet},
		{"list/order", testListOrder},
		{"list/filters", testListFilters},
		{"list/limits", testListLimits},
		{"claim/order and owner", testClaimOrder},
		{"claim/busy session", testClaimBusy},
		{"claim/concurrent", testClaimConcurrent},
		{"claim/insert claimed", testInsertClaimed},
		{"transition/every pair", testTransitionPairs},
		{"transition/final states are never left", testTransitionFinal},
		{"transition/compare and set", testTransitionCAS},
		{"update fields", testUpdateFields},
		{"set", testSet},
		{"cancel queued", testCancelQueued},
		{"requeue", testRequeue},
		{"request cancel", testRequestCancel},
		{"end", testEnd},
		{"heartbeat", testHeartbeat},
		{"owners", testOwners},
		{"adopt", testAdopt},
		{"queued sessions", testQueuedSessions},
		{"output/offsets", testOutputOffsets},
		{"output/every offset", testOutputEveryOffset},
		{"output/cap", testOutputCap},
		{"output/lost", testOutputLost},
		{"output/read", testOutputRead},
		{"prune", testPrune},
	} {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.f(t, &storeFixture{t: t, st: open(t), ctx: context.Background()})
		})
	}
}

// storeBase is the suite's clock start: every time it uses is storeBase plus
// whole milliseconds.
var storeBase = time.UnixMilli(1_800_000_000_000)

// missingID is the id of no job the suite stores.
const missingID = "ffffffff-ffff-7fff-bfff-ffffffffffff"

// storeFixture is one subtest's store, with helpers that fail the subtest on
// an unexpected error.
type storeFixture struct {
	t   *testing.T
	st  jobs.Store
	ctx context.Context
	n   atomic.Int64 // jobs built so far
}

// at is storeBase plus ms milliseconds.
func at(ms int64) time.Time { return storeBase.Add(time.Duration(ms) * time.Millisecond) }

// job builds a job that Insert accepts, created a millisecond after the one
// built before it, with an id that sorts likewise.
func (f *storeFixture) job(host, session, owner string, state jobs.State) *jobs.Job {
	n := f.n.Add(1)
	return &jobs.Job{
		ID:        fmt.Sprintf("0190a000-0000-7000-8000-%012d", n),
		Host:      host,
		Target:    "alias-" + host,
		Session:   session,
		Command:   fmt.Sprintf("echo %d", n),
		State:     state,
		Owner:     owner,
		CreatedAt: at(n),
	}
}

func (f *storeFixture) insert(j *jobs.Job) *jobs.Job {
	f.t.Helper()
	if err := f.st.Insert(f.ctx, j); err != nil {
		f.t.Fatalf("Insert(%s): %v", j.ID, err)
	}
	return j
}

// add builds and inserts a job.
func (f *storeFixture) add(host, session, owner string, state jobs.State) *jobs.Job {
	f.t.Helper()
	return f.insert(f.job(host, session, owner, state))
}

func (f *storeFixture) get(id string) *jobs.Job {
	f.t.Helper()
	j, err := f.st.Get(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

func (f *storeFixture) transition(id string, to jobs.State, u jobs.Update) *jobs.Job {
	f.t.Helper()
	j, err := f.st.Transition(f.ctx, id, to, u)
	if err != nil {
		f.t.Fatalf("Transition(%s, %s): %v", id, to, err)
	}
	return j
}

func (f *storeFixture) appendOut(cap int64, chunks ...jobs.Chunk) {
	f.t.Helper()
	if err := f.st.AppendOutput(f.ctx, chunks, cap); err != nil {
		f.t.Fatalf("AppendOutput: %v", err)
	}
}

func (f *storeFixture) read(id string, offset, limit int64) jobs.Output {
	f.t.Helper()
	out, err := f.st.ReadOutput(f.ctx, id, offset, limit)
	if err != nil {
		f.t.Fatalf("ReadOutput(%s, %d, %d): %v", id, offset, limit, err)
	}
	return out
}

// sameJob compares jobs with times compared as instants.
func sameJob(a, b *jobs.Job) bool {
	x, y := *a, *b
	for _, p := range [][2]*time.Time{{&x.LeaseUntil, &y.LeaseUntil}, {&x.CreatedAt, &y.CreatedAt},
		{&x.StartedAt, &y.StartedAt}, {&x.EndedAt, &y.EndedAt}} {
		if !p[0].Equal(*p[1]) {
			return false
		}
		*p[0], *p[1] = time.Time{}, time.Time{}
	}
	return reflect.DeepEqual(x, y)
}

func ids(js []*jobs.Job) []string {
	out := []string{}
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// wantErr fails t unless err wraps target and names the job: errors are
// "wrapped with the operation and ids" (jobs/job.go).
func wantErr(t *testing.T, what string, err, target error, id string) {
	t.Helper()
	switch {
	case !errors.Is(err, target):
		t.Errorf("%s: err = %v, want %v", what, err, target)
	case id != "" && !strings.Contains(err.Error(), id):
		t.Errorf("%s: error %q does not name job %s", what, err, id)
	}
}

// testInsertGet: every field survives the round trip, unset ones stay unset,
// an id is stored once, and an unknown id is ErrNotFound.
func testInsertGet(t *testing.T, f *storeFixture) {
	want := f.job("u@h:22", "s", "o", jobs.StateWaitingInput)
	want.Destination, want.Command = `{"addr":"h:22"}`, "make -j8 'all'\n# é"
	want.Detached, want.Sudo, want.KillAfter = true, true, 90*time.Second
	want.ExitCode, want.Signal, want.Error = ptr(3), "TERM", "e"
	want.Prompt = &jobs.Prompt{Text: "Password:", Kind: jobs.PromptPassword}
	want.Cwd, want.NewShell, want.LeaseUntil, want.CancelRequested = "/tmp", true, at(60_000), true
	want.Attach, want.StartedAt, want.EndedAt = `{"pid":1}`, at(1000), at(2000)
	f.insert(want)
	if got := f.get(want.ID); !sameJob(got, want) {
		t.Errorf("Get = %+v\nwant  %+v", got, want)
	}

	bare := f.add("h", "s", "", jobs.StateQueued)
	if got := f.get(bare.ID); !sameJob(got, bare) || got.ExitCode != nil || got.Prompt != nil ||
		!got.StartedAt.IsZero() || !got.EndedAt.IsZero() || !got.LeaseUntil.IsZero() {
		t.Errorf("unset fields not kept unset: %+v", got)
	}

	dup := *bare
	dup.Command = "other"
	if err := f.st.Insert(f.ctx, &dup); err == nil {
		t.Error("Insert of a stored id succeeded")
	}
	if got := f.get(bare.ID); got.Command != bare.Command {
		t.Errorf("a refused Insert changed the stored job: %+v", got)
	}
	_, err := f.st.Get(f.ctx, missingID)
	wantErr(t, "Get(unknown)", err, jobs.ErrNotFound, missingID)
}

func (f *storeFixture) list(lf jobs.ListFilter) []string {
	f.t.Helper()
	js, err := f.st.List(f.ctx, lf)
	if err != nil {
		f.t.Fatalf("List(%+v): %v", lf, err)
	}
	return ids(js)
}

// testListOrder: newest first by creation, whatever the insertion order.
func testListOrder(t *testing.T, f *storeFixture) {
	var all []*jobs.Job
	for range 6 {
		all = append(all, f.job("h", "s", "o", jobs.StateQueued))
	}
	for _, i := range []int{3, 0, 5, 1, 4, 2} {
		f.insert(all[i])
	}
	slices.Reverse(all)
	if got, want := f.list(jobs.ListFilter{}), ids(all); !slices.Equal(got, want) {
		t.Errorf("List = %v, want newest first %v", got, want)
	}
}

// testListFilters: each ListFilter field alone and combined.
func testListFilters(t *testing.T, f *storeFixture) {
	var newest []*jobs.Job
	for i := range 30 {
		j := f.job(fmt.Sprintf("h%d", i%3), fmt.Sprintf("s%d", i%2), "o", jobs.States[i%len(jobs.States)])
		j.Command = fmt.Sprintf("cmd %d %s", i, strings.Repeat("x", i%4))
		newest = append(newest, f.insert(j))
	}
	since := newest[25].CreatedAt
	slices.Reverse(newest)
	filter := func(keep func(*jobs.Job) bool) []string {
		var out []*jobs.Job
		for _, j := range newest {
			if keep(j) {
				out = append(out, j)
			}
		}
		return ids(out)
	}
	every := jobs.MaxListLimit // all matches: the filters alone decide
	for _, c := range []struct {
		name string
		f    jobs.ListFilter
		want []string
	}{
		{"host", jobs.ListFilter{Host: "h1", Limit: every}, filter(func(j *jobs.Job) bool { return j.Host == "h1" })},
		{"target as named", jobs.ListFilter{Host: "alias-h2", Limit: every}, filter(func(j *jobs.Job) bool { return j.Host == "h2" })},
		{"session", jobs.ListFilter{Session: "s1", Limit: every}, filter(func(j *jobs.Job) bool { return j.Session == "s1" })},
		{"host and session", jobs.ListFilter{Session: "s1", Host: "h0", Limit: every},
			filter(func(j *jobs.Job) bool { return j.Session == "s1" && j.Host == "h0" })},
		{"states", jobs.ListFilter{States: []jobs.State{jobs.StateQueued, jobs.StateLost}, Limit: every},
			filter(func(j *jobs.Job) bool { return j.State == jobs.StateQueued || j.State == jobs.StateLost })},
		{"contains", jobs.ListFilter{Contains: "xxx", Limit: every}, filter(func(j *jobs.Job) bool { return strings.Contains(j.Command, "xxx") })},
		{"contains is literal", jobs.ListFilter{Contains: "%", Limit: every}, []string{}},
		{"contains is literal too", jobs.ListFilter{Contains: "cmd _", Limit: every}, []string{}},
		{"since (inclusive)", jobs.ListFilter{Since: since, Limit: every}, ids(newest[:5])},
		// Two jobs match (cmd 22, cmd 10); the limit keeps the newest.
		{"all of them", jobs.ListFilter{Host: "h1", Session: "s0", States: []jobs.State{jobs.StateQueued, jobs.StateWaitingInput, jobs.StateLost},
			Contains: "x", Since: newest[len(newest)-1].CreatedAt, Limit: 1},
			ids(newest[7:8])},
	} {
		if got := f.list(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: List = %v, want %v", c.name, got, c.want)
		}
	}
}

// testListLimits: ListFilter.EffectiveLimit, i.e. the default when unset and
// the maximum whatever the limit asked.
func testListLimits(t *testing.T, f *storeFixture) {
	var newest []*jobs.Job
	for range jobs.MaxListLimit + 5 {
		newest = append(newest, f.add("h", "s", "o", jobs.StateSucceeded))
	}
	slices.Reverse(newest)
	for _, limit := range []int{0, -1, 1, 3, jobs.DefaultListLimit + 1, jobs.MaxListLimit, jobs.MaxListLimit + 1, 1 << 20} {
		lf := jobs.ListFilter{Limit: limit}
		if got, want := f.list(lf), ids(newest[:lf.EffectiveLimit()]); !slices.Equal(got, want) {
			t.Errorf("Limit %d: %d jobs, want the newest %d", limit, len(got), len(want))
		}
	}
}

func (f *storeFixture) claim(owner, host, session string, now, lease time.Time) *jobs.Job {
	f.t.Helper()
	j, err := f.st.Claim(f.ctx, owner, host, session, now, lease)
	if err != nil {
		f.t.Fatalf("Claim(%s, %s/%s): %v", owner, host, session, err)
	}
	return j
}

// wantClaim claims for owner at at(100) with lease at(60_000) and checks
// the job claimed is want (nil: none), moved to running with its owner,
// lease and start time, as stored.
func (f *storeFixture) wantClaim(owner, host, session string, want *jobs.Job) {
	f.t.Helper()
	now, lease := at(100), at(60_000)
	got := f.claim(owner, host, session, now, lease)
	switch {
	case want == nil && got != nil:
		f.t.Fatalf("Claim(%s, %s/%s) = %s, want none", owner, host, session, got.ID)
	case want == nil:
		return
	case got == nil:
		f.t.Fatalf("Claim(%s, %s/%s) = none, want %s", owner, host, session, want.ID)
	case got.ID != want.ID || got.State != jobs.StateRunning || got.Owner != owner ||
		!got.LeaseUntil.Equal(lease) || !got.StartedAt.Equal(now):
		f.t.Fatalf("Claim(%s, %s/%s) = %+v, want %s running for %s", owner, host, session, got, want.ID, owner)
	}
	if stored := f.get(got.ID); !sameJob(stored, got) {
		f.t.Fatalf("Claim returned %+v, but stored %+v", got, stored)
	}
}

// testClaimOrder: the oldest queued job of (host, session) and owner, and
// nothing of another session, host or owner.
func testClaimOrder(t *testing.T, f *storeFixture) {
	f.wantClaim("a", "h", "s", nil)
	// Created in this order, inserted in another: the oldest goes first.
	q1, q2 := f.job("h", "s", "a", jobs.StateQueued), f.job("h", "s", "a", jobs.StateQueued)
	f.insert(q2)
	f.insert(q1)
	otherHost := f.add("h2", "s", "a", jobs.StateQueued)
	otherSession := f.add("h", "s2", "a", jobs.StateQueued)
	foreign := f.add("h", "s3", "b", jobs.StateQueued)
	f.add("h", "s4", "a", jobs.StateSucceeded)

	f.wantClaim("a", "h", "s", q1)
	f.transition(q1.ID, jobs.StateSucceeded, jobs.Update{})
	f.wantClaim("a", "h", "s", q2)
	f.transition(q2.ID, jobs.StateFailed, jobs.Update{})
	f.wantClaim("a", "h", "s", nil)
	f.wantClaim("a", "h2", "s", otherHost)
	f.wantClaim("a", "h", "s2", otherSession)
	// Another owner's queue is not ours.
	f.wantClaim("a", "h", "s3", nil)
	f.wantClaim("b", "h", "s3", foreign)
	// Only queued jobs are claimed.
	f.wantClaim("a", "h", "s4", nil)
}

// testClaimBusy: a shell job running or waiting for input holds its session;
// a detached one does not; another owner's job of a session of the same name
// runs in another process's shell and does not either.
func testClaimBusy(t *testing.T, f *storeFixture) {
	run := f.add("h", "s", "a", jobs.StateQueued)
	next := f.add("h", "s", "a", jobs.StateQueued)
	f.wantClaim("a", "h", "s", run)
	f.wantClaim("a", "h", "s", nil) // running holds it
	f.transition(run.ID, jobs.StateWaitingInput, jobs.Update{})
	f.wantClaim("a", "h", "s", nil) // and so does waiting for input
	f.transition(run.ID, jobs.StateCancelled, jobs.Update{})

	// A detached job is claimed in its turn, and does not hold the session.
	d := f.job("h", "s", "a", jobs.StateQueued)
	d.Detached = true
	last := f.job("h", "s", "a", jobs.StateQueued)
	f.insert(d)
	f.insert(last)
	f.wantClaim("a", "h", "s", next)
	f.transition(next.ID, jobs.StateSucceeded, jobs.Update{})
	f.wantClaim("a", "h", "s", d)
	f.wantClaim("a", "h", "s", last)
	f.wantClaim("a", "h", "s", nil)

	// A job of b's session "t" (b's shell) does not hold a's session "t".
	theirs := f.add("h", "t", "b", jobs.StateQueued)
	mine := f.add("h", "t", "a", jobs.StateQueued)
	f.wantClaim("b", "h", "t", theirs)
	f.wantClaim("a", "h", "t", mine)
	// A job inserted running (adopted, re-attached) holds its session too.
	f.add("h", "u", "a", jobs.StateRunning)
	f.add("h", "u", "a", jobs.StateQueued)
	f.wantClaim("a", "h", "u", nil)
}

// testInsertClaimed: a new job is stored running, started when created,
// exactly when Claim would take it at once: nothing of its session and owner
// queued ahead, no shell job of theirs running or waiting for input.
// Else it is stored queued, and Claim takes it in its turn.
func testInsertClaimed(t *testing.T, f *storeFixture) {
	want := func(j *jobs.Job, state jobs.State) *jobs.Job {
		t.Helper()
		if err := f.st.InsertClaimed(f.ctx, j); err != nil {
			t.Fatalf("InsertClaimed(%s): %v", j.ID, err)
		}
		started := time.Time{}
		if state == jobs.StateRunning {
			started = j.CreatedAt
		}
		if j.State != state || !j.StartedAt.Equal(started) {
			t.Fatalf("InsertClaimed(%s): %s started %v, want %s started %v", j.ID, j.State, j.StartedAt, state, started)
		}
		if stored := f.get(j.ID); !sameJob(stored, j) {
			t.Fatalf("InsertClaimed(%s) left %+v, but stored %+v", j.ID, j, stored)
		}
		return j
	}
	first := want(f.job("h", "s", "a", jobs.StateQueued), jobs.StateRunning)
	second := want(f.job("h", "s", "a", jobs.StateQueued), jobs.StateQueued) // first runs
	f.transition(first.ID, jobs.StateWaitingInput, jobs.Update{})
	f.transition(first.ID, jobs.StateSucceeded, jobs.Update{})
	// second is queued ahead: the next one waits behind it.
	third := want(f.job("h", "s", "a", jobs.StateQueued), jobs.StateQueued)
	f.wantClaim("a", "h", "s", second)
	f.transition(second.ID, jobs.StateSucceeded, jobs.Update{})
	f.wantClaim("a", "h", "s", third)
	f.transition(third.ID, jobs.StateSucceeded, jobs.Update{})

	// A running detached job, another owner's or another session's job
	// hold nothing up; a job inserted running does.
	d := f.job("h", "s", "a", jobs.StateRunning)
	d.Detached = true
	f.insert(d)
	f.add("h", "s", "b", jobs.StateRunning)
	f.add("h", "s", "b", jobs.StateQueued)
	f.add("h", "s2", "a", jobs.StateQueued)
	f.add("h2", "s", "a", jobs.StateRunning)
	mine := want(f.job("h", "s", "a", jobs.StateQueued), jobs.StateRunning)
	f.transition(mine.ID, jobs.StateCancelled, jobs.Update{})
	f.add("h", "s", "a", jobs.StateRunning)
	want(f.job("h", "s", "a", jobs.StateQueued), jobs.StateQueued)
}

// testClaimConcurrent: claimers racing never get the same job, and a session
// never runs two shell jobs at once.
func testClaimConcurrent(t *testing.T, f *storeFixture) {
	const sessions, perSession, workers = 3, 8, 6
	var all []string
	for range perSession {
		for s := range sessions {
			all = append(all, f.add("h", fmt.Sprint("s", s), "o", jobs.StateQueued).ID)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		busy    [sessions]atomic.Int32
		done    atomic.Int32
		wg      sync.WaitGroup
	)
	// Released together, half of them starting on the same session.
	start := make(chan struct{})
	var failed atomic.Bool // stops the others once one gives up
	for w := range workers {
		wg.Go(func() {
			<-start
			for s := 0; done.Load() < int32(len(all)) && !failed.Load(); s = (s + 1) % sessions {
				if w%2 == 1 {
					s = (s + 1) % sessions // not all in step
				}
				j, err := f.st.Claim(f.ctx, "o", "h", fmt.Sprint("s", s), at(100), at(60_000))
				if err != nil {
					failed.Store(true)
					t.Errorf("Claim: %v", err)
					return
				}
				if j == nil {
					continue
				}
				if busy[s].Add(1) != 1 {
					// One report is enough: stop the others.
					failed.Store(true)
					t.Errorf("session s%d runs two shell jobs at once", s)
				}
				mu.Lock()
				claimed[j.ID]++
				mu.Unlock()
				// Hold the session a moment, as a running job does: a claim
				// that ignores it gets a second job meanwhile.
				time.Sleep(time.Millisecond)
				busy[s].Add(-1)
				if _, err := f.st.Transition(f.ctx, j.ID, jobs.StateSucceeded, jobs.Update{}); err != nil {
					failed.Store(true)
					t.Errorf("Transition: %v", err)
					return
				}
				done.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if failed.Load() {
		return // the jobs left unclaimed say nothing more
	}
	for _, id := range all {
		if claimed[id] != 1 {
			t.Errorf("job %s claimed %d times", id, claimed[id])
		}
	}
}

// testTransitionPairs tries every move between every pair of states: the
// store allows exactly jobs.CanTransition, applies the update with an
// allowed move, and a refused move changes nothing.
func testTransitionPairs(t *testing.T, f *storeFixture) {
	for _, from := range jobs.States {
		for _, to := range jobs.States {
			j := f.add("h", "s", "o", from)
			got, err := f.st.Transition(f.ctx, j.ID, to, jobs.Update{ExitCode: ptr(0), Cwd: ptr("/x")})
			if jobs.CanTransition(from, to) {
				if err != nil {
					t.Errorf("%s -> %s: %v", from, to, err)
					continue
				}
				if got.State != to || got.ExitCode == nil || *got.ExitCode != 0 || got.Cwd != "/x" {
					t.Errorf("%s -> %s: returned %+v", from, to, got)
				}
				if stored := f.get(j.ID); !sameJob(stored, got) {
					t.Errorf("%s -> %s: returned %+v, but stored %+v", from, to, got, stored)
				}
				continue
			}
			wantErr(t, fmt.Sprintf("%s -> %s", from, to), err, jobs.ErrTransition, j.ID)
			if now := f.get(j.ID); !sameJob(now, j) {
				t.Errorf("%s -> %s refused, but the job changed: %+v", from, to, now)
			}
		}
	}
	_, err := f.st.Transition(f.ctx, missingID, jobs.StateRunning, jobs.Update{})
	wantErr(t, "unknown job", err, jobs.ErrNotFound, missingID)
	j := f.add("h", "s", "o", jobs.StateQueued)
	if _, err := f.st.Transition(f.ctx, j.ID, "bogus", jobs.Update{}); err == nil {
		t.Error("Transition to an unknown state succeeded")
	}
	if now := f.get(j.ID); now.State != jobs.StateQueued {
		t.Errorf("Transition to an unknown state left the job %s", now.State)
	}
}

// testTransitionFinal: whatever the path to a final state, nothing leaves it.
func testTransitionFinal(t *testing.T, f *storeFixture) {
	for _, end := range jobs.States {
		if !end.Final() {
			continue
		}
		j := f.add("h", "s", "o", jobs.StateQueued)
		for _, to := range []jobs.State{jobs.StateRunning, jobs.StateWaitingInput, jobs.StateRunning, end} {
			f.transition(j.ID, to, jobs.Update{})
		}
		for _, to := range jobs.States {
			_, err := f.st.Transition(f.ctx, j.ID, to, jobs.Update{Error: ptr("again")})
			wantErr(t, fmt.Sprintf("%s -> %s", end, to), err, jobs.ErrTransition, j.ID)
		}
		if got := f.get(j.ID); got.State != end || got.Error != "" {
			t.Errorf("%s job after refused moves: %s, error %q", end, got.State, got.Error)
		}
	}
}

// testTransitionCAS: the check and the change are one step: of racing moves
// from running to different final states exactly one wins, and its update is
// the one stored.
func testTransitionCAS(t *testing.T, f *storeFixture) {
	finals := []jobs.State{jobs.StateSucceeded, jobs.StateFailed, jobs.StateCancelled, jobs.StateLost, jobs.StateError}
	for round := range 3 {
		j := f.add("h", "s", "o", jobs.StateRunning)
		var wg sync.WaitGroup
		var wins atomic.Int32
		winner := make(chan jobs.State, len(finals))
		for i, to := range finals {
			wg.Go(func() {
				_, err := f.st.Transition(f.ctx, j.ID, to, jobs.Update{ExitCode: ptr(i), Error: ptr(string(to))})
				switch {
				case err == nil:
					wins.Add(1)
					winner <- to
				case !errors.Is(err, jobs.ErrTransition):
					t.Errorf("round %d, -> %s: %v", round, to, err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d racing moves out of running succeeded, want 1", round, n)
		}
		to := <-winner
		if got := f.get(j.ID); got.State != to || got.Error != string(to) || got.ExitCode == nil || *got.ExitCode != slices.Index(finals, to) {
			t.Errorf("round %d: %s won, but stored %+v", round, to, got)
		}
	}
}

// testUpdateFields: each Update field is applied by Transition and Set; nil
// fields leave the stored value alone; ClearPrompt clears the prompt.
func testUpdateFields(t *testing.T, f *storeFixture) {
	j := f.add("h", "s", "o", jobs.StateRunning)
	p := &jobs.Prompt{Text: "[Y/n]", Kind: jobs.PromptConfirm}
	got := f.transition(j.ID, jobs.StateWaitingInput, jobs.Update{Prompt: p})
	if got.Prompt == nil || *got.Prompt != *p {
		t.Fatalf("prompt not set: %+v", got.Prompt)
	}
	if got = f.transition(j.ID, jobs.StateRunning, jobs.Update{}); got.Prompt == nil || *got.Prompt != *p {
		t.Fatalf("prompt changed by an empty update: %+v", got.Prompt)
	}
	if got = f.transition(j.ID, jobs.StateWaitingInput, jobs.Update{ClearPrompt: true}); got.Prompt != nil {
		t.Fatalf("prompt not cleared: %+v", got.Prompt)
	}

	all := jobs.Update{ExitCode: ptr(7), Signal: ptr("KILL"), Error: ptr("boom"), Prompt: p, Cwd: ptr("/srv"),
		NewShell: ptr(true), Attach: ptr("spool"), Owner: ptr("o2"), LeaseUntil: ptr(at(3_600_000)),
		StartedAt: ptr(at(1000)), EndedAt: ptr(at(2000))}
	check := func(what string, got *jobs.Job, state jobs.State) {
		t.Helper()
		if got.ExitCode == nil || *got.ExitCode != 7 || got.Signal != "KILL" || got.Error != "boom" ||
			got.Prompt == nil || *got.Prompt != *p || got.Cwd != "/srv" || !got.NewShell || got.Attach != "spool" ||
			got.Owner != "o2" || !got.LeaseUntil.Equal(at(3_600_000)) || !got.StartedAt.Equal(at(1000)) ||
			!got.EndedAt.Equal(at(2000)) || got.State != state {
			t.Fatalf("%s: %+v", what, got)
		}
	}
	if err := f.st.Set(f.ctx, j.ID, all); err != nil {
		t.Fatal(err)
	}
	check("Set of every field", f.get(j.ID), jobs.StateWaitingInput)
	if err := f.st.Set(f.ctx, j.ID, jobs.Update{}); err != nil {
		t.Fatal(err)
	}
	check("after an empty Set", f.get(j.ID), jobs.StateWaitingInput)
	check("after a Transition with an empty update", f.transition(j.ID, jobs.StateRunning, jobs.Update{}), jobs.StateRunning)

	// Transition applies every field too, and false and empty values are
	// values, not "unset".
	k := f.add("h", "s", "o", jobs.StateQueued)
	if err := f.st.Set(f.ctx, k.ID, jobs.Update{NewShell: ptr(true), Cwd: ptr("/a"), Error: ptr("e")}); err != nil {
		t.Fatal(err)
	}
	all.NewShell, all.Cwd = ptr(false), ptr("")
	got = f.transition(k.ID, jobs.StateRunning, all)
	if got.NewShell || got.Cwd != "" || got.Error != "boom" || got.Owner != "o2" || got.Prompt == nil || !got.EndedAt.Equal(at(2000)) {
		t.Errorf("Transition with every field: %+v", got)
	}
}

// testSet: Set changes fields, never the state, and refuses a final job.
func testSet(t *testing.T, f *storeFixture) {
	for _, s := range jobs.States {
		j := f.add("h", "s", "o", s)
		err := f.st.Set(f.ctx, j.ID, jobs.Update{Cwd: ptr("/x")})
		got := f.get(j.ID)
		if s.Final() {
			wantErr(t, "Set on a "+string(s)+" job", err, jobs.ErrTransition, j.ID)
			if got.Cwd != "" {
				t.Errorf("Set on a %s job changed it: cwd %q", s, got.Cwd)
			}
			err = f.st.Set(f.ctx, j.ID, jobs.Update{})
			wantErr(t, "empty Set on a "+string(s)+" job", err, jobs.ErrTransition, j.ID)
			continue
		}
		if err != nil || got.Cwd != "/x" || got.State != s {
			t.Errorf("Set on a %s job: %v; now %s, cwd %q", s, err, got.State, got.Cwd)
		}
	}
	err := f.st.Set(f.ctx, missingID, jobs.Update{Cwd: ptr("/")})
	wantErr(t, "Set on an unknown job", err, jobs.ErrNotFound, missingID)
}

// testCancelQueued: only a queued job is cancelled; a running one (claimed
// between a caller's read and its cancel) or a final one refuses and keeps
// its state.
func testCancelQueued(t *testing.T, f *storeFixture) {
	for _, s := range jobs.States {
		j := f.add("h", "s", "o", s)
		got, err := f.st.CancelQueued(f.ctx, j.ID, jobs.Update{Error: ptr("gone")})
		if s != jobs.StateQueued {
			wantErr(t, "CancelQueued of a "+string(s)+" job", err, jobs.ErrTransition, j.ID)
			if stored := f.get(j.ID); stored.State != s || stored.Error == "gone" {
				t.Errorf("CancelQueued of a %s job changed it: %+v", s, stored)
			}
			continue
		}
		if err != nil || got.State != jobs.StateCancelled || got.Error != "gone" {
			t.Errorf("CancelQueued of a queued job = %+v, %v", got, err)
		} else if stored := f.get(j.ID); !sameJob(stored, got) {
			t.Errorf("CancelQueued returned %+v, but stored %+v", got, stored)
		}
	}
	_, err := f.st.CancelQueued(f.ctx, missingID, jobs.Update{})
	wantErr(t, "CancelQueued of an unknown job", err, jobs.ErrNotFound, missingID)
}

// testRequeue: a job its owner claimed goes back to the queue, not started,
// and is claimed again like any queued job; a job in another state, or
// running for another owner, refuses and keeps its state.
func testRequeue(t *testing.T, f *storeFixture) {
	for _, s := range jobs.States {
		session := "s-" + string(s) // a job of its own, to claim again
		j := f.job("h", session, "o", s)
		if s != jobs.StateQueued {
			j.StartedAt = at(4000)
		}
		f.insert(j)
		err := f.st.Requeue(f.ctx, j.ID, "o")
		if s != jobs.StateRunning {
			wantErr(t, "Requeue of a "+string(s)+" job", err, jobs.ErrTransition, j.ID)
			if stored := f.get(j.ID); stored.State != s {
				t.Errorf("Requeue of a %s job changed it: %+v", s, stored)
			}
			continue
		}
		if err != nil {
			t.Errorf("Requeue of a running job: %v", err)
		}
		if stored := f.get(j.ID); stored.State != jobs.StateQueued || !stored.StartedAt.IsZero() || stored.Owner != "o" {
			t.Errorf("after Requeue: %s, started %v, owner %q", stored.State, stored.StartedAt, stored.Owner)
		}
		if got, err := f.st.Claim(f.ctx, "o", "h", session, at(5000), at(9000)); err != nil || got == nil || got.ID != j.ID {
			t.Errorf("Claim after Requeue = %+v, %v", got, err)
		}
	}
	other := f.add("h", "s-other", "o2", jobs.StateRunning)
	err := f.st.Requeue(f.ctx, other.ID, "o")
	wantErr(t, "Requeue of another owner's job", err, jobs.ErrNotOwner, other.ID)
	if stored := f.get(other.ID); stored.State != jobs.StateRunning {
		t.Errorf("Requeue of another owner's job changed it: %+v", stored)
	}
	err = f.st.Requeue(f.ctx, missingID, "o")
	wantErr(t, "Requeue of an unknown job", err, jobs.ErrNotFound, missingID)
}

// testRequestCancel: a non-final job is marked, keeping its state; a final
// one refuses.
func testRequestCancel(t *testing.T, f *storeFixture) {
	for _, s := range jobs.States {
		j := f.add("h", "s", "o", s)
		got, err := f.st.RequestCancel(f.ctx, j.ID)
		if s.Final() {
			wantErr(t, "RequestCancel of a "+string(s)+" job", err, jobs.ErrTransition, j.ID)
			if f.get(j.ID).CancelRequested {
				t.Errorf("RequestCancel of a %s job marked it", s)
			}
			continue
		}
		if err != nil || !got.CancelRequested || got.State != s {
			t.Errorf("RequestCancel of a %s job = %+v, %v", s, got, err)
			continue
		}
		if stored := f.get(j.ID); !sameJob(stored, got) {
			t.Errorf("RequestCancel returned %+v, but stored %+v", got, stored)
		}
		if again, err := f.st.RequestCancel(f.ctx, j.ID); err != nil || !again.CancelRequested {
			t.Errorf("second RequestCancel of a %s job = %+v, %v", s, again, err)
		}
	}
	_, err := f.st.RequestCancel(f.ctx, missingID)
	wantErr(t, "RequestCancel of an unknown job", err, jobs.ErrNotFound, missingID)
}

// testEnd: the owner ends its job, also over a lost end recorded by a
// process that took it for gone; nobody else can, and lost does not replace
// lost, nor anything another final state.
func testEnd(t *testing.T, f *storeFixture) {
	// Allowed moves, by the owner.
	for _, from := range []jobs.State{jobs.StateQueued, jobs.StateRunning, jobs.StateWaitingInput} {
		for _, to := range jobs.States {
			if !to.Final() {
				continue
			}
			j := f.add("h", "s", "A", from)
			got, err := f.st.End(f.ctx, j.ID, "A", to, jobs.Update{ExitCode: ptr(4), EndedAt: ptr(at(5000))})
			if !jobs.CanTransition(from, to) {
				wantErr(t, fmt.Sprintf("End %s -> %s", from, to), err, jobs.ErrTransition, j.ID)
				continue
			}
			if err != nil || got.State != to || *got.ExitCode != 4 || !got.EndedAt.Equal(at(5000)) || got.Owner != "A" {
				t.Errorf("End %s -> %s by the owner = %+v, %v", from, to, got, err)
			}
		}
	}

	// Lost by another process, then the owner's real end.
	run := f.add("h", "s", "A", jobs.StateRunning)
	f.transition(run.ID, jobs.StateLost, jobs.Update{Error: ptr("A stopped"), EndedAt: ptr(at(1000))})
	_, err := f.st.End(f.ctx, run.ID, "B", jobs.StateSucceeded, jobs.Update{ExitCode: ptr(0)})
	wantErr(t, "End by another process", err, jobs.ErrNotOwner, run.ID)
	wantErr(t, "End by another process", err, jobs.ErrTransition, run.ID)
	_, err = f.st.End(f.ctx, run.ID, "A", jobs.StateLost, jobs.Update{Error: ptr("")})
	wantErr(t, "End lost over lost", err, jobs.ErrTransition, run.ID)
	got, err := f.st.End(f.ctx, run.ID, "A", jobs.StateFailed, jobs.Update{ExitCode: ptr(3), Error: ptr(""), EndedAt: ptr(at(2000))})
	if err != nil || got.State != jobs.StateFailed || *got.ExitCode != 3 || got.Error != "" || !got.EndedAt.Equal(at(2000)) {
		t.Fatalf("End by the owner over lost = %+v, %v", got, err)
	}
	for _, to := range []jobs.State{jobs.StateSucceeded, jobs.StateLost} {
		_, err = f.st.End(f.ctx, run.ID, "A", to, jobs.Update{})
		wantErr(t, "End of a failed job as "+string(to), err, jobs.ErrTransition, run.ID)
	}
	if now := f.get(run.ID); now.State != jobs.StateFailed || *now.ExitCode != 3 {
		t.Errorf("a refused End changed the job: %+v", now)
	}

	taken := f.add("h", "s", "B", jobs.StateRunning)
	_, err = f.st.End(f.ctx, taken.ID, "A", jobs.StateSucceeded, jobs.Update{})
	wantErr(t, "End of a job another process owns", err, jobs.ErrNotOwner, taken.ID)
	if now := f.get(taken.ID); now.State != jobs.StateRunning {
		t.Errorf("End by a non-owner moved the job to %s", now.State)
	}
	other := f.add("h", "s", "A", jobs.StateRunning)
	if _, err := f.st.End(f.ctx, other.ID, "A", jobs.StateRunning, jobs.Update{}); err == nil {
		t.Error("End to a non-final state succeeded")
	}
	_, err = f.st.End(f.ctx, missingID, "A", jobs.StateSucceeded, jobs.Update{})
	wantErr(t, "End of an unknown job", err, jobs.ErrNotFound, missingID)
}

// testHeartbeat: the owner's non-final jobs get the new lease and are
// listed, sorted, with those that have a cancel request; nothing else
// changes; the owner's row is recreated.
func testHeartbeat(t *testing.T, f *storeFixture) {
	old := at(1000)
	mk := func(owner string, s jobs.State) *jobs.Job {
		j := f.job("h", "s", owner, s)
		j.LeaseUntil = old
		return f.insert(j)
	}
	// Created in an order that differs from the ids' sort order.
	var mine []*jobs.Job
	for _, s := range []jobs.State{jobs.StateRunning, jobs.StateQueued, jobs.StateWaitingInput} {
		mine = append(mine, mk("a", s))
	}
	done := mk("a", jobs.StateSucceeded)
	others := mk("b", jobs.StateRunning)
	for _, j := range []*jobs.Job{mine[0], mine[2], others} {
		if _, err := f.st.RequestCancel(f.ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.RegisterOwner(f.ctx, jobs.OwnerInfo{ID: "a", Hostname: "h", PID: 7, StartedAt: old, Heartbeat: old}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.RemoveOwner(f.ctx, "a"); err != nil {
		t.Fatal(err)
	}

	lease := at(3_600_000)
	o := jobs.OwnerInfo{ID: "a", Hostname: "host-a", PID: 7, ProcStart: "boot/7", StartedAt: old, Heartbeat: at(2000)}
	beat, err := f.st.Heartbeat(f.ctx, o, lease)
	if err != nil {
		t.Fatal(err)
	}
	active := slices.Sorted(slices.Values(ids(mine)))
	cancel := slices.Sorted(slices.Values([]string{mine[0].ID, mine[2].ID}))
	if !slices.Equal(beat.Active, active) || !slices.Equal(beat.Cancel, cancel) {
		t.Errorf("Heartbeat = %+v; want active %v, cancel %v", beat, active, cancel)
	}
	for _, j := range mine {
		if got := f.get(j.ID); !got.LeaseUntil.Equal(lease) || got.State != j.State {
			t.Errorf("%s job of the owner: lease %v, state %s; want lease %v", j.State, got.LeaseUntil, got.State, lease)
		}
	}
	for _, j := range []*jobs.Job{done, others} {
		if got := f.get(j.ID); !got.LeaseUntil.Equal(old) {
			t.Errorf("%s job of %s: lease moved to %v", j.State, j.Owner, got.LeaseUntil)
		}
	}
	// The row is back, with the beat: ExpiredOwners shows it once the
	// leases run out.
	owners, err := f.st.ExpiredOwners(f.ctx, lease.Add(time.Second))
	if i := slices.IndexFunc(owners, func(e jobs.OwnerInfo) bool { return e.ID == "a" }); err != nil || i < 0 || !sameOwner(owners[i], o) {
		t.Errorf("ExpiredOwners after the beat = %+v, %v; want a's row %+v", owners, err, o)
	}
	// An owner without jobs beats too.
	if beat, err := f.st.Heartbeat(f.ctx, jobs.OwnerInfo{ID: "idle", Heartbeat: at(2000)}, lease); err != nil || len(beat.Active)+len(beat.Cancel) != 0 {
		t.Errorf("Heartbeat of an owner without jobs = %+v, %v", beat, err)
	}
}

func sameOwner(a, b jobs.OwnerInfo) bool {
	return a.ID == b.ID && a.Hostname == b.Hostname && a.PID == b.PID && a.ProcStart == b.ProcStart &&
		a.StartedAt.Equal(b.StartedAt) && a.Heartbeat.Equal(b.Heartbeat)
}

// testOwners: ExpiredOwners lists the owners of running and waiting jobs
// whose lease expired, with their rows (refreshed by RegisterOwner) or only
// their ids; PruneOwners deletes stale rows of owners without live jobs.
func testOwners(t *testing.T, f *storeFixture) {
	now := at(10_000)
	mk := func(owner string, s jobs.State, lease time.Time) {
		j := f.job("h", "s", owner, s)
		j.LeaseUntil = lease
		f.insert(j)
	}
	mk("run", jobs.StateRunning, at(9000))
	mk("wait", jobs.StateWaitingInput, at(9000))
	mk("norow", jobs.StateRunning, at(9000))
	mk("queued", jobs.StateQueued, at(9000)) // not running: not listed
	mk("ended", jobs.StateLost, at(9000))    // final: not listed
	mk("live", jobs.StateRunning, at(20_000))
	rows := map[string]jobs.OwnerInfo{}
	for i, id := range []string{"run", "wait", "queued", "ended", "live", "idle"} {
		o := jobs.OwnerInfo{ID: id, Hostname: "host-" + id, PID: 100 + i, ProcStart: "boot/" + id, StartedAt: at(0), Heartbeat: at(1000)}
		if err := f.st.RegisterOwner(f.ctx, o); err != nil {
			t.Fatal(err)
		}
		rows[id] = o
	}
	// A second registration refreshes the row.
	o := rows["run"]
	o.PID, o.Heartbeat = 999, at(5000)
	if err := f.st.RegisterOwner(f.ctx, o); err != nil {
		t.Fatal(err)
	}
	rows["run"] = o
	expired := func(now time.Time) map[string]jobs.OwnerInfo {
		t.Helper()
		list, err := f.st.ExpiredOwners(f.ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]jobs.OwnerInfo{}
		for _, o := range list {
			if _, dup := out[o.ID]; dup {
				t.Errorf("ExpiredOwners lists %s twice", o.ID)
			}
			out[o.ID] = o
		}
		return out
	}
	got := expired(now)
	want := map[string]jobs.OwnerInfo{"run": rows["run"], "wait": rows["wait"], "norow": {ID: "norow"}}
	if len(got) != len(want) {
		t.Errorf("ExpiredOwners = %+v, want %+v", got, want)
	}
	for id, w := range want {
		if !sameOwner(got[id], w) {
			t.Errorf("ExpiredOwners: %s = %+v, want %+v", id, got[id], w)
		}
	}
	if got := expired(at(1000)); len(got) != 0 {
		t.Errorf("ExpiredOwners before any lease ended = %+v", got)
	}

	// Every row but run's (refreshed) beat before at(3000); of those, wait,
	// queued and live own a non-final job and stay.
	n, err := f.st.PruneOwners(f.ctx, at(3000))
	if err != nil || n != 2 {
		t.Errorf("PruneOwners = %d, %v; want 2 (ended, idle)", n, err)
	}
	if n, err := f.st.PruneOwners(f.ctx, at(3000)); err != nil || n != 0 {
		t.Errorf("second PruneOwners = %d, %v; want 0", n, err)
	}
	// wait's row is stale but it has a live job: still there.
	if got := expired(now); !sameOwner(got["wait"], rows["wait"]) {
		t.Errorf("PruneOwners took the row of an owner with a live job: %+v", got["wait"])
	}
	if err := f.st.RemoveOwner(f.ctx, "run"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.RemoveOwner(f.ctx, "never-registered"); err != nil {
		t.Errorf("RemoveOwner of an owner without a row: %v", err)
	}
	if got := expired(now); !sameOwner(got["run"], jobs.OwnerInfo{ID: "run"}) {
		t.Errorf("ExpiredOwners of a removed owner = %+v, want only its id", got["run"])
	}
}

// testAdopt: a process's queued jobs with an expired lease, or all of them
// once it stopped cleanly, go to the adopter; its running ones only once it is judged gone and has not beaten
// since, the detached ones taken (with Reattach), the others returned as
// orphans that keep their owner; all oldest first.
func testAdopt(t *testing.T, f *storeFixture) {
	expiredAt, now, lease := at(1000), at(10_000), at(60_000)
	mk := func(owner, session string, s jobs.State, detached bool, until time.Time) *jobs.Job {
		j := f.job("h", session, owner, s)
		j.Detached, j.LeaseUntil = detached, until
		return j
	}
	queued := mk("A", "s", jobs.StateQueued, false, expiredAt)
	queued2 := mk("A", "s2", jobs.StateQueued, false, expiredAt)
	fresh := mk("A", "s", jobs.StateQueued, false, lease) // lease not expired
	run := mk("A", "s", jobs.StateRunning, false, expiredAt)
	wait := mk("A", "s5", jobs.StateWaitingInput, false, expiredAt)
	detached := mk("A", "s3", jobs.StateRunning, true, expiredAt)
	detached2 := mk("A", "s4", jobs.StateWaitingInput, true, expiredAt)
	final := mk("A", "s", jobs.StateFailed, false, expiredAt)
	alive := mk("C", "s", jobs.StateRunning, false, expiredAt) // not judged gone
	// Inserted newest first: Adopt returns them oldest first anyway.
	for _, j := range []*jobs.Job{alive, final, detached2, detached, wait, run, fresh, queued2, queued} {
		f.insert(j)
	}
	judged := jobs.OwnerInfo{ID: "A", Hostname: "h", PID: 1, StartedAt: at(0), Heartbeat: at(500)}
	if err := f.st.RegisterOwner(f.ctx, judged); err != nil {
		t.Fatal(err)
	}
	// The adopters run, as an engine that adopts does: they have rows.
	for i, id := range []string{"B", "B2"} {
		if err := f.st.RegisterOwner(f.ctx, jobs.OwnerInfo{ID: id, Hostname: "h", PID: 2 + i, StartedAt: at(0), Heartbeat: at(9000)}); err != nil {
			t.Fatal(err)
		}
	}
	opts := func(reattach bool, gone ...jobs.OwnerInfo) jobs.AdoptOptions {
		return jobs.AdoptOptions{Now: now, LeaseUntil: lease, Gone: gone, Reattach: reattach}
	}
	adopt := func(owner string, o jobs.AdoptOptions) (taken, orphans []string) {
		t.Helper()
		tk, or, err := f.st.Adopt(f.ctx, owner, o)
		if err != nil {
			t.Fatalf("Adopt: %v", err)
		}
		for _, j := range tk {
			if j.Owner != owner || !j.LeaseUntil.Equal(o.LeaseUntil) {
				t.Errorf("taken job %s: owner %s, lease %v; want %s, %v", j.ID, j.Owner, j.LeaseUntil, owner, o.LeaseUntil)
			}
			if stored := f.get(j.ID); !sameJob(stored, j) {
				t.Errorf("Adopt returned %+v, but stored %+v", j, stored)
			}
		}
		for _, j := range or {
			if stored := f.get(j.ID); !sameJob(stored, j) || j.Owner == owner {
				t.Errorf("orphan %+v changed: stored %+v", j, stored)
			}
		}
		return ids(tk), ids(or)
	}
	none := []string{}

	early := opts(true, judged)
	early.Now = at(900)
	if tk, or := adopt("B", early); len(tk)+len(or) != 0 {
		t.Fatalf("Adopt before any lease expired = %v, %v", tk, or)
	}
	// A is not judged gone: only its queued jobs whose lease expired.
	if tk, or := adopt("B", opts(true)); !slices.Equal(tk, ids([]*jobs.Job{queued, queued2})) || !slices.Equal(or, none) {
		t.Fatalf("Adopt of a live owner's jobs = %v, %v; want the expired queued jobs %s, %s", tk, or, queued.ID, queued2.ID)
	}
	// Judged gone, but it beat since: nothing.
	woke := judged
	woke.Heartbeat = at(600)
	if err := f.st.RegisterOwner(f.ctx, woke); err != nil {
		t.Fatal(err)
	}
	if tk, or := adopt("B", opts(true, judged)); len(tk)+len(or) != 0 {
		t.Fatalf("Adopt of an owner that beat since it was judged = %v, %v", tk, or)
	}
	// Likewise an owner judged without a row, whose row appeared.
	if tk, or := adopt("B", opts(true, jobs.OwnerInfo{ID: "A"})); len(tk)+len(or) != 0 {
		t.Fatalf("Adopt of an owner whose row appeared = %v, %v", tk, or)
	}
	// Without Reattach, every running job of a gone owner is an orphan.
	if tk, or := adopt("B", opts(false, woke)); len(tk) != 0 || !slices.Equal(or, ids([]*jobs.Job{run, wait, detached, detached2})) {
		t.Fatalf("Adopt without Reattach = %v, %v; want no job taken and four orphans", tk, or)
	}
	// With it, the detached ones are taken.
	tk, or := adopt("B", opts(true, woke))
	if !slices.Equal(tk, ids([]*jobs.Job{detached, detached2})) || !slices.Equal(or, ids([]*jobs.Job{run, wait})) {
		t.Fatalf("Adopt of a gone owner = %v, %v; want taken %s, %s and orphans %s, %s",
			tk, or, detached.ID, detached2.ID, run.ID, wait.ID)
	}
	for _, j := range []*jobs.Job{run, wait, fresh, alive, final} {
		if got := f.get(j.ID); got.Owner != j.Owner || got.State != j.State {
			t.Errorf("job %s (%s of %s) became %s of %s", j.ID, j.State, j.Owner, got.State, got.Owner)
		}
	}
	// Taken jobs carry B's lease: a second adopter finds nothing new.
	if tk, _ := adopt("B2", opts(true, woke)); len(tk) != 0 {
		t.Fatalf("second Adopt took %v", tk)
	}
	// An owner that stopped cleanly (no row) is gone as judged, and its
	// queued jobs are taken before their lease runs out.
	if err := f.st.RemoveOwner(f.ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if tk, or := adopt("B", opts(false, jobs.OwnerInfo{ID: "A"})); !slices.Equal(tk, ids([]*jobs.Job{fresh})) || !slices.Equal(or, ids([]*jobs.Job{run, wait})) {
		t.Fatalf("Adopt of an owner without a row = %v, %v; want taken %s, orphans %s, %s", tk, or, fresh.ID, run.ID, wait.ID)
	}
}

// testQueuedSessions: the (host, session) pairs with queued jobs of the
// owner, each once.
func testQueuedSessions(t *testing.T, f *storeFixture) {
	f.add("h1", "s", "a", jobs.StateQueued)
	f.add("h1", "s", "a", jobs.StateQueued)
	f.add("h1", "t", "a", jobs.StateQueued)
	f.add("h2", "s", "a", jobs.StateQueued)
	f.add("h3", "s", "a", jobs.StateRunning)
	f.add("h4", "s", "a", jobs.StateSucceeded)
	f.add("h5", "s", "b", jobs.StateQueued)
	got, err := f.st.QueuedSessions(f.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	if want := [][2]string{{"h1", "s"}, {"h1", "t"}, {"h2", "s"}}; !slices.Equal(got, want) {
		t.Errorf("QueuedSessions = %v, want %v", got, want)
	}
	if got, err := f.st.QueuedSessions(f.ctx, "nobody"); err != nil || len(got) != 0 {
		t.Errorf("QueuedSessions of an owner without jobs = %v, %v", got, err)
	}
}

func chunk(id string, off int64, s string) jobs.Chunk {
	return jobs.Chunk{JobID: id, Offset: off, Data: []byte(s), At: at(off)}
}

// testOutputOffsets: chunks tile the output by offset; resent bytes are
// skipped; a hole or a negative offset is refused; a failed batch stores
// nothing, for any job in it.
func testOutputOffsets(t *testing.T, f *storeFixture) {
	j := f.add("h", "s", "o", jobs.StateRunning)
	o := f.add("h", "s2", "o", jobs.StateRunning)
	f.appendOut(0, chunk(j.ID, 0, "hello"))
	f.appendOut(0, chunk(j.ID, 0, "hel"), chunk(o.ID, 0, "other"), chunk(j.ID, 3, "lo wor"))
	f.appendOut(0, chunk(j.ID, 9, "ld"), chunk(j.ID, 11, ""))
	if out := f.read(j.ID, 0, 100); string(out.Data) != "hello world" || out.Total != 11 {
		t.Fatalf("output %q (total %d), want %q: resent bytes are skipped", out.Data, out.Total, "hello world")
	}
	if got := f.get(j.ID); got.OutputBytes != 11 {
		t.Errorf("OutputBytes %d, want 11", got.OutputBytes)
	}
	for _, c := range []struct {
		what string
		c    jobs.Chunk
	}{{"a hole", chunk(j.ID, 20, "x")}, {"a negative offset", chunk(j.ID, -1, "x")}} {
		err := f.st.AppendOutput(f.ctx, []jobs.Chunk{chunk(o.ID, 5, "!"), c.c}, 0)
		wantErr(t, c.what, err, jobs.ErrBadInput, "")
	}
	err := f.st.AppendOutput(f.ctx, []jobs.Chunk{chunk(j.ID, 11, "!"), chunk(o.ID, 5, "!"), chunk(missingID, 0, "x")}, 0)
	wantErr(t, "a chunk of an unknown job", err, jobs.ErrNotFound, missingID)
	for id, want := range map[string]string{j.ID: "hello world", o.ID: "other"} {
		if got := f.get(id); got.OutputBytes != int64(len(want)) {
			t.Errorf("OutputBytes %d after failed batches, want %d", got.OutputBytes, len(want))
		}
		if out := f.read(id, 0, 100); string(out.Data) != want {
			t.Errorf("output %q after failed batches, want %q", out.Data, want)
		}
	}
}

// appendRandom stores data for job id in chunks of 1..maxChunk bytes, in
// batches of random length interleaved with another job's output.
func (f *storeFixture) appendRandom(rng *rand.Rand, id, other string, data []byte, maxChunk int, cap int64) {
	f.t.Helper()
	var batch []jobs.Chunk
	otherOff := f.get(other).OutputBytes
	for off := 0; off < len(data); {
		n := min(1+rng.IntN(maxChunk), len(data)-off)
		batch = append(batch, jobs.Chunk{JobID: id, Offset: int64(off), Data: data[off : off+n]})
		off += n
		if rng.IntN(3) == 0 {
			batch = append(batch, jobs.Chunk{JobID: other, Offset: otherOff, Data: []byte("noise")})
			otherOff += 5
		}
		if rng.IntN(4) == 0 || off == len(data) {
			f.appendOut(cap, batch...)
			batch = batch[:0]
		}
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// testOutputEveryOffset reads the output back at every offset with several
// limits: chunk and batch boundaries are invisible.
func testOutputEveryOffset(t *testing.T, f *storeFixture) {
	rng := rand.New(rand.NewPCG(1, 2))
	j := f.add("h", "s", "o", jobs.StateRunning)
	o := f.add("h", "s2", "o", jobs.StateRunning)
	want := randomBytes(rng, 1000)
	f.appendRandom(rng, j.ID, o.ID, want, 150, 0)
	n := int64(len(want))
	if got := f.get(j.ID); got.OutputBytes != n || got.GapStart != 0 || got.GapEnd != 0 || got.OutputLost != 0 {
		t.Fatalf("job after append: %d bytes, gap [%d, %d), lost %d", got.OutputBytes, got.GapStart, got.GapEnd, got.OutputLost)
	}
	for _, limit := range []int64{0, 1, 7, n + 100} {
		for off := int64(0); off <= n+2; off++ {
			out := f.read(j.ID, off, limit)
			from := min(off, n)
			exp := want[from:min(from+limit, n)]
			if !bytes.Equal(out.Data, exp) || out.Offset != from || out.Total != n || out.Skipped != 0 {
				t.Fatalf("ReadOutput(%d, %d) = %d bytes at %d (total %d, skipped %d), want %d bytes at %d",
					off, limit, len(out.Data), out.Offset, out.Total, out.Skipped, len(exp), from)
			}
		}
	}
}

// testOutputCap: past the cap a job keeps its exact head and the most recent
// output (at least the rest of the cap, at most a chunk more), with the gap
// recorded, and a read in the gap skips to its end.
func testOutputCap(t *testing.T, f *storeFixture) {
	for _, c := range []struct {
		cap            int64
		size, maxChunk int
	}{{1000, 8000, 60}, {1001, 7000, 300}, {1000, 1001, 1}} {
		rng := rand.New(rand.NewPCG(5, uint64(c.size)))
		j := f.add("h", "s", "o", jobs.StateRunning)
		o := f.add("h", "s2", "o", jobs.StateRunning)
		want := randomBytes(rng, c.size)
		f.appendRandom(rng, j.ID, o.ID, want, c.maxChunk, c.cap)

		head, tail := c.cap/2, c.cap-c.cap/2
		got := f.get(j.ID)
		n := int64(len(want))
		if got.OutputBytes != n || got.GapStart != head || n-got.GapEnd < tail || n-got.GapEnd >= tail+int64(c.maxChunk) {
			t.Fatalf("cap %d, %d bytes: total %d, gap [%d, %d); want total %d, gap from %d, kept tail %d to %d bytes",
				c.cap, n, got.OutputBytes, got.GapStart, got.GapEnd, n, head, tail, tail+int64(c.maxChunk)-1)
		}
		out := f.read(j.ID, 0, n)
		if !bytes.Equal(out.Data, want[:head]) || out.Skipped != 0 || out.Total != n {
			t.Fatalf("cap %d: head read %d bytes, skipped %d; want the %d bytes up to the gap", c.cap, len(out.Data), out.Skipped, head)
		}
		for _, off := range []int64{head, head + 1, got.GapEnd - 1} {
			out = f.read(j.ID, off, n)
			if out.Offset != got.GapEnd || out.Skipped != got.GapEnd-off || !bytes.Equal(out.Data, want[got.GapEnd:]) {
				t.Fatalf("cap %d: read in the gap at %d: %d bytes at %d, skipped %d", c.cap, off, len(out.Data), out.Offset, out.Skipped)
			}
		}
		for off := got.GapEnd; off <= n; off += max(1, (n-got.GapEnd)/40) {
			if out = f.read(j.ID, off, 7); out.Skipped != 0 || !bytes.Equal(out.Data, want[off:min(off+7, n)]) {
				t.Fatalf("cap %d: tail at %d: %q, skipped %d", c.cap, off, out.Data, out.Skipped)
			}
		}
		// The other job in the same batches is capped on its own.
		if g := f.get(o.ID); (g.GapEnd != 0) != (g.OutputBytes > c.cap) {
			t.Errorf("cap %d: other job: %d bytes, gap [%d, %d)", c.cap, g.OutputBytes, g.GapStart, g.GapEnd)
		}
	}
}

// testOutputLost: a Lost chunk advances OutputBytes and OutputLost, later
// output fits after it, resending it changes nothing, and reads pass over
// it with Skipped.
func testOutputLost(t *testing.T, f *storeFixture) {
	j := f.add("h", "s", "o", jobs.StateRunning)
	f.appendOut(0, chunk(j.ID, 0, "head\n"), jobs.Chunk{JobID: j.ID, Offset: 5, Lost: 4}, chunk(j.ID, 9, "tail\n"))
	f.appendOut(0, jobs.Chunk{JobID: j.ID, Offset: 5, Lost: 4}) // resent: already counted
	if got := f.get(j.ID); got.OutputBytes != 14 || got.OutputLost != 4 || got.GapEnd != 0 {
		t.Errorf("OutputBytes %d, OutputLost %d, gap end %d; want 14, 4, 0", got.OutputBytes, got.OutputLost, got.GapEnd)
	}
	for _, c := range []struct {
		off         int64
		data        string
		at, skipped int64
	}{
		{0, "head\n", 0, 0}, // stops at the hole
		{5, "tail\n", 9, 4},
		{8, "tail\n", 9, 1},
		{11, "il\n", 11, 0},
	} {
		if out := f.read(j.ID, c.off, 100); string(out.Data) != c.data || out.Offset != c.at || out.Skipped != c.skipped || out.Total != 14 {
			t.Errorf("read at %d: %q at %d, skipped %d, total %d; want %q at %d, skipped %d, total 14",
				c.off, out.Data, out.Offset, out.Skipped, out.Total, c.data, c.at, c.skipped)
		}
	}
	// A hole at the end: a read in it passes over it to the end.
	f.appendOut(0, jobs.Chunk{JobID: j.ID, Offset: 14, Lost: 6})
	if out := f.read(j.ID, 15, 100); len(out.Data) != 0 || out.Offset != 20 || out.Skipped != 5 || out.Total != 20 {
		t.Errorf("read in the final hole: %+v; want nothing at 20, skipped 5", out)
	}
	if got := f.get(j.ID); got.OutputLost != 10 {
		t.Errorf("OutputLost %d, want 10", got.OutputLost)
	}
}

// testOutputRead: the edges of ReadOutput.
func testOutputRead(t *testing.T, f *storeFixture) {
	j := f.add("h", "s", "o", jobs.StateRunning)
	f.appendOut(0, chunk(j.ID, 0, "abc"))
	if out := f.read(j.ID, 1000, 10); len(out.Data) != 0 || out.Offset != 3 || out.Total != 3 || out.Skipped != 0 {
		t.Errorf("read past the end = %+v; want no data at 3", out)
	}
	if out := f.read(j.ID, 1, 0); len(out.Data) != 0 || out.Offset != 1 || out.Total != 3 {
		t.Errorf("read of 0 bytes = %+v; want no data at 1", out)
	}
	empty := f.add("h", "s", "o", jobs.StateQueued)
	if out := f.read(empty.ID, 0, 10); len(out.Data) != 0 || out.Total != 0 || out.Offset != 0 {
		t.Errorf("job without output: %+v", out)
	}
	_, err := f.st.ReadOutput(f.ctx, j.ID, -1, 10)
	wantErr(t, "negative offset", err, jobs.ErrBadInput, j.ID)
	_, err = f.st.ReadOutput(f.ctx, j.ID, 0, -1)
	wantErr(t, "negative limit", err, jobs.ErrBadInput, j.ID)
	_, err = f.st.ReadOutput(f.ctx, missingID, 0, 10)
	wantErr(t, "unknown job", err, jobs.ErrNotFound, missingID)
}

// testPrune: final jobs that ended before the cut go, with their output;
// the others stay, whatever their times.
func testPrune(t *testing.T, f *storeFixture) {
	cut := at(3_600_000)
	var gone, kept []*jobs.Job
	for _, s := range jobs.States {
		j := f.job("h", "s", "o", s)
		j.EndedAt = cut.Add(-time.Minute)
		f.insert(j)
		f.appendOut(0, chunk(j.ID, 0, "old output of "+j.ID))
		if s.Final() {
			gone = append(gone, j)
		} else {
			kept = append(kept, j) // non-final, however old
		}
		recent := f.job("h", "s", "o", s)
		recent.EndedAt = cut.Add(time.Minute)
		kept = append(kept, f.insert(recent))
	}
	atCut := f.job("h", "s", "o", jobs.StateSucceeded)
	atCut.EndedAt = cut // not before it
	kept = append(kept, f.insert(atCut))

	n, err := f.st.Prune(f.ctx, cut)
	if err != nil || n != int64(len(gone)) {
		t.Errorf("Prune = %d, %v; want %d", n, err, len(gone))
	}
	for _, j := range gone {
		_, err := f.st.Get(f.ctx, j.ID)
		wantErr(t, "Get of a pruned job", err, jobs.ErrNotFound, j.ID)
		_, err = f.st.ReadOutput(f.ctx, j.ID, 0, 100)
		wantErr(t, "ReadOutput of a pruned job", err, jobs.ErrNotFound, j.ID)
	}
	for _, j := range kept {
		f.get(j.ID)
	}
	if out := f.read(kept[0].ID, 0, 100); string(out.Data) != "old output of "+kept[0].ID {
		t.Errorf("output of a kept job: %q", out.Data)
	}
	// The output went with its job: a job stored again under the same id
	// starts empty and stores its own.
	again := gone[0]
	again.State, again.EndedAt = jobs.StateRunning, time.Time{}
	f.insert(again)
	f.appendOut(0, chunk(again.ID, 0, "new"))
	if out := f.read(again.ID, 0, 100); string(out.Data) != "new" || out.Total != 3 {
		t.Errorf("output of a job stored again after Prune: %q (total %d), want %q", out.Data, out.Total, "new")
	}
	if n, err := f.st.Prune(f.ctx, cut); err != nil || n != 0 {
		t.Errorf("second Prune = %d, %v; want 0", n, err)
	}
}
