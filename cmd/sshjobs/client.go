package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// A client is whoever the app works for in a call: in the daemon, the front
// of one connection (an MCP client's `sshjobs serve`, an `sshjobs run`), with
// the environment and the per-client settings it sent in its hello; in a
// process that serves itself, that process. Where a job runs and as whom
// (OVRD_* variables, ssh_config, the agent), which secrets it gets, and which
// local folders the file tools may use are the client's. The database's
// settings (lease, retention, output cap, idle timeout) are the app's.

// clientHello is what a front sends the daemon after its hello line: its
// build, its environment and its settings. It holds secrets (the master
// password, OVRD_*_PASS in Env): it crosses only the 0600 socket and stays
// in the daemon's memory.
type clientHello struct {
	Build string `json:"build"`
	// Env is the front's environment (os.Environ), the master password
	// variables removed (Master carries it).
	Env    []string `json:"env"`
	Cwd    string   `json:"cwd"`
	Master string   `json:"master,omitempty"`
	// SSHConfig and AllowLocal are the front's -ssh-config (absolute) and
	// -allow-local.
	SSHConfig  string   `json:"ssh_config,omitempty"`
	AllowLocal []string `json:"allow_local,omitempty"`
	// Shared are the front's database settings: the daemon keeps its own
	// and warns the front about those that differ.
	Shared sharedSettings `json:"shared"`
}

// sharedSettings are the settings one process applies for every client:
// they belong to the database (or the daemon), not to a call.
type sharedSettings struct {
	IdleTimeout  time.Duration `json:"idle_timeout"`
	MaxJobOutput int64         `json:"max_job_output"`
	Retention    time.Duration `json:"retention"`
	QueuedMaxAge time.Duration `json:"queued_max_age"`
	Lease        time.Duration `json:"lease"`
	SpoolDir     string        `json:"spool_dir"`
	LogLevel     string        `json:"log_level"`
	// Devices is the -devices patterns, comma-separated: the pool's.
	Devices string `json:"devices"`
}

func (c *config) shared() sharedSettings {
	return sharedSettings{IdleTimeout: c.IdleTimeout, MaxJobOutput: c.MaxJobOutput, Retention: c.Retention,
		QueuedMaxAge: c.QueuedMaxAge, Lease: c.Lease, SpoolDir: c.SpoolDir, LogLevel: c.LogLevel,
		Devices: strings.Join(c.Devices, ",")}
}

// conflicts lists, for a person, the settings in which the client's differ
// from the daemon's (d): the daemon's apply.
func (s sharedSettings) conflicts(d sharedSettings) []string {
	var out []string
	diff := func(flag string, mine, theirs any) {
		if mine != theirs {
			out = append(out, fmt.Sprintf("-%s %v (the daemon's: %v)", flag, mine, theirs))
		}
	}
	diff("idle-timeout", s.IdleTimeout, d.IdleTimeout)
	diff("max-job-output", s.MaxJobOutput, d.MaxJobOutput)
	diff("retention", s.Retention, d.Retention)
	diff("queued-max-age", s.QueuedMaxAge, d.QueuedMaxAge)
	diff("lease", s.Lease, d.Lease)
	diff("spool-dir", s.SpoolDir, d.SpoolDir)
	diff("log-level", s.LogLevel, d.LogLevel)
	diff("devices", s.Devices, d.Devices)
	return out
}

// newHello is this process's hello for the daemon.
func newHello(cfg config) (clientHello, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return clientHello{}, fmt.Errorf("daemon hello: %w", err)
	}
	h := clientHello{Build: buildID(), Env: os.Environ(), Cwd: cwd, Master: cfg.master,
		SSHConfig: cfg.SSHConfig, AllowLocal: cfg.AllowLocal, Shared: cfg.shared()}
	if h.SSHConfig != "" {
		// The daemon runs elsewhere: a relative path is the front's.
		if h.SSHConfig, err = filepath.Abs(h.SSHConfig); err != nil {
			return clientHello{}, fmt.Errorf("-ssh-config %q: %w", cfg.SSHConfig, err)
		}
	}
	return h, nil
}

// getenv looks a variable up in the hello's environment.
func (h *clientHello) getenv() func(string) string {
	m := make(map[string]string, len(h.Env))
	for _, kv := range h.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

// client is the app as one client sees it (see above).
type client struct {
	cwd        string // "" = this process's, at each call
	allowLocal []string
	creds      *credstore.Store
	resolver   *sshconfig.Resolver
	// scope names what the resolver's answers depend on (Pool's cache).
	scope string
	// dial is the client's agent, secrets and environment for the dials and
	// secret lookups of its calls and jobs; nil for this process's own.
	dial *sshdial.Env
}

// newClient is the client of a hello, over app a.
func (a *app) newClient(h *clientHello) *client {
	getenv := h.getenv()
	creds := a.credsFor(h.Master)
	r := &sshconfig.Resolver{ConfigFile: h.SSHConfig, Env: getenv, Environ: h.Env, Warn: func(msg string) {
		a.log.Warn("resolve: " + msg)
	}}
	return &client{
		cwd:        h.Cwd,
		allowLocal: h.AllowLocal,
		creds:      creds,
		resolver:   r,
		scope:      resolveScope(h),
		dial: &sshdial.Env{
			// As the process's own chain (openApp): the held answers typed on
			// elicitation pages are for their destination, whoever asked.
			Secrets:     sshdial.SecretChain{creds, sshdial.EnvSecrets{Getenv: getenv}, a.held},
			AgentSocket: getenv("SSH_AUTH_SOCK"),
			Environ:     h.Env,
		},
	}
}

// resolveScope hashes what a resolution depends on besides the target: the
// ssh_config file and the variables `ssh -G` and the overrides read. The
// rest of the environment (PWD, SSH_AUTH_SOCK, ...) differs from terminal to
// terminal and would only make every front resolve anew.
func resolveScope(h *clientHello) string {
	sum := sha256.New()
	fmt.Fprintf(sum, "config %q\n", h.SSHConfig)
	env := slices.Clone(h.Env)
	slices.Sort(env)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "OVRD_") || name == "HOME" || name == "USER" || name == "PATH" {
			fmt.Fprintf(sum, "env %q\n", kv)
		}
	}
	return hex.EncodeToString(sum.Sum(nil)[:8])
}

// credsFor is the credential store opened with master, one per master
// password for the app's life: unlocking it costs an Argon2id derivation.
func (a *app) credsFor(master string) *credstore.Store {
	if master == a.master {
		return a.self.creds
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.credStores[master]
	if s == nil {
		s = credstore.New(a.db, master, credParams)
		a.credStores[master] = s
	}
	return s
}

type ctxClientKey struct{}

// withClient is ctx for the work done for cl: its calls find it (a.client),
// and their resolutions and dials use its settings.
func withClient(ctx context.Context, cl *client) context.Context {
	ctx = context.WithValue(ctx, ctxClientKey{}, cl)
	ctx = sessions.WithResolver(ctx, cl.resolver, cl.scope)
	return sshdial.WithEnv(ctx, cl.dial)
}

// client is the client a call in ctx works for: the daemon's front that made
// it, else this process.
func (a *app) client(ctx context.Context) *client {
	if cl, ok := ctx.Value(ctxClientKey{}).(*client); ok {
		return cl
	}
	return a.self
}
