// Command sshjobs gives AI agents (over MCP) and people (from a terminal)
// persistent SSH sessions whose every command is a durable job in SQLite.
//
// With no arguments, or "serve", it speaks MCP on stdin/stdout (with no
// arguments and a terminal for stdin it prints its usage instead: a person
// typed it); "demo" shows it at work against an SSH server of its own; the
// other subcommands are the CLI. main only parses, wires and maps errors to
// exit codes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=..."; left
// "dev", the build info's module version is used (see appVersion).
var version = "dev"

const usage = `sshjobs: persistent SSH sessions for AI agents, every command a durable job.

Usage:
  sshjobs demo [--keep|--serve]   try it: a throwaway SSH server on 127.0.0.1, no sshd needed
  sshjobs [serve]                 speak MCP on stdin/stdout (what an MCP client starts)
  sshjobs run HOST [--] CMD...    run a command, stream its output, exit with its code
  sshjobs jobs                    list jobs, newest first
  sshjobs logs [-f] JOB_ID        print a job's output; -f follows it to its end
  sshjobs cancel JOB_ID           stop a job (Ctrl-C, then kill after a grace period)
  sshjobs spools HOST             list detached jobs' spool folders on HOST that no job owns
  sshjobs daemon status|stop      the background process that serves this database
  sshjobs secret set HOST [--kind password|sudo|passphrase|enable] [--key FILE]
                                  save a secret for HOST, encrypted (typed without
                                  echo, or read from stdin)
  sshjobs secret list             list saved secrets (hosts and kinds, never values)
  sshjobs secret rm HOST [--kind K]  delete HOST's saved secrets (or one kind)
  sshjobs secret passwd           change the master password (re-encrypts all)
  sshjobs version                 print the version, build and database schema
  sshjobs help [COMMAND]          this text, or a command's flags

HOST is anything "ssh HOST" reaches: an ssh_config alias or user@host[:port].
Run "sshjobs COMMAND -h" for a command's flags. Every flag has an environment
variable too (shown in -h). The history is a SQLite file: sqlite3 "$(sshjobs
serve -print-db)" 'select * from recent_jobs'.

Saved secrets are encrypted with a master password: SSHJOBS_MASTER_PASSWORD
(or MCP_SSH_MASTER_PASSWORD) in sshjobs' environment; "secret" asks for it on
the terminal when it is not set.

Add it to an MCP client, e.g. Claude Code:
  claude mcp add sshjobs -- /path/to/sshjobs
`

// ttyNote is said, after the usage, to a person who typed plain "sshjobs":
// with no arguments the program is an MCP server, which would otherwise wait
// silently for JSON-RPC on the terminal.
const ttyNote = `
sshjobs with no arguments is an MCP server: an MCP client starts it and talks
to it over pipes. Add it to one (above), or run "sshjobs demo" to see it work.
`

// exitUsage is the exit code for a command line that cannot be run.
const exitUsage = 2

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line: exit 2 with the usage hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	return runWith(args, os.Stdin, stdout, stderr)
}

// runWith is run with the standard input given, so that tests can hand it a
// terminal.
func runWith(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	if len(args) == 0 && isTerminal(stdin) {
		// A person typed "sshjobs": MCP clients always give it pipes.
		fmt.Fprint(stdout, usage+ttyNote)
		return 0
	}
	name := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	} else if len(args) > 0 && isHelpFlag(args[0]) {
		// The top-level help, not only serve's flags: a person asking
		// "sshjobs -h" wants the subcommands.
		fmt.Fprint(stdout, usage)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	var err error
	switch name {
	case "serve":
		err = cmdServe(ctx, args, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args, stdout, stderr)
	case "run":
		code, err = cmdRun(ctx, stop, args, stdout, stderr)
	case "jobs":
		err = cmdJobs(ctx, args, stdout, stderr)
	case "logs":
		err = cmdLogs(ctx, args, stdout, stderr)
	case "cancel":
		err = cmdCancel(ctx, args, stdout, stderr)
	case "spools":
		err = cmdSpools(ctx, args, stdout, stderr)
	case "daemon":
		code, err = cmdDaemon(ctx, args, stdout, stderr)
	case "secret":
		err = cmdSecret(ctx, args, stdout, stderr)
	case "version":
		err = cmdVersion(args, stdout, stderr)
	case "help":
		if len(args) > 0 && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
			// "sshjobs help run" is "sshjobs run -h".
			return runWith([]string{args[0], "-h"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", name)}
	}
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "sshjobs: %v\n\n%s", err, usage)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "sshjobs %s: %v\n", name, err)
		return 1
	}
	return code
}

func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// isTerminal reports whether f is a terminal (a termios answers for it).
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	// Control, not Fd: Fd would put a non-blocking stdin back in blocking mode.
	rc.Control(func(fd uintptr) {
		_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		tty = err == nil
	})
	return tty
}

