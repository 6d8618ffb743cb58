package sessions

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/vt"

	"github.com/sshjobs/sshjobs/jobs"
)

// A running shell job's screen: what its terminal shows, for full-screen
// programs (less, vi, top) whose drawing the clean output cannot show.
//
// A terminal emulator (charmbracelet/x/vt) is costly on scrolling output: every
// line feed at the bottom moves the whole screen's cells (about 1 MB at
// 200x50), so an emulator fed every byte as it comes would cut a shell job's
// throughput many times over (BenchmarkScreenThroughput). So a job's output
// only goes into a tail of its last screenTail bytes (a copy, cheap), and the
// emulator is fed when someone asks for the screen: with the bytes since the
// last ask when they are all still in the tail (exact), else built anew from
// the tail. A full-screen program prints little between asks and redraws
// often, so its screen comes out exact; scrolling output is exact from its
// last lines. State a program set before the tail is lost, except the
// switch to the alternate screen, which is looked for in what leaves the
// tail. An emulator nobody asked for in screenWatch is dropped.
const (
	screenTail  = 64 << 10
	screenWatch = time.Minute
	// screenQuiet is how long output must be quiet, after it changed, for
	// a screen asked to settle (ssh_input screen=true) to count as drawn.
	screenQuiet = 300 * time.Millisecond
)

// The alternate screen's switches (DECSET 1049, 1047, 47), as programs send
// them; altOn enters the alternate screen.
var altSwitches = [][]byte{[]byte("\x1b[?1049"), []byte("\x1b[?1047"), []byte("\x1b[?47")}

const (
	altOn  = "\x1b[?1049h"
	altOff = "\x1b[?1049l"
	ris    = "\x1bc" // reset to initial state
)

// screen is one job's terminal. It is owned by the job's runner goroutine.
type screen struct {
	cols, rows int
	tail       []byte // the last bytes of raw output, at most 2*screenTail
	total      int64  // bytes of output so far: tail ends there
	alt        bool   // on the alternate screen where tail begins

	emu     *vt.Emulator // nil until asked, and after screenWatch without an ask
	fed     int64        // the output the emulator has seen
	lastAsk time.Time
}

func newScreen(cols, rows int) *screen { return &screen{cols: cols, rows: rows} }

// screensOff turns the tail off, for BenchmarkScreenThroughput's reference.
var screensOff = false

// write records raw output the job printed.
func (s *screen) write(p []byte, now time.Time) {
	if screensOff {
		return
	}
	if s.emu != nil && now.Sub(s.lastAsk) > screenWatch {
		s.drop()
	}
	s.total += int64(len(p))
	s.tail = append(s.tail, p...)
	if len(s.tail) > 2*screenTail {
		cut := len(s.tail) - screenTail
		s.noteAlt(s.tail[:cut])
		n := copy(s.tail, s.tail[cut:])
		s.tail = s.tail[:n]
	}
}

// noteAlt follows the alternate-screen switches in p, output leaving the
// tail. Output without ESC (most of it) costs one IndexByte.
func (s *screen) noteAlt(p []byte) {
	if bytes.IndexByte(p, 0x1b) < 0 {
		return
	}
	last := -1
	for _, sw := range altSwitches {
		i := bytes.LastIndex(p, sw)
		if i < 0 || i <= last {
			continue
		}
		if j := i + len(sw); j < len(p) && (p[j] == 'h' || p[j] == 'l') {
			last, s.alt = i, p[j] == 'h'
		}
	}
}

// take is snapshot for an asker: a panic of the emulator on what the job
// printed (outside input) fails the ask and drops the emulator, never the job.
func (s *screen) take(now time.Time, mask func(string) string) (sc *jobs.Screen, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.emu, s.fed = nil, 0 // rebuilt from the tail at the next ask
			err = fmt.Errorf("the terminal emulator failed on the job's output: %v", v)
		}
	}()
	return s.snapshot(now, mask), nil
}

