package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// `sshjobs run` through the daemon (DESIGN: "Processes"): one connection
// carries the whole run. The front sends daemonHelloRun, its clientHello
// and a runRequest, one line each; the daemon submits the job for that
// client and answers with a daemonAnswer naming the job; then it streams
// the job's output as stored and, last, its end, in frames. The front sends
// runCancel when the person presses Ctrl-C. So the front opens no database
// and never polls: a warm run costs the process's start, one round trip
// and the job.

// runRequest is the job a run hello asks for.
type runRequest struct {
	Host      string        `json:"host"`
	Command   string        `json:"command"`
	Session   string        `json:"session,omitempty"`
	Detach    bool          `json:"detach,omitempty"`
	Sudo      bool          `json:"sudo,omitempty"`
	KillAfter time.Duration `json:"kill_after,omitempty"`
}

// runCancel is the line a front sends to cancel its job (INT, then the
// default grace), as the first Ctrl-C does.
const runCancel = "cancel\n"

// A frame is a kind byte, a 4-byte big-endian length and that many bytes.
const (
	frameOutput = 'o' // 8-byte big-endian offset of the output, then the output as stored
	frameNote   = 'e' // a note for the person, for stderr
	frameEnd    = 'j' // runEnd as JSON: the job is final; nothing follows
)

// maxFrame bounds a frame the front accepts: output comes in reads of at
// most 1 MiB (copyOutput).
const maxFrame = 4 << 20

