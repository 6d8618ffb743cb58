// Package jobs is the domain of sshjobs: a command is a durable Job whose output
// is streamed into a Store as it arrives, run by an Executor that holds the
// remote shells. The Engine schedules jobs (one at a time per session, sessions
// in parallel), batches their output into the store, wakes waiters in memory,
// and adopts the jobs of a process that died.
package jobs

import (
	"context"
	"errors"
	"slices"
	"time"
)

// State is where a job is in its life. The states and their meaning are part of
// the public tool contract (docs/TOOLS.md); the allowed moves are in transitions.
type State string

const (
	// StateQueued: accepted and stored; waiting for its session's shell, which
	// runs one job at a time.
	StateQueued State = "queued"
	// StateRunning: claimed by a worker and started (or being started) on the
	// remote host.
	StateRunning State = "running"
	// StateWaitingInput: running, and its terminal shows a prompt with no output
	// since. It returns to running when output resumes.
	StateWaitingInput State = "waiting_input"
	// StateSucceeded: exited 0. Final.
	StateSucceeded State = "succeeded"
	// StateFailed: exited non-zero or was killed by a signal. Final.
	StateFailed State = "failed"
	// StateCancelled: stopped by a cancel request or kill_after. Final.
	StateCancelled State = "cancelled"
	// StateLost: it was running when its connection or its server died and could
	// not be re-attached; the output stored until then is kept. Final.
	StateLost State = "lost"
	// StateError: never started (connection, authentication, host key or
	// destination failure), or ended by an internal error in sshjobs (a
	// panic in the executor, whose stack goes to the log). Final.
	StateError State = "error"
)

// States lists every state, in the order of the table in docs/TOOLS.md.
var States = []State{StateQueued, StateRunning, StateWaitingInput, StateSucceeded,
	StateFailed, StateCancelled, StateLost, StateError}

// Final reports whether s is a state a job never leaves.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCancelled, StateLost, StateError:
		return true
	}
	return false
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return slices.Contains(States, s) }

// transitions maps a state to the states a job may move to from it. Final
// states have no entry: nothing leaves them, with one exception outside this
// table: Store.End lets the owner that ran a job replace a lost end that
// another process recorded while it took the owner for gone.
var transitions = map[State][]State{
	StateQueued:       {StateRunning, StateCancelled, StateLost, StateError},
	StateRunning:      {StateWaitingInput, StateSucceeded, StateFailed, StateCancelled, StateLost, StateError},
	StateWaitingInput: {StateRunning, StateSucceeded, StateFailed, StateCancelled, StateLost, StateError},
}

// CanTransition reports whether a job in state from may move to state to.
func CanTransition(from, to State) bool { return slices.Contains(transitions[from], to) }

// AllowedFrom lists the states from which a job may move to state to; a Store
// uses it to make a transition one atomic compare-and-set.
func AllowedFrom(to State) []State {
	var from []State
	for _, s := range States {
		if CanTransition(s, to) {
			from = append(from, s)
		}
	}
	return from
}

// Kind is what a job is: a shell command, or a file operation that ran
// inline (RunInline) and is recorded for the history.
type Kind string

const (
	KindCommand Kind = "command"
	KindFile    Kind = "file"
)

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k == KindCommand || k == KindFile }

// PromptKind says what a job's terminal is asking for.
type PromptKind string

const (
	PromptPassword PromptKind = "password"
	PromptConfirm  PromptKind = "confirm"
	PromptPager    PromptKind = "pager"
	PromptPressKey PromptKind = "press_key"
	PromptQuestion PromptKind = "question"
)

// Prompt is the last line of a job's terminal when it waits for input.
type Prompt struct {
	Text string     `json:"text"`
	Kind PromptKind `json:"kind"`
}

