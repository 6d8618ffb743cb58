package sessions

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/internal/prompt"
	"github.com/sshjobs/sshjobs/jobs"
)

// checkPrompt runs once output has been quiet for promptIdle with an
// unfinished last line: if that line asks for input, the job waits for it
// (once per prompt, until output resumes). A sudo password prompt of the
// command's own is answered once, when the password is known.
func (r *runner) checkPrompt(ctx context.Context) {
	if r.prompted || len(r.cl.Pending()) == 0 {
		return
	}
	line := string(r.cl.Pending())
	p, ok := prompt.Detect(line)
	if !ok {
		return
	}
	if p.Kind == jobs.PromptPassword && isSudoPrompt(p.Text) && !r.ownSudoAsked && r.jr.secret != nil {
		r.ownSudoAsked = true
		r.lookupSudo(ctx, &p, line)
		return
	}
	r.report(p)
}

// report moves the job to waiting_input with p. The prompt line is emitted
// first, so that a caller woken by the state reads it in the output.
func (r *runner) report(p jobs.Prompt) {
	r.emit(r.cl.Commit())
	if held := r.mask.Flush(); len(held) > 0 {
		r.t.Write(held)
	}
	p.Text = r.mask.String(p.Text)
	r.prompted = true
	r.t.Prompt(&p)
}

// isSudoPrompt: sudo's default prompt, "[sudo] password for USER: ".
func isSudoPrompt(text string) bool {
	return strings.HasPrefix(strings.ToLower(text), "[sudo] password for ")
}

// secretReply is the sudo password looked up for a prompt. own is the
// command's own sudo prompt (p and line), else it is ours (jr.Sudo).
type secretReply struct {
	own   *jobs.Prompt
	line  string
	value string
	ok    bool
	err   error
}

// sudoPrompted handles n appearances of our sudo prompt (already cut from
// the output). The first gets the password; another means it was refused.
func (r *runner) sudoPrompted(ctx context.Context, n int) {
	for range n {
		r.sudoAnswers++
		if r.sudoAnswers == 1 {
			r.lookupSudo(ctx, nil, "")
			continue
		}
		r.stopJob(jobs.StateFailed, msgSudoRefused)
		return
	}
}

// lookupSudo asks the secret sources for the sudo password in the
// background: a source may ask a person, and the job must stay cancellable.
func (r *runner) lookupSudo(ctx context.Context, own *jobs.Prompt, line string) {
	go func() {
		v, ok, err := r.jr.sudoPassword(ctx)
		r.secretC <- secretReply{own: own, line: line, value: v, ok: ok, err: err}
	}()
}

// answerSudo writes the password to the terminal, or ends the job (ours) or
// reports the prompt (the command's own) when there is none.
func (r *runner) answerSudo(rep secretReply) {
	if r.cancel.requested || r.failMsg != "" {
		return
	}
	if rep.ok {
		r.mask.add([]byte(rep.value))
		r.s.writeAsync([]byte(rep.value+"\n"), nil)
		r.log().Debug("answered sudo's password prompt", "job", r.jr.ID, "shell", r.s.name, "own", rep.own != nil)
		return
	}
	if rep.own != nil {
		// Unknown: the caller answers, as with any password prompt.
		if rep.err != nil {
			r.log().Warn("look up sudo password", "job", r.jr.ID, "err", rep.err)
		}
		if !r.prompted && string(r.cl.Pending()) == rep.line {
			r.report(*rep.own)
		}
		return
	}
	if rep.err != nil {
		r.stopJob(jobs.StateError, fmt.Sprintf("sudo: reading the sudo password: %v", rep.err))
		return
	}
	r.stopJob(jobs.StateError, fmt.Sprintf(msgSudoNoPass, r.jr.SudoEnv))
}

// stopJob ends the job as state with msg: ^C now (sudo holds the terminal,
// reading a password), SIGINT every second after (sudo between two password
// reads can miss one), its process group killed if it has not ended after
// failStopWait.
func (r *runner) stopJob(state jobs.State, msg string) {
	if r.failMsg != "" {
		return
	}
	r.failState, r.failMsg = state, msg
	r.s.writeAsync([]byte{0x03}, nil)
	r.stopC = time.After(failStopWait)
	r.repeatInterrupt()
}
