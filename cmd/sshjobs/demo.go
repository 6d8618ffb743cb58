package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sshjobs/sshjobs/internal/sshserver"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
)

// demoAlias is the ssh_config Host the demo writes for its server.
const demoAlias = "sshjobs-demo"

// demoEnv is set in every process the demo's server starts (to the demo's
// folder), so that a person, or a test, can tell them apart.
const demoEnv = "SSHJOBS_DEMO"

// cmdDemo shows sshjobs at work on a machine with no sshd: an SSH server of
// its own on 127.0.0.1, serving the current user's login shell to a one-time
// key, and the real engine on a temporary database, step by step. With
// -serve it only keeps the server up for trying the tools by hand.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "keep the demo's database (its path is printed at the end)")
	serve := fs.Bool("serve", false, "only start the SSH server, print its ssh_config entry and an MCP client config, and keep it up until Ctrl-C")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error; logs go to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sshjobs demo [--keep] [--serve]\n\n"+
			"Runs sshjobs against an SSH server of its own on 127.0.0.1 (no sshd needed):\n"+
			"your login shell, a one-time key, a throwaway database. Everything is removed\n"+
			"at the end.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"demo takes no arguments"}
	}
	start := time.Now()
	d, err := startDemoHost()
	if err != nil {
		return err
	}
	// Cleanup runs however the demo ends (an error, Ctrl-C): the server and
	// its sessions first, then the files.
	defer d.close(*keep && !*serve, stdout)

	cfg := config{
		DB: filepath.Join(d.dir, "sshjobs.db"), SSHConfig: d.sshConfig, LogLevel: *logLevel, cli: true,
		IdleTimeout: sessions.DefaultIdleTimeout, MaxJobOutput: jobs.DefaultMaxJobOutput,
		Retention: jobs.DefaultRetention, QueuedMaxAge: jobs.DefaultQueuedMaxAge,
		// A short lease, so that the restarted engine re-attaches the
		// detached job within a second instead of the default 15.
		Lease: time.Second,
		// Detached jobs' spools go in the demo's folder, not ~/.cache.
		SpoolDir: filepath.Join(d.dir, "spool"),
	}
	if *serve {
		return d.serve(ctx, cfg, stdout)
	}
	p := &demoPrinter{w: stdout}
	p.f("sshjobs demo: an SSH server of its own on %s, no sshd needed.\n", d.addr)
	p.f("  serving   %s, with your login shell %s in a PTY%s\n", d.user, d.shell, d.shellNote)
	p.f("            (HOME is %s: your start-up files do not run, nothing is written in your home)\n", d.home)
	p.f("  host key  %s, recorded in %s and verified on connect\n", d.hostKeyFP, d.knownHosts)
	p.f("  client    a one-time key (%s), the only one the server accepts\n", d.keyFile)
	p.f("  database  %s (the engine's real SQLite history)\n", cfg.DB)
	p.f("  host      %q, an entry in %s\n", demoAlias, d.sshConfig)

	a, err := openApp(ctx, cfg, modeServe)
	if err != nil {
		return err
	}
	defer func() {
		if a != nil {
			a.Close()
		}
	}()

	p.step("Run a command. It is a job: a row in SQLite before its id is handed out, its output stored as it arrives.")
	if _, err := p.run(ctx, a, jobs.Spec{Command: "uname -sr; echo \"hello from $USER's shell\""}, 20*time.Second); err != nil {
		return err
	}
	p.f("    (its time includes connecting, checking the host key and starting the login shell: the next commands reuse them)\n")

	p.step("The session keeps its shell: cd and export carry over to the next command.")
	if _, err := p.run(ctx, a, jobs.Spec{Command: "cd /tmp && export GREETING=hello"}, 10*time.Second); err != nil {
		return err
	}
	if _, err := p.run(ctx, a, jobs.Spec{Command: "pwd; echo \"$GREETING\""}, 10*time.Second); err != nil {
		return err
	}

	p.step("A call waits only so long (timeout_s in ssh_run): then it hands back the job id, and the command goes on.")
	j, err := p.run(ctx, a, jobs.Spec{Command: "sleep 2; echo slow command done"}, time.Second)
	if err != nil {
		return err
	}
	p.f("    waiting on job %s (ssh_job wait_s, or sshjobs logs -f)...\n", j.ID)
	if j, err = a.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 10 * time.Second, UntilFinal: true, Offset: -1}); err != nil {
		return err
	}
	if err := p.result(ctx, a, j, true); err != nil {
		return err
	}

	p.step("A detached job survives the engine stopping (an MCP client restarting its server, a crash).")
	spec := jobs.Spec{Command: "sleep 2; echo detached job done in $(pwd)", Detached: true}
	p.f("  $ %s        (detached)\n", spec.Command)
	spec.Target = demoAlias
	if j, err = a.eng.Enqueue(ctx, spec); err != nil {
		return err
	}
	// Launched once the executor has stored how to find it again (Attach).
	for deadline := time.Now().Add(10 * time.Second); j.Attach == "" && !j.State.Final(); {
		if time.Now().After(deadline) {
			return fmt.Errorf("detached job %s did not start within 10s (state %s)", j.ID, j.State)
		}
		if j, err = a.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 100 * time.Millisecond, Offset: -1}); err != nil {
			return err
		}
	}
	p.f("    job %s %s, launched under setsid, writing to a spool folder\n", j.ID, j.State)
	p.f("    stopping the engine: connections and shells closed...\n")
	err = a.Close()
	a = nil
	if err != nil {
		return err
	}
	p.f("    starting a new engine on the same database...\n")
	if a, err = openApp(ctx, cfg, modeServe); err != nil {
		return err
	}
	if j, err = a.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 10 * time.Second, UntilFinal: true, Offset: -1}); err != nil {
		return err
	}
	p.f("    re-attached after the restart; its output, stored once:\n")
	if err := p.result(ctx, a, j, true); err != nil {
		return err
	}

	p.step("The history: sshjobs jobs (ssh_jobs over MCP).")
	p.f("  $ sshjobs jobs -db %s\n", cfg.DB)
	list, err := a.listJobs(ctx, jobsIn{})
	if err != nil {
		return err
	}
	p.indent(list.table())
	err = a.Close()
	a = nil
	if err != nil {
		return err
	}

	p.step("The history is SQLite, meant to be read by people.")
	if err := p.query(ctx, cfg.DB); err != nil {
		return err
	}
	p.f("\nDone in %.1fs.", time.Since(start).Seconds())
	p.f(" Next: point it at your own host (anything `ssh HOST` reaches):\n  sshjobs run HOST -- uptime\n")
	p.f("or add it to an MCP client: claude mcp add sshjobs -- /path/to/sshjobs\n")
	p.f("`sshjobs demo --serve` keeps this server up to try the MCP tools against it by hand.\n")
	return nil
}

