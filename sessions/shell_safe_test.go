package sessions

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
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
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		dir := t.TempDir()
		pwned := filepath.Join(dir, "pwned")
		sudoPass := "touch " + pwned
		loginPass := "login-pass-s3cret"
		p, logs := newSudoPool(t, srv, sshdial.StaticSecrets{sshdial.SecretSudo: sudoPass, sshdial.SecretPassword: loginPass})

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

// testShells are the login shells the session shell is tested with.
func testShells(t *testing.T) []string {
	var shells []string
	for _, sh := range []string{"/bin/bash", "/bin/dash", "/usr/bin/zsh", "/bin/zsh", "/usr/bin/busybox", "/bin/busybox"} {
		if _, err := os.Stat(sh); err == nil && !slices.ContainsFunc(shells, func(s string) bool { return filepath.Base(s) == filepath.Base(sh) }) {
			shells = append(shells, sh)
		}
	}
	if len(shells) < 4 {
		t.Logf("shells found: %v", shells)
	}
	return shells
}

// TestShellUnreadSecretInput (issue 9, item 5): a secret typed while the job
// reads nothing is discarded at the job's end, not run as a command and not
// kept in the shell's history; and the shell masks it in later jobs too.
func TestShellUnreadSecretInput(t *testing.T) {
	t.Parallel()
	for _, sh := range testShells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			sshtest.Each(t, sshtest.Options{Shell: sh}, func(t *testing.T, srv *sshtest.Server) {
				p := newTestPool(t, srv, PoolConfig{})
				dir := t.TempDir()
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				secret := "touch " + dir + "/pwned; : s3cret-XYZ"
				task := newTestTask()
				resc := startJob(p, srv, "default", "echo started; sleep 1; echo end", task)
				task.waitOutput(t, "started\n")
				task.controls <- jobs.Control{Input: []byte(secret + "\n"), Secret: true}
				if res := waitResult(t, resc); res.State != jobs.StateSucceeded || task.Output() != "started\nend\n" {
					t.Errorf("job: %s %q output %q", res.State, res.Error, task.Output())
				}
				outs := []string{task.Output()}
				next, res := runJob(t, p, srv, "default", "sleep 0.3; ls "+dir)
				if res.State != jobs.StateSucceeded || next.Output() != "" {
					t.Errorf("the unread secret ran as a command: %s %q", res.State, next.Output())
				}
				hist, _ := runJob(t, p, srv, "default", "history 2>/dev/null; fc -l 1 2>/dev/null; true")
				if strings.Contains(hist.Output(), "pwned") || strings.Contains(hist.Output(), "s3cret") {
					t.Errorf("the history keeps the secret: %q", hist.Output())
				}
				later, res := runJob(t, p, srv, "default", "printf '%s\\n' '"+secret+"'")
				if res.State != jobs.StateSucceeded || later.Output() != maskText+"\n" {
					t.Errorf("a later job shows the secret: %s %q", res.State, later.Output())
				}
				// A partial line left unread is discarded too, and the
				// next command line is whole.
				task = newTestTask()
				resc = startJob(p, srv, "default", "echo started; sleep 1", task)
				task.waitOutput(t, "started\n")
				task.controls <- jobs.Control{Input: []byte("echo junk; : no newline")}
				waitResult(t, resc)
				if after, res := runJob(t, p, srv, "default", "echo ok"); after.Output() != "ok\n" || res.State != jobs.StateSucceeded {
					t.Errorf("after a partial line: %s %q", res.State, after.Output())
				}
				outs = append(outs, next.Output(), hist.Output(), later.Output())
				noSecret(t, "outputs", outs, secret, "s3cret")
			})
		})
	}
}

// TestShellBackgroundNotices (issue 9, item 19): a background job started by
// one job and ending while a later one runs does not put zsh's job-control
// notice into the later job's output. (What background processes print, and
// bash's notices, appear in whichever job runs when they come: one terminal
// cannot tell them apart; between jobs they are dropped.)
func TestShellBackgroundNotices(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"/usr/bin/zsh", "/bin/zsh"} {
		if _, err := os.Stat(sh); err != nil {
			continue
		}
		sshtest.Each(t, sshtest.Options{Shell: sh}, func(t *testing.T, srv *sshtest.Server) {
			p := newTestPool(t, srv, PoolConfig{})
			first, res := runJob(t, p, srv, "default", "sleep 0.3 & echo one")
			if res.State != jobs.StateSucceeded || !strings.HasSuffix(first.Output(), "one\n") {
				t.Errorf("first: %s %q", res.State, first.Output())
			}
			next, res := runJob(t, p, srv, "default", "sleep 1; echo two")
			if res.State != jobs.StateSucceeded || next.Output() != "two\n" {
				t.Errorf("next job: %s %q, want %q", res.State, next.Output(), "two\n")
			}
		})
		return
	}
	t.Skip("zsh not installed")
}

