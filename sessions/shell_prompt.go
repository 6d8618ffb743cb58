package sessions

import (
	"context"
	"fmt"
	"time"

	"github.com/sshjobs/sshjobs/internal/prompt"
	"github.com/sshjobs/sshjobs/jobs"
)

// checkPrompt runs once output has been quiet for promptIdle with an
// unfinished last line: if that line asks for input, the job waits for it
// (once per prompt, until output resumes). No stored secret is ever typed
// here, not even into what looks like sudo's own "[sudo] password for"
// prompt: any program can print that line and read the answer (or leave it
// for the shell to run as a command). Only our nonce prompt (sudo.go) gets
// the password; a command's own sudo waits for the caller like any password
// prompt.
func (r *runner) checkPrompt() {
	if r.prompted || len(r.cl.Pending()) == 0 {
		return
	}
	if p, ok := prompt.Detect(string(r.cl.Pending())); ok {
		r.report(p)
	}
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

// secretReply is the sudo password looked up for our sudo prompt.
type secretReply struct {
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
			r.lookupSudo(ctx)
			continue
		}
		r.stopJob(jobs.StateFailed, msgSudoRefused)
		return
	}
}

// lookupSudo asks the secret sources for the sudo password in the
// background: a source may ask a person, and the job must stay cancellable.
func (r *runner) lookupSudo(ctx context.Context) {
	go func() {
		v, ok, err := r.jr.sudoPassword(ctx)
		r.secretC <- secretReply{value: v, ok: ok, err: err}
	}()
}

// answerSudo writes the password to the terminal, or ends the job when there
// is none.
func (r *runner) answerSudo(rep secretReply) {
	if r.cancel.requested || r.failMsg != "" {
		return
	}
	if rep.ok {
		r.mask.add([]byte(rep.value))
		r.s.writeAsync([]byte(rep.value+"\n"), nil)
		r.log().Debug("answered our sudo password prompt", "job", r.jr.ID, "shell", r.s.name)
		return
	}
	if rep.err != nil {
		r.stopJob(jobs.StateError, fmt.Sprintf("sudo: reading the sudo password: %v", rep.err))
		return
	}
	r.stopJob(jobs.StateError, r.jr.SudoNoPass)
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