// demoPrinter writes the walk-through for a person.
type demoPrinter struct {
	w io.Writer
	n int
}

func (p *demoPrinter) f(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

func (p *demoPrinter) step(title string) {
	p.n++
	p.f("\n%d. %s\n", p.n, title)
}

// indent prints text with every line indented, as output under a command.
func (p *demoPrinter) indent(text string) {
	for line := range strings.Lines(text) {
		p.f("    %s", line)
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		p.f("⏎ (no newline at the end)\n")
	}
}

// run submits spec to the demo host and waits up to wait, as ssh_run with
// timeout_s does, then prints what came back.
func (p *demoPrinter) run(ctx context.Context, a *app, spec jobs.Spec, wait time.Duration) (*jobs.Job, error) {
	p.f("  $ %s\n", spec.Command)
	j, err := a.submit(ctx, demoAlias, spec)
	if err != nil {
		return nil, err
	}
	if j, err = a.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: wait, UntilFinal: true, Offset: -1}); err != nil {
		return nil, err
	}
	if !j.State.Final() {
		p.f("    -> not done within %s: handed back job %s (%s); the command goes on\n", wait, j.ID, j.State)
		return j, nil
	}
	return j, p.result(ctx, a, j, false)
}

// result prints a final job's output and how it ended.
func (p *demoPrinter) result(ctx context.Context, a *app, j *jobs.Job, withID bool) error {
	var out bytes.Buffer
	if _, err := copyOutput(ctx, a, j.ID, 0, j.OutputBytes, &out, io.Discard); err != nil {
		return err
	}
	p.indent(out.String())
	line := fmt.Sprintf("    -> %s%s", j.State, exitSuffix(j))
	if j.Cwd != "" {
		line += ", cwd " + j.Cwd
	}
	if !j.StartedAt.IsZero() && !j.EndedAt.IsZero() {
		line += fmt.Sprintf(", %.2fs", j.EndedAt.Sub(j.StartedAt).Seconds())
	}
	if withID {
		line += ", job " + j.ID
	}
	p.f("%s\n", line)
	if j.State != jobs.StateSucceeded {
		return fmt.Errorf("job %s ended %s%s, not succeeded", j.ID, j.State, exitSuffix(j))
	}
	return nil
}

