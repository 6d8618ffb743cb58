package sessions

import (
	"context"
	"fmt"
	"strings"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// Messages of device jobs.
const (
	msgDeviceSudo   = "sudo does not apply to a network device: privileged commands run in enable mode, with the host's enable secret"
	msgDeviceEnded  = "the device ended the session (the command logged out); the next command starts a new session"
	msgDeviceDetach = "detach does not apply to a network device: its commands run in the session's CLI; run it without detach (timeout_s hands a long one back)"
)

// runJob runs a job's command on the device, each line of it as a person
// would type it, waiting for the prompt after each; a line the device
// rejects with an error message ends the job failed with that message, and
// the lines after it are not typed. A device has no exit codes: the result
// never has one.
//
// Before the command: an empty line shows where the device is (its mode
// may have changed since the last job: an exec timeout that ended enable
// mode), and a device in user mode enters enable mode when the host has an
// enable secret; it stays there, and enters it again when it dropped out.
func (d *device) runJob(ctx context.Context, jr jobRun, t jobs.Task) jobOutcome {
	if jr.Sudo {
		return jobOutcome{Result: jobs.Result{State: jobs.StateError, Error: msgDeviceSudo, Cwd: d.where()}}
	}
	if o, stop := d.step(d.exchange(ctx, "", exchangeOpts{timeout: deviceStepTimeout}), "showing the prompt", false); stop {
		return o
	}
	if o, stop := d.enable(ctx, jr); stop {
		return o
	}
	emit := func(p []byte) {
		if p = d.io.mask.Write(p); len(p) > 0 {
			t.Write(p)
		}
	}
	defer func() {
		if p := d.io.mask.Flush(); len(p) > 0 {
			t.Write(p)
		}
	}()
	for _, line := range commandLines(jr.Command) {
		x := d.exchange(ctx, d.rewrite(line), exchangeOpts{emit: emit, t: t})
		if o, stop := d.step(x, "", true); stop {
			return o
		}
		switch {
		case x.cancel != "":
			return jobOutcome{Result: jobs.Result{State: jobs.StateCancelled, Signal: x.cancel, Cwd: d.where()}}
		case x.errLine != "":
			return jobOutcome{Result: jobs.Result{State: jobs.StateFailed, Error: x.errLine, Cwd: d.where()}}
		}
	}
	return jobOutcome{Result: jobs.Result{State: jobs.StateSucceeded, Cwd: d.where()}}
}

// step turns an exchange that got no prompt back into the job's end; stop
// is false when it did. what names a step of sshjobs' own ("" for the job's
// command).
func (d *device) step(x exchangeResult, what string, command bool) (jobOutcome, bool) {
	if x.err == nil {
		return jobOutcome{}, false
	}
	d.io.close() // the session is not used again (already closed but at eof)
	o := jobOutcome{shellGone: true, Result: jobs.Result{State: jobs.StateLost, Cwd: d.where()}}
	switch {
	case x.shutdown:
		o.Error = msgShutdown
	case x.stopped:
		o.State, o.Signal, o.Error = jobs.StateCancelled, x.cancel, msgDeviceStuck
	case x.eof && command && x.cancel == "":
		// The command logged out (exit, quit). Like a shell's `exit`, the
		// job ran; the note says that the session is gone. (A connection
		// that died is told apart by the executor: !c.alive().)
		o.State, o.Error = jobs.StateSucceeded, msgDeviceEnded
	case x.eof:
		// Before the command: the device had closed the idle session (its
		// exec timeout); the executor runs the job on a new one.
		o.Error = "the device ended the session"
		o.notRun = !command
	default:
		o.Error = fmt.Sprintf("%s: %v after %v; the session was closed", what, errDeviceTimeout, deviceStepTimeout)
	}
	if x.cancel != "" && !x.stopped {
		o.State, o.Signal = jobs.StateCancelled, x.cancel
	}
	return o, true
}

// enable enters enable mode when the device is in user mode and the host
// has an enable secret. A secret the device refuses ends the job in state
// error before its command is typed.
func (d *device) enable(ctx context.Context, jr jobRun) (jobOutcome, bool) {
	if !d.prompt.hasEnable() || d.prompt.privileged(d.mode) || jr.secret == nil {
		return jobOutcome{}, false
	}
	secret, ok, err := jr.secret(ctx, sshdial.SecretEnable)
	if err != nil {
		return jobOutcome{Result: jobs.Result{State: jobs.StateError, Error: fmt.Sprintf("the enable secret: %v; the command was not run", err), Cwd: d.where()}}, true
	}
	if !ok {
		// In user mode: a command that needs more fails with the device's
		// own message. Looked up again by the next job: a secret typed on
		// an elicitation page may have come meanwhile.
		return jobOutcome{}, false
	}
	d.io.mask.add([]byte(secret))
	x := d.exchange(ctx, "enable", exchangeOpts{timeout: deviceStepTimeout, secret: secret})
	if o, stop := d.step(x, "enable", false); stop {
		return o, true
	}
	if !d.prompt.privileged(d.mode) {
		why := "it stayed in user mode"
		if x.errLine != "" {
			why = x.errLine
		}
		return jobOutcome{Result: jobs.Result{State: jobs.StateError, Cwd: d.where(), Error: fmt.Sprintf(
			"the device refused the enable secret (%s); the command was not run. The secret comes from %s",
			why, jr.EnableSources)}}, true
	}
	d.logger.Info("device session: enable mode entered", "session", d.name, "job", jr.ID)
	return jobOutcome{}, false
}

// commandLines splits a job's command into the lines typed one by one;
// blank lines are left out.
func commandLines(command string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(command, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimRight(l, " \t\r"))
		}
	}
	return out
}

// rewrite adds without-paging to a RouterOS print command, so that its
// output comes whole (RouterOS has no command to turn paging off for a
// session). Only a plain `[/]menu ... print [args]` line in a menu gets it:
// not a scripting line (:put, [...]), not print as a value (name=print), not
// one that has it.
func (d *device) rewrite(line string) string {
	if d.prompt.vendor != vendorRouterOS || d.cfg.PrintAsIs {
		return line
	}
	return rewritePrint(line, strings.TrimSuffix(d.mode, ">") != "")
}

// rewritePrint adds without-paging after a print verb of line; inMenu says
// the prompt is in a menu (/interface>), where a bare `print` is that menu's.
func rewritePrint(line string, inMenu bool) string {
	words := strings.Fields(line)
	if len(words) == 0 || strings.ContainsAny(line, `"[]{};$`) || strings.Contains(line, "without-paging") {
		return line
	}
	for i, w := range words {
		switch {
		case w == "print":
			// A path before it (from the root with /, or in a menu), or
			// print alone in a menu.
			if i == 0 && !inMenu {
				return line
			}
			if i > 0 && !strings.HasPrefix(words[0], "/") && !inMenu {
				return line
			}
			out := append(words[:i+1:i+1], "without-paging")
			return strings.Join(append(out, words[i+1:]...), " ")
		case strings.ContainsAny(w, "=:") || strings.HasPrefix(w, "/") && i > 0:
			return line
		}
	}
	return line
}
