package sshtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestUserLogin: Options.User logs in as TestUser, whose sudo asks for the
// password and accepts Server.Password.
func TestUserLogin(t *testing.T) {
	Each(t, Options{User: TestUser}, func(t *testing.T, s *Server) {
		if s.User != TestUser || s.Password == "" {
			t.Fatalf("User %q Password set %v", s.User, s.Password != "")
		}
		run := func(cmd, stdin string) string {
			sess, err := dial(t, s).NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			sess.Stdin = strings.NewReader(stdin)
			out, err := sess.CombinedOutput(cmd)
			if err != nil {
				t.Logf("%s: %v", cmd, err)
			}
			return strings.TrimSpace(string(out))
		}
		if got := run("id -un; echo $HOME", ""); got != TestUser+"\n/home/"+TestUser {
			t.Errorf("id -un; echo $HOME: %q", got)
		}
		// -S reads the password from stdin; -k forgets any cached one. The
		// password goes through stdin, never a command line: other packages'
		// tests, running at the same time, check that ps never shows it.
		if got := run("sudo -k -S -p '' whoami", s.Password+"\n"); got != "root" {
			t.Errorf("sudo with the password: %q", got)
		}
		if got := run("sudo -k -S -p '' whoami", "wrong\n"); strings.Contains(got, "root") {
			t.Errorf("sudo with a wrong password: %q", got)
		}
	})
	// The sudoers entry is gone once no server uses it.
	if _, err := os.Stat(filepath.Join(sudoersDir, TestUser+"-"+strconv.Itoa(os.Getpid()))); err == nil {
		t.Error("the sudoers file was left behind")
	}
}
