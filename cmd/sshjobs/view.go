package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sshjobs/sshjobs/jobs"
)

// jobView is a job as the tools show it: the job answer fields of docs/TOOLS.md.
type jobView struct {
	JobID         string       `json:"job_id"`
	Host          string       `json:"host"`
	Session       string       `json:"session"`
	State         jobs.State   `json:"state"`
	ExitCode      *int         `json:"exit_code"`
	Signal        string       `json:"signal,omitempty"`
	Error         string       `json:"error,omitempty"`
	ErrorKind     string       `json:"error_kind,omitempty"` // auth, host_key, connect, internal`
	Output        string       `json:"output"`
	OutputBytes   int64        `json:"output_bytes"`
	OutputLost    int64        `json:"output_lost,omitempty"`
	Offset        int64        `json:"offset"`
	NextOffset    int64        `json:"next_offset"`
	Truncated     bool         `json:"truncated"`
	Matches       []jobs.Match `json:"matches,omitempty"`
	Prompt        *jobs.Prompt `json:"prompt,omitempty"`
	Cwd           string       `json:"cwd,omitempty"`
	NewShell      bool         `json:"new_shell,omitempty"`
	StartedAt     string       `json:"started_at,omitempty"`
	EndedAt       string       `json:"ended_at,omitempty"`
	DurationMS    int64        `json:"duration_ms"`
	QueuePosition int          `json:"queue_position,omitempty"`
	Screen        *screenView  `json:"screen,omitempty"`
}

const defaultMaxOutput = 16384

// slice says which part of the output a view shows.
type slice struct {
	offset    int64 // -1: the whole output, as head and tail if too large
	tail      bool  // the last maxOutput bytes
	maxOutput int
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") // RFC 3339, fixed width: sorts as text
}

// newJobView is j's fields as the tools show them, without output.
func newJobView(j *jobs.Job) *jobView {
	return &jobView{
		JobID: j.ID, Host: j.Host, Session: j.Session, State: j.State, ExitCode: j.ExitCode,
		Signal: j.Signal, Error: j.Error, ErrorKind: string(j.ErrorKind), OutputBytes: j.OutputBytes, OutputLost: j.OutputLost, Prompt: j.Prompt, Cwd: j.Cwd,
		NewShell: j.NewShell, StartedAt: rfc3339(j.StartedAt), EndedAt: rfc3339(j.EndedAt),
		DurationMS: durationMS(j, time.Now()),
	}
}

// durationMS is j's run time in milliseconds, rounded up once it started:
// 0 means it never started, not that it was quick (a warm `true` takes
// less than a millisecond).
func durationMS(j *jobs.Job, now time.Time) int64 {
	if j.StartedAt.IsZero() {
		return 0
	}
	return int64((j.Duration(now) + time.Millisecond - 1) / time.Millisecond)
}

// view renders j with the part of its output s asks for.
func (a *app) view(ctx context.Context, j *jobs.Job, s slice) (*jobView, error) {
	v := newJobView(j)
	if j.State == jobs.StateQueued {
		pos, err := a.queuePosition(ctx, j)
		if err != nil {
			return nil, err
		}
		v.QueuePosition = pos
	}
	limit := int64(s.maxOutput)
	if limit <= 0 {
		limit = defaultMaxOutput
	}
	total := j.OutputBytes
	switch {
	case total == 0 && j.State.Final() && s.offset <= 0:
		// No output, and none will come: nothing to read.
	case s.offset >= 0:
		out, err := a.eng.Read(ctx, j.ID, s.offset, limit)
		if err != nil {
			return nil, err
		}
		v.Output, v.Offset = string(out.Data), out.Offset
		v.NextOffset = out.Offset + int64(len(out.Data))
		if out.Skipped > 0 {
			v.Output = fmt.Sprintf("[%d bytes before offset %d were not stored: %s]\n", out.Skipped, out.Offset, notStoredWhy(j)) + v.Output
		}
	case s.tail || total <= limit:
		from := max(0, total-limit)
		out, err := a.eng.Read(ctx, j.ID, from, limit)
		if err != nil {
			return nil, err
		}
		data := out.Data
		if from > 0 { // start at a line boundary when one is near
			if i := strings.IndexByte(string(data[:min(len(data), 1024)]), '\n'); i >= 0 {
				data, from = data[i+1:], out.Offset+int64(i)+1
			}
		} else {
			from = out.Offset
		}
		v.Output, v.Offset = string(data), from
		v.NextOffset = from + int64(len(data))
	default:
		// Head and tail with one marked gap that says how to read the rest.
		headN, tailN := limit/4, limit-limit/4
		head, err := a.eng.Read(ctx, j.ID, 0, headN)
		if err != nil {
			return nil, err
		}
		tail, err := a.eng.Read(ctx, j.ID, total-tailN, tailN)
		if err != nil {
			return nil, err
		}
		h, t := trimUTF8(head.Data, false), trimUTF8(tail.Data, true)
		gapFrom := int64(len(h))
		gapTo := tail.Offset + int64(len(tail.Data)-len(t))
		v.Output = fmt.Sprintf("%s\n[... %d bytes left out: read them with ssh_job offset=%d ...]\n%s",
			h, gapTo-gapFrom, gapFrom, t)
		v.Offset, v.NextOffset = 0, total
		v.Truncated = true
		return v, nil
	}
	v.Truncated = v.Offset > 0 || v.NextOffset < total
	return v, nil
}

