// Package term turns the bytes a terminal receives into the text a person would
// read on it: escape sequences removed, CRLF turned into LF, and a line
// rewritten with a bare CR (a progress bar) kept in its last state.
//
// The cleaner works on a stream: it carries incomplete escape sequences and the
// current line across writes, so that the output never depends on how the
// input was split into chunks.
package term

import "unicode/utf8"

// Limits past which an escape sequence is not believed to be one: its bytes
// are treated as ordinary output instead. Binary output (cat of an executable)
// often holds an ESC followed by '[' or ']'; without a limit, an unterminated
// OSC would swallow everything after it.
const (
	maxControlSeq = 256  // ESC, CSI: real ones are a few dozen bytes
	maxStringSeq  = 8192 // OSC, DCS, SOS, PM, APC: titles, hyperlinks, sixels are cut short
	// MaxPendingLine is how much of a line without a newline is held back
	// (because a CR may still rewrite it) before it is emitted anyway.
	MaxPendingLine = 64 << 10
)

type state uint8

const (
	stGround    state = iota
	stEsc             // after ESC
	stEscInter        // ESC and intermediate bytes (charset selections: ESC ( B)
	stCSI             // ESC [ parameters, waiting for the final byte
	stString          // OSC, DCS, SOS, PM or APC body, until BEL or ST
	stStringEsc       // ESC inside a string: ST if '\\' follows
)

// Cleaner is a streaming terminal-output cleaner. The zero value is ready to
// use. It is not safe for concurrent use.
type Cleaner struct {
	st  state
	seq []byte // the escape sequence being read, from its ESC

	// line is the part of the current line not emitted yet: a CR may still
	// rewrite it. committed says an earlier part of the line was emitted
	// (it grew past MaxPendingLine, or Commit was called), so a rewrite starts
	// a new line instead of erasing text that is already out.
	line      []byte
	committed bool
	cr        bool // a bare CR was seen: the next text rewrites the line

	out []byte
}

// Write cleans p and returns the clean bytes that are final now: whole lines,
// and parts of very long lines. The returned slice is the caller's.
func (c *Cleaner) Write(p []byte) []byte {
	c.out = nil
	for _, b := range p {
		c.feed(b)
	}
	return c.take()
}

// Flush ends the stream: it returns the pending line (without adding a
// newline) and drops an incomplete control sequence. An unterminated string
// sequence is given back as text. The Cleaner is then ready for a new stream.
func (c *Cleaner) Flush() []byte {
	c.out = nil
	if c.st == stString || c.st == stStringEsc {
		c.abandon()
	}
	c.st, c.seq = stGround, c.seq[:0]
	c.emitLine()
	c.committed, c.cr = false, false
	return c.take()
}

// Commit emits the pending line now, as it stands; a later CR rewrite of that
// line then starts a new line. An executor calls it when output has been idle
// for a while, so that a prompt or a slow progress line becomes visible.
func (c *Cleaner) Commit() []byte {
	c.out = nil
	c.emitLine()
	return c.take()
}

// Discard drops the pending line: text a program showed and takes back
// once answered, such as a network device's pager prompt (--More--).
func (c *Cleaner) Discard() {
	c.line, c.cr = c.line[:0], false
}

// Pending returns the part of the current line that is held back (what a
// terminal would show on its last line, if nothing was committed). The slice
// is valid until the next call.
func (c *Cleaner) Pending() []byte {
	return c.line
}

func (c *Cleaner) take() []byte {
	out := c.out
	c.out = nil
	return out
}

// emitLine moves the pending line to the output, marking it committed.
func (c *Cleaner) emitLine() {
	if len(c.line) > 0 {
		c.out = append(c.out, c.line...)
		c.line = c.line[:0]
		c.committed = true
	}
}

