package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// config is what every subcommand shares: where the history lives and how
// jobs and connections are bounded. Each setting is a flag and an environment
// variable; the flag wins.
type config struct {
	DB           string
	SSHConfig    string
	IdleTimeout  time.Duration
	MaxJobOutput int64
	Retention    time.Duration
	QueuedMaxAge time.Duration
	Lease        time.Duration
	SpoolDir     string
	LogLevel     string
	// AllowLocal are the local folders ssh_upload and ssh_download may use,
	// besides the working directory, for a client that lists no roots.
	AllowLocal []string
	// Devices are alias patterns of network devices (sessions.PoolConfig).
	Devices []string
	// DevicePrintAsIs: RouterOS print commands get no without-paging.
	DevicePrintAsIs bool

	// master is the credential store's master password (see
	// takeMasterPassword); "" leaves the store disabled.
	master string
	// getenv and cwd stand in for the process's environment and working
	// directory (nil, "": its own): a daemon's are those of the front that
	// started it.
	getenv func(string) string
	cwd    string

	raw map[string]*string // flag values before parse
	// cli: a person reads stderr, so only warnings are logged by default.
	cli bool
}

// setting describes one shared flag.
type setting struct {
	name, env, usage string
}

var settings = []setting{
	{"db", "SSHJOBS_DB", "path of the SQLite history (default $XDG_STATE_HOME/sshjobs/sshjobs.db)"},
	{"ssh-config", "SSHJOBS_SSH_CONFIG", "ssh_config file to read instead of ~/.ssh/config (like ssh -F)"},
	{"idle-timeout", "SSHJOBS_IDLE_TIMEOUT", "close connections idle this long (default 10m)"},
	{"max-job-output", "SSHJOBS_MAX_JOB_OUTPUT", "bytes of output stored per job; past it the head and tail are kept (default 64MiB)"},
	{"retention", "SSHJOBS_RETENTION", "delete finished jobs older than this, e.g. 720h (default 30 days; 0, 0s or 0h keeps all)"},
	{"queued-max-age", "SSHJOBS_QUEUED_MAX_AGE", "a queued job adopted after a restart older than this ends lost (default 24h)"},
	{"spool-dir", "SSHJOBS_SPOOL_DIR", "folder on the remote hosts for detached jobs' output (default ${XDG_CACHE_HOME:-~/.cache}/sshjobs)"},
	{"lease", "SSHJOBS_LEASE", fmt.Sprintf("after this process dies, others adopt its jobs once this has passed (default %s)", jobs.DefaultLease)},
	{"log-level", "SSHJOBS_LOG_LEVEL", "debug, info, warn or error; logs go to stderr (default info)"},
	{"devices", "SSHJOBS_DEVICES", "aliases of network devices, as patterns separated by commas (e.g. 'sw-*,rtr-*'): their sessions skip the POSIX shell probe"},
	{"device-without-paging", "SSHJOBS_DEVICE_WITHOUT_PAGING", "add without-paging to RouterOS print commands: on or off (default on)"},
	{"allow-local", "SSHJOBS_ALLOW_LOCAL", "local folders (separated by " + string(os.PathListSeparator) + ") that ssh_upload and ssh_download may use besides the working directory, for clients without MCP roots"},
}

// register adds the shared flags to fs, with their environment defaults.
func (c *config) register(fs *flag.FlagSet) {
	vals := map[string]*string{}
	for _, s := range settings {
		vals[s.name] = fs.String(s.name, os.Getenv(s.env), fmt.Sprintf("%s [$%s]", s.usage, s.env))
	}
	c.raw = vals
}

// parse turns the flag strings into settings, applying the defaults.
func (c *config) parse() error {
	get := func(name string) string { return *c.raw[name] }
	c.DB = get("db")
	if c.DB == "" {
		p, err := sqlstore.DefaultPath()
		if err != nil {
			return err
		}
		c.DB = p
	}
	c.master = takeMasterPassword()
	c.SSHConfig = get("ssh-config")
	c.SpoolDir = get("spool-dir")
	c.LogLevel = get("log-level")
	c.AllowLocal = nil
	for _, d := range filepath.SplitList(get("allow-local")) {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return fmt.Errorf("-allow-local %q: %w", d, err)
		}
		c.AllowLocal = append(c.AllowLocal, abs)
	}
	c.Devices = nil
	for _, pat := range strings.Split(get("devices"), ",") {
		if pat = strings.TrimSpace(pat); pat == "" {
			continue
		}
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("-devices %q: %w", pat, err)
		}
		c.Devices = append(c.Devices, pat)
	}
	switch v := get("device-without-paging"); v {
	case "", "on":
		c.DevicePrintAsIs = false
	case "off":
		c.DevicePrintAsIs = true
	default:
		return fmt.Errorf("-device-without-paging %q: use on or off", v)
	}
	if c.LogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return fmt.Errorf("-log-level %q: use debug, info, warn or error", c.LogLevel)
		}
	}
	var err error
	if c.IdleTimeout, err = duration(get("idle-timeout"), "idle-timeout", sessions.DefaultIdleTimeout); err != nil {
		return err
	}
	// Any zero ("0", "0s", "0h") keeps everything, as it does for the engine.
	if c.Retention, err = duration(get("retention"), "retention", jobs.DefaultRetention); err != nil {
		return err
	}
	if c.QueuedMaxAge, err = duration(get("queued-max-age"), "queued-max-age", jobs.DefaultQueuedMaxAge); err != nil {
		return err
	}
	if c.Lease, err = duration(get("lease"), "lease", jobs.DefaultLease); err != nil {
		return err
	}
	if c.Lease < time.Second {
		return fmt.Errorf("-lease %s: must be at least 1s", c.Lease)
	}
	c.MaxJobOutput = jobs.DefaultMaxJobOutput
	if v := get("max-job-output"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 4096 {
			return fmt.Errorf("-max-job-output %q: want a number of bytes, at least 4096", v)
		}
		c.MaxJobOutput = n
	}
	return nil
}

// takeMasterPassword reads the master password (SSHJOBS_MASTER_PASSWORD, else
// the seeds' MCP_SSH_MASTER_PASSWORD) once, and removes both from this
// process's environment, so that no child process started later inherits it
// (sshconfig.ChildEnv strips them too, for the children ssh_config starts).
//
// A front sends it to the daemon with its hello (clientHello), over the
// socket or, to a daemon it starts, on its stdin: never in the daemon's
// environment, which /proc shows for the process's whole life.
func takeMasterPassword() string {
	v := os.Getenv(credstore.EnvMaster)
	if v == "" {
		v = os.Getenv(credstore.EnvMasterSeed)
	}
	os.Unsetenv(credstore.EnvMaster)
	os.Unsetenv(credstore.EnvMasterSeed)
	return v
}

func duration(v, name string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("-%s %q: want a duration like 90s, 10m or 720h", name, v)
	}
	return d, nil
}

// logger writes to stderr: stdout is the MCP protocol.
func (c *config) logger() *slog.Logger {
	level := slog.LevelInfo
	if c.cli {
		level = slog.LevelWarn
	}
	if c.LogLevel != "" {
		_ = level.UnmarshalText([]byte(c.LogLevel)) // validated in parse
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