// demoQuery is the SQL the demo runs over its history, as a person would
// with sqlite3.
const demoQuery = `SELECT substr(command, 1, 40) AS command, state, exit_code, cwd,
       ended_at_ms - started_at_ms AS ms, output_bytes
  FROM jobs ORDER BY id`

// query runs demoQuery on the database file through database/sql (the
// sqlite driver sqlstore registers), read-only, and prints the rows.
func (p *demoPrinter) query(ctx context.Context, path string) error {
	p.f("  $ sqlite3 -box %s \"\n%s\"\n", path, indentLines(demoQuery, "      "))
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, demoQuery)
	if err != nil {
		return fmt.Errorf("query the history: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				cells[i] = "NULL"
			case []byte:
				cells[i] = string(v)
			default:
				cells[i] = strings.ReplaceAll(fmt.Sprint(v), "\n", "⏎")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	tw.Flush()
	p.indent(b.String())
	return nil
}

func indentLines(text, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

// demoHost is the demo's SSH server and the client files that reach it.
type demoHost struct {
	srv                                *sshserver.Server
	dir                                string
	addr, user, shell, shellNote, home string
	keyFile, knownHosts, sshConfig     string
	hostKeyFP, configText              string
}

// startDemoHost makes the demo's folder, keys, known_hosts and ssh_config,
// and starts the server. On error nothing is left behind.
func startDemoHost() (d *demoHost, err error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sshjobs-demo-")
	if err != nil {
		return nil, err
	}
	d = &demoHost{dir: dir, user: u.Username}
	defer func() {
		if err != nil {
			d.close(false, io.Discard)
			d = nil
		}
	}()
	d.shell, d.shellNote = loginShell(u.Username)
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return d, err
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return d, err
	}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return d, err
	}
	clientPub, err := ssh.NewPublicKey(clientPriv.Public())
	if err != nil {
		return d, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "sshjobs demo")
	if err != nil {
		return d, err
	}
	d.keyFile = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(d.keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return d, err
	}
	// The sessions get a HOME of the demo's own: the login reads none of the
	// person's start-up files (a ~/.bashrc running `pyenv init` makes every
	// login and exec seconds slow, and one killed mid-way can leave a lock
	// that stalls later logins), and nothing is written into their home.
	d.home = filepath.Join(dir, "home")
	if err := os.Mkdir(d.home, 0o700); err != nil {
		return d, err
	}
	d.srv, err = sshserver.Start(sshserver.Config{
		HostKey: hostSigner, ClientKey: clientPub, User: u.Username, Shell: d.shell, Home: d.home,
		Env: []string{demoEnv + "=" + dir},
	})
	if err != nil {
		return d, err
	}
	d.addr = d.srv.Addr().String()
	d.hostKeyFP = ssh.FingerprintSHA256(hostSigner.PublicKey())
	// The ephemeral host key is recorded before the first connection, and
	// StrictHostKeyChecking yes: the demo verifies the key like any host's.
	d.knownHosts = filepath.Join(dir, "known_hosts")
	kh := knownhosts.Line([]string{knownhosts.Normalize(d.addr)}, hostSigner.PublicKey()) + "\n"
	if err := os.WriteFile(d.knownHosts, []byte(kh), 0o600); err != nil {
		return d, err
	}
	d.sshConfig = filepath.Join(dir, "ssh_config")
	d.configText = fmt.Sprintf(`Host %s
  HostName 127.0.0.1
  Port %d
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
`, demoAlias, d.srv.Addr().Port, u.Username, d.keyFile, d.knownHosts)
	if err := os.WriteFile(d.sshConfig, []byte(d.configText), 0o600); err != nil {
		return d, err
	}
	return d, nil
}

