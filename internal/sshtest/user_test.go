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
		run := func(cmd string) string {
			sess, err := dial(t, s).NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			out, err := sess.CombinedOutput(cmd)
			if err != nil {
				t.Logf("%s: %v", cmd, err)
			}
			return strings.TrimSpace(string(out))
		}
		if got := run("id -un; echo $HOME"); got != TestUser+"\n/home/"+TestUser {
			t.Errorf("id -un; echo $HOME: %q", got)
		}
		// -S reads the password from stdin; -k forgets any cached one.
		if got := run("echo " + s.Password + " | sudo -k -S -p '' whoami"); got != "root" {
			t.Errorf("sudo with the password: %q", got)
		}
		if got := run("echo wrong | sudo -k -S -p '' whoami"); strings.Contains(got, "root") {
			t.Errorf("sudo with a wrong password: %q", got)
		}
	})
	// The sudoers entry is gone once no server uses it.
	if _, err := os.Stat(filepath.Join(sudoersDir, TestUser+"-"+strconv.Itoa(os.Getpid()))); err == nil {
		t.Error("the sudoers file was left behind")
	}
}
