package jobs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Defaults of Config, applied in withDefaults (docs/DESIGN.md, "Limits").
const (
	DefaultLease         = 15 * time.Second
	DefaultHeartbeat     = 2 * time.Second
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultFlushBytes    = 64 << 10
	DefaultMaxJobOutput  = 64 << 20
	DefaultQueuedMaxAge  = 24 * time.Hour
	// DefaultRetention is the retention a server is given by its caller
	// (cmd's -retention); the engine itself prunes nothing unless told.
	DefaultRetention   = 30 * 24 * time.Hour
	DefaultCancelGrace = 3 * time.Second
)

// Config configures an Engine. Zero fields take the defaults in withDefaults,
// except where zero is a real value (Retention).
type Config struct {
	Store    Store
	Executor Executor
	Logger   *slog.Logger

	// Owner names this process in job rows; default host:pid:random.
	Owner string
	// Lease is how long a claim lasts without a heartbeat (default 15s);
	// another process adopts the queued jobs of an owner whose lease
	// expired.
	Lease time.Duration
	// OwnerGrace is how long the own heartbeat of an owner this process
	// cannot check exactly (another machine or pid namespace) may be
	// missing before its running jobs are taken (default 8 leases, 2
	// minutes at the default lease). An owner on this machine is checked by
	// its pid instead: a process that was slow, stopped (Ctrl-Z) or asleep
	// keeps its running jobs (see ownerGone). Clocks of processes on
	// different machines must agree to well within it.
	OwnerGrace time.Duration
	// Heartbeat is how often leases are renewed and cancel requests from other
	// processes picked up (default 2s).
	Heartbeat time.Duration

	// FlushInterval and FlushBytes bound how long output waits in memory
	// before it is committed (defaults 50ms and 64 KiB).
	FlushInterval time.Duration
	FlushBytes    int
	// MaxJobOutput caps the output stored per job (default 64 MiB); past it
	// the head and the most recent output are kept.
	MaxJobOutput int64
	// QueuedMaxAge: an adopted queued job older than this ends lost instead of
	// running (default 24h): a command nobody waits for any more should not
	// start by surprise.
	QueuedMaxAge time.Duration
	// Retention: final jobs older than this are pruned; zero keeps
	// everything (servers pass DefaultRetention unless told otherwise).
	Retention time.Duration
	// CancelGrace is the default time between the signal and the kill of the
	// process group (default 3s).
	CancelGrace time.Duration

	// NoAdopt leaves the jobs of stopped processes alone: for a short-lived
	// process (the CLI) that must not start work it will not see through.
	NoAdopt bool

	// Now is the clock, for tests.
	Now func() time.Time
}

// Limits on what a caller may submit.
const (
	MaxCommandBytes = 256 << 10
	MaxSessionName  = 64
)

func (c *Config) withDefaults() error {
	if c.Store == nil || c.Executor == nil {
		return errors.New("jobs: Config needs a Store and an Executor")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.OwnerGrace <= 0 {
		c.OwnerGrace = 8 * c.Lease
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = DefaultFlushBytes
	}
	if c.MaxJobOutput <= 0 {
		c.MaxJobOutput = DefaultMaxJobOutput
	}
	if c.QueuedMaxAge <= 0 {
		c.QueuedMaxAge = DefaultQueuedMaxAge
	}
	if c.CancelGrace <= 0 {
		c.CancelGrace = DefaultCancelGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Engine runs jobs: it stores them, schedules them one at a time per session,
// streams their output into the store and wakes those who wait on them.
type Engine struct {
	cfg    Config
	store  Store
	exec   Executor
	log    *slog.Logger
	out    *outputWriter
	watch  *watcher
	ctx    context.Context // lives as long as the engine; jobs run on it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// self is this process in the owners table (Heartbeat unset): the
	// hostname and start identity let others check whether it is alive.
	self OwnerInfo

	mu      sync.Mutex // protects the fields below
	workers map[sessionKey]*worker
	running map[string]*task
	owned   map[string]*ownership              // by job id, for each running task
	pending map[string]pending                 // what jobs not yet started get in memory
	endErr  map[string]error                   // jobs that ended but whose end is not recorded, and why
	inline  map[string]context.CancelCauseFunc // RunInline operations running, by job id
	closed  bool
}

type sessionKey struct{ host, session string }

// pending is what a queued job of this engine gets when it starts, besides
// its row: its Spec's Input, Env, Cols and Rows, which are never stored.
type pending struct {
	input      []byte
	env        any
	cols, rows int
}

// New returns an engine that is not yet running: call Start.
func New(cfg Config) (*Engine, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:     cfg,
		store:   cfg.Store,
		exec:    cfg.Executor,
		log:     cfg.Logger,
		watch:   newWatcher(),
		ctx:     ctx,
		cancel:  cancel,
		workers: map[sessionKey]*worker{},
		running: map[string]*task{},
		owned:   map[string]*ownership{},
		pending: map[string]pending{},
		endErr:  map[string]error{},
		inline:  map[string]context.CancelCauseFunc{},
		self: OwnerInfo{ID: cfg.Owner, Hostname: hostname(), PID: os.Getpid(),
			ProcStart: procStart(os.Getpid()), StartedAt: cfg.Now()},
	}
	e.out = newOutputWriter(cfg.Store, cfg.FlushInterval, cfg.FlushBytes, cfg.MaxJobOutput, cfg.Logger, e.watch)
	return e, nil
}

// Owner is the name of this engine in job rows.
func (e *Engine) Owner() string { return e.cfg.Owner }

// Start records this process as an owner, adopts the jobs of processes that
// died, starts their workers, and starts the background loops (output
// writer, heartbeat, pruning).
func (e *Engine) Start(ctx context.Context) error {
	if err := e.store.RegisterOwner(ctx, e.ownerInfo(e.cfg.Now())); err != nil {
		return fmt.Errorf("start engine: %w", err)
	}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.out.run(e.ctx) }()
	if !e.cfg.NoAdopt {
		if err := e.adopt(ctx); err != nil {
			return err
		}
		e.prune(ctx)
	}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.heartbeatLoop() }()
	return nil
}