// close stops the server (hanging up its sessions) and removes the demo's
// folder; with keep, the database files stay and their path is printed.
func (d *demoHost) close(keep bool, w io.Writer) {
	if d.srv != nil {
		d.srv.Close()
	}
	if !keep {
		os.RemoveAll(d.dir)
		return
	}
	ents, _ := os.ReadDir(d.dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "sshjobs.db") {
			os.RemoveAll(filepath.Join(d.dir, e.Name()))
		}
	}
	db := filepath.Join(d.dir, "sshjobs.db")
	fmt.Fprintf(w, "Kept the database: %s\n  sshjobs jobs -db %s\n  sqlite3 -box %s 'SELECT * FROM recent_jobs'\n", db, db, db)
}

// loginShell is the user's shell from /etc/passwd, else $SHELL, else
// /bin/sh. sshjobs drives POSIX-like shells; another one (fish, a nologin)
// is replaced by /bin/sh, with a note saying so.
func loginShell(name string) (shell, note string) {
	shell = passwdShell(name)
	if shell == "" {
		shell = os.Getenv("SHELL")
	}
	switch filepath.Base(shell) {
	case "bash", "zsh", "sh", "dash", "ksh", "mksh", "ash":
		if _, err := os.Stat(shell); err == nil {
			return shell, ""
		}
	}
	if shell == "" {
		return "/bin/sh", ""
	}
	return "/bin/sh", fmt.Sprintf(" (your shell %s is not a POSIX shell sshjobs drives)", shell)
}

// passwdShell returns name's login shell from /etc/passwd (os/user does not
// expose it), or "".
func passwdShell(name string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) == 7 && f[0] == name {
			return f[6]
		}
	}
	return ""
}

// serve keeps the demo host up and says how to use it, until ctx ends.
func (d *demoHost) serve(ctx context.Context, cfg config, w io.Writer) error {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, "go-build") {
		// `go run` deletes its binary when it exits: name the installed one.
		exe = "sshjobs"
	}
	args := []string{"serve", "-no-daemon", "-db", cfg.DB, "-ssh-config", d.sshConfig}
	mcpConfig, _ := json.MarshalIndent(map[string]any{"mcpServers": map[string]any{
		"sshjobs-demo": map[string]any{"command": exe, "args": args},
	}}, "", "  ")
	fmt.Fprintf(w, `sshjobs demo --serve: an SSH server on %s for %s (login shell %s in a PTY, HOME %s).
Ctrl-C stops it and removes its keys, config and database (%s).

Its ssh_config entry, in %s:

%s
Try it from a terminal:
  %s run -no-daemon -db %s -ssh-config %s %s -- uname -a
  ssh -F %s %s

Or from an MCP client, Claude Code:
  claude mcp add sshjobs-demo -- %s %s
Others (claude_desktop_config.json, Cursor, ...):
%s

The host is %q: ssh_run host=%s command="uname -a".
`, d.addr, d.user, d.shell, d.home, d.dir, d.sshConfig, d.configText,
		exe, cfg.DB, d.sshConfig, demoAlias, d.sshConfig, demoAlias,
		exe, strings.Join(args, " "), mcpConfig, demoAlias, demoAlias)
	<-ctx.Done()
	fmt.Fprintln(w, "\nstopping the demo server")
	return nil
}
