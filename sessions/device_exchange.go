package sessions

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/internal/prompt"
	"github.com/sshjobs/sshjobs/internal/term"
	"github.com/sshjobs/sshjobs/jobs"
)

// exchangeOpts shapes one exchange with a device: a line typed, up to the
// prompt after it.
type exchangeOpts struct {
	// timeout bounds sshjobs' own steps; zero for a job's command, which
	// runs until its prompt or a cancel.
	timeout time.Duration
	// secret answers a password prompt (enable), once; a second prompt is
	// answered with empty lines until the device gives up.
	secret string
	// stopAtSecret ends the exchange at a password prompt, unanswered
	// (wantsSecret): the caller closes the session.
	stopAtSecret bool
	// emit gets the clean output, echo and prompt removed, as it comes.
	// Without it the output is dropped.
	emit func([]byte)
	// t, for a job's command: its controls (input, cancel) and prompts.
	t jobs.Task
}

// exchangeResult is how an exchange ended.
type exchangeResult struct {
	// errLine is the first line of the output that is a device's error
	// message (deviceError).
	errLine string
	// err: no prompt came back; the session is closed (eof, timeout,
	// shutdown) unless gone says otherwise.
	err      error
	eof      bool   // the device ended the session
	shutdown bool   // ctx ended
	cancel   string // the signal of a cancel request, if one came
	stopped  bool   // a cancelled command did not stop: the session was closed
	answered int    // password prompts answered with the secret
	// wantsSecret: the device asked for a password (stopAtSecret); no
	// prompt came back.
	wantsSecret bool
}

// exchange types line and Enter, and reads what the device answers up to
// its prompt (the learned one; or the vendor's with another host part,
// which is then learned: the command renamed the device). The echo of the
// line and the prompt are removed; pager prompts are answered with a space
// and removed. The caller guarantees one exchange at a time.
func (d *device) exchange(ctx context.Context, line string, o exchangeOpts) (x exchangeResult) {
	s := d.io
	s.idle.Store(false)
	defer s.idle.Store(true)
	x2 := &exchanger{d: d, o: o, sent: strings.TrimSpace(line)}
	if d.vendor == vendorJunos {
		x2.hold = &contextHold{}
	}
	s.writeAsync([]byte(line+"\r"), nil)
	return x2.loop(ctx)
}

// exchanger is the state of one exchange.
type exchanger struct {
	d    *device
	o    exchangeOpts
	sent string
	x    exchangeResult

	cl       term.Cleaner
	echoSeen bool   // the first line (the echo) was handled
	line     []byte // the clean line being assembled for the error scan
	prompted bool   // the job waits for input (t.Prompt was called)
	blanks   int    // empty answers to repeated password prompts
	// hold keeps Junos's context lines ([edit]) out of the output; nil for
	// other vendors.
	hold *contextHold
}