// Close stops the engine: running jobs are told to stop waiting (their
// executor reports them lost unless they can be re-attached later), queued
// jobs stay queued for the next process to adopt, and pending output is
// committed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	// Without its row this process counts as gone at once: its detached
	// jobs are re-attached as soon as their leases run out.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.RemoveOwner(ctx, e.cfg.Owner); err != nil {
		e.log.Warn("remove owner row", "owner", e.cfg.Owner, "err", err)
	}
	return e.out.err()
}

// Spec is what a caller submits.
type Spec struct {
	Target string // the host as named
	// Host and Destination are the resolved destination's Key and Spec.
	// Without a Destination, Enqueue resolves Target (or Host) through the
	// executor (DestinationResolver).
	Host        string
	Destination string
	Session     string // default "default"
	Command     string
	Kind        Kind // RunInline only; Enqueue runs commands
	Detached    bool
	Sudo        bool
	KillAfter   time.Duration
	// Input is typed into the job's terminal right after it starts. It is
	// kept in memory only: a job adopted by another process starts without it.
	Input []byte
	// Env is what the executor needs from whoever submitted the job besides
	// the row, opaque here (Job.Env): in the daemon, the client's environment
	// and secrets. In memory only, like Input.
	Env any
	// Cols and Rows, when set, give the job a terminal of that size and a
	// real terminal type, for full-screen programs (Job.Cols). Zero: the
	// session's terminal. In memory only, like Input.
	Cols, Rows int
}

// DefaultSession is the session a job runs in when none is named.
const DefaultSession = "default"

func (s *Spec) validate() error {
	if s.Session == "" {
		s.Session = DefaultSession
	}
	switch {
	case strings.TrimSpace(s.Command) == "":
		return fmt.Errorf("%w: command is empty", ErrBadInput)
	case len(s.Command) > MaxCommandBytes:
		return fmt.Errorf("%w: command is %d bytes; the limit is %d: copy a long script to the host (scp, or a heredoc job) and run it from there", ErrBadInput, len(s.Command), MaxCommandBytes)
	case strings.ContainsRune(s.Command, 0):
		return fmt.Errorf("%w: command contains a NUL byte", ErrBadInput)
	case !utf8.ValidString(s.Command):
		return fmt.Errorf("%w: command is not valid UTF-8", ErrBadInput)
	case s.Host == "" && s.Target == "":
		return fmt.Errorf("%w: host is required", ErrBadInput)
	case s.KillAfter < 0:
		return fmt.Errorf("%w: kill_after must not be negative", ErrBadInput)
	case s.Detached && (s.Cols != 0 || s.Rows != 0):
		return fmt.Errorf("%w: a detached job runs without a terminal: cols and rows do not apply", ErrBadInput)
	}
	if err := validTerm(s.Cols, s.Rows); err != nil {
		return err
	}
	if len(s.Session) > MaxSessionName {
		return fmt.Errorf("%w: session name is longer than %d characters", ErrBadInput, MaxSessionName)
	}
	for _, r := range s.Session {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("%w: session name %q may only hold letters, digits, '-', '_' and '.'", ErrBadInput, s.Session)
		}
	}
	if s.Target == "" {
		s.Target = s.Host
	}
	return nil
}

