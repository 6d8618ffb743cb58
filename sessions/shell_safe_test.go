package sessions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// noSecret fails t if any of secrets appears in any of texts.
func noSecret(t testing.TB, what string, texts []string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				t.Errorf("%s: the secret %q appears in %q", what, s, txt)
			}
		}
	}
}

// TestShellLookalikeSudoPrompt (issue 9, item 4): a program that prints
// sudo's prompt and reads a line is not sudo and must not get the stored sudo
// or login password: the job waits for the caller instead. A look-alike that
// reads nothing must not get it either (the shell would run it).
func TestShellLookalikeSudoPrompt(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		dir := t.TempDir()
		pwned := filepath.Join(dir, "pwned")
		sudoPass := "touch " + pwned
		loginPass := "login-pass-s3cret"
		p, logs := newSudoPool(t, srv, StaticSecrets{SecretSudo: sudoPass, SecretPassword: loginPass})

		task := newTestTask()
		resc := startJob(p, srv, "default", `printf '[sudo] password for x: '; read -r v; printf 'got:%s\n' "$v"`, task)
		pr := task.waitPrompt(t)
		if want := (jobs.Prompt{Text: "[sudo] password for x:", Kind: jobs.PromptPassword}); pr != want {
			t.Errorf("prompt %+v, want %+v", pr, want)
		}
		if out := task.Output(); out != "[sudo] password for x: " {
			t.Errorf("output while waiting %q", out)
		}
		task.controls <- jobs.Control{Input: []byte("typed\n")}
		res := waitResult(t, resc)
		if want := "[sudo] password for x: got:typed\n"; res.State != jobs.StateSucceeded || task.Output() != want {
			t.Errorf("%s %q output %q, want %q", res.State, res.Error, task.Output(), want)
		}
		noSecret(t, "look-alike that reads", []string{task.Output(), logs.String()}, sudoPass, loginPass)

		// Nothing reads: a typed password would run as a command after it.
		task = newTestTask()
		resc = startJob(p, srv, "default", `printf '[sudo] password for y: '; sleep 1; echo end`, task)
		if pr := task.waitPrompt(t); pr.Kind != jobs.PromptPassword {
			t.Errorf("prompt %+v", pr)
		}
		res = waitResult(t, resc)
		if want := "[sudo] password for y: end\n"; res.State != jobs.StateSucceeded || task.Output() != want {
			t.Errorf("%s %q output %q, want %q", res.State, res.Error, task.Output(), want)
		}
		next, res := runJob(t, p, srv, "default", "sleep 0.5; echo next")
		if next.Output() != "next\n" || res.State != jobs.StateSucceeded {
			t.Errorf("next job: %s %q", res.State, next.Output())
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Errorf("the stored sudo password ran as a command")
		}
		noSecret(t, "look-alike that does not read", []string{task.Output(), logs.String()}, sudoPass, loginPass)
	})
}

var _ = time.Second
