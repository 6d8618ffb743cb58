package sessions

import (
	"os/exec"
	"strings"
	"testing"
)

func TestSpoolBaseExpr(t *testing.T) {
	for dir, want := range map[string]string{
		"":               `"${XDG_CACHE_HOME:-$HOME/.cache}/sshjobs"`,
		"~":              `"$HOME"`,
		"~/spool":        `"$HOME"/'spool'`,
		"/var/tmp/it's":  `'/var/tmp/it'\''s'`,
		"relative/spool": `"$HOME"/'relative/spool'`,
	} {
		if got := spoolBaseExpr(dir); got != want {
			t.Errorf("spoolBaseExpr(%q) = %s, want %s", dir, got, want)
		}
	}
}

func TestParseLaunch(t *testing.T) {
	const n = "0123456789abcdef"
	att, err := parseLaunch(n, "noise\n"+n+" ok /home/u/.cache/sshjobs/j1\n"+n+" pid 42 42 ps:Mon Jan  1 10:00:00 2024\n")
	if err != nil || att.Spool != "/home/u/.cache/sshjobs/j1" || att.PID != 42 || att.PGID != 42 || att.Start != "ps:Mon Jan  1 10:00:00 2024" {
		t.Errorf("ok: %+v %v", att, err)
	}
	_, err = parseLaunch(n, "mkdir: cannot create directory '/ro': Read-only file system\n"+n+" nospool /ro/sshjobs/j1\n")
	if err == nil || !strings.Contains(err.Error(), "/ro/sshjobs/j1") || !strings.Contains(err.Error(), "Read-only") {
		t.Errorf("nospool: %v", err)
	}
	if _, err := parseLaunch(n, "garbage"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestAttachCheck(t *testing.T) {
	ok := attachInfo{Spool: "/s/j1", PID: 42, Start: "proc:1"}
	if err := ok.check("j1"); err != nil {
		t.Error(err)
	}
	for _, a := range []attachInfo{
		{Spool: "/s/j2", PID: 42, Start: "proc:1"},    // another job's folder
		{Spool: "s/j1", PID: 42, Start: "proc:1"},     // relative
		{Spool: "/s/../j1", PID: 42, Start: "proc:1"}, // not clean
		{Spool: "/s/j1", PID: 1, Start: "proc:1"},     // init
		{Spool: "/s/j1", PID: 42},                     // no start
	} {
		if a.check("j1") == nil {
			t.Errorf("%+v passed the check", a)
		}
	}
}

// TestScriptsParse runs each exec script through sh -n under the shells at
// hand: a syntax error would only show on a host.
func TestScriptsParse(t *testing.T) {
	scripts := map[string]string{"wrapper": wrapperScript, "follow": followScript, "signal": signalScript,
		"group": groupScript, "remove": removeScript, "orphans": orphanScript,
		"launcher": launcherScript("n", "~/x", "j1", "echo 'hi'\nexit 3")}
	for _, sh := range []string{"sh", "dash", "bash", "busybox", "zsh"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		for name, s := range scripts {
			args := []string{"-n", "-c", s}
			if sh == "busybox" {
				args = append([]string{"sh"}, args...)
			}
			if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
				t.Errorf("%s: %s script: %v %s", sh, name, err, out)
			}
		}
	}
	// Exec scripts pass through any login shell: no newline (csh), no
	// backslash (fish), no history `!` (csh; `!=` is not one).
	for name, s := range scripts {
		if name != "launcher" && strings.ContainsAny(strings.ReplaceAll(s, "!=", ""), "\n\\!") {
			t.Errorf("%s script holds a newline, backslash or history '!'", name)
		}
	}
}