// Job is one command, from the moment it is accepted. Times are zero when not
// yet reached.
type Job struct {
	ID     string // UUIDv7: ids sort by creation time
	Host   string // the destination's key (Destination.Key), e.g. user@host:port
	Target string // the host as the caller named it (alias, user@host, ...)
	// Destination is what the executor resolved Target to when the job was
	// accepted (Destination.Spec, opaque here): the job runs there or not at
	// all. Empty for jobs accepted before destinations were stored.
	Destination string
	Session     string // name of the persistent shell on Host
	// Command is the shell command; for a file operation, its parameters
	// (never the content).
	Command string
	Kind    Kind // KindCommand ("" in a Job built by hand means the same)

	Detached bool // runs detached from the connection (survives restarts)
	Sudo     bool
	// KillAfter cancels the job once it has run this long; zero means never.
	KillAfter time.Duration
	// Cols and Rows are the terminal the job asked for (Spec.Cols, Rows);
	// zero: the session's. Kept in memory only, like Spec.Input: a job read
	// from the store, or adopted by another process, has zero.
	Cols, Rows int

	State    State
	ExitCode *int   // nil until exited, and when killed by a signal
	Signal   string // the signal that killed it, e.g. "KILL"
	Error    string // why it ended error/lost/cancelled, or a note
	// ErrorKind classifies an error end for a caller that acts on it.
	ErrorKind ErrorKind
	Prompt    *Prompt
	Cwd       string // the session's working directory after the command
	// NewShell: the session had run jobs before, and this one ran in a new
	// shell: its cwd and environment were reset. The session's first job
	// does not say so.
	NewShell bool

	// Owner is the process that runs the job, and LeaseUntil when its claim
	// expires unless renewed. Another process adopts a queued job whose lease
	// expired, and a running one only once its owner is known to be gone
	// (OwnerInfo). A running job ended lost that way keeps its owner.
	Owner      string
	LeaseUntil time.Time
	// CancelRequested is set by any process asking the owner to cancel.
	CancelRequested bool
	// Attach is what the executor needs to re-attach a detached job after a
	// restart (remote pid, spool folder), opaque to the engine.
	Attach string

	// OutputBytes is the total output the job produced, including any part
	// dropped by the per-job cap; offsets count from the first byte.
	OutputBytes int64
	// GapStart and GapEnd delimit output dropped by the cap: bytes in
	// [GapStart, GapEnd) are not stored. Both zero when nothing was dropped.
	GapStart, GapEnd int64
	// OutputLost counts bytes that could not be stored (the database was
	// full or locked past every retry): holes in the output that reads pass
	// over. Zero when everything produced was stored, apart from the cap's gap.
	OutputLost int64

	CreatedAt time.Time
	StartedAt time.Time
	EndedAt   time.Time

	// Env is the Spec's Env, for the executor, on the job this engine runs
	// as submitted here; nil on a job read from the store or adopted. Never
	// stored.
	Env any
}

// Duration is how long the job ran, or has run so far at now.
func (j *Job) Duration(now time.Time) time.Duration {
	switch {
	case j.StartedAt.IsZero():
		return 0
	case j.EndedAt.IsZero():
		return now.Sub(j.StartedAt)
	}
	return j.EndedAt.Sub(j.StartedAt)
}

// Chunk is a piece of a job's output, appended at Offset. A chunk with Lost
// set and no Data records that Lost bytes at Offset could not be stored, so
// that the output after them still fits.
type Chunk struct {
	JobID  string
	Offset int64
	Data   []byte
	Lost   int64
	At     time.Time
}

// Output is a slice of a job's stored output.
type Output struct {
	Data   []byte
	Offset int64 // where Data starts; past the gap if the read began inside it
	// Skipped is how many bytes at the requested offset were not stored (the
	// read began inside the gap left by the output cap, or in output that
	// could not be stored).
	Skipped int64
	Total   int64 // the job's OutputBytes
}

// Update is the change a transition makes besides the state. Nil fields are
// left alone.
type Update struct {
	ExitCode    *int
	Signal      *string
	Error       *string
	ErrorKind   *ErrorKind
	Prompt      *Prompt // with ClearPrompt false and Prompt nil: unchanged
	ClearPrompt bool
	Cwd         *string
	NewShell    *bool
	Attach      *string
	Owner       *string
	LeaseUntil  *time.Time
	StartedAt   *time.Time
	EndedAt     *time.Time
}

