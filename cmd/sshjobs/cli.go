package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

func cmdRun(ctx context.Context, stopSignals func(), args []string, stdout, stderr io.Writer) (int, error) {
	var cfg config
	fs := newFlags("run", "run [flags] HOST [--] COMMAND...", stderr, &cfg)
	session := fs.String("session", jobs.DefaultSession, "persistent shell to run in")
	killAfter := fs.Duration("kill-after", 0, "cancel the command after this long, e.g. 10m")
	detach := fs.Bool("detach", false, "run detached from the connection: it survives a dropped connection and this process; follow it with logs -f")
	sudo := fs.Bool("sudo", false, "run through sudo; the password comes from OVRD_{ALIAS}_SUDO_PASS, never the command line")
	noDaemon := fs.Bool("no-daemon", os.Getenv("SSHJOBS_DAEMON") == "off",
		"run in this process instead of through the background daemon (its warm connections and shells) [$SSHJOBS_DAEMON=off]")
	if err := parseFlags(fs, &cfg, args); err != nil {
		return 0, err
	}
	rest := fs.Args() // flag.Parse has taken a "--" that ends the flags
	if len(rest) < 2 {
		return 0, usageError{"run needs a HOST and a COMMAND"}
	}
	host, rest := rest[0], rest[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	// Like ssh, the words after the host are joined into one command line.
	spec := jobs.Spec{Session: *session, Command: strings.Join(rest, " "), KillAfter: *killAfter, Detached: *detach, Sudo: *sudo}
	if *noDaemon {
		a, err := openApp(ctx, cfg, modeRun)
		if err != nil {
			return 0, err
		}
		defer a.Close()
		j, err := a.submit(ctx, host, spec)
		if err != nil {
			return 0, err
		}
		if *detach {
			detachedNote(j.ID, stderr)
		}
		return followRun(ctx, stopSignals, a, j.ID, 0, *detach, stdout, stderr)
	}
	// Through the daemon, this process only submits, and follows on the same
	// connection: the daemon runs the job on its warm connection and shell.
	s, err := startRun(ctx, cfg, daemonArgs(fs), runRequest{Host: host, Command: spec.Command, Session: spec.Session,
		Detach: spec.Detached, Sudo: spec.Sudo, KillAfter: spec.KillAfter}, stderr)
	if err != nil {
		return 0, err
	}
	defer s.c.Close()
	if *detach {
		detachedNote(s.id, stderr)
	}
	j, err := s.follow(ctx, stopSignals, *detach, stdout, stderr)
	if errors.Is(err, errRunCut) {
		// The daemon stopped or died during the job: follow it in the
		// database from where the stream stopped (it ends there, or its
		// lost process is reported).
		a, err := openApp(ctx, cfg, modeRead)
		if err != nil {
			return 0, fmt.Errorf("job %s: the daemon's stream ended, and the database cannot be read: %w", s.id, err)
		}
		defer a.Close()
		return followRun(ctx, stopSignals, a, s.id, s.offset, *detach, stdout, stderr)
	}
	return runEnded(ctx, s.id, j, err, *detach, stderr)
}

func detachedNote(id string, stderr io.Writer) {
	fmt.Fprintf(stderr, "sshjobs: detached job %s; follow it with: sshjobs logs -f %s\n", id, id)
}

// followRun follows job id from offset in the database (a is the app of this
// process) to its end: the first Ctrl-C (ctx done) cancels it, or, detached,
// stops following.
func followRun(ctx context.Context, stopSignals func(), a *app, id string, offset int64, detach bool, stdout, stderr io.Writer) (int, error) {
	followCtx := ctx
	if !detach {
		var stopFollowing context.CancelFunc
		followCtx, stopFollowing = context.WithCancel(context.Background())
		defer stopFollowing()
		// The first Ctrl-C cancels the job (as it would over ssh); its output
		// up to the end is still shown.
		go func() {
			select {
			case <-ctx.Done():
			case <-followCtx.Done():
				return
			}
			stopSignals()
			if _, err := a.eng.Cancel(context.Background(), id, "INT", jobs.DefaultCancelGrace); err != nil {
				a.log.Warn("cancel job", "job", id, "err", err)
			}
		}()
	}
	j, err := follow(followCtx, a, id, offset, stdout, stderr)
	return runEnded(ctx, id, j, err, detach, stderr)
}

// runEnded is `sshjobs run`'s exit code for job id's end j (or the error
// following it).
func runEnded(ctx context.Context, id string, j *jobs.Job, err error, detach bool, stderr io.Writer) (int, error) {
	if detach && ctx.Err() != nil {
		fmt.Fprintf(stderr, "\nsshjobs: stopped following; job %s goes on. An sshjobs server (the MCP server) re-attaches it; sshjobs logs -f %s shows it.\n", id, id)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if j.Error != "" {
		fmt.Fprintf(stderr, "sshjobs: job %s %s: %s\n", j.ID, j.State, j.Error)
	}
	if j.OutputLost > 0 {
		// The exit code alone would vouch for output that is not all there.
		return 0, fmt.Errorf("job %s ended %s%s, but %d bytes of its output could not be stored", j.ID, j.State, exitSuffix(j), j.OutputLost)
	}
	return exitCode(j), nil
}

// exitCode maps a final job to a process exit code the way ssh does: the
// command's own code, 128+n for a signal, 255 when it never ran or was lost.
func exitCode(j *jobs.Job) int {
	switch {
	case j.ExitCode != nil:
		return *j.ExitCode
	case j.Signal != "":
		return 128 + map[string]int{"HUP": 1, "INT": 2, "KILL": 9, "PIPE": 13, "TERM": 15}[j.Signal]
	case j.State == jobs.StateCancelled:
		return 130
	}
	return 255
}

// follow writes a job's output from offset as it is stored, until the job
// is final, and returns it then.
func follow(ctx context.Context, a *app, id string, offset int64, stdout, stderr io.Writer) (*jobs.Job, error) {
	prompted, orphanSaid := false, false
	for {
		j, err := a.eng.Wait(ctx, id, jobs.WaitOptions{Timeout: 5 * time.Second, Offset: offset})
		if err != nil {
			return nil, err
		}
		if offset, err = copyOutput(ctx, a, id, offset, j.OutputBytes, stdout, stderr); err != nil {
			return nil, err
		}
		if j.State.Final() {
			return j, nil
		}
		if !orphanSaid && j.Owner != "" && j.Owner != a.eng.Owner() && time.Now().After(j.LeaseUntil) {
			// A lapsed lease alone is no proof: the process may be stopped
			// (Ctrl-Z) or asleep, and then its job goes on.
			// Not gone: fall through to the wait below, never spin.
			if gone, err := a.eng.OwnerGone(ctx, j); err == nil && gone {
				orphanSaid = true
				if err := orphaned(j, stderr); err != nil {
					return nil, err
				}
			}
		}
		if j.State == jobs.StateWaitingInput {
			if !prompted && j.Prompt != nil {
				fmt.Fprintf(stderr, "\n[sshjobs: job waits for input (%s): %q]\n", j.Prompt.Kind, j.Prompt.Text)
			}
			prompted = true
			// Wait returns at once while the job waits for input.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else {
			prompted = false
		}
	}
}

// orphaned tells what becomes of job j, whose process stopped renewing its
// lease: it died or lost the database. A job that ran in a shell of that
// process is gone with it.
func orphaned(j *jobs.Job, stderr io.Writer) error {
	gone := fmt.Sprintf("the process that ran job %s (%s) stopped at %s", j.ID, j.Owner, j.LeaseUntil.Local().Format(time.TimeOnly))
	switch {
	case j.Detached:
		fmt.Fprintf(stderr, "\n[sshjobs: %s; the command runs on, detached, and its output is followed again when `sshjobs serve` runs (your MCP client starts it)]\n", gone)
	case j.State == jobs.StateQueued:
		fmt.Fprintf(stderr, "\n[sshjobs: %s; the job runs when `sshjobs serve` runs (your MCP client starts it)]\n", gone)
	default:
		return fmt.Errorf("%s, and the command with it (its shell closed); the job is marked lost when `sshjobs serve` next runs", gone)
	}
	return nil
}

func cmdJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("jobs", "jobs [flags]", stderr, &cfg)
	var in jobsIn
	fs.StringVar(&in.Host, "host", "", "only jobs on this host")
	fs.StringVar(&in.Session, "session", "", "only jobs of this session")
	fs.StringVar(&in.State, "state", "", "only jobs in this state, or active")
	fs.StringVar(&in.Contains, "contains", "", "only commands containing this")
	fs.StringVar(&in.Since, "since", "", "only jobs created since (RFC 3339 or a duration like 2h)")
	fs.IntVar(&in.Limit, "limit", jobs.DefaultListLimit, fmt.Sprintf("at most this many (max %d)", jobs.MaxListLimit))
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	out, err := a.listJobs(ctx, in)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	_, err = io.WriteString(stdout, out.table())
	return err
}

func cmdLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("logs", "logs [flags] JOB_ID", stderr, &cfg)
	followFlag := fs.Bool("f", false, "follow the output until the job ends (also a job another process runs)")
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"logs needs one JOB_ID"}
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	id := fs.Arg(0)
	if *followFlag {
		j, err := follow(ctx, a, id, 0, stdout, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "[sshjobs: job %s %s%s]\n", j.ID, j.State, exitSuffix(j))
		return nil
	}
	j, err := a.eng.Get(ctx, id)
	if err != nil {
		return err
	}
	_, err = copyOutput(ctx, a, id, 0, j.OutputBytes, stdout, stderr)
	return err
}