// newJob validates s, resolves its destination once, and returns the job
// row to insert, in state, owned by this engine.
func (e *Engine) newJob(ctx context.Context, s Spec, state State) (*Job, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := e.resolve(ctx, &s); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new job id: %w", err)
	}
	now := e.cfg.Now()
	j := &Job{
		ID: id.String(), Host: s.Host, Target: s.Target, Destination: s.Destination, Session: s.Session,
		Command: s.Command, Kind: s.Kind, Detached: s.Detached, Sudo: s.Sudo, KillAfter: s.KillAfter, Env: s.Env,
		Cols: s.Cols, Rows: s.Rows, State: state, Owner: e.cfg.Owner, LeaseUntil: now.Add(e.cfg.Lease),
		CreatedAt: now,
	}
	if state == StateRunning {
		j.StartedAt = now
	}
	return j, nil
}

// Enqueue stores a new queued job and wakes its session's worker. From its
// return on, the job's id answers in this process and in any later one.
func (e *Engine) Enqueue(ctx context.Context, s Spec) (*Job, error) {
	j, err := e.newJob(ctx, s, StateQueued)
	if err != nil {
		return nil, err
	}
	if len(s.Input) > 0 || s.Env != nil || s.Cols != 0 || s.Rows != 0 {
		e.mu.Lock()
		e.pending[j.ID] = pending{input: s.Input, env: s.Env, cols: s.Cols, rows: s.Rows}
		e.mu.Unlock()
	}
	k := sessionKey{j.Host, j.Session}
	// A shell job for a session with no worker here is stored claimed when
	// nothing is ahead of it, and given to the worker it starts: one commit
	// where the worker's claim was a second, and no wake-up between.
	w := e.startingWorker(k, !j.Detached)
	if w != nil {
		err = e.store.InsertClaimed(ctx, j)
	} else {
		err = e.store.Insert(ctx, j)
	}
	if err != nil {
		e.mu.Lock()
		delete(e.pending, j.ID)
		e.mu.Unlock()
	}
	switch {
	case w != nil && err == nil && j.State == StateRunning:
		first := *j // the worker's own copy: j is the caller's
		e.startWorker(k, w, &first)
	case w != nil:
		e.startWorker(k, w, nil) // it claims whatever is queued
	default:
		e.kick(k)
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue job %s: %w", j.ID, err)
	}
	return j, nil
}

// resolveTimeout bounds resolving a target (it may run `ssh -G`), so that a
// stuck resolver cannot hang a call.
const resolveTimeout = 10 * time.Second

// resolve fills in s.Host and s.Destination from s.Target (or s.Host, as
// named by a caller that did not resolve it), unless the caller gave the
// destination. A target that does not resolve is bad input.
func (e *Engine) resolve(ctx context.Context, s *Spec) error {
	if s.Target == "" {
		s.Target = s.Host
	}
	r, ok := e.exec.(DestinationResolver)
	switch {
	case s.Destination != "":
		return nil // resolved by the caller
	case !ok:
		s.Host = cmp.Or(s.Host, s.Target)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	d, err := r.ResolveDestination(ctx, s.Target)
	if err != nil {
		return fmt.Errorf("%w: host %q: %w", ErrBadInput, s.Target, err)
	}
	s.Host, s.Destination = d.Key, d.Spec
	return nil
}

// Running is how many jobs this engine runs (or follows) right now.
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// Get returns a job as stored.
func (e *Engine) Get(ctx context.Context, id string) (*Job, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	return e.store.Get(ctx, id)
}

// List returns jobs newest first.
func (e *Engine) List(ctx context.Context, f ListFilter) ([]*Job, error) {
	return e.store.List(ctx, f)
}

// Read returns up to limit bytes of a job's output from offset.
func (e *Engine) Read(ctx context.Context, id string, offset, limit int64) (Output, error) {
	if err := validID(id); err != nil {
		return Output{}, err
	}
	if offset < 0 || limit < 0 {
		return Output{}, fmt.Errorf("%w: offset and length must not be negative (got %d, %d)", ErrBadInput, offset, limit)
	}
	return e.store.ReadOutput(ctx, id, offset, limit)
}

// validID refuses what cannot be a job id before it reaches the store, so
// that the error says what is wrong with it.
func validID(id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return fmt.Errorf("%w: job id %q is not a job id (a UUID like 0190c5e2-...)", ErrNotFound, id)
	}
	return nil
}

// prune deletes jobs past the retention period, and the rows of owners gone
// for longer than the grace that own no job any more.
func (e *Engine) prune(ctx context.Context) {
	if n, err := e.store.PruneOwners(ctx, e.cfg.Now().Add(-e.cfg.OwnerGrace)); err != nil {
		e.log.Warn("prune owners", "err", err)
	} else if n > 0 {
		e.log.Debug("pruned owners", "count", n)
	}
	if e.cfg.Retention <= 0 {
		return
	}
	n, err := e.store.Prune(ctx, e.cfg.Now().Add(-e.cfg.Retention))
	if err != nil {
		e.log.Warn("prune old jobs", "err", err)
	} else if n > 0 {
		e.log.Info("pruned old jobs", "count", n, "retention", e.cfg.Retention)
	}
}