// TestShellTakeover (issue 9, item 18): a command that starts an interactive
// shell on the terminal (`bash`, `exec bash`) ends with a note instead of
// running forever, and the session's next job runs, on a new shell. A
// prompt the job's own shell prints, or a non-interactive bash's, is left
// alone.
func TestShellTakeover(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		for _, cmd := range []string{"bash", "exec bash", "PS1='$ ' sh -i"} {
			task := newTestTask()
			resc := startJob(p, srv, "default", cmd, task)
			var res jobs.Result
			select {
			case res = <-resc:
			case <-time.After(20 * time.Second):
				t.Fatalf("%q: still running after 20s; output %q", cmd, task.Output())
			}
			if res.State != jobs.StateFailed || res.Error != msgTakeover {
				t.Errorf("%q: %s %q", cmd, res.State, res.Error)
			}
			next, res := runJob(t, p, srv, "default", "echo ok")
			if next.Output() != "ok\n" || res.State != jobs.StateSucceeded || !next.starts[0].NewShell {
				t.Errorf("after %q: %s %q starts %v", cmd, res.State, next.Output(), next.starts)
			}
		}
		for _, c := range []struct{ cmd, prompt string }{
			{`read -p 'x$ ' v; echo "got $v"`, "x$ "},
			{`bash -c 'read -p "y# " v; echo "got $v"'`, "y# "},
		} {
			cmd := c.cmd
			task := newTestTask()
			resc := startJob(p, srv, "default", cmd, task)
			task.waitOutput(t, c.prompt)
			time.Sleep(2 * takeoverIdle)
			task.controls <- jobs.Control{Input: []byte("it\n")}
			if res := waitResult(t, resc); res.State != jobs.StateSucceeded || !strings.HasSuffix(task.Output(), "got it\n") {
				t.Errorf("%q: %s %q output %q", cmd, res.State, res.Error, task.Output())
			}
		}
	})
}

func TestInteractiveShell(t *testing.T) {
	t.Parallel()
	for argv, want := range map[string]bool{
		"bash": true, "-bash": true, "/bin/zsh -l": true, "sh -i": true, "busybox sh": true,
		"bash script.sh": false, "bash -c true": false, "bash -lc true": false, "busybox ls": false,
		"su": true, "su -": true, "su - root": true, "su -c id root": false,
		"sudo -i": true, "sudo -iu root": true, "sudo -s": true, "sudo su -": true, "sudo -u root bash": true,
		"sudo bash -c id": false, "sudo whoami": false, "sudo -u root whoami": false, "python3": false, "": false,
	} {
		if got := interactiveShell(strings.Fields(argv)); got != want {
			t.Errorf("interactiveShell(%q) = %v, want %v", argv, got, want)
		}
	}
}

// TestShellTakeoverSudo: `sudo -i` (after the caller typed the password)
// and `su -` end like `bash` does.
func TestShellTakeoverSudo(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{User: sshtest.TestUser}, func(t *testing.T, srv *sshtest.Server) {
		p, logs := newSudoPool(t, srv, nil)
		task := newTestTask()
		resc := startJob(p, srv, "default", "sudo -k; sudo -i", task)
		if pr := task.waitPrompt(t); pr.Kind != jobs.PromptPassword {
			t.Fatalf("prompt %+v", pr)
		}
		task.controls <- jobs.Control{Input: []byte(srv.Password + "\n"), Secret: true}
		var res jobs.Result
		select {
		case res = <-resc:
		case <-time.After(20 * time.Second):
			t.Fatalf("sudo -i: still running after 20s; output %q", task.Output())
		}
		if res.State != jobs.StateFailed || res.Error != msgTakeover {
			t.Errorf("sudo -i: %s %q output %q", res.State, res.Error, task.Output())
		}
		next, res := runJob(t, p, srv, "default", "id -un")
		if next.Output() != sshtest.TestUser+"\n" || res.State != jobs.StateSucceeded || !next.starts[0].NewShell {
			t.Errorf("after sudo -i: %s %q starts %v", res.State, next.Output(), next.starts)
		}
		noSecret(t, "sudo -i", []string{task.Output(), next.Output(), logs.String()}, srv.Password)
	})
}