// List limits: how many jobs List returns when ListFilter.Limit is not set,
// and the most it ever returns. They are the tool contract's (docs/TOOLS.md,
// ssh_jobs), and this is their only home: the store, the tool's schema and
// the CLI's flag take them from here.
const (
	DefaultListLimit = 20
	MaxListLimit     = 200
)

// ListFilter selects jobs for List. Zero fields match everything, except
// Limit (see EffectiveLimit).
type ListFilter struct {
	Host     string // resolved host or the target as named
	Session  string
	States   []State   // any of these
	Contains string    // substring of the command, taken literally
	Since    time.Time // created at or after
	Limit    int
}

// EffectiveLimit is how many jobs List returns at most for f: Limit,
// DefaultListLimit when Limit is zero or negative, and never more than
// MaxListLimit. A Store applies it; callers that must refuse a limit out of
// range (the tool) check MaxListLimit themselves.
func (f ListFilter) EffectiveLimit() int {
	if f.Limit <= 0 {
		return DefaultListLimit
	}
	return min(f.Limit, MaxListLimit)
}

// Store keeps jobs and their output durably. Every method is safe for
// concurrent use, also by several processes sharing one database. The prose
// below is the contract a driver passes: jobstest.ExerciseStore asserts it.
type Store interface {
	// Insert stores a new job (normally queued); an ID already stored is
	// refused.
	Insert(ctx context.Context, j *Job) error
	// InsertClaimed stores a new job of owner j.Owner as Claim would leave
	// it (running, StartedAt j.CreatedAt), in the same statement that
	// checks that Claim would take it: no job of its session and owner is
	// queued, and none blocks the session (as in Claim). Else it stores it
	// queued. j.State and j.StartedAt are updated to match the row.
	InsertClaimed(ctx context.Context, j *Job) error
	// Get returns the job, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Job, error)
	// List returns the jobs f selects, newest first (by CreatedAt), at most
	// f.EffectiveLimit() of them.
	List(ctx context.Context, f ListFilter) ([]*Job, error)
	// Claim atomically moves the oldest queued job of (host, session) owned by
	// owner to running, with owner, the lease leaseUntil and StartedAt now,
	// unless a non-detached job of that session and owner is running or
	// waiting for input (a session is a shell of its owner's process). It
	// returns nil and no error when there is none. Concurrent claims never
	// return the same job, nor two shell jobs of one session.
	Claim(ctx context.Context, owner, host, session string, now, leaseUntil time.Time) (*Job, error)
	// Transition moves a job to state to, applying u, if the move is allowed
	// from its current state (checked atomically); else an error wrapping
	// ErrTransition, or ErrNotFound.
	Transition(ctx context.Context, id string, to State, u Update) (*Job, error)
	// Requeue gives a job that owner claimed back to the queue (running to
	// queued, StartedAt cleared), for an engine that stops before it started
	// it: the next process runs it. A job that is not running for owner
	// refuses with an error wrapping ErrTransition, or ErrNotFound.
	Requeue(ctx context.Context, id, owner string) error
	// CancelQueued moves a queued job to cancelled, applying u, checked
	// atomically: a job claimed meanwhile (running) or final refuses with an
	// error wrapping ErrTransition, and is left as it is; ErrNotFound.
	CancelQueued(ctx context.Context, id string, u Update) (*Job, error)
	// Set applies u without changing the state (cwd, attach data, ...). It
	// fails with ErrTransition on a final job.
	Set(ctx context.Context, id string, u Update) error
	// RequestCancel marks a non-final job for cancellation by its owner; a
	// final job refuses with ErrTransition.
	RequestCancel(ctx context.Context, id string) (*Job, error)
	// End records how a job that owner ran ended: it moves the job to the
	// final state to, applying u, if owner owns it and either its state
	// allows the move or it is lost and to is not: a lost end recorded by a
	// process that took owner for gone (the job keeps its owner then) gives
	// way to the owner's real end. Else an error wrapping ErrTransition
	// (ErrNotOwner too when another process owns it), or ErrNotFound.
	End(ctx context.Context, id, owner string, to State, u Update) (*Job, error)

	// RegisterOwner records a process that runs jobs (or refreshes its row).
	RegisterOwner(ctx context.Context, o OwnerInfo) error
	// RemoveOwner deletes the row of an owner that stops cleanly.
	RemoveOwner(ctx context.Context, id string) error
	// Heartbeat records o.Heartbeat as the owner's heartbeat (recreating its
	// row if it was removed), extends the lease of every non-final job of
	// o.ID, and says which those are and which have a cancel request.
	Heartbeat(ctx context.Context, o OwnerInfo, leaseUntil time.Time) (Beat, error)
	// ExpiredOwners lists the owners of running (or waiting_input) jobs whose
	// lease expired before now, with their rows; an owner with no row has
	// only its ID set.
	ExpiredOwners(ctx context.Context, now time.Time) ([]OwnerInfo, error)
	// Adopt takes over, for owner, the queued jobs whose lease expired or
	// whose owner has no row (it stopped cleanly: RemoveOwner), and
	// the running jobs of o.Gone that o says may be re-attached; it returns
	// the jobs taken, and the other running jobs of o.Gone (orphans, not
	// taken: their owner is kept), both oldest first. A gone owner that
	// beat since it was judged is alive after all: its jobs are left alone.
	// All of it is one transaction.
	Adopt(ctx context.Context, owner string, o AdoptOptions) (taken, orphans []*Job, err error)
	// QueuedSessions lists the (host, session) pairs that have queued jobs of
	// owner, so that a restarted engine starts their workers.
	QueuedSessions(ctx context.Context, owner string) ([][2]string, error)

	// AppendOutput stores chunks of any jobs in one transaction (a failed
	// batch stores nothing) and advances each job's OutputBytes; a Lost chunk
	// advances it and OutputLost without storing bytes. A chunk starts at or
	// before the job's OutputBytes: bytes already stored are skipped, so that
	// resending a batch that may have been committed is harmless; a chunk
	// that would leave a hole, or a negative offset, fails with ErrBadInput.
	// Past maxJobOutput bytes stored for a job (0: no cap), it keeps the first
	// half exactly and the most recent output (at least the other half, and
	// at most one chunk more) and records the gap (GapStart, GapEnd).
	// It keeps no reference to a chunk's Data once it returns: the engine
	// reuses the buffers.
	AppendOutput(ctx context.Context, chunks []Chunk, maxJobOutput int64) error
	// ReadOutput returns up to limit bytes of a job's output from offset,
	// contiguous: a read stops at the cap's gap or at a Lost hole, and one
	// that begins inside either starts past it (Output.Skipped). An offset
	// past the end reads nothing at the end; a negative offset or limit fails
	// with ErrBadInput.
	ReadOutput(ctx context.Context, id string, offset, limit int64) (Output, error)

	// Prune deletes final jobs that ended before before, with their output.
	Prune(ctx context.Context, before time.Time) (int64, error)
	// PruneOwners deletes the rows of owners whose last heartbeat is before
	// before and that own no non-final job.
	PruneOwners(ctx context.Context, before time.Time) (int64, error)
	Close() error
}