// snapshot brings the emulator up to date and renders the screen.
func (s *screen) snapshot(now time.Time, mask func(string) string) *jobs.Screen {
	s.lastAsk = now
	start := s.total - int64(len(s.tail))
	if s.emu != nil && s.fed >= start {
		s.feed(s.tail[s.fed-start:], false, s.emu.IsAltScreen())
	} else {
		s.feed(s.tail, true, s.alt)
	}
	s.fed = s.total

	e := s.emu
	sc := &jobs.Screen{Rows: s.rows, Cols: s.cols, Alternate: e.IsAltScreen(), Lines: []string{}}
	// Clamped: vt v0.1.0 lets a scroll region larger than the screen move
	// the cursor below it (FuzzScreen found it).
	pos := e.CursorPosition()
	sc.CursorRow, sc.CursorCol = min(max(pos.Y, 0), s.rows-1), min(max(pos.X, 0), s.cols-1)
	var line strings.Builder
	for y := range s.rows {
		line.Reset()
		wide := false
		for x := range s.cols {
			c := e.CellAt(x, y)
			switch {
			case c == nil:
				line.WriteByte(' ')
			case c.Content == "" && c.Width == 0 && wide:
				// The second column of a wide character.
			case c.Content == "":
				line.WriteByte(' ')
			default:
				line.WriteString(c.Content)
			}
			wide = c != nil && c.Width > 1
		}
		sc.Lines = append(sc.Lines, mask(strings.TrimRight(line.String(), " ")))
	}
	for len(sc.Lines) > 0 && sc.Lines[len(sc.Lines)-1] == "" {
		sc.Lines = sc.Lines[:len(sc.Lines)-1]
	}
	return sc
}

// feed writes p to the emulator; fresh: to a blank terminal (on the
// alternate screen if alt), the emulator reset or made. Plain text (no ESC)
// of more lines than the screen has shows only its last lines: a blank
// terminal gets just those, rather than scrolling through all of them.
func (s *screen) feed(p []byte, fresh, alt bool) {
	if bytes.IndexByte(p, 0x1b) < 0 {
		if i := lastLinesStart(p, s.rows); i > 0 {
			p, fresh = p[i:], true
		}
	}
	switch {
	case s.emu == nil:
		s.emu = newEmulator(s.cols, s.rows)
	case fresh:
		// Back to the main screen, then a full reset (RIS): cheaper than a
		// new emulator, which allocates megabytes.
		s.emu.WriteString(altOff + ris)
	}
	if fresh && alt {
		s.emu.WriteString(altOn)
	}
	s.emu.Write(p)
}

// lastLinesStart returns where the last n lines of p begin (after the n-th
// line feed from its end), or 0 when p has no more than n line feeds.
func lastLinesStart(p []byte, n int) int {
	end := len(p)
	for range n {
		i := bytes.LastIndexByte(p[:end], '\n')
		if i <= 0 {
			return 0
		}
		end = i
	}
	if i := bytes.LastIndexByte(p[:end], '\n'); i >= 0 {
		return i + 1
	}
	return 0
}

// newEmulator returns an emulator of the given size whose answers are dropped.
func newEmulator(cols, rows int) *vt.Emulator {
	e := vt.NewEmulator(cols, rows)
	// Lines scrolled off are not shown: keep one (0 keeps the default
	// 10,000).
	e.SetScrollbackSize(1)
	// The emulator answers a program's queries (cursor position, device
	// attributes) on its input pipe, which blocks until read. The answers
	// are dropped: the job's real terminal is the PTY, and answering from
	// here would type into the job.
	go func() {
		buf := make([]byte, 256)
		for {
			if _, err := e.Read(buf); err != nil {
				return
			}
		}
	}()
	return e
}

// drop frees the emulator: nobody watched for screenWatch.
func (s *screen) drop() {
	if s.emu != nil {
		closeEmulator(s.emu)
		s.emu = nil
	}
}

// closeEmulator ends the goroutine that drains e's answers by closing the
// pipe they go to. Not e.Close: vt v0.1.0's Close writes a flag that Read
// reads without a lock (a data race with the drain).
func closeEmulator(e *vt.Emulator) {
	if pw, ok := e.InputPipe().(*io.PipeWriter); ok {
		pw.Close()
	}
}