func (c *Cleaner) feed(b byte) {
	switch c.st {
	case stGround:
		c.ground(b)
	case stEsc:
		c.esc(b)
	case stEscInter:
		switch {
		case b == 0x1b:
			c.startEsc()
		case b == 0x18 || b == 0x1a: // CAN, SUB abort
			c.toGround()
		case b < 0x20:
			c.control(b)
		case b < 0x30:
			c.push(b, maxControlSeq)
		case b < 0x7f:
			c.toGround() // final byte
		case b == 0x7f:
		default:
			c.toGround()
			c.ground(b)
		}
	case stCSI:
		switch {
		case b == 0x1b:
			c.startEsc()
		case b == 0x18 || b == 0x1a:
			c.toGround()
		case b < 0x20:
			c.control(b)
		case b < 0x40: // parameters and intermediates
			c.push(b, maxControlSeq)
		case b < 0x7f:
			c.toGround() // final byte
		case b == 0x7f:
		default:
			// Not part of any CSI: a UTF-8 byte after a stray "ESC [".
			c.toGround()
			c.ground(b)
		}
	case stString:
		switch b {
		case 0x07: // BEL ends an OSC (xterm); accepted for all strings
			c.toGround()
		case 0x1b:
			c.st = stStringEsc
			c.push(b, maxStringSeq)
		case 0x18, 0x1a:
			c.toGround()
		default:
			c.push(b, maxStringSeq)
		}
	case stStringEsc:
		if b == '\\' {
			c.toGround()
			return
		}
		// Any other ESC sequence ends the string and starts itself.
		c.st, c.seq = stEsc, append(c.seq[:0], 0x1b)
		c.esc(b)
	}
}

func (c *Cleaner) startEsc() {
	c.st, c.seq = stEsc, append(c.seq[:0], 0x1b)
}

func (c *Cleaner) toGround() {
	c.st, c.seq = stGround, c.seq[:0]
}

// push appends b to the current sequence; past limit the sequence is
// abandoned and its bytes become output.
func (c *Cleaner) push(b byte, limit int) {
	c.seq = append(c.seq, b)
	if len(c.seq) > limit {
		c.abandon()
	}
}

// abandon gives up on the current sequence: everything after its introducer
// (ESC and the byte after it) is read again as ordinary input, which may hold
// further sequences.
func (c *Cleaner) abandon() {
	var rest []byte
	if len(c.seq) > 2 {
		rest = append(rest, c.seq[2:]...)
	}
	c.toGround()
	for _, b := range rest {
		c.feed(b)
	}
}

func (c *Cleaner) esc(b byte) {
	switch {
	case b == '[':
		c.st = stCSI
		c.seq = append(c.seq, b)
	case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
		c.st = stString
		c.seq = append(c.seq, b)
	case b == 0x1b:
		c.startEsc()
	case b == 0x18 || b == 0x1a:
		c.toGround()
	case b < 0x20:
		c.control(b)
	case b < 0x30:
		c.st = stEscInter
		c.seq = append(c.seq, b)
	case b < 0x7f:
		c.toGround() // a single-character sequence: ESC 7, ESC =, ESC M, ...
	case b == 0x7f:
	default:
		c.toGround()
		c.ground(b)
	}
}

func (c *Cleaner) ground(b byte) {
	switch {
	case b == 0x1b:
		c.startEsc()
	case b < 0x20 || b == 0x7f:
		c.control(b)
	default:
		c.text(b)
	}
}

// control executes a C0 control byte (other than ESC); also used inside
// control sequences, as terminals do.
func (c *Cleaner) control(b byte) {
	switch b {
	case '\n':
		c.out = append(c.out, c.line...)
		c.out = append(c.out, '\n')
		c.line, c.committed, c.cr = c.line[:0], false, false
	case '\r':
		c.cr = true
	case '\t':
		c.text(b)
	case '\b':
		// Back one character: erase it from the held line. A terminal would
		// only move the cursor, but what follows a backspace is nearly always
		// its replacement.
		if !c.cr && len(c.line) > 0 {
			_, n := utf8.DecodeLastRune(c.line)
			c.line = c.line[:len(c.line)-n]
		}
	}
	// Every other control (BEL, NUL, SO/SI, DEL, ...) shows nothing.
}

func (c *Cleaner) text(b byte) {
	if c.cr {
		c.cr = false
		c.line = c.line[:0]
		if c.committed {
			c.out = append(c.out, '\n')
			c.committed = false
		}
	}
	c.line = append(c.line, b)
	if len(c.line) >= MaxPendingLine {
		c.emitLine()
	}
}