func (e *exchanger) loop(ctx context.Context) exchangeResult {
	s := e.d.io
	settle, commit, quiet := stoppedTimer(), stoppedTimer(), stoppedTimer()
	defer settle.Stop()
	defer commit.Stop()
	defer quiet.Stop()
	var deadline <-chan time.Time
	if e.o.timeout > 0 {
		tm := time.NewTimer(e.o.timeout)
		defer tm.Stop()
		deadline = tm.C
	}
	var controls <-chan jobs.Control
	if e.o.t != nil {
		controls = e.o.t.Controls()
	}
	var quitC, closeC <-chan time.Time
	for {
		select {
		case p, ok := <-s.chunks:
			if !ok {
				e.out(e.cl.Flush())
				e.flushHold()
				e.x.eof = true
				e.x.err = errDeviceEnded
				return e.x
			}
			before := string(e.cl.Pending())
			clean := e.cl.Write(p)
			e.out(clean)
			pend := string(e.cl.Pending())
			if e.prompted && (len(clean) > 0 || pend != before) {
				e.prompted = false
				e.o.t.Prompt(nil)
			}
			settle.Stop()
			commit.Stop()
			quiet.Stop()
			switch {
			case pagerLine().MatchString(pend):
				e.cl.Discard()
				s.writeAsync([]byte(" "), nil)
				continue
			case e.o.stopAtSecret && passwordPrompt(pend):
				e.x.wantsSecret = true
				return e.x
			case e.o.secret != "" && passwordPrompt(pend):
				e.cl.Discard()
				if e.x.answered == 0 {
					e.x.answered++
					s.writeAsync([]byte(e.o.secret+"\r"), nil)
				} else if e.blanks < 5 {
					e.blanks++
					s.writeAsync([]byte("\r"), nil)
				}
				continue
			}
			if _, ok := e.d.prompt.match(pend); ok {
				settle.Reset(promptSettle)
			} else if p, ok := learnPrompt(pend); ok && p.vendor == e.d.prompt.vendor {
				settle.Reset(relearnSettle)
			} else if pend != "" {
				commit.Reset(partialLineIdle)
				quiet.Reset(promptIdle)
			}

		case <-settle.C:
			if e.done() {
				return e.x
			}

		case <-commit.C:
			e.out(e.cl.Commit())

		case <-quiet.C:
			if e.o.t != nil && !e.prompted {
				if p, ok := prompt.Detect(string(e.cl.Pending())); ok {
					e.prompted = true
					e.o.t.Prompt(&p)
				}
			}

		case c, ok := <-controls:
			if !ok {
				controls = nil
				continue
			}
			switch {
			case c.Signal != "":
				// A device has no signals: ^C stops what most CLIs run
				// (ping, monitors); q what pagers and RouterOS monitors
				// want; the session is closed if neither works.
				if e.x.cancel == "" {
					e.x.cancel = c.Signal
					quitC = time.After(cancelQuit)
				}
				s.writeAsync([]byte{0x03}, replyTo(c.Done))
			default:
				if c.Secret {
					s.mask.add(c.Input)
				}
				s.writeAsync(c.Input, replyTo(c.Done))
			}

		case <-quitC:
			quitC = nil
			s.writeAsync([]byte("q"), nil)
			closeC = time.After(cancelClose)

		case <-closeC:
			e.out(e.cl.Flush())
			e.flushHold()
			s.closeWith(msgDeviceStuck)
			e.x.stopped = true
			e.x.err = errDeviceTimeout
			return e.x

		case <-deadline:
			s.close()
			e.x.err = errDeviceTimeout
			return e.x

		case <-ctx.Done():
			e.out(e.cl.Flush())
			e.flushHold()
			s.close()
			e.x.shutdown = true
			e.x.err = ctx.Err()
			return e.x
		}
	}
}

// errDeviceEnded: the device ended the session (a command logged out).
var errDeviceEnded = errors.New("the device ended the session")

const msgDeviceStuck = "the command did not stop after ^C and q; the device session was closed to stop it, and the next command starts a new one"

// done checks, once the output settled, that the last line is still a
// prompt of the device, and records it.
func (e *exchanger) done() bool {
	line := string(e.cl.Pending())
	mode, ok := e.d.prompt.match(line)
	if !ok {
		p, learned := learnPrompt(line)
		if !learned || p.vendor != e.d.prompt.vendor {
			return false
		}
		e.d.logger.Info("device session: the prompt changed; learned again", "session", e.d.name, "prompt", strings.TrimSpace(line))
		e.d.prompt = p
		mode, _ = p.match(line)
	}
	e.cl.Discard()
	if e.hold != nil {
		e.hold.drop() // the prompt's context line
	}
	e.d.mode, e.d.shown = mode, line
	return true
}

// out handles clean output: the first line is the device's echo of what
// was typed (dropped when it is), each whole line is checked for an error
// message, and everything goes to emit.
func (e *exchanger) out(p []byte) { forLines(p, e.outLine) }

func (e *exchanger) outLine(seg []byte, whole bool) {
	e.line = append(e.line, seg...)
	if !e.echoSeen {
		// The echo is judged whole: held until its line ends.
		if !whole {
			return
		}
		e.echoSeen = true
		l := strings.TrimSpace(string(e.line))
		if l == "" || e.sent != "" && strings.HasSuffix(l, e.sent) {
			e.line = e.line[:0]
			return
		}
		seg = e.line
	}
	e.emit(seg, whole)
	if whole {
		if e.x.errLine == "" {
			if l := strings.TrimSpace(string(e.line)); deviceError().MatchString(l) {
				e.x.errLine = l
			}
		}
		e.line = e.line[:0]
	}
}

// forLines calls fn with each piece of p that ends a line (whole), and
// with the rest.
func forLines(p []byte, fn func(seg []byte, whole bool)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i+1]
		}
		p = p[len(seg):]
		fn(seg, i >= 0)
	}
}

// emit passes output on, through hold (whole: seg ends a line).
func (e *exchanger) emit(seg []byte, whole bool) {
	if e.hold != nil {
		seg = e.hold.feed(seg, whole)
	}
	if len(seg) > 0 && e.o.emit != nil {
		e.o.emit(seg)
	}
}

// flushHold emits what hold keeps: the output ended without a prompt.
func (e *exchanger) flushHold() {
	if e.hold != nil && e.o.emit != nil {
		if p := e.hold.flush(); len(p) > 0 {
			e.o.emit(p)
		}
	}
}
