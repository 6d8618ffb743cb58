package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// app is sshjobs wired together: the store, the SSH pool, and the engine
// that runs jobs through the pool into the store.
type app struct {
	log  *slog.Logger
	db   *sqlstore.DB
	pool *sessions.Pool
	exec *sessions.Executor
	eng  *jobs.Engine
	// pages are the one-time secret pages of URL elicitations in progress.
	pages pageSet
	// held are the secrets typed on those pages, for a while (elicit_held.go).
	held *heldSecrets
	// secrets is the pool's chain of sources: store, environment, held.
	secrets sshdial.Secrets
	// self is this process as a client: its own environment and settings
	// (its credential store, disabled but not nil without a master password;
	// the pool's resolver, also for naming hosts outside a job), for the
	// calls of a process that serves itself and for the jobs that came with
	// no client (adopted ones).
	self *client
	// master is the master password creds was opened with.
	master string

	// stopRelease stops releaseMemory (memory.go); released is closed when
	// it has returned.
	stopRelease context.CancelFunc
	released    chan struct{}

	mu sync.Mutex // protects the fields below
	// credStores are the credential stores of the clients' other master
	// passwords (credsFor).
	credStores map[string]*credstore.Store
}

// credParams are the Argon2id parameters of a new credential store; tests
// lower them (stored databases keep their own).
var credParams = credstore.DefaultParams

// mode says how much of the engine a command starts.
type mode int

const (
	// modeServe runs jobs and adopts those of stopped processes.
	modeServe mode = iota
	// modeRun runs the jobs it submits, and leaves other processes' jobs alone.
	modeRun
	// modeRead only reads, waits on and cancels jobs: nothing runs here.
	modeRead
)

func openApp(ctx context.Context, cfg config, m mode) (*app, error) {
	log := cfg.logger()
	db, err := sqlstore.Open(ctx, cfg.DB, sqlstore.Options{})
	if err != nil {
		return nil, err
	}
	getenv := cfg.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	resolver := &sshconfig.Resolver{ConfigFile: cfg.SSHConfig, Env: getenv}
	creds := credstore.New(db, cfg.master, credParams)
	// The store first, then the environment, then what a person typed on
	// an elicitation page; a tool call's own parameters come last
	// (sshdial.WithSecrets), as the last resort. A daemon's client brings
	// its own store and environment (newClient).
	held := &heldSecrets{}
	secrets := sshdial.SecretChain{creds, sshdial.EnvSecrets{Getenv: getenv}, held}
	pool := sessions.NewPool(sessions.PoolConfig{
		Dialer:          &sshdial.Dialer{Resolver: resolver, Secrets: secrets, Logger: log},
		IdleTimeout:     cfg.IdleTimeout,
		Logger:          log,
		Devices:         cfg.Devices,
		DevicePrintAsIs: cfg.DevicePrintAsIs,
	})
	exec := sessions.NewExecutor(pool, sessions.ExecutorConfig{SpoolDir: cfg.SpoolDir})
	eng, err := jobs.New(jobs.Config{
		Store:        db,
		Executor:     exec,
		Logger:       log,
		MaxJobOutput: cfg.MaxJobOutput,
		Retention:    cfg.Retention,
		QueuedMaxAge: cfg.QueuedMaxAge,
		Lease:        cfg.Lease,
		Heartbeat:    min(2*time.Second, cfg.Lease/4),
		NoAdopt:      m != modeServe,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &app{log: log, db: db, pool: pool, exec: exec, eng: eng, held: held, secrets: secrets,
		master: cfg.master, credStores: map[string]*credstore.Store{}}
	a.self = &client{cwd: cfg.cwd, allowLocal: cfg.AllowLocal, creds: creds, resolver: resolver}
	if m != modeRead {
		if err := eng.Start(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	if m == modeServe {
		var rctx context.Context
		rctx, a.stopRelease = context.WithCancel(context.Background())
		a.released = make(chan struct{})
		go func() {
			defer close(a.released)
			releaseMemory(rctx)
		}()
	}
	return a, nil
}

// Close stops the engine (running shell jobs end lost, queued ones wait for
// the next process), closes the connections and the database.
func (a *app) Close() error {
	if a.stopRelease != nil {
		a.stopRelease()
		<-a.released
	}
	err := a.eng.Close()
	a.pool.Close()
	return errors.Join(err, a.db.Close())
}
