package sessions

import (
	"bytes"
	"fmt"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// How a job runs with sudo (jobs.Job.Sudo).
//
// The command becomes
//
//	sudo -p '[sshjobs sudo NONCE] password: ' -- sh -c 'CMD'
//
// typed through the usual framing, so that its exit code and the session's
// cwd come back in the end marker as for any job (`sudo false` gives 1). sudo
// keeps the working directory, so CMD runs in the session's cwd; its
// environment is sudo's (env_reset: the session's exported variables do not
// reach CMD, PATH is secure_path), and a cd or export inside CMD ends with
// it. The password is never on the command line nor in the environment: when
// our prompt appears in the output, the password is written to the terminal,
// as a person would type it, and the prompt is cut out of the stored output.
// The prompt carries the job's nonce, so output that imitates it does not
// get the password. Seen a second time, it means the password was refused.

// sudoPrompt is the prompt sudo is told to print for the job with nonce. It
// has no '%' (sudo expands %u, %h, ...) and no quote.
func sudoPrompt(nonce string) string { return "[sshjobs sudo " + nonce + "] password: " }

// sudoStarted is what the sh under sudo prints before it runs the command:
// from then on sudo has what it needed, and anything that looks like our
// prompt comes from the command itself (which can read the nonce on sudo's
// command line) and gets nothing.
func sudoStarted(nonce string) string { return "\x1eS_" + nonce + "\x1e" }

// sudoCommand wraps command to run through sudo with our prompt, announcing
// its start (sudoStarted).
func sudoCommand(nonce, command string) string {
	return "sudo -p " + shQuote(sudoPrompt(nonce)) + " -- sh -c " + shQuote("printf '\\036S_"+nonce+"\\036'\n"+command)
}

// Messages of sudo jobs that end without running their command.
const (
	msgSudoRefused = "sudo: incorrect password"
	// Name only the sources that exist: the variable and the credential store.
	msgSudoNoPass = "sudo asked for a password and none is known for this host: set %s in sshjobs' environment, " +
		"or save it with `sshjobs secret set %s --kind sudo`"
	msgSudoNoPassStore = "sudo asked for a password and none is known for this host: save it with `sshjobs secret set %s --kind sudo`"
)

// StoreTarget is how to name h to `sshjobs secret set` in advice: its alias
// when the alias's secrets are its own, else user@hostname:port (the store's
// key for it).
func StoreTarget(h *sshconfig.Host) string { return sshdial.StoreTarget(h) }

// sudoSecretEnv names the environment override for alias's sudo password.
func sudoSecretEnv(alias string) string { return sshconfig.EnvName(alias) + "SUDO_PASS" }

// promptCutter removes every occurrence of one prompt from the raw output of
// a job, with the line end sudo prints once it has read the password, and
// counts them. The stream may be split anywhere: a tail that could begin the
// prompt is held back until the next Feed.
type promptCutter struct {
	prompt []byte
	held   []byte
	// after: a prompt was just cut (and maybe a CR after it); the line end
	// that follows is sudo's newline after the password and goes too.
	after uint8
	seen  int
	// started is the mark the command's sh prints once sudo let it run;
	// after it (done) no prompt is cut or counted: output passes as it is.
	started []byte
	done    bool
}

const (
	afterNone = iota
	afterCut
	afterCR
)

func newPromptCutter(prompt, started string) *promptCutter {
	return &promptCutter{prompt: []byte(prompt), started: []byte(started)}
}

// Feed returns p without the prompt, and how many prompts it cut.
func (c *promptCutter) Feed(p []byte) (out []byte, cut int) {
	buf := p
	if len(c.held) > 0 {
		buf = append(c.held, p...)
		c.held = nil
	}
	for len(buf) > 0 && !c.done {
		// After a cut: drop sudo's CR LF (or LF) after the password.
		switch {
		case c.after == afterCut && buf[0] == '\r':
			buf, c.after = buf[1:], afterCR
			continue
		case c.after != afterNone && buf[0] == '\n':
			buf, c.after = buf[1:], afterNone
			continue
		}
		c.after = afterNone
		if j := bytes.Index(buf, c.started); len(c.started) > 0 && j >= 0 && !promptBefore(buf, c.prompt, j) {
			c.done = true
			return append(append(out, buf[:j]...), buf[j+len(c.started):]...), cut
		}
		i := bytes.Index(buf, c.prompt)
		if i < 0 {
			keep := max(partialSuffix(buf, c.prompt), partialSuffix(buf, c.started))
			if keep > 0 {
				c.held = append([]byte(nil), buf[len(buf)-keep:]...)
			}
			return append(out, buf[:len(buf)-keep]...), cut
		}
		out = append(out, buf[:i]...)
		buf = buf[i+len(c.prompt):]
		cut++
		c.seen++
		c.after = afterCut
	}
	return append(out, buf...), cut
}

// promptBefore reports whether prompt occurs in buf before index j.
func promptBefore(buf, prompt []byte, j int) bool {
	i := bytes.Index(buf, prompt)
	return i >= 0 && i < j
}

// Flush returns what is held: the output ended.
func (c *promptCutter) Flush() []byte {
	out := c.held
	c.held = nil
	return out
}

// sudoNoPassMessage is the error of a sudo job on h for which no password is
// known. It names only the sources that would reach h: the store's command,
// and the alias's variable only when the alias's secrets are h's.
func sudoNoPassMessage(h *sshconfig.Host) string {
	if h.SecretAlias == "" {
		return fmt.Sprintf(msgSudoNoPassStore, StoreTarget(h))
	}
	return fmt.Sprintf(msgSudoNoPass, sudoSecretEnv(h.SecretAlias), StoreTarget(h))
}

// enableSources names where the enable secret of a device h comes from: the
// store's command, and the alias's variable only when the alias's secrets
// are h's (as sudoNoPassMessage).
func enableSources(h *sshconfig.Host) string {
	store := fmt.Sprintf("the credential store (sshjobs secret set --kind enable %s)", StoreTarget(h))
	if h.SecretAlias == "" {
		return store
	}
	return sshconfig.EnvName(h.SecretAlias) + "ENABLE_PASS or " + store
}
