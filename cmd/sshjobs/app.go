package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
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
	// creds is the encrypted credential store; disabled (not nil) without a
	// master password.
	creds *credstore.Store
	// resolver is the pool's, for naming hosts outside a job (secret set).
	resolver *sshconfig.Resolver
	// pages are the one-time secret pages of URL elicitations in progress.
	pages pageSet
	// held are the secrets typed on those pages, for a while (elicit_held.go).
	held *heldSecrets
	// secrets is the pool's chain of sources: store, environment, held.
	secrets sshdial.Secrets
	// allowLocal: the -allow-local folders (local.go).
	allowLocal []string
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
	resolver := &sshconfig.Resolver{ConfigFile: cfg.SSHConfig, Env: os.Getenv}
	creds := credstore.New(db, cfg.master, credParams)
	// The store first, then the environment, then what a person typed on
	// an elicitation page; a tool call's own parameters come last
	// (sshdial.WithSecrets), as the last resort.
	held := &heldSecrets{}
	secrets := sshdial.SecretChain{creds, sshdial.EnvSecrets{Getenv: os.Getenv}, held}
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
	a := &app{log: log, db: db, pool: pool, exec: exec, eng: eng, creds: creds, held: held, secrets: secrets, resolver: resolver, allowLocal: cfg.AllowLocal}
	if m != modeRead {
		if err := eng.Start(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// Close stops the engine (running shell jobs end lost, queued ones wait for
// the next process), closes the connections and the database.
func (a *app) Close() error {
	err := a.eng.Close()
	a.pool.Close()
	return errors.Join(err, a.db.Close())
}
