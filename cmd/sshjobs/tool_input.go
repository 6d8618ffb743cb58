package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/keys"
	"github.com/sshjobs/sshjobs/jobs"
)

type inputIn struct {
	JobID  string   `json:"job_id" jsonschema:"from ssh_run or ssh_jobs"`
	Text   string   `json:"text,omitempty" jsonschema:"text to type; escapes like \\n (Enter), \\t, \\x03 (Ctrl-C) are decoded, except with secret=true"`
	Keys   string   `json:"keys,omitempty" jsonschema:"instead of text: text and named keys, e.g. :wq<enter>, <esc>, <up>, <pgdn>, <ctrl-c>, <f1>; << is a literal <"`
	Secret bool     `json:"secret,omitempty" jsonschema:"a password: the text is typed exactly as given (no escapes decoded, so backslashes stay) followed by one Enter (a final newline in the text is that Enter); it is never stored or logged, and masked if echoed"`
	WaitS  *float64 `json:"wait_s,omitempty" jsonschema:"seconds to wait for the job to react (default 2)"`
	Screen bool     `json:"screen,omitempty" jsonschema:"return the screen once it stops changing (at most wait_s) instead of output"`
}

func addInputTool(s *mcp.Server, a *app) {
	addTool(s, &mcp.Tool{
		Name:        "ssh_input",
		Description: "Type text into a running job's terminal, e.g. to answer a prompt of a job in waiting_input. End a line with \\n.",
		Annotations: &mcp.ToolAnnotations{Title: "Send input", DestructiveHint: &yes, OpenWorldHint: &yes},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in inputIn) (*mcp.CallToolResult, *jobView, error) {
		wait, err := seconds("wait_s", in.WaitS, 2, 300)
		if err != nil {
			return nil, nil, err
		}
		text, err := inputBytes(in)
		if err != nil {
			return nil, nil, err
		}
		before, err := a.eng.Get(ctx, in.JobID)
		if err != nil {
			return nil, nil, toolError(err)
		}
		if err := a.eng.Input(ctx, in.JobID, text, in.Secret); err != nil {
			return nil, nil, toolError(err)
		}
		opts := jobs.WaitOptions{Timeout: wait, Offset: -1, PromptAfter: before.OutputBytes}
		if in.Screen {
			res, v, err := a.screen(ctx, before, jobs.ScreenOptions{Settle: wait})
			if !errors.Is(err, jobs.ErrNoScreen) {
				return res, v, err
			}
			// No screen: the keys may have ended the job (q, :wq), and then
			// its state and output say how; else the screen's error stands.
			j, werr := a.eng.Wait(ctx, in.JobID, jobs.WaitOptions{Timeout: wait, Offset: -1, UntilFinal: true})
			if werr != nil || !j.State.Final() {
				return nil, nil, err
			}
			opts.Timeout = 0
		}
		// Wait for the job to react: its end or its next prompt (not the one
		// just answered), at most wait_s.
		j, err := a.eng.Wait(ctx, in.JobID, opts)
		if err != nil {
			return nil, nil, err
		}
		v, err := a.view(context.WithoutCancel(ctx), j, slice{offset: before.OutputBytes})
		if err != nil {
			return nil, nil, err
		}
		return result(v), v, nil
	})
}

// inputBytes is what ssh_input types: text (escapes decoded, or a secret as
// it is) or keys (named keys), one of the two.
func inputBytes(in inputIn) ([]byte, error) {
	switch {
	case in.Keys != "" && (in.Text != "" || in.Secret):
		return nil, fmt.Errorf("%w: give text (with secret) or keys, not both", jobs.ErrBadInput)
	case in.Keys != "":
		b, err := keys.Parse(in.Keys)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", jobs.ErrBadInput, err)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: keys is empty", jobs.ErrBadInput)
		}
		return b, nil
	case in.Secret:
		return secretText(in.Text)
	}
	return decodeEscapes(in.Text)
}

// secretText is what is typed for a secret: the text as given, then one
// Enter. Escapes are not decoded: a password may hold backslashes, and a
// model that means Enter by a final \n is covered by the Enter rule. Errors
// never quote the text.
func secretText(s string) ([]byte, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	switch {
	case s == "":
		return nil, fmt.Errorf("%w: text is empty", jobs.ErrBadInput)
	case strings.ContainsRune(s, 0):
		return nil, fmt.Errorf("%w: secret text contains a NUL byte", jobs.ErrBadInput)
	}
	return []byte(s + "\n"), nil
}

// decodeEscapes turns the backslash escapes a model can type (\n, \r, \t,
// \e, \\, \xHH, \uHHHH) into the bytes they stand for.
func decodeEscapes(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: text is empty", jobs.ErrBadInput)
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i == len(s)-1 {
			b = append(b, c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'e':
			b = append(b, 0x1b)
		case '\\':
			b = append(b, '\\')
		case 'x', 'u':
			n := 2
			if s[i] == 'u' {
				n = 4
			}
			if i+1+n > len(s) {
				return nil, fmt.Errorf("%w: text: \\%c needs %d hex digits", jobs.ErrBadInput, s[i], n)
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil {
				return nil, fmt.Errorf("%w: text: bad escape \\%c%s", jobs.ErrBadInput, s[i], s[i+1:i+1+n])
			}
			if n == 2 {
				b = append(b, byte(v))
			} else {
				b = append(b, string(rune(v))...)
			}
			i += n
		default:
			b = append(b, '\\', s[i])
		}
	}
	if strings.ContainsRune(string(b), 0) {
		return nil, fmt.Errorf("%w: text contains a NUL byte", jobs.ErrBadInput)
	}
	return b, nil
}