// storedWriter takes output with the offset it was stored at (the daemon's
// stream of a run: the front can go on from there).
type storedWriter interface {
	writeStored(offset int64, data []byte) error
}

// copyOutput writes job id's stored output from offset up to end, noting on
// stderr what the output cap dropped, and returns where it stopped.
func copyOutput(ctx context.Context, a *app, id string, offset, end int64, stdout, stderr io.Writer) (int64, error) {
	for offset < end {
		out, err := a.eng.Read(ctx, id, offset, 1<<20)
		if err != nil {
			return offset, err
		}
		if out.Skipped > 0 {
			fmt.Fprintf(stderr, "\n[sshjobs: %d bytes not stored (output cap, or output that could not be stored)]\n", out.Skipped)
		}
		if sw, ok := stdout.(storedWriter); ok {
			err = sw.writeStored(out.Offset, out.Data)
		} else {
			_, err = stdout.Write(out.Data)
		}
		if err != nil {
			return offset, err
		}
		next := out.Offset + int64(len(out.Data))
		if next == offset {
			break
		}
		offset = next
	}
	return offset, nil
}

func exitSuffix(j *jobs.Job) string {
	switch {
	case j.ExitCode != nil:
		return fmt.Sprintf(" exit=%d", *j.ExitCode)
	case j.Signal != "":
		return " signal=" + j.Signal
	case j.Error != "":
		return ": " + j.Error
	}
	return ""
}

func cmdCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("cancel", "cancel [flags] JOB_ID", stderr, &cfg)
	sig := fs.String("signal", "INT", "INT, TERM or KILL")
	grace := fs.Duration("grace", jobs.DefaultCancelGrace, "kill the job's processes if still running after this (0: at once)")
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"cancel needs one JOB_ID"}
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	// A job the daemon runs is cancelled through it, so that the signal and
	// the grace apply as asked; otherwise through the database, where the
	// owning process picks the request up at its next heartbeat.
	var j *jobs.Job
	if os.Getenv("SSHJOBS_DAEMON") != "off" {
		cur, err := a.eng.Get(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if err = cancelThroughDaemon(ctx, cfg, cur.Owner, cur.ID, *sig, *grace); err == nil {
			j, err = a.eng.Get(ctx, fs.Arg(0))
		} else if !errors.Is(err, errNoDaemon) {
			return err
		}
	}
	if j == nil {
		if j, err = a.eng.Cancel(ctx, fs.Arg(0), *sig, *grace); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "job %s %s%s\n", j.ID, j.State, exitSuffix(j))
	if !j.State.Final() {
		return fmt.Errorf("job %s is still %s: the process running it (%s) has not stopped it yet", j.ID, j.State, j.Owner)
	}
	return nil
}

func cmdSpools(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("spools", "spools [flags] HOST", stderr, &cfg)
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"spools needs one HOST"}
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	known := func(id string) bool {
		_, err := a.eng.Get(ctx, id)
		return err == nil
	}
	orphans, err := a.exec.OrphanSpools(ctx, fs.Arg(0), known)
	if err != nil {
		return err
	}
	if len(orphans) == 0 {
		fmt.Fprintln(stderr, "no spool folders of unknown jobs")
		return nil
	}
	for _, o := range orphans {
		fmt.Fprintln(stdout, o)
	}
	fmt.Fprintf(stderr, "%d spool folder(s) of jobs this database does not know: their output is only there; remove them yourself when done\n", len(orphans))
	return nil
}
