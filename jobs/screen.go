package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Terminal sizes a job may ask for (Spec.Cols, Spec.Rows). The bounds keep a
// screen's emulator small: its memory grows with cols*rows.
const (
	MinCols, MaxCols = 20, 500
	MinRows, MaxRows = 5, 200
)

// Screen is what a running job's terminal shows, as a terminal emulator fed
// with the job's output renders it.
type Screen struct {
	Rows, Cols int
	// Lines are the rows of the screen, top to bottom, each without its
	// trailing blanks; blank rows at the bottom are left out.
	Lines []string
	// CursorRow and CursorCol are 0-based.
	CursorRow, CursorCol int
	// Alternate: the program switched to the alternate screen (as vim and
	// less without -X do); its drawing leaves no scrollback.
	Alternate bool
}

// ScreenOptions say when a screen is taken.
type ScreenOptions struct {
	// Settle, when set, waits for the screen to stop changing: for output
	// to come and then be quiet, at most Settle. Zero: the screen now.
	Settle time.Duration
}

// Screener is implemented by an Executor that keeps the screens of the jobs
// it runs on a terminal.
type Screener interface {
	// Screen returns job id's screen; an error wrapping ErrNoScreen when the
	// executor runs no such job on a terminal.
	Screen(ctx context.Context, id string, opts ScreenOptions) (*Screen, error)
}

// ErrNoScreen: the job has no screen to show (it ended, or runs without a
// terminal).
var ErrNoScreen = errors.New("no screen")

// Screen returns the screen of a running job of this process. A finished,
// queued or detached job has none, nor has a job another process runs.
func (e *Engine) Screen(ctx context.Context, id string, opts ScreenOptions) (*Screen, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	j, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := noScreen(j); err != nil {
		return nil, err
	}
	if t := e.taskFor(ctx, j); t == nil {
		if j, err = e.store.Get(ctx, id); err != nil {
			return nil, err
		}
		if err := noScreen(j); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: job %s runs in another sshjobs process (%s), which holds its terminal: read its output instead", ErrNoScreen, id, j.Owner)
	}
	sc, ok := e.exec.(Screener)
	if !ok {
		return nil, fmt.Errorf("%w: job %s: this executor keeps no screens", ErrNoScreen, id)
	}
	s, err := sc.Screen(ctx, id, opts)
	if errors.Is(err, ErrNoScreen) {
		// It may have ended meanwhile: say so rather than "no screen".
		if j2, err2 := e.store.Get(ctx, id); err2 == nil {
			if err3 := noScreen(j2); err3 != nil {
				return nil, err3
			}
		}
	}
	return s, err
}

// noScreen explains why j cannot have a screen, or returns nil.
func noScreen(j *Job) error {
	switch {
	case j.State.Final():
		return fmt.Errorf("%w: job %s is %s: a finished job has no screen; read its output instead", ErrNoScreen, j.ID, j.State)
	case j.State == StateQueued:
		return fmt.Errorf("%w: job %s is queued: it has no screen until it starts", ErrNoScreen, j.ID)
	case j.Detached:
		return fmt.Errorf("%w: job %s is detached: it runs without a terminal; read its output", ErrNoScreen, j.ID)
	case j.Kind == KindFile:
		return fmt.Errorf("%w: job %s is a file operation: it has no terminal", ErrNoScreen, j.ID)
	}
	return nil
}

// validTerm checks a terminal size asked for; zero means the session's.
func validTerm(cols, rows int) error {
	if cols != 0 && (cols < MinCols || cols > MaxCols) {
		return fmt.Errorf("%w: cols must be between %d and %d (got %d)", ErrBadInput, MinCols, MaxCols, cols)
	}
	if rows != 0 && (rows < MinRows || rows > MaxRows) {
		return fmt.Errorf("%w: rows must be between %d and %d (got %d)", ErrBadInput, MinRows, MaxRows, rows)
	}
	return nil
}
