package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// TestMCPSecretInputVerbatim (issue 9, item 6): secret text is typed as
// given, backslashes included, followed by one Enter (a final newline in the
// text is that Enter); no error repeats any of it.
func TestMCPSecretInputVerbatim(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	for _, tc := range []struct{ text, want string }{
		{`pa\ss\x41w\nrd\t`, `pa\ss\x41w\nrd\t`},
		{`bad\xzz-s3cret`, `bad\xzz-s3cret`},
		{`ends\u12`, `ends\u12`},
		{"with-enter-s3cret\n", "with-enter-s3cret"},
		{"crlf-s3cret\r\n", "crlf-s3cret"},
	} {
		v := c.job("ssh_run", map[string]any{"host": srv.Alias, "timeout_s": 0.5,
			"command": `printf 'Secret: '; IFS= read -r v; printf '%s' "$v" | sha256sum | cut -c1-64; IFS= read -r -t 1 w || echo no-second-line`})
		if v.State != jobs.StateWaitingInput {
			v = c.job("ssh_job", map[string]any{"job_id": v.JobID, "wait_s": 20})
		}
		if v.State != jobs.StateWaitingInput {
			t.Fatalf("the job does not wait for input: %+v", v)
		}
		res := c.call("ssh_input", map[string]any{"job_id": v.JobID, "text": tc.text, "secret": true, "wait_s": 5})
		body := text(res)
		if res.IsError {
			t.Errorf("%q: error %s", tc.want, body)
		}
		got := c.job("ssh_job", map[string]any{"job_id": v.JobID, "wait_s": 10})
		sum := sha256.Sum256([]byte(tc.want))
		if want := "Secret: " + hex.EncodeToString(sum[:]) + "\nno-second-line\n"; got.State != jobs.StateSucceeded || got.Output != want {
			t.Errorf("%q: %s output %q, want %q", tc.want, got.State, got.Output, want)
		}
		for _, part := range []string{"s3cret", `\x41w`, `\xzz`, `\u12`} {
			if strings.Contains(body, part) && strings.Contains(tc.text, part) {
				t.Errorf("%q: the answer repeats the secret: %s", tc.want, body)
			}
		}
	}
}

// ssh_input keys types named keys: a tab and Enter reach the program as the
// terminal would send them, ctrl keys as control bytes; an unknown key is a
// tool error that lists the valid ones, and text with keys is refused.
func TestMCPInputKeys(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "timeout_s": 0.5,
		"command": `stty raw -echo; dd bs=1 count=6 2>/dev/null | od -An -tx1; stty sane`})
	if v.State.Final() {
		t.Fatalf("the job ended before input: %+v", v)
	}
	if res := c.call("ssh_input", map[string]any{"job_id": v.JobID, "keys": "<nope>"}); !res.IsError || !strings.Contains(text(res), "<enter>") {
		t.Fatalf("an unknown key: %s", text(res))
	}
	if res := c.call("ssh_input", map[string]any{"job_id": v.JobID, "keys": "a", "text": "b"}); !res.IsError {
		t.Fatalf("text and keys together: %s", text(res))
	}
	c.call("ssh_input", map[string]any{"job_id": v.JobID, "keys": "a<tab><up><ctrl-c>"})
	got := c.job("ssh_job", map[string]any{"job_id": v.JobID, "wait_s": 10})
	if got.State != jobs.StateSucceeded || strings.Join(strings.Fields(got.Output), " ") != "61 09 1b 5b 41 03" {
		t.Fatalf("keys as the program read them: %s %q", got.State, got.Output)
	}
}