// OwnerInfo is a process that runs jobs, with its own heartbeat: a job is
// taken from its owner only when the owner is known to be gone.
type OwnerInfo struct {
	ID       string // the Job.Owner value
	Hostname string
	PID      int
	// ProcStart tells this process from a later one with the same pid
	// (Linux: boot id and start time); empty where it cannot be read.
	ProcStart string
	StartedAt time.Time
	Heartbeat time.Time
}

// Beat is what an owner learns from its heartbeat.
type Beat struct {
	Active []string // its non-final jobs, sorted
	Cancel []string // those with a pending cancel request, sorted
}

// AdoptOptions says which jobs of other owners Adopt takes.
type AdoptOptions struct {
	Now        time.Time // leases that ended before Now are expired
	LeaseUntil time.Time // the lease of the jobs taken
	// Gone lists owners known to be gone, with the heartbeat they were
	// judged on (zero: no row); only their running jobs are taken (or
	// returned as orphans), and only if they have not beaten since.
	Gone []OwnerInfo
	// Reattach takes the running detached jobs of gone owners; without it
	// they are orphans, like the gone owners' shell jobs.
	Reattach bool
}

// Errors a Store or the Engine returns, wrapped with the operation and ids.
var (
	ErrNotFound   = errors.New("no such job")
	ErrTransition = errors.New("state transition not allowed")
	ErrBadInput   = errors.New("invalid input")
	// ErrNotOwner: the job was taken over by another process.
	ErrNotOwner = errors.New("job is run by another process")
)