// newFlags returns a flag set for a subcommand with the shared settings.
func newFlags(name, synopsis string, stderr io.Writer, cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sshjobs %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	cfg.register(fs)
	cfg.cli = name != "serve"
	return fs
}

// parseFlags parses args and the shared settings.
func parseFlags(fs *flag.FlagSet, cfg *config, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if err := cfg.parse(); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("serve", "serve [flags]", stderr, &cfg)
	printDB := fs.Bool("print-db", false, "print the database path and exit")
	noDaemon := fs.Bool("no-daemon", os.Getenv("SSHJOBS_DAEMON") == "off",
		"serve in this process instead of through the background daemon of the database [$SSHJOBS_DAEMON=off]")
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	if *printDB {
		fmt.Fprintln(stdout, cfg.DB) // before serving: stdout is not yet the protocol
		return nil
	}
	if !*noDaemon {
		paths, err := daemonPathsFor(cfg.DB)
		if err != nil {
			return err
		}
		h, err := newHello(cfg)
		if err != nil {
			return err
		}
		c, err := startDaemon(ctx, paths, daemonArgs(fs), &h, stderr)
		if err != nil {
			return err
		}
		defer c.Close()
		return forward(ctx, c, os.Stdin, stdout)
	}
	a, err := openApp(ctx, cfg, modeServe)
	if err != nil {
		return err
	}
	defer a.Close()
	a.log.Info("serving MCP on stdio", "db", cfg.DB, "version", appVersion())
	err = newMCPServer(a).Run(ctx, &mcp.StdioTransport{})
	if ctx.Err() != nil || errors.Is(err, io.EOF) {
		return nil // a signal, or the client closed stdin: a normal end
	}
	return err
}

// daemonArgs are the shared settings given on the command line (not a
// subcommand's own flags), for the daemon a front starts (the environment
// goes to it as it is).
func daemonArgs(fs *flag.FlagSet) []string {
	var args []string
	fs.Visit(func(f *flag.Flag) {
		if slices.ContainsFunc(settings, func(s setting) bool { return s.name == f.Name }) {
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	return args
}

// cmdDaemon runs (`daemon run`, what a front starts), reports on (`status`)
// or stops (`stop`) the daemon of the database. status exits 3 when none runs.
func cmdDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) > 0 && isHelpFlag(args[0]) {
		args = []string{"status", "-h"} // the flags are the same for every verb
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return 0, usageError{"daemon: say run, status or stop"}
	}
	verb, args := args[0], args[1:]
	var cfg config
	fs := newFlags("daemon "+verb, "daemon run|status|stop [flags]", stderr, &cfg)
	asJSON := fs.Bool("json", false, "status: print JSON")
	wait := fs.Bool("wait", false, "stop: return once the daemon has exited")
	linger := fs.Duration("linger", DefaultDaemonLinger, "run: exit after this long with no client, no running job and no open connection")
	if err := parseFlags(fs, &cfg, args); err != nil {
		return 0, err
	}
	switch verb {
	case "run":
		cfg.cli = false // a daemon logs like a server
		if os.Getenv(envHelloOnStdin) == "1" {
			// Started by a front: its environment and master password are
			// the daemon's own, for the jobs no client brings (adopted ones).
			os.Unsetenv(envHelloOnStdin)
			h, err := readHelloFromStdin()
			if err != nil {
				return 0, err
			}
			cfg.master, cfg.getenv, cfg.cwd = h.Master, h.getenv(), h.Cwd
		}
		return 0, runDaemon(ctx, cfg, *linger)
	case "status", "stop":
		// Every daemon of the database: the one of each build, and those
		// draining.
		paths, err := daemonPathsFor(cfg.DB)
		if err != nil {
			return 0, err
		}
		sts := daemonStatuses(paths)
		if len(sts) == 0 {
			fmt.Fprintf(stderr, "no sshjobs daemon serves %s\n", cfg.DB)
			return 3, nil
		}
		for _, st := range sts {
			if verb == "stop" {
				stopDaemon(st, *wait)
				fmt.Fprintf(stdout, "stopped the daemon (pid %d)\n", st.PID)
				continue
			}
			if *asJSON {
				json.NewEncoder(stdout).Encode(st)
				continue
			}
			fmt.Fprintf(stdout, "pid %d, version %s, since %s\nsocket %s\ndb %s\n%d clients, %d active jobs, %d connections\n",
				st.PID, st.Version, st.StartedAt, st.Socket, st.DB, st.Clients, st.ActiveJobs, st.Connections)
		}
		return 0, nil
	}
	return 0, usageError{fmt.Sprintf("daemon: unknown verb %q (run, status or stop)", verb)}
}