// runEnd is what the front needs of a final job: its exit code and what it
// says on stderr.
type runEnd struct {
	ID         string     `json:"id"`
	State      jobs.State `json:"state"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Signal     string     `json:"signal,omitempty"`
	Error      string     `json:"error,omitempty"`
	OutputLost int64      `json:"output_lost,omitempty"`
}

func (e runEnd) job() *jobs.Job {
	return &jobs.Job{ID: e.ID, State: e.State, ExitCode: e.ExitCode, Signal: e.Signal, Error: e.Error, OutputLost: e.OutputLost}
}

// serveRun submits a front's job and streams it back (see above). If the
// front goes away, the job goes on (as after a SIGKILLed `sshjobs run`
// before); if the daemon stops, the connection closes before the end frame
// and the front follows the job in the database.
func (d *daemon) serveRun(ctx context.Context, c net.Conn, r *bufio.Reader) {
	h, ans, ok := d.readHello(c, r)
	if !ok {
		return
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var req runRequest
	if err := json.Unmarshal(line, &req); err != nil {
		ans.Error = "unreadable run request: " + err.Error()
		json.NewEncoder(c).Encode(ans)
		return
	}
	c.SetReadDeadline(time.Time{})
	d.use(+1)
	defer d.use(-1)
	cctx := withClient(ctx, d.a.newClient(h))
	j, err := d.a.submit(cctx, req.Host, jobs.Spec{Session: req.Session, Command: req.Command, KillAfter: req.KillAfter,
		Detached: req.Detach, Sudo: req.Sudo})
	if err != nil {
		ans.Error = err.Error()
		json.NewEncoder(c).Encode(ans)
		return
	}
	ans.JobID = j.ID
	if err := json.NewEncoder(c).Encode(ans); err != nil {
		return
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		// The front's side: a cancel, or its end (then stop following).
		// The rest of the stream is read from r, which may hold its start.
		defer stop()
		in := bufio.NewReader(io.MultiReader(r, c))
		for {
			line, err := in.ReadString('\n')
			if err != nil {
				return
			}
			if line == runCancel {
				if _, err := d.a.eng.Cancel(context.WithoutCancel(ctx), j.ID, "INT", jobs.DefaultCancelGrace); err != nil {
					d.log.Warn("cancel job", "job", j.ID, "err", err)
				}
			}
		}
	}()
	go func() {
		// A daemon stopping, or a front gone: a write blocked on a stopped
		// front must not hold the daemon up.
		<-fctx.Done()
		c.Close()
	}()
	s := &runSender{w: bufio.NewWriterSize(c, 64<<10)}
	end, err := follow(fctx, d.a, j.ID, 0, s, noteWriter{s})
	if err != nil {
		return // the front follows the job in the database
	}
	b, _ := json.Marshal(runEnd{ID: end.ID, State: end.State, ExitCode: end.ExitCode, Signal: end.Signal, Error: end.Error, OutputLost: end.OutputLost})
	if s.frame(frameEnd, nil, b) == nil {
		s.w.Flush()
	}
}

// runSender writes the frames of a run. follow writes the output through
// writeStored (with its offset, so that a front can go on from where the
// stream stopped); each write is flushed, as the output arrives.
type runSender struct {
	w *bufio.Writer
}

func (s *runSender) frame(kind byte, head, data []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(head)+len(data)))
	s.w.Write(h[:])
	s.w.Write(head)
	_, err := s.w.Write(data)
	return err
}

func (s *runSender) writeStored(offset int64, data []byte) error {
	var off [8]byte
	binary.BigEndian.PutUint64(off[:], uint64(offset))
	if err := s.frame(frameOutput, off[:], data); err != nil {
		return err
	}
	return s.w.Flush()
}

// Write is output without an offset: follow writes through writeStored.
func (s *runSender) Write(p []byte) (int, error) {
	return 0, errors.New("run stream: output without its offset")
}

// noteWriter sends what follow says on stderr as notes.
type noteWriter struct{ s *runSender }

func (n noteWriter) Write(p []byte) (int, error) {
	if err := n.s.frame(frameNote, nil, p); err != nil {
		return 0, err
	}
	return len(p), n.s.w.Flush()
}

// errRunCut: the daemon's stream of a run ended before the job did (the
// daemon stopped or died).
var errRunCut = errors.New("the daemon's stream of the job ended before the job")

// runStream is a front's side of a run: the connection after the daemon's
// answer, and how far the output has come.
type runStream struct {
	c      net.Conn
	r      *bufio.Reader
	id     string
	offset int64 // the stored output up to here has been written
}

// startRun submits the job through the database's daemon (starting it when
// none runs) and returns its stream.
func startRun(ctx context.Context, cfg config, args []string, req runRequest, warn io.Writer) (*runStream, error) {
	paths, err := daemonPathsFor(cfg.DB)
	if err != nil {
		return nil, err
	}
	h, err := newHello(cfg)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("run request: %w", err)
	}
	var ans daemonAnswer
	c, err := startDaemonFor(ctx, paths, args, &h, func() (c net.Conn, err error) {
		c, ans, err = dialClient(paths.socket, daemonHelloRun, &h, b, warn)
		return c, err
	})
	if errors.As(err, new(daemonRefused)) && ans.Error != "" {
		return nil, errors.New(ans.Error) // the submit's error: a host that does not resolve, bad input
	}
	if err != nil {
		return nil, err
	}
	return &runStream{c: c, r: bufio.NewReaderSize(c, 64<<10), id: ans.JobID}, nil
}

// follow writes the job's output and notes as they come until its end, and
// returns it then. The first Ctrl-C (ctx done) cancels the job, whose output
// up to the end is still shown; detached, it stops following (ctx.Err()).
// errRunCut: the stream ended first; s.offset says how far it came.
func (s *runStream) follow(ctx context.Context, stopSignals func(), detach bool, stdout, stderr io.Writer) (*jobs.Job, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		if detach {
			s.c.Close()
			return
		}
		stopSignals() // a second Ctrl-C ends this process at once
		io.WriteString(s.c, runCancel)
	}()
	head := make([]byte, 5)
	var buf []byte
	for {
		if _, err := io.ReadFull(s.r, head); err != nil {
			if detach && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errRunCut
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n > maxFrame {
			return nil, fmt.Errorf("job %s: a frame of %d bytes from the daemon", s.id, n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := io.ReadFull(s.r, b); err != nil {
			if detach && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errRunCut
		}
		switch head[0] {
		case frameOutput:
			if n < 8 {
				return nil, fmt.Errorf("job %s: an output frame of %d bytes from the daemon", s.id, n)
			}
			if _, err := stdout.Write(b[8:]); err != nil {
				return nil, err
			}
			s.offset = int64(binary.BigEndian.Uint64(b)) + int64(n-8)
		case frameNote:
			stderr.Write(b)
		case frameEnd:
			var e runEnd
			if err := json.Unmarshal(b, &e); err != nil {
				return nil, fmt.Errorf("job %s: the daemon's end of it: %w", s.id, err)
			}
			return e.job(), nil
		default:
			return nil, fmt.Errorf("job %s: a frame of kind %q from the daemon", s.id, head[0])
		}
	}
}