// ErrorKind says why a job ended error, so that a caller (a model) can act
// on it without parsing the message.
type ErrorKind string

const (
	ErrorAuth     ErrorKind = "auth"     // the host refused every way we could log in
	ErrorHostKey  ErrorKind = "host_key" // the host key is unknown (StrictHostKeyChecking yes), changed or revoked
	ErrorConnect  ErrorKind = "connect"  // the host could not be reached, or the handshake failed
	ErrorInternal ErrorKind = "internal" // a bug in sshjobs (the stack is in the log)
)

// Result is how a job run ended, as the Executor saw it.
type Result struct {
	State     State // succeeded, failed, cancelled, lost or error
	ExitCode  *int
	Signal    string
	Error     string
	ErrorKind ErrorKind
	Cwd       string
	// AfterEnd, when set, is cleanup that must wait until the job's end is
	// recorded: a detached job's spool holds its exit code until then. The
	// engine runs it once the end is stored, before it wakes the job's
	// waiters; not at all if the end could not be stored.
	AfterEnd func(ctx context.Context)
}

// Executor runs jobs on remote hosts. The sessions package implements it over
// SSH; tests use an in-memory one.
type Executor interface {
	// Run runs j in its session's shell and blocks until it ends. Output goes
	// to t, and t delivers input and cancel requests. ctx ends only when the
	// engine shuts down; the executor then stops waiting and reports lost.
	//
	// A detached job (j.Detached) holds its session until Run calls
	// t.Started; the session's next job runs from then on. When ctx ends,
	// Run may return a non-final state for it: the job goes on remotely and
	// the next process re-attaches it (Reattacher).
	Run(ctx context.Context, j *Job, t Task) Result
}

// Destination is where a job runs, as resolved once, when it is accepted.
type Destination struct {
	// Key names the destination: Job.Host, and the key of its sessions'
	// queues. Two targets that land in the same place share a key; two that
	// do not, never do.
	Key string
	// Spec is everything the executor needs to run there, stored on the row
	// as Job.Destination.
	Spec string
}

// DestinationResolver is implemented by an Executor that resolves the host a
// caller named; the Engine calls it once per job, in Enqueue.
type DestinationResolver interface {
	ResolveDestination(ctx context.Context, target string) (Destination, error)
}

// Reattacher is implemented by an Executor that can resume a detached job after
// its connection or its server died.
type Reattacher interface {
	Reattach(ctx context.Context, j *Job, t Task) Result
}

// Task is the engine's side of a running job, handed to the Executor.
type Task interface {
	// Write appends output. It never blocks for long and never fails for the
	// executor: the engine owns storage errors.
	Write(p []byte) (int, error)
	// Prompt reports that the job waits for input (nil: output resumed).
	Prompt(p *Prompt)
	// Started records what the executor learned once the job began.
	Started(s Start)
	// Controls delivers input and cancel requests for the job.
	Controls() <-chan Control
	// Flush returns once all output written so far is stored: an executor
	// that deletes the remote copy of the output (a detached job's spool)
	// calls it first.
	Flush(ctx context.Context) error
}

// Start is what an executor reports when a job begins.
type Start struct {
	NewShell bool   // the session's shell was (re)started for this job
	Attach   string // re-attach data for a detached job
}

// Control is a request to a running job: input to its terminal, or a signal.
type Control struct {
	Input  []byte
	Secret bool // Input must never be stored, logged or echoed back
	// Signal is "INT", "TERM" or "KILL"; the executor kills the job's
	// process group if it is still alive after Grace (zero: at once).
	Signal string
	Grace  time.Duration
	// Done, if not nil, receives the error of delivering the control.
	Done chan<- error
}
