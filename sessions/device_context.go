package sessions

import "bytes"

// editLine is the context line Junos prints before its prompt in
// configuration mode: `[edit]`, `[edit interfaces ge-0/0/0]`.
var editLine = lazyRE(`^\[edit(?: [^\[\]]+)?\]$`)

// contextHold keeps Junos's context lines out of a command's output: a
// blank line and an edit line (editLine) that the prompt follows belong to
// the prompt. Such lines are held back until the next output shows whether
// they were the last (dropped, at the prompt) or output like any other
// (`show | compare` prints them too: they are let through).
type contextHold struct {
	held    []byte // whole lines held: a blank line, an edit line, or both in that order
	hasEdit bool   // held ends with an edit line: nothing more is held after it
	partial []byte // the start of a line that may be one to hold
	midLine bool   // a line's start went out: its end is output, not held
}

// feed takes a piece of output (whole: it ends the line) and returns what
// may be emitted now.
func (h *contextHold) feed(seg []byte, whole bool) []byte {
	if h.midLine {
		h.midLine = !whole
		return append(h.release(), seg...)
	}
	line := append(h.partial, seg...)
	h.partial = nil
	if !whole {
		if mayHold(line) {
			h.partial = line
			return nil
		}
		h.midLine = true
		return append(h.release(), line...)
	}
	text := bytes.TrimRight(line, "\r\n")
	switch {
	case len(bytes.TrimSpace(text)) == 0:
		// What was held before a blank line was output.
		out := h.release()
		h.held = line
		return out
	case editLine().Match(text):
		// So was an edit line before another.
		var out []byte
		if h.hasEdit {
			out = h.release()
		}
		h.held = append(h.held, line...)
		h.hasEdit = true
		return out
	}
	return append(h.release(), line...)
}

// mayHold reports whether the start of a line may become one that is held.
func mayHold(start []byte) bool {
	t := bytes.TrimRight(start, "\r")
	if len(bytes.TrimSpace(t)) == 0 {
		return true
	}
	const edit = "[edit"
	if len(t) < len(edit) {
		return bytes.HasPrefix([]byte(edit), t)
	}
	// Up to its closing bracket, which ends it.
	end := bytes.IndexByte(t, ']')
	return bytes.HasPrefix(t, []byte(edit)) && (end < 0 || end == len(t)-1)
}

// release returns the held lines: more output came after them.
func (h *contextHold) release() []byte {
	out := h.held
	h.held, h.hasEdit = nil, false
	return out
}

// drop forgets what is held: the prompt came right after it.
func (h *contextHold) drop() {
	h.held, h.hasEdit, h.partial, h.midLine = nil, false, nil, false
}

// flush returns everything held: the output ended without a prompt.
func (h *contextHold) flush() []byte {
	out := append(h.release(), h.partial...)
	h.partial, h.midLine = nil, false
	return out
}
