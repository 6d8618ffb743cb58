package sessions

import (
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// startJob runs command in the background; the result comes on the channel.
func startJob(p *Pool, srv *sshtest.Server, session, command string, task *testTask) <-chan jobs.Result {
	resc := make(chan jobs.Result, 1)
	go func() { resc <- runTask(p, srv, session, command, task) }()
	return resc
}

func TestShellPromptAnswered(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		cases := []struct {
			name, cmd, input, want string
			prompt                 jobs.Prompt
		}{
			{"question", `read -p "Value: " v && echo "You said: $v"`, "magic\n", "You said: magic",
				jobs.Prompt{Text: "Value:", Kind: jobs.PromptQuestion}},
			{"confirm", `printf 'Do you want to continue? [Y/n] '; read a; echo "answer=$a"`, "y\n", "answer=y",
				jobs.Prompt{Text: "Do you want to continue? [Y/n]", Kind: jobs.PromptConfirm}},
			{"press_key", `echo working; printf 'Press Enter to continue'; read _; echo done`, "\n", "done",
				jobs.Prompt{Text: "Press Enter to continue", Kind: jobs.PromptPressKey}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				task := newTestTask()
				// The sleep shows output resuming before the job ends (the
				// end marker would end the waiting anyway).
				resc := startJob(p, srv, "default", c.cmd+"; sleep 0.4", task)
				got := task.waitPrompt(t)
				if got != c.prompt {
					t.Errorf("prompt %+v, want %+v", got, c.prompt)
				}
				// The prompt's line is in the output when the job waits.
				if !strings.Contains(task.Output(), c.prompt.Text) {
					t.Errorf("output %q lacks the prompt", task.Output())
				}
				done := make(chan error, 1)
				task.controls <- jobs.Control{Input: []byte(c.input), Done: done}
				res := waitResult(t, resc)
				if res.State != jobs.StateSucceeded || !strings.Contains(task.Output(), c.want) {
					t.Errorf("%s %q: output %q, want %q", res.State, res.Error, task.Output(), c.want)
				}
				if err := <-done; err != nil {
					t.Errorf("input: %v", err)
				}
				ps := task.Prompts()
				if len(ps) != 2 || ps[0] == nil || ps[1] != nil {
					t.Errorf("prompt calls %v, want the prompt once, then nil", ps)
				}
			})
		}
	})
}

// TestShellNotAPrompt: data that looks like a prompt is never taken for
// one, and a prompt-like line followed by more output leaves the job
// running: if the more output came only after promptIdle (a loaded machine
// can stretch the 0.1 s sleep past it), the prompt is withdrawn when it
// comes.
func TestShellNotAPrompt(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		for _, c := range []struct {
			cmd       string
			withdrawn bool // a prompt may be reported, then withdrawn
		}{
			{`printf 'password=secret'; sleep 0.8; echo`, false},
			{`printf '"password": "x"'; sleep 0.8; echo`, false},
			{`printf 'https://example.com/?password=x'; sleep 0.8; echo`, false},
			{`printf 'Name: '; sleep 0.1; echo more; sleep 0.6`, true},
		} {
			task, res := runJob(t, p, srv, "default", c.cmd)
			ps := task.Prompts()
			ok := len(ps) == 0 || c.withdrawn && len(ps) == 2 && ps[0] != nil && ps[1] == nil
			if res.State != jobs.StateSucceeded || !ok {
				t.Errorf("%s: %s, prompts %v, output %q", c.cmd, res.State, ps, task.Output())
			}
		}
	})
}

// TestShellSecretInputMasked: a secret the remote echoes (a program turned
// echo on) is masked in the output, and so is a second, split echo of it.
func TestShellSecretInputMasked(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		task := newTestTask()
		const secret = "hunter2-s3cret"
		resc := startJob(p, srv, "default",
			`stty echo; printf 'Secret: '; read v; stty -echo; printf '%s' "$v" | cut -c1-5; printf '%s\n' "$v"`, task)
		if pr := task.waitPrompt(t); pr.Kind != jobs.PromptQuestion {
			t.Errorf("prompt %+v", pr)
		}
		task.controls <- jobs.Control{Input: []byte(secret + "\n"), Secret: true}
		res := waitResult(t, resc)
		out := task.Output()
		if res.State != jobs.StateSucceeded || strings.Contains(out, secret) || !strings.Contains(out, maskText) {
			t.Errorf("%s: output %q shows the secret or no mask", res.State, out)
		}
		t.Logf("output %q", out)
	})
}

func TestMasker(t *testing.T) {
	t.Parallel()
	var m masker
	m.add([]byte("abcdef\n"))
	m.add([]byte("xy")) // too short to mask
	var out []byte
	for _, p := range []string{"1 abc", "def 2 ab", "cdefab", "c xy ab"} {
		out = append(out, m.Write([]byte(p))...)
	}
	out = append(out, m.Flush()...)
	if want := "1 ******** 2 ********abc xy ab"; string(out) != want {
		t.Fatalf("masked %q, want %q", out, want)
	}
	if got := m.String("was abcdef"); got != "was "+maskText {
		t.Fatalf("String: %q", got)
	}
}