// screenReq asks a job's runner for its screen.
type screenReq struct {
	settle time.Duration // 0: now; else wait for output, then quiet, at most this
	reply  chan screenReply
}

type screenReply struct {
	s   *jobs.Screen
	err error
}

// screenPort is how a running job's screen is reached: its runner reads req
// until done is closed. Until the job's command is typed (the connection
// and the shell may take seconds), its port has no req: the screen is blank.
type screenPort struct {
	req        chan screenReq
	done       <-chan struct{}
	cols, rows int // for the blank screen
}

// screenBoard holds the screen ports of the jobs running on a pool's shells,
// by job id. The zero value is ready to use.
type screenBoard struct {
	mu    sync.Mutex // protects ports
	ports map[string]screenPort
}

func (b *screenBoard) add(id string, p screenPort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ports == nil {
		b.ports = map[string]screenPort{}
	}
	b.ports[id] = p
}

func (b *screenBoard) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.ports, id)
}

func (b *screenBoard) get(id string) (screenPort, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.ports[id]
	return p, ok
}

// Screen returns the screen of job id, running on one of the pool's shells
// (jobs.Screener).
func (e *Executor) Screen(ctx context.Context, id string, opts jobs.ScreenOptions) (*jobs.Screen, error) {
	p, ok := e.pool.screens.get(id)
	if !ok {
		return nil, fmt.Errorf("%w: job %s is not running on a terminal here", jobs.ErrNoScreen, id)
	}
	if p.req == nil {
		return &jobs.Screen{Cols: p.cols, Rows: p.rows, Lines: []string{}}, nil
	}
	req := screenReq{settle: opts.Settle, reply: make(chan screenReply, 1)}
	ended := fmt.Errorf("%w: job %s ended", jobs.ErrNoScreen, id)
	select {
	case p.req <- req:
	case <-p.done:
		return nil, ended
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.s, r.err
	case <-p.done:
		return nil, ended
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pendingScreen is a screen request waiting for the screen to settle.
type pendingScreen struct {
	req      screenReq
	deadline time.Time
	gen      int // the runner's scrGen when asked: output since counts
}

// screenAsked answers a screen request now, or keeps it until the screen
// settles.
func (r *runner) screenAsked(req screenReq) {
	now := time.Now()
	if req.settle <= 0 {
		sc, err := r.scr.take(now, r.mask.String)
		req.reply <- screenReply{s: sc, err: err}
		return
	}
	// Bring the emulator up to date now: the answer then feeds it only
	// what the keys caused.
	r.scr.take(now, r.mask.String)
	r.screens = append(r.screens, pendingScreen{req: req, deadline: now.Add(req.settle), gen: r.scrGen})
	r.armScreens(now)
}

// armScreens sets the settle timer for the earliest pending request: its
// deadline, or screenQuiet after the last output once output came since it
// asked.
func (r *runner) armScreens(now time.Time) {
	r.settle.Stop()
	var next time.Time
	for _, p := range r.screens {
		at := p.deadline
		if r.scrGen > p.gen {
			at = minTime(at, r.lastOut.Add(screenQuiet))
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if !next.IsZero() {
		r.settle.Reset(max(next.Sub(now), 0))
	}
}

// settled answers the pending requests whose screen settled or whose time
// is up.
func (r *runner) settled() {
	now := time.Now()
	var left []pendingScreen
	for _, p := range r.screens {
		quiet := r.scrGen > p.gen && now.Sub(r.lastOut) >= screenQuiet
		if quiet || !now.Before(p.deadline) {
			sc, err := r.scr.take(now, r.mask.String)
			p.req.reply <- screenReply{s: sc, err: err}
			continue
		}
		left = append(left, p)
	}
	r.screens = left
	r.armScreens(now)
}

// endScreens answers the requests still pending: the job ended.
func (r *runner) endScreens() {
	for _, p := range r.screens {
		p.req.reply <- screenReply{err: fmt.Errorf("%w: job %s ended", jobs.ErrNoScreen, r.jr.ID)}
	}
	r.screens = nil
	r.scr.drop()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