// notStoredWhy says why output a read passed over is missing.
func notStoredWhy(j *jobs.Job) string {
	switch {
	case j.OutputLost > 0 && j.GapEnd > 0:
		return "the job's output passed --max-job-output, or could not be stored"
	case j.OutputLost > 0:
		return "the output could not be stored"
	}
	return "the job's output passed --max-job-output"
}

// trimUTF8 drops a rune cut at the start (fromStart) or end of p, so that a
// slice of text stays valid text.
func trimUTF8(p []byte, fromStart bool) []byte {
	if fromStart {
		for i := 0; i < len(p) && i < utf8.UTFMax; i++ {
			if utf8.RuneStart(p[i]) {
				return p[i:]
			}
		}
		return p
	}
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if utf8.FullRune(p[i:]) {
				return p
			}
			return p[:i]
		}
	}
	return p
}

// queuePosition counts the jobs ahead of a queued job in its session.
func (a *app) queuePosition(ctx context.Context, j *jobs.Job) (int, error) {
	ahead, err := a.eng.List(ctx, jobs.ListFilter{Host: j.Host, Session: j.Session,
		States: []jobs.State{jobs.StateQueued, jobs.StateRunning, jobs.StateWaitingInput}, Limit: jobs.MaxListLimit})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range ahead {
		if o.ID < j.ID && !o.Detached { // ids sort by creation time
			n++
		}
	}
	return n, nil
}

// text renders a view for the model: the state line first, then the output.
func (v *jobView) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s %s", v.JobID, v.State)
	if v.ExitCode != nil {
		fmt.Fprintf(&b, " exit=%d", *v.ExitCode)
	}
	if v.Signal != "" {
		fmt.Fprintf(&b, " signal=%s", v.Signal)
	}
	fmt.Fprintf(&b, " host=%s session=%s", v.Host, v.Session)
	if v.DurationMS > 0 {
		fmt.Fprintf(&b, " %s", (time.Duration(v.DurationMS) * time.Millisecond).String())
	}
	if v.Cwd != "" {
		fmt.Fprintf(&b, " cwd=%s", v.Cwd)
	}
	if v.QueuePosition > 0 {
		fmt.Fprintf(&b, " queue_position=%d", v.QueuePosition)
	}
	if v.NewShell {
		b.WriteString(" new_shell (cwd and environment reset)")
	}
	if v.Error != "" && v.ErrorKind != "" {
		fmt.Fprintf(&b, "\nerror (%s): %s", v.ErrorKind, v.Error)
	} else if v.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s", v.Error)
	}
	if v.OutputLost > 0 {
		fmt.Fprintf(&b, "\n%d bytes of output could not be stored (database full or locked); reads pass over them", v.OutputLost)
	}
	if v.Prompt != nil {
		fmt.Fprintf(&b, "\nwaiting for input (%s): %q: answer with ssh_input", v.Prompt.Kind, v.Prompt.Text)
		if v.Prompt.Kind == jobs.PromptPassword {
			b.WriteString(" secret=true")
		}
	}
	if !v.State.Final() && v.State != jobs.StateWaitingInput {
		what := "still running"
		if v.State == jobs.StateQueued {
			what = "queued behind the session's running job"
		}
		b.WriteString("\n" + what + ": follow with ssh_job job_id=" + v.JobID + " wait_s=30")
		if v.NextOffset > 0 {
			fmt.Fprintf(&b, " offset=%d", v.NextOffset)
		}
	}
	if v.Truncated && v.Offset > 0 {
		fmt.Fprintf(&b, "\noutput from offset %d of %d bytes", v.Offset, v.OutputBytes)
	}
	for _, m := range v.Matches {
		fmt.Fprintf(&b, "\n%d:%s", m.Line, m.Text)
	}
	if v.Screen != nil {
		b.WriteString("\n" + v.Screen.text())
	}
	if v.Output != "" {
		b.WriteString("\n")
		b.WriteString(v.Output)
	}
	return b.String()
}

// screenView is a running job's screen as the tools show it.
type screenView struct {
	Rows      int      `json:"rows"`
	Cols      int      `json:"cols"`
	Lines     []string `json:"lines"`
	CursorRow int      `json:"cursor_row"`
	CursorCol int      `json:"cursor_col"`
	Alternate bool     `json:"alternate"`
}

func newScreenView(s *jobs.Screen) *screenView {
	lines := s.Lines
	if lines == nil {
		lines = []string{}
	}
	return &screenView{Rows: s.Rows, Cols: s.Cols, Lines: lines, CursorRow: s.CursorRow, CursorCol: s.CursorCol, Alternate: s.Alternate}
}

// text renders the screen for the model: a header with the size and cursor
// (1-based, as a person counts rows), then the lines in a fence longer than
// any run of backticks they hold.
func (s *screenView) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "screen %dx%d, cursor at row %d col %d", s.Cols, s.Rows, s.CursorRow+1, s.CursorCol+1)
	if s.Alternate {
		b.WriteString(", alternate screen")
	}
	if len(s.Lines) < s.Rows {
		fmt.Fprintf(&b, " (rows %d..%d blank)", len(s.Lines)+1, s.Rows)
	}
	fence := "```"
	for _, l := range s.Lines {
		for strings.Contains(l, fence) {
			fence += "`"
		}
	}
	b.WriteString(":\n" + fence + "\n")
	for _, l := range s.Lines {
		b.WriteString(l + "\n")
	}
	b.WriteString(fence)
	return b.String()
}
